//! Access control lists with the semantics of Kafka's `StandardAuthorizer`: the bindings
//! (kept in the metadata log, so every node decides alike), the filters of DescribeAcls and
//! DeleteAcls, the checks CreateAcls makes, and the authorization decision itself. Pure.
//!
//! A request is allowed when the principal is a super user; otherwise the ACLs that match
//! its resource (literal name, the `*` wildcard, or a prefix), principal (or `User:*`) and
//! host (or `*`) decide: any matching DENY refuses (DENY wins), else any matching ALLOW
//! admits, where an ALLOW of Read, Write, Delete or Alter also admits Describe, and an
//! ALLOW of AlterConfigs also admits DescribeConfigs. With no ACL on the resource at all,
//! `allow.everyone.if.no.acl.found` decides.
//!
//! Invariants: a binding is stored only if it passed [`check_binding`]; the decision
//! depends on nothing but the bindings, the configuration and the request.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What an ACL protects (Kafka's `ResourceType`, codes 2-5).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

impl ResourceType {
    pub const ALL: [ResourceType; 4] =
        [ResourceType::Topic, ResourceType::Group, ResourceType::Cluster, ResourceType::TransactionalId];

    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }
}

/// The one name of the cluster resource, as in Kafka.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal name matching every resource of its type.
pub const WILDCARD: &str = "*";

/// How a binding's name matches resources (codes 3 and 4).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternType {
    Literal,
    Prefixed,
}

impl PatternType {
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        [PatternType::Literal, PatternType::Prefixed].into_iter().find(|p| p.code() == code)
    }
}

/// Kafka's `AclOperation` (codes 2-12).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl Operation {
    pub const ALL: [Operation; 11] = [
        Operation::All,
        Operation::Read,
        Operation::Write,
        Operation::Create,
        Operation::Delete,
        Operation::Alter,
        Operation::Describe,
        Operation::ClusterAction,
        Operation::DescribeConfigs,
        Operation::AlterConfigs,
        Operation::IdempotentWrite,
    ];

    pub fn code(self) -> i8 {
        match self {
            Operation::All => 2,
            Operation::Read => 3,
            Operation::Write => 4,
            Operation::Create => 5,
            Operation::Delete => 6,
            Operation::Alter => 7,
            Operation::Describe => 8,
            Operation::ClusterAction => 9,
            Operation::DescribeConfigs => 10,
            Operation::AlterConfigs => 11,
            Operation::IdempotentWrite => 12,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.code() == code)
    }

    /// The operations an ALLOW of `self` admits: itself, everything for All, and the
    /// implied describes.
    fn allows(self, requested: Operation) -> bool {
        self == requested
            || self == Operation::All
            || (requested == Operation::Describe
                && matches!(self, Operation::Read | Operation::Write | Operation::Delete | Operation::Alter))
            || (requested == Operation::DescribeConfigs && self == Operation::AlterConfigs)
    }
}

/// ALLOW or DENY (codes 3 and 2).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    Deny,
    Allow,
}

impl Permission {
    pub fn code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        [Permission::Deny, Permission::Allow].into_iter().find(|p| p.code() == code)
    }
}

/// One ACL.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:NAME` or `User:*`.
    pub principal: String,
    /// An address or `*`.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Every ACL, by the id the metadata record gave it.
pub type Acls = BTreeMap<Uuid, AclBinding>;

/// Why CreateAcls refuses a binding (Kafka answers INVALID_REQUEST with the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("the resource name must not be empty")]
    EmptyName,
    #[error("the cluster resource is named kafka-cluster")]
    ClusterName,
    #[error("the principal must look like User:NAME")]
    Principal,
    #[error("the host must not be empty")]
    Host,
    #[error("a prefixed pattern cannot be the wildcard")]
    PrefixedWildcard,
    #[error("unknown {what} code {code}")]
    UnknownCode { what: &'static str, code: i8 },
}

/// The code every filter field uses for "any" (Kafka's `ANY`).
pub const ANY_CODE: i8 = 1;
/// The pattern filter code for MATCH.
pub const MATCH_CODE: i8 = 2;

