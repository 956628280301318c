//! The node's authorizer: the ACLs of the current metadata image, indexed, and the settings
//! that decide with them (`super.users`, `allow.everyone.if.no.acl.found`). The metadata
//! publisher hands it every image whose ACLs changed; each request takes an [`Access`] for
//! its principal and host, which the request gate (`access/`) asks.
//!
//! Invariants: without `authorizer.class.name` every request is allowed and nothing is
//! looked up or allocated per request; with it, a decision sees one consistent set of ACLs
//! (the index is replaced whole, never edited in place).

use std::sync::{Arc, RwLock};

use runnel_metadata::acl::{AclIndex, Acls, AuthorizerConfig, Operation, ResourceType, CLUSTER_NAME};

use crate::locks::RwLockExt;
use crate::session::Session;

pub struct Authorizer {
    config: Option<Arc<AuthorizerConfig>>,
    index: RwLock<Arc<AclIndex>>,
}

impl Authorizer {
    pub fn new(config: Option<AuthorizerConfig>) -> Self {
        Authorizer { config: config.map(Arc::new), index: RwLock::new(Arc::new(AclIndex::default())) }
    }

    pub fn enabled(&self) -> bool {
        self.config.is_some()
    }

    /// Replaces the ACLs decisions are made with (the metadata publisher, when they changed).
    pub fn publish(&self, acls: &Acls) {
        *self.index.write_locked() = Arc::new(AclIndex::new(acls));
    }

    /// What one request of `session` may do.
    pub fn access(&self, session: &Session) -> Access {
        match &self.config {
            None => Access::Unrestricted,
            Some(config) => Access::Checked(Box::new(Checked {
                config: config.clone(),
                index: self.index.read_locked().clone(),
                principal: session.principal(),
                host: session.peer.ip().to_string(),
            })),
        }
    }
}

/// One request's view of the authorizer.
#[derive(Clone)]
pub enum Access {
    /// No authorizer is configured.
    Unrestricted,
    Checked(Box<Checked>),
}

#[derive(Clone)]
pub struct Checked {
    config: Arc<AuthorizerConfig>,
    index: Arc<AclIndex>,
    principal: String,
    host: String,
}

impl Access {
    /// The access of `principal` from `host` under these ACLs (the gates' unit tests).
    #[cfg(test)]
    pub(crate) fn checked(config: AuthorizerConfig, acls: &Acls, principal: &str, host: &str) -> Access {
        Access::Checked(Box::new(Checked {
            config: Arc::new(config),
            index: Arc::new(AclIndex::new(acls)),
            principal: principal.to_string(),
            host: host.to_string(),
        }))
    }

    /// Whether the request may perform `operation` on the named resource.
    pub fn allows(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        match self {
            Access::Unrestricted => true,
            Access::Checked(c) => c.index.authorize(&c.config, &c.principal, &c.host, operation, resource_type, name),
        }
    }

    pub fn allows_topic(&self, operation: Operation, topic: &str) -> bool {
        self.allows(operation, ResourceType::Topic, topic)
    }

    pub fn allows_group(&self, operation: Operation, group: &str) -> bool {
        self.allows(operation, ResourceType::Group, group)
    }

    pub fn allows_cluster(&self, operation: Operation) -> bool {
        self.allows(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Whether the request may perform `operation` on some resource of the type.
    pub fn allows_any(&self, operation: Operation, resource_type: ResourceType) -> bool {
        match self {
            Access::Unrestricted => true,
            Access::Checked(c) => c.index.authorize_any(&c.config, &c.principal, &c.host, operation, resource_type),
        }
    }

    /// Kafka's `authorized_operations` bits for the resource; without an authorizer, every
    /// operation Kafka reports for the type.
    pub fn authorized_operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        match self {
            Access::Unrestricted => AclIndex::default().authorized_operations(
                &AuthorizerConfig { allow_if_no_acl: true, ..Default::default() },
                "",
                "",
                resource_type,
                name,
            ),
            Access::Checked(c) => c.index.authorized_operations(&c.config, &c.principal, &c.host, resource_type, name),
        }
    }

    /// Whether anything is checked at all (requests skip the gate's work when not).
    pub fn is_unrestricted(&self) -> bool {
        matches!(self, Access::Unrestricted)
    }
}
