//! AddRaftVoter v0 and RemoveRaftVoter v0 (KIP-853): changing the controller voter set of a
//! running cluster. Kafka's brokers forward these to the active controller; Runnel answers
//! on any node and the quorum forwards the change to the Raft leader, which runs it (see
//! `runnel_quorum::membership`).
//!
//! Errors as Kafka's KafkaRaftClient answers them: DUPLICATE_VOTER for a node that already
//! votes, VOTER_NOT_FOUND for one that does not, REQUEST_TIMED_OUT while another voter
//! change is pending or when the new voter did not catch up in time, INCONSISTENT_CLUSTER_ID
//! for another cluster's id, INVALID_REQUEST for a request that cannot be carried out (no
//! endpoint on the controller listener, removing the last voter), UNSUPPORTED_VERSION on a
//! single node, whose metadata has no quorum to change (Kafka: a static voter set).
//!
//! Runnel keeps no directory ids: the request's `voter_directory_id` is accepted and ignored.

use std::time::Duration;

use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ResponseError;
use runnel_quorum::{ForwardError, QuorumError, QuorumNode, Roles};

use super::Context;

/// When the request names no timeout (0 or less).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// RemoveRaftVoter has no timeout field: as long as a proposal may take, twice.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(20);

type Refusal = (ResponseError, String);

pub async fn add(ctx: &Context<'_>, request: AddRaftVoterRequest) -> AddRaftVoterResponse {
    let (code, message) = split(add_voter(ctx, &request).await.err());
    AddRaftVoterResponse::default().with_error_code(code).with_error_message(message)
}

pub async fn remove(ctx: &Context<'_>, request: RemoveRaftVoterRequest) -> RemoveRaftVoterResponse {
    let (code, message) = split(remove_voter(ctx, &request).await.err());
    RemoveRaftVoterResponse::default().with_error_code(code).with_error_message(message)
}

fn split(answer: Option<Refusal>) -> (i16, Option<StrBytes>) {
    match answer {
        None => (0, None),
        Some((error, message)) => (error.code(), Some(StrBytes::from_string(message))),
    }
}

async fn add_voter(ctx: &Context<'_>, request: &AddRaftVoterRequest) -> Result<(), Refusal> {
    let quorum = quorum(ctx)?;
    check_cluster(ctx, request.cluster_id.as_ref())?;
    let node_id = voter_id(request.voter_id)?;
    let node = endpoint(ctx, request)?;
    let timeout =
        u64::try_from(request.timeout_ms).ok().filter(|ms| *ms > 0).map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    quorum.add_voter(node_id, node, timeout).await.map(|_| ()).map_err(refusal)
}

async fn remove_voter(ctx: &Context<'_>, request: &RemoveRaftVoterRequest) -> Result<(), Refusal> {
    let quorum = quorum(ctx)?;
    check_cluster(ctx, request.cluster_id.as_ref())?;
    let node_id = voter_id(request.voter_id)?;
    quorum.remove_voter(node_id, REMOVE_TIMEOUT).await.map(|_| ()).map_err(refusal)
}

fn quorum<'a>(ctx: &'a Context<'_>) -> Result<&'a runnel_quorum::Quorum, Refusal> {
    ctx.broker.metadata.quorum().ok_or_else(|| {
        (ResponseError::UnsupportedVersion, "a single node keeps its metadata without a quorum of voters".to_string())
    })
}

fn check_cluster(ctx: &Context<'_>, cluster_id: Option<&StrBytes>) -> Result<(), Refusal> {
    match cluster_id {
        Some(id) if id.as_str() != ctx.broker.cluster_id => Err((
            ResponseError::InconsistentClusterId,
            format!("cluster id {id} is not this cluster's ({})", ctx.broker.cluster_id),
        )),
        _ => Ok(()),
    }
}

fn voter_id(id: i32) -> Result<u64, Refusal> {
    u64::try_from(id).map_err(|_| (ResponseError::InvalidRequest, format!("voter id {id} is negative")))
}

/// The new voter's quorum address: its endpoint on this cluster's controller listener name,
/// as Kafka's leader picks the endpoint of its own default listener. No endpoints at all is
/// a Runnel extension: the node must then already be an observer, whose address is known.
fn endpoint(ctx: &Context<'_>, request: &AddRaftVoterRequest) -> Result<Option<QuorumNode>, Refusal> {
    if request.listeners.is_empty() {
        return Ok(None);
    }
    let name = ctx.broker.config.controller_listener_name.as_str();
    let listener = request.listeners.iter().find(|l| l.name.as_str().eq_ignore_ascii_case(name));
    let listener = listener.ok_or_else(|| {
        (
            ResponseError::InvalidRequest,
            format!("the voter's listeners have no endpoint for the controller listener {name}"),
        )
    })?;
    Ok(Some(QuorumNode {
        controller_addr: format!("{}:{}", listener.host, listener.port),
        roles: Roles::CONTROLLER,
        ..QuorumNode::default()
    }))
}

/// A quorum failure as Kafka's error code for it.
fn refusal(error: QuorumError) -> Refusal {
    let message = error.to_string();
    let code = match &error {
        QuorumError::VoterChange(ForwardError::DuplicateVoter { .. }) => ResponseError::DuplicateVoter,
        QuorumError::VoterChange(ForwardError::VoterNotFound { .. }) => ResponseError::VoterNotFound,
        QuorumError::VoterChange(ForwardError::ChangeInProgress | ForwardError::NotCaughtUp { .. }) => {
            ResponseError::RequestTimedOut
        }
        QuorumError::VoterChange(_) | QuorumError::TooLarge { .. } => ResponseError::InvalidRequest,
        QuorumError::Timeout { .. } | QuorumError::Unknown(_) | QuorumError::Peer { .. } => {
            ResponseError::RequestTimedOut
        }
        _ => ResponseError::UnknownServerError,
    };
    (code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_refusals_get_kafkas_codes() {
        let code = |e| refusal(e).0;
        let change = QuorumError::VoterChange;
        assert_eq!(code(change(ForwardError::DuplicateVoter { node_id: 1 })), ResponseError::DuplicateVoter);
        assert_eq!(code(change(ForwardError::VoterNotFound { node_id: 1 })), ResponseError::VoterNotFound);
        assert_eq!(code(change(ForwardError::ChangeInProgress)), ResponseError::RequestTimedOut);
        assert_eq!(code(change(ForwardError::NotCaughtUp { node_id: 4 })), ResponseError::RequestTimedOut);
        assert_eq!(code(change(ForwardError::Invalid { message: "x".into() })), ResponseError::InvalidRequest);
        assert_eq!(code(QuorumError::Timeout { timeout_ms: 1 }), ResponseError::RequestTimedOut);
    }
}