/// A binding from CreateAcls' wire codes (the checks of [`check_binding`] come after).
pub fn binding_from_codes(
    resource_type: i8,
    resource_name: &str,
    pattern_type: i8,
    principal: &str,
    host: &str,
    operation: i8,
    permission: i8,
) -> Result<AclBinding, AclError> {
    let unknown = |what: &'static str, code: i8| AclError::UnknownCode { what, code };
    // ANY and the like are filters' codes, not a binding's.
    let operation = Operation::from_code(operation).ok_or(unknown("operation", operation))?;
    Ok(AclBinding {
        resource_type: ResourceType::from_code(resource_type).ok_or(unknown("resource type", resource_type))?,
        resource_name: resource_name.to_string(),
        pattern_type: PatternType::from_code(pattern_type).ok_or(unknown("pattern type", pattern_type))?,
        principal: principal.to_string(),
        host: host.to_string(),
        operation,
        permission: Permission::from_code(permission).ok_or(unknown("permission", permission))?,
    })
}

/// The checks CreateAcls makes before a binding is stored.
pub fn check_binding(binding: &AclBinding) -> Result<(), AclError> {
    if binding.resource_name.is_empty() {
        return Err(AclError::EmptyName);
    }
    if binding.resource_type == ResourceType::Cluster && binding.resource_name != CLUSTER_NAME {
        return Err(AclError::ClusterName);
    }
    let principal_ok =
        binding.principal.split_once(':').is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty());
    if !principal_ok {
        return Err(AclError::Principal);
    }
    if binding.host.is_empty() {
        return Err(AclError::Host);
    }
    if binding.pattern_type == PatternType::Prefixed && binding.resource_name == WILDCARD {
        return Err(AclError::PrefixedWildcard);
    }
    Ok(())
}

/// A DescribeAcls / DeleteAcls filter; `None` fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

/// How a filter matches pattern types (Kafka's ANY, MATCH, LITERAL, PREFIXED).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PatternFilter {
    #[default]
    Any,
    /// Every binding that would apply to the named resource: literal equal, the wildcard,
    /// and prefixes of the name.
    Match,
    Exactly(PatternType),
}

impl AclFilter {
    /// A filter from DescribeAcls' or DeleteAcls' wire codes, where [`ANY_CODE`] (and a
    /// null string) match anything.
    #[allow(clippy::too_many_arguments)]
    pub fn from_codes(
        resource_type: i8,
        resource_name: Option<&str>,
        pattern_type: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<AclFilter, AclError> {
        fn any_or<T>(code: i8, what: &'static str, parse: impl Fn(i8) -> Option<T>) -> Result<Option<T>, AclError> {
            if code == ANY_CODE {
                return Ok(None);
            }
            parse(code).map(Some).ok_or(AclError::UnknownCode { what, code })
        }
        let pattern = match pattern_type {
            ANY_CODE => PatternFilter::Any,
            MATCH_CODE => PatternFilter::Match,
            code => PatternFilter::Exactly(
                PatternType::from_code(code).ok_or(AclError::UnknownCode { what: "pattern type", code })?,
            ),
        };
        Ok(AclFilter {
            resource_type: any_or(resource_type, "resource type", ResourceType::from_code)?,
            resource_name: resource_name.map(str::to_string),
            pattern,
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation: any_or(operation, "operation", Operation::from_code)?,
            permission: any_or(permission, "permission", Permission::from_code)?,
        })
    }

    pub fn matches(&self, binding: &AclBinding) -> bool {
        let name_matches = match (&self.resource_name, self.pattern) {
            (None, PatternFilter::Exactly(pattern)) => binding.pattern_type == pattern,
            (None, _) => true,
            (Some(name), PatternFilter::Any) => binding.resource_name == *name,
            (Some(name), PatternFilter::Exactly(pattern)) => {
                binding.pattern_type == pattern && binding.resource_name == *name
            }
            (Some(name), PatternFilter::Match) => applies_to(binding, name),
        };
        name_matches
            && self.resource_type.is_none_or(|t| t == binding.resource_type)
            && self.principal.as_ref().is_none_or(|p| *p == binding.principal)
            && self.host.as_ref().is_none_or(|h| *h == binding.host)
            && self.operation.is_none_or(|o| o == binding.operation)
            && self.permission.is_none_or(|p| p == binding.permission)
    }
}

/// Whether `binding`'s name pattern covers the resource `name`.
fn applies_to(binding: &AclBinding, name: &str) -> bool {
    match binding.pattern_type {
        PatternType::Literal => binding.resource_name == name || binding.resource_name == WILDCARD,
        PatternType::Prefixed => name.starts_with(&binding.resource_name),
    }
}

/// The authorizer's settings: `super.users` and `allow.everyone.if.no.acl.found`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    pub super_users: BTreeSet<String>,
    pub allow_if_no_acl: bool,
}

impl AuthorizerConfig {
    /// Parses `super.users` (`User:a;User:b`, Kafka's separator).
    pub fn parse_super_users(value: &str) -> BTreeSet<String> {
        value.split(';').map(str::trim).filter(|u| !u.is_empty()).map(str::to_string).collect()
    }
}

