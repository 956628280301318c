//! The request gate: the one place where every API's request is authorized, between
//! decoding and its handler (Kafka's checks in `KafkaApis`, gathered here instead of spread
//! through the handlers).
//!
//! For each API a function decides, from the request, the principal's [`Access`] and the
//! metadata image, what the request may do, and returns a [`Gate`]: either a refusal (the
//! whole response, e.g. GROUP_AUTHORIZATION_FAILED for a JoinGroup), or the request with
//! the parts it may not touch taken out plus a completion that adds their errors to the
//! handler's response (e.g. TOPIC_AUTHORIZATION_FAILED for one topic of a Produce, while
//! the others are written). Handlers therefore never see a resource the principal may not
//! use. Fetch, whose response the handler encodes itself, gets the denied topics marked
//! instead ([`topics::FetchDenied`]).
//!
//! Invariants: with no authorizer configured every gate passes the request unchanged
//! and adds nothing; a resource the principal may not Describe is never disclosed (a
//! listing leaves it out, a request naming it gets the authorization error whether or not
//! it exists).

pub mod cluster;
pub mod configs;
pub mod groups;
pub mod topics;
pub mod transactions;

use std::future::Future;

use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ResponseError;

pub use crate::authorizer::Access;

/// Adds the errors of what the gate took out of a request to the handler's response.
pub type Completion<Resp> = Box<dyn FnOnce(&mut Resp) + Send>;

/// The gate's verdict on one request.
pub enum Gate<Req, Resp> {
    /// Serve the request (what is left of it); then run the completion, if any.
    Pass(Req, Option<Completion<Resp>>),
    /// Answer this instead of serving anything.
    Refuse(Resp),
}

impl<Req, Resp> Gate<Req, Resp> {
    pub fn pass(request: Req) -> Self {
        Gate::Pass(request, None)
    }

    /// Passes the request, completing the response with `complete` when it is set.
    pub fn pass_completing(request: Req, complete: Option<Completion<Resp>>) -> Self {
        Gate::Pass(request, complete)
    }

    /// Whether the gate took anything out or refused (Produce with acks=0 then closes the
    /// connection, as Kafka does, since it cannot answer).
    pub fn denied_anything(&self) -> bool {
        !matches!(self, Gate::Pass(_, None))
    }

    pub fn serve(self, handler: impl FnOnce(Req) -> Resp) -> Resp {
        match self {
            Gate::Refuse(response) => response,
            Gate::Pass(request, complete) => {
                let mut response = handler(request);
                if let Some(complete) = complete {
                    complete(&mut response);
                }
                response
            }
        }
    }

    pub async fn serve_async<F: Future<Output = Resp>>(self, handler: impl FnOnce(Req) -> F) -> Resp {
        match self {
            Gate::Refuse(response) => response,
            Gate::Pass(request, complete) => {
                let mut response = handler(request).await;
                if let Some(complete) = complete {
                    complete(&mut response);
                }
                response
            }
        }
    }
}

/// Splits `items` into those `allowed` keeps and the rest (order kept in each).
pub(crate) fn partition_by<T>(items: Vec<T>, mut allowed: impl FnMut(&T) -> bool) -> (Vec<T>, Vec<T>) {
    let mut kept = Vec::with_capacity(items.len());
    let mut denied = Vec::new();
    for item in items {
        if allowed(&item) {
            kept.push(item);
        } else {
            denied.push(item);
        }
    }
    (kept, denied)
}

/// A completion when something was denied, none otherwise.
pub(crate) fn completion_if<T: Send + 'static, Resp>(
    denied: Vec<T>,
    complete: impl FnOnce(&mut Resp, Vec<T>) + Send + 'static,
) -> Option<Completion<Resp>> {
    if denied.is_empty() {
        return None;
    }
    Some(Box::new(move |response: &mut Resp| complete(response, denied)))
}

/// The message Kafka's clients print with an authorization error.
pub(crate) fn message(error: ResponseError) -> Option<StrBytes> {
    Some(StrBytes::from_static_str(match error {
        ResponseError::TopicAuthorizationFailed => "Topic authorization failed.",
        ResponseError::GroupAuthorizationFailed => "Group authorization failed.",
        ResponseError::ClusterAuthorizationFailed => "Cluster authorization failed.",
        ResponseError::TransactionalIdAuthorizationFailed => "Transactional Id authorization failed.",
        _ => "Authorization failed.",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_completes_the_response_only_when_something_was_denied() {
        let passed: Gate<Vec<i32>, Vec<i32>> = Gate::pass(vec![1, 2]);
        assert!(!passed.denied_anything());
        assert_eq!(passed.serve(|r| r), vec![1, 2]);
        let (kept, denied) = partition_by(vec![1, 2, 3, 4], |n| n % 2 == 0);
        assert_eq!((kept.clone(), denied.clone()), (vec![2, 4], vec![1, 3]));
        let gate =
            Gate::pass_completing(kept, completion_if(denied, |r: &mut Vec<i32>, d| r.extend(d.iter().map(|n| -n))));
        assert!(gate.denied_anything());
        assert_eq!(gate.serve(|r| r), vec![2, 4, -1, -3]);
        let refused: Gate<Vec<i32>, Vec<i32>> = Gate::Refuse(vec![9]);
        assert_eq!(refused.serve(|_| unreachable!("a refused request is not served")), vec![9]);
    }
}

#[cfg(test)]
mod gate_tests;
