//! What the node knows about one connection besides its bytes: where it came from, the
//! listener it arrived on (Metadata answers with that listener's addresses) and its
//! security protocol.

use std::net::SocketAddr;

use crate::listeners::{ListenerName, SecurityProtocol};

#[derive(Debug, Clone)]
pub struct Session {
    pub peer: SocketAddr,
    pub listener: ListenerName,
    pub protocol: SecurityProtocol,
}

impl Session {
    /// A session on the default PLAINTEXT listener, for in-process callers and tests.
    pub fn plaintext(peer: SocketAddr) -> Self {
        Session { peer, listener: ListenerName::new("PLAINTEXT"), protocol: SecurityProtocol::Plaintext }
    }
}