/// The decision over every binding, unindexed: the reference the index is tested against.
#[cfg(test)]
fn authorize(
    acls: &Acls,
    config: &AuthorizerConfig,
    principal: &str,
    host: &str,
    operation: Operation,
    resource_type: ResourceType,
    resource_name: &str,
) -> bool {
    config.super_users.contains(principal)
        || decide(acls.values(), config, principal, host, operation, resource_type, resource_name)
}

/// The decision for a principal that is not a super user, over `bindings` (all of them, or
/// those of the resource type).
fn decide<'a>(
    bindings: impl Iterator<Item = &'a AclBinding>,
    config: &AuthorizerConfig,
    principal: &str,
    host: &str,
    operation: Operation,
    resource_type: ResourceType,
    resource_name: &str,
) -> bool {
    let mut any_on_resource = false;
    let mut allowed = false;
    for binding in bindings.filter(|b| b.resource_type == resource_type && applies_to(b, resource_name)) {
        any_on_resource = true;
        if !concerns(binding, principal, host) {
            continue;
        }
        match binding.permission {
            Permission::Deny if binding.operation == operation || binding.operation == Operation::All => return false,
            Permission::Deny => {}
            Permission::Allow => allowed |= binding.operation.allows(operation),
        }
    }
    if !any_on_resource {
        return config.allow_if_no_acl;
    }
    allowed
}

/// Whether a binding names this principal (or every user) and host (or every host).
fn concerns(binding: &AclBinding, principal: &str, host: &str) -> bool {
    (binding.principal == principal || binding.principal == "User:*")
        && (binding.host == host || binding.host == WILDCARD)
}

/// The operations Kafka reports in `authorized_operations` for a resource type.
fn reported_operations(resource_type: ResourceType) -> &'static [Operation] {
    use Operation::*;
    match resource_type {
        ResourceType::Topic => &[Read, Write, Create, Delete, Alter, Describe, DescribeConfigs, AlterConfigs],
        ResourceType::Group => &[Read, Describe, Delete],
        ResourceType::Cluster => {
            &[Create, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, Alter, Describe]
        }
        ResourceType::TransactionalId => &[Describe, Write],
    }
}

/// The bindings of one node, indexed by resource type: what the request path decides with.
/// Built once per change of the ACLs (the metadata publisher), read by every request.
#[derive(Debug, Clone, Default)]
pub struct AclIndex {
    by_type: BTreeMap<ResourceType, Vec<AclBinding>>,
}

impl AclIndex {
    pub fn new(acls: &Acls) -> Self {
        let mut by_type: BTreeMap<ResourceType, Vec<AclBinding>> = BTreeMap::new();
        for binding in acls.values() {
            by_type.entry(binding.resource_type).or_default().push(binding.clone());
        }
        AclIndex { by_type }
    }

    fn of(&self, resource_type: ResourceType) -> &[AclBinding] {
        self.by_type.get(&resource_type).map_or(&[], Vec::as_slice)
    }

