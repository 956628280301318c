//! What the node knows about one connection besides its bytes: where it came from, the
//! listener it arrived on (Metadata answers with that listener's addresses), its security
//! protocol, and on a SASL listener its authentication state.
//!
//! Invariants: on a SASL listener the principal is set only by a completed exchange and
//! never changes afterwards (a re-authentication as another user fails and closes the
//! connection); [`Session::admits`] is the one gate that keeps every other request out
//! until then and after the session expires.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::ApiKey;

use crate::listeners::{ListenerName, SecurityProtocol};
use crate::locks::MutexExt;
use crate::sasl::{Exchange, Mechanism, SaslSettings};

/// The principal of a connection that did not authenticate (PLAINTEXT, SSL without a
/// client certificate), as Kafka names it.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// An exchange a SaslHandshake started.
pub struct Pending {
    pub mechanism: Mechanism,
    /// SaslHandshake v0: the tokens follow as raw size-prefixed frames, not as
    /// SaslAuthenticate requests.
    pub raw: bool,
    pub exchange: Exchange,
}

#[derive(Default)]
struct Auth {
    /// The principal of the client certificate (mTLS), when one was presented.
    tls_principal: Option<String>,
    principal: Option<String>,
    mechanism: Option<Mechanism>,
    expires_ms: Option<i64>,
    pending: Option<Pending>,
}

/// Why a request is not admitted (the connection is closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAdmitted {
    #[error("request before SASL authentication")]
    Unauthenticated,
    #[error("SASL session expired without re-authentication")]
    Expired,
}

pub struct Session {
    pub peer: SocketAddr,
    pub listener: ListenerName,
    pub protocol: SecurityProtocol,
    /// The listener's SASL settings; `None` on PLAINTEXT and SSL listeners.
    pub sasl: Option<Arc<SaslSettings>>,
    auth: Mutex<Auth>,
    /// Set by a failed authentication: close once the current response is written. Read
    /// after every response, so it is a flag rather than behind the lock.
    close_after_response: AtomicBool,
}

impl Session {
    pub fn new(
        peer: SocketAddr,
        listener: ListenerName,
        protocol: SecurityProtocol,
        sasl: Option<Arc<SaslSettings>>,
    ) -> Self {
        Session {
            peer,
            listener,
            protocol,
            sasl,
            auth: Mutex::new(Auth::default()),
            close_after_response: AtomicBool::new(false),
        }
    }

    /// A session on the default PLAINTEXT listener, for in-process callers and tests.
    pub fn plaintext(peer: SocketAddr) -> Self {
        Session::new(peer, ListenerName::new("PLAINTEXT"), SecurityProtocol::Plaintext, None)
    }

    /// The SASL principal once authenticated, else the client certificate's (mTLS), else
    /// `User:ANONYMOUS`.
    pub fn principal(&self) -> String {
        let auth = self.auth.locked();
        auth.principal.clone().or_else(|| auth.tls_principal.clone()).unwrap_or_else(|| ANONYMOUS.to_string())
    }

    /// Records the principal of the client's certificate, after the TLS handshake.
    pub fn set_tls_principal(&self, principal: String) {
        self.auth.locked().tls_principal = Some(principal);
    }

    /// Whether request `api` may be served now: always on a listener without SASL; on a
    /// SASL listener only the authentication APIs until authenticated, and after the
    /// session's lifetime only those again (the client must re-authenticate).
    pub fn admits(&self, api: ApiKey, now_ms: i64) -> Result<(), NotAdmitted> {
        if self.sasl.is_none() || matches!(api, ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)
        {
            return Ok(());
        }
        let auth = self.auth.locked();
        if auth.principal.is_none() {
            return Err(NotAdmitted::Unauthenticated);
        }
        if auth.expires_ms.is_some_and(|expires| now_ms >= expires) {
            return Err(NotAdmitted::Expired);
        }
        Ok(())
    }

    /// Whether a SASL exchange has completed on this connection.
    pub fn is_authenticated(&self) -> bool {
        self.auth.locked().principal.is_some()
    }

    /// The mechanism of the last successful authentication (a re-authentication must use
    /// it again).
    pub fn authenticated_mechanism(&self) -> Option<Mechanism> {
        self.auth.locked().mechanism
    }

    pub fn begin(&self, pending: Pending) {
        self.auth.locked().pending = Some(pending);
    }

    /// Whether the next frame is a raw SASL token (after a v0 handshake).
    pub fn expects_raw_token(&self) -> bool {
        // Only a SASL listener starts exchanges: the others never take the lock here.
        self.sasl.is_some() && self.auth.locked().pending.as_ref().is_some_and(|p| p.raw)
    }

    pub fn take_pending(&self) -> Option<Pending> {
        self.auth.locked().pending.take()
    }

    /// Records a completed exchange; `false` (and nothing recorded) when this is a
    /// re-authentication as a different user.
    pub fn authenticated(&self, user: &str, mechanism: Mechanism, expires_ms: Option<i64>) -> bool {
        let principal = format!("User:{user}");
        let mut auth = self.auth.locked();
        if auth.principal.as_ref().is_some_and(|p| *p != principal) {
            return false;
        }
        auth.principal = Some(principal);
        auth.mechanism = Some(mechanism);
        auth.expires_ms = expires_ms;
        true
    }

    /// Asks the connection to close once the current response is written.
    pub fn close_after_response(&self) {
        self.close_after_response.store(true, Ordering::Release);
    }

    pub fn closing(&self) -> bool {
        self.close_after_response.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sasl_session() -> Session {
        let settings = SaslSettings::from_settings(&ListenerName::new("SASL_PLAINTEXT"), &Default::default()).unwrap();
        Session::new(
            "127.0.0.1:1".parse().unwrap(),
            ListenerName::new("SASL_PLAINTEXT"),
            SecurityProtocol::SaslPlaintext,
            Some(Arc::new(settings)),
        )
    }

    #[test]
    fn a_sasl_session_admits_only_authentication_until_authenticated_and_until_expiry() {
        let session = sasl_session();
        assert_eq!(session.admits(ApiKey::Metadata, 0), Err(NotAdmitted::Unauthenticated));
        assert!(session.admits(ApiKey::ApiVersions, 0).is_ok());
        assert!(session.admits(ApiKey::SaslHandshake, 0).is_ok());
        let scram = Mechanism::parse("SCRAM-SHA-256").unwrap();
        assert!(session.authenticated("alice", scram, Some(100)));
        assert_eq!(session.principal(), "User:alice");
        assert!(session.admits(ApiKey::Produce, 99).is_ok());
        assert_eq!(session.admits(ApiKey::Produce, 100), Err(NotAdmitted::Expired));
        assert!(!session.authenticated("mallory", scram, Some(500)), "re-authentication keeps the principal");
        assert_eq!(session.principal(), "User:alice");
        assert!(session.authenticated("alice", scram, Some(500)));
        assert!(session.admits(ApiKey::Produce, 200).is_ok());
    }

    #[test]
    fn other_listeners_admit_everything_as_anonymous() {
        let session = Session::plaintext("127.0.0.1:1".parse().unwrap());
        assert!(session.admits(ApiKey::Produce, 0).is_ok());
        assert_eq!(session.principal(), ANONYMOUS);
    }
}
