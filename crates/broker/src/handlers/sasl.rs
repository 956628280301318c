//! SaslHandshake (v0-1) and SaslAuthenticate (v0-2), and the raw token frames that follow a
//! v0 handshake. The exchange itself is in `crate::sasl`; the connection's state in
//! `crate::session`.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ResponseError;

use super::{Context, DispatchError};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::response::{Chunk, Frame};
use crate::sasl::{Exchange, Mechanism, SaslFailure, Step};
use crate::session::{Pending, Session};

pub fn handshake(ctx: &Context, request: SaslHandshakeRequest) -> SaslHandshakeResponse {
    let Some(settings) = &ctx.session.sasl else {
        return SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code());
    };
    let names = settings.names().into_iter().map(StrBytes::from_static_str).collect();
    let response = SaslHandshakeResponse::default().with_mechanisms(names);
    let mechanism = Mechanism::parse(request.mechanism.as_str()).filter(|m| settings.enabled.contains(m));
    let Some(mechanism) = mechanism else {
        return response.with_error_code(ResponseError::UnsupportedSaslMechanism.code());
    };
    // A re-authentication (KIP-368) uses the mechanism of the first authentication.
    if ctx.session.authenticated_mechanism().is_some_and(|first| first != mechanism) {
        ctx.session.close_after_response();
        return response.with_error_code(ResponseError::IllegalSaslState.code());
    }
    ctx.session.begin(Pending { mechanism, raw: ctx.version == 0, exchange: Exchange::new(mechanism) });
    response
}

/// How one token was taken.
enum Outcome {
    Continue(Vec<u8>),
    Authenticated { response: Vec<u8>, lifetime_ms: i64 },
    Failed(String),
}

/// Feeds one client token into the pending exchange.
async fn take_token(broker: &Broker, session: &Session, token: &[u8]) -> Outcome {
    let now = now_ms();
    let address = session.peer.ip();
    if !broker.auth_failures.allowed(address, now) {
        return Outcome::Failed("Authentication failed: too many failed attempts from this address".into());
    }
    let (Some(settings), Some(mut pending)) = (&session.sasl, session.take_pending()) else {
        return Outcome::Failed("SaslAuthenticate without a SaslHandshake".into());
    };
    let image = broker.metadata.image();
    match pending.exchange.step(token, settings, &image) {
        Ok(Step::Challenge(challenge)) => {
            session.begin(pending);
            Outcome::Continue(challenge)
        }
        Ok(Step::Done { user, response, expires_ms: credential_expires }) => {
            // With re-authentication on, a session lasts `connections.max.reauth.ms` and no
            // longer than the credential (an OAuth token); with it off, until the
            // connection closes (as in Kafka).
            let reauth_ms = broker.config.connections_max_reauth_ms;
            let expires = (reauth_ms > 0).then(|| {
                let by_setting = now.saturating_add(reauth_ms);
                credential_expires.map_or(by_setting, |token| token.min(by_setting))
            });
            let lifetime_ms = expires.map_or(0, |e| (e - now).max(0));
            if !session.authenticated(&user, pending.mechanism, expires) {
                return Outcome::Failed("Re-authentication must keep the principal".into());
            }
            tracing::debug!(peer = %session.peer, user, mechanism = pending.mechanism.name(), "authenticated");
            Outcome::Authenticated { response, lifetime_ms }
        }
        Err(failure) => {
            broker.auth_failures.failed(address, now);
            tracing::warn!(peer = %session.peer, mechanism = pending.mechanism.name(), %failure, "authentication failed");
            // Kafka delays the answer to a failed authentication, so a client cannot
            // guess passwords at the speed of the network.
            let delay = std::time::Duration::from_millis(broker.config.connection_failed_authentication_delay_ms);
            tokio::time::sleep(delay).await;
            Outcome::Failed(match failure {
                SaslFailure::BadCredentials => format!(
                    "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                    pending.mechanism.name()
                ),
                SaslFailure::Malformed(_) => "Authentication failed: malformed SASL message".to_string(),
            })
        }
    }
}

pub async fn authenticate(ctx: &Context<'_>, request: SaslAuthenticateRequest) -> SaslAuthenticateResponse {
    match take_token(ctx.broker, ctx.session, &request.auth_bytes).await {
        Outcome::Continue(challenge) => SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(challenge)),
        Outcome::Authenticated { response, lifetime_ms } => SaslAuthenticateResponse::default()
            .with_auth_bytes(Bytes::from(response))
            .with_session_lifetime_ms(if ctx.version >= 1 { lifetime_ms } else { 0 }),
        Outcome::Failed(message) => {
            ctx.session.close_after_response();
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(message)))
        }
    }
}

/// A raw token after a v0 handshake: answered with a raw size-prefixed token; a failure
/// closes the connection without an answer, as Kafka does.
pub async fn raw_token(broker: &Broker, session: &Session, token: Bytes) -> Result<Option<Frame>, DispatchError> {
    let reply = match take_token(broker, session, &token).await {
        Outcome::Continue(reply) | Outcome::Authenticated { response: reply, .. } => reply,
        Outcome::Failed(message) => return Err(DispatchError::Refused(message)),
    };
    let mut frame = BytesMut::with_capacity(4 + reply.len());
    frame.put_u32(u32::try_from(reply.len()).expect("SASL tokens are small"));
    frame.put_slice(&reply);
    Ok(Some(Frame { chunks: vec![Chunk::Bytes(frame.freeze())] }))
}