    /// Whether `principal` connecting from `host` may perform `operation` on the resource:
    /// super users always, otherwise the bindings of the resource type decide.
    pub fn authorize(
        &self,
        config: &AuthorizerConfig,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> bool {
        config.super_users.contains(principal)
            || decide(self.of(resource_type).iter(), config, principal, host, operation, resource_type, resource_name)
    }

    /// Whether the principal may perform `operation` on at least one resource of the type
    /// (Kafka's `authorizeByResourceType`, used by InitProducerId for an idempotent
    /// producer: Write on any topic). An ALLOW counts unless a DENY for the same principal
    /// covers everything it names: a wildcard DENY covers all; a literal or prefixed DENY
    /// covers an ALLOW whose name it equals or prefixes.
    pub fn authorize_any(
        &self,
        config: &AuthorizerConfig,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if config.super_users.contains(principal) {
            return true;
        }
        let bindings = self.of(resource_type);
        if bindings.is_empty() {
            return config.allow_if_no_acl;
        }
        let relevant = |b: &&AclBinding| {
            concerns(b, principal, host) && (b.operation == operation || b.operation == Operation::All)
        };
        let denies: Vec<&AclBinding> =
            bindings.iter().filter(relevant).filter(|b| b.permission == Permission::Deny).collect();
        let covered = |allow: &AclBinding| {
            denies.iter().any(|deny| match deny.pattern_type {
                PatternType::Literal => {
                    deny.resource_name == WILDCARD
                        || (allow.pattern_type == PatternType::Literal && deny.resource_name == allow.resource_name)
                }
                PatternType::Prefixed => allow.resource_name.starts_with(&deny.resource_name),
            })
        };
        bindings.iter().filter(relevant).filter(|b| b.permission == Permission::Allow).any(|allow| !covered(allow))
    }

    /// Kafka's `authorized_operations` bit field (bit `code` set for each operation the
    /// principal may perform on the resource), as Metadata, DescribeCluster and
    /// DescribeGroups report it.
    pub fn authorized_operations(
        &self,
        config: &AuthorizerConfig,
        principal: &str,
        host: &str,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> i32 {
        reported_operations(resource_type)
            .iter()
            .filter(|op| self.authorize(config, principal, host, **op, resource_type, resource_name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn acl(
        name: &str,
        pattern: PatternType,
        principal: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission,
        }
    }

    fn acls(bindings: Vec<AclBinding>) -> Acls {
        bindings.into_iter().enumerate().map(|(i, b)| (Uuid::from_u128(i as u128 + 1), b)).collect()
    }

    #[test]
    fn allow_deny_wildcards_prefixes_and_implied_describe() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        let acls = acls(vec![
            acl("orders", Literal, "User:alice", Write, Allow),
            acl("logs-", Prefixed, "User:*", Read, Allow),
            acl("logs-secret", Literal, "User:bob", Read, Deny),
            acl("*", Literal, "User:carol", All, Allow),
        ]);
        let config = AuthorizerConfig::default();
        let can =
            |who: &str, op, topic: &str| authorize(&acls, &config, who, "10.0.0.1", op, ResourceType::Topic, topic);
        assert!(can("User:alice", Write, "orders"));
        assert!(can("User:alice", Describe, "orders"), "Write implies Describe");
        assert!(!can("User:alice", Read, "orders"));
        assert!(!can("User:bob", Write, "orders"));
        assert!(can("User:bob", Read, "logs-app"), "prefix and User:*");
        assert!(!can("User:bob", Read, "logs-secret"), "DENY wins over the prefixed ALLOW");
        assert!(can("User:alice", Read, "logs-secret"), "the DENY names bob only");
        assert!(can("User:carol", Delete, "anything"), "the wildcard with All");
        assert!(!can("User:dave", Read, "unguarded"), "only carol's wildcard ACL applies");
        let group =
            |config: &AuthorizerConfig| authorize(&acls, config, "User:dave", "h", Read, ResourceType::Group, "g");
        assert!(!group(&config), "no ACL on the resource: denied by default");
        let open = AuthorizerConfig { allow_if_no_acl: true, ..config.clone() };
        assert!(group(&open), "allow.everyone.if.no.acl.found");
        assert!(
            !authorize(&acls, &open, "User:dave", "h", Read, ResourceType::Topic, "unguarded"),
            "the wildcard ACL is an ACL on it"
        );
        let sudo =
            AuthorizerConfig { super_users: AuthorizerConfig::parse_super_users("User:root; User:ops"), ..config };
        assert!(authorize(&acls, &sudo, "User:ops", "h", Delete, ResourceType::Cluster, CLUSTER_NAME));
    }

    #[test]
    fn hosts_and_resource_types_must_match() {
        let mut binding = acl("t", PatternType::Literal, "User:a", Operation::Read, Permission::Allow);
        binding.host = "10.0.0.1".into();
        let acls = acls(vec![binding]);
        let config = AuthorizerConfig::default();
        assert!(authorize(&acls, &config, "User:a", "10.0.0.1", Operation::Read, ResourceType::Topic, "t"));
        assert!(!authorize(&acls, &config, "User:a", "10.0.0.2", Operation::Read, ResourceType::Topic, "t"));
        assert!(!authorize(&acls, &config, "User:a", "10.0.0.1", Operation::Read, ResourceType::Group, "t"));
    }

    #[test]
    fn creation_checks_and_filters() {
        let good = acl("t", PatternType::Literal, "User:a", Operation::Read, Permission::Allow);
        assert_eq!(check_binding(&good), Ok(()));
        let mut bad = good.clone();
        bad.principal = "alice".into();
        assert_eq!(check_binding(&bad), Err(AclError::Principal));
        let mut cluster = good.clone();
        cluster.resource_type = ResourceType::Cluster;
        assert_eq!(check_binding(&cluster), Err(AclError::ClusterName));
        let mut prefixed = good.clone();
        prefixed.pattern_type = PatternType::Prefixed;
        prefixed.resource_name = "*".into();
        assert_eq!(check_binding(&prefixed), Err(AclError::PrefixedWildcard));

        let prefix = acl("lo", PatternType::Prefixed, "User:a", Operation::Read, Permission::Allow);
        let wildcard = acl("*", PatternType::Literal, "User:a", Operation::Read, Permission::Allow);
        let matching =
            AclFilter { resource_name: Some("logs".into()), pattern: PatternFilter::Match, ..Default::default() };
        assert!(matching.matches(&prefix) && matching.matches(&wildcard) && !matching.matches(&good));
        let exact = AclFilter {
            resource_name: Some("lo".into()),
            pattern: PatternFilter::Exactly(PatternType::Prefixed),
            ..Default::default()
        };
        assert!(exact.matches(&prefix) && !exact.matches(&wildcard));
        let by_principal = AclFilter { principal: Some("User:b".into()), ..Default::default() };
        assert!(!by_principal.matches(&good));
        assert!(AclFilter::default().matches(&good));
    }

    #[test]
    fn the_index_decides_as_the_bindings_do_and_answers_by_resource_type() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        let bindings = acls(vec![
            acl("orders", Literal, "User:alice", Write, Allow),
            acl("logs-", Prefixed, "User:bob", Write, Allow),
            acl("logs-", Prefixed, "User:bob", Write, Deny),
            acl("*", Literal, "User:carol", Write, Deny),
            acl("x", Literal, "User:carol", Write, Allow),
        ]);
        let index = AclIndex::new(&bindings);
        let config = AuthorizerConfig::default();
        for (who, topic) in [("User:alice", "orders"), ("User:bob", "logs-a"), ("User:alice", "logs-a")] {
            assert_eq!(
                index.authorize(&config, who, "h", Write, ResourceType::Topic, topic),
                authorize(&bindings, &config, who, "h", Write, ResourceType::Topic, topic)
            );
        }
        let any = |who: &str| index.authorize_any(&config, who, "h", Write, ResourceType::Topic);
        assert!(any("User:alice"), "alice may write orders");
        assert!(!any("User:bob"), "bob's only ALLOW is covered by the DENY of the same prefix");
        assert!(!any("User:carol"), "a wildcard DENY covers every ALLOW");
        assert!(!any("User:dave"));
        assert!(!index.authorize_any(&config, "User:alice", "h", Write, ResourceType::Group), "no group ACLs");
        let open = AuthorizerConfig { allow_if_no_acl: true, ..Default::default() };
        assert!(index.authorize_any(&open, "User:dave", "h", Write, ResourceType::Group));

        let ops = index.authorized_operations(&config, "User:alice", "h", ResourceType::Topic, "orders");
        assert_eq!(ops, (1 << Write.code()) | (1 << Describe.code()), "Write and the Describe it implies");
    }

    #[test]
    fn wire_codes_become_bindings_and_filters() {
        let binding = binding_from_codes(2, "t", 3, "User:a", "*", 3, 3).unwrap();
        assert_eq!(binding, acl("t", PatternType::Literal, "User:a", Operation::Read, Permission::Allow));
        assert_eq!(
            binding_from_codes(2, "t", 3, "User:a", "*", ANY_CODE, 3),
            Err(AclError::UnknownCode { what: "operation", code: ANY_CODE })
        );
        let filter = AclFilter::from_codes(ANY_CODE, Some("t"), MATCH_CODE, None, None, ANY_CODE, 3).unwrap();
        assert_eq!(filter.pattern, PatternFilter::Match);
        assert!(filter.matches(&binding));
        assert!(AclFilter::from_codes(9, None, ANY_CODE, None, None, ANY_CODE, ANY_CODE).is_err());
    }

    fn operation() -> impl Strategy<Value = Operation> {
        (0..Operation::ALL.len()).prop_map(|i| Operation::ALL[i])
    }

    proptest! {
        /// A DENY for a principal and operation always wins, whatever else is allowed.
        #[test]
        fn a_matching_deny_always_wins(ops in proptest::collection::vec(operation(), 0..6), denied in operation()) {
            let mut bindings: Vec<AclBinding> = ops
                .iter()
                .map(|op| acl("t", PatternType::Literal, "User:a", *op, Permission::Allow))
                .collect();
            bindings.push(acl("t", PatternType::Prefixed, "User:*", denied, Permission::Deny));
            let acls = acls(bindings);
            let config = AuthorizerConfig { allow_if_no_acl: true, ..Default::default() };
            prop_assert!(!authorize(&acls, &config, "User:a", "h", denied, ResourceType::Topic, "t"));
        }
    }
}
