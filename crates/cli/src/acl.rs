//! `runnel acl add|list|remove`: access control lists through CreateAcls, DescribeAcls and
//! DeleteAcls (version 3), with the options of Kafka's `kafka-acls.sh` (`--allow-principal`,
//! `--deny-principal`, `--allow-host`, `--deny-host`, `--operation`, `--topic`, `--group`,
//! `--cluster`, `--transactional-id`, `--resource-pattern-type`, `--producer`, `--consumer`).
//!
//! `add` expands its options into bindings: every resource with every operation (given, or
//! what the `--producer` / `--consumer` roles need) for every principal at each of its hosts
//! (`*` when none is given). `remove` takes the same options as a filter, where an option
//! left out matches anything: `runnel acl remove --topic orders` removes every literal ACL
//! on `orders`. `list` prints the bindings matching a resource and principal filter, as a
//! table or `--json`. The binding types are the authorizer's ([`runnel_metadata::acl`]);
//! names print as Kafka's (`TOPIC`, `CLUSTER_ACTION`, `ALLOW`, lower-case in JSON).

use std::collections::BTreeSet;

use anyhow::{anyhow, bail, Context as _};
use clap::{Args, Parser, Subcommand, ValueEnum};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use runnel_metadata::acl::{
    binding_from_codes, check_binding, AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission,
    ResourceType, ANY_CODE, CLUSTER_NAME, MATCH_CODE, WILDCARD,
};

use crate::connect::check;

/// The version of CreateAcls, DescribeAcls and DeleteAcls sent.
const VERSION: i16 = 3;
/// The error of a response binding with codes no binding has.
const UNREADABLE: &str = "the broker answered an ACL with an unknown code";

#[derive(Parser)]
pub struct AclArgs {
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
    #[command(subcommand)]
    command: AclCommand,
}

#[derive(Subcommand)]
enum AclCommand {
    /// Add ACLs: each resource x operation x principal (at each of its hosts).
    Add(BindingArgs),
    /// ACLs matching a resource and principal filter (every ACL without options).
    List {
        #[command(flatten)]
        resources: ResourceArgs,
        /// Only this principal's ACLs, e.g. User:alice (repeatable).
        #[arg(long = "principal", value_name = "PRINCIPAL")]
        principals: Vec<String>,
        /// Print a JSON array of objects instead of a table (as `--output json` does).
        #[arg(long)]
        json: bool,
    },
    /// Remove the ACLs the options select (an option left out matches anything).
    Remove {
        #[command(flatten)]
        selection: BindingArgs,
        /// Accepted as kafka-acls.sh does; there is no prompt to skip.
        #[arg(long)]
        force: bool,
    },
}

/// The resources an ACL command names.
#[derive(Args, Debug)]
struct ResourceArgs {
    /// A topic (repeatable).
    #[arg(long = "topic", value_name = "TOPIC")]
    topics: Vec<String>,
    /// A consumer group (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// The cluster (the resource kafka-cluster).
    #[arg(long)]
    cluster: bool,
    /// A transactional id (repeatable).
    #[arg(long = "transactional-id", value_name = "ID")]
    transactional_ids: Vec<String>,
    /// How resource names match: literal (the default) or prefixed; list and remove also
    /// take any (every pattern type) and match (every ACL that applies to the resource).
    #[arg(long, value_enum, ignore_case = true, value_name = "TYPE")]
    resource_pattern_type: Option<PatternArg>,
}

/// `--resource-pattern-type`: a pattern type, or for filters Kafka's ANY and MATCH.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum PatternArg {
    Any,
    Match,
    Literal,
    Prefixed,
}

/// What `add` grants and `remove` selects.
#[derive(Args, Debug)]
struct BindingArgs {
    #[command(flatten)]
    resources: ResourceArgs,
    /// A principal to allow, e.g. User:alice (repeatable).
    #[arg(long = "allow-principal", value_name = "PRINCIPAL")]
    allow_principals: Vec<String>,
    /// A principal to deny, e.g. User:bob (repeatable).
    #[arg(long = "deny-principal", value_name = "PRINCIPAL")]
    deny_principals: Vec<String>,
    /// A host the allowed principals connect from (repeatable; add: default *; remove: default any).
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<String>,
    /// A host the denied principals connect from (repeatable; add: default *; remove: default any).
    #[arg(long = "deny-host", value_name = "HOST")]
    deny_hosts: Vec<String>,
    /// Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs,
    /// AlterConfigs, IdempotentWrite or All (repeatable; any case).
    #[arg(long = "operation", value_name = "OPERATION", value_parser = parse_operation)]
    operations: Vec<Operation>,
    /// The producer role: Write, Describe and Create on the topics (Write and Describe on
    /// transactional ids).
    #[arg(long)]
    producer: bool,
    /// With --producer; accepted as kafka-acls.sh does, but idempotent producing needs no
    /// ACL of its own (since Kafka 3.0).
    #[arg(long)]
    idempotent: bool,
    /// The consumer role: Read and Describe on the topics, Read on the groups (needs --group).
    #[arg(long)]
    consumer: bool,
}

/// Kafka's name of an ACL enum value (`TOPIC`, `CLUSTER_ACTION`, `ALLOW`, ...): the
/// variant's name in upper snake case, as the types name them after Kafka's.
fn kafka_name(value: impl std::fmt::Debug) -> String {
    let mut name = String::new();
    for c in format!("{value:?}").chars() {
        if c.is_ascii_uppercase() && !name.is_empty() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// An operation by Kafka's name in any case, with or without underscores: `Read`,
/// `ClusterAction`, `cluster_action`, `IDEMPOTENT_WRITE`.
fn parse_operation(text: &str) -> Result<Operation, String> {
    let squash = |s: &str| s.chars().filter(|c| !matches!(c, '_' | '-')).collect::<String>().to_ascii_lowercase();
    let wanted = squash(text);
    Operation::ALL.into_iter().find(|op| squash(&kafka_name(op)) == wanted).ok_or_else(|| {
        format!(
            "unknown operation {text}; use Read, Write, Create, Delete, Alter, Describe, ClusterAction, \
             DescribeConfigs, AlterConfigs, IdempotentWrite or All"
        )
    })
}

/// The operations Kafka's kafka-acls.sh lets `add` bind to a resource type.
fn valid_operations(resource_type: ResourceType) -> &'static [Operation] {
    use Operation::*;
    match resource_type {
        ResourceType::Topic => &[Read, Write, Create, Describe, Delete, Alter, DescribeConfigs, AlterConfigs, All],
        ResourceType::Group => &[Read, Describe, Delete, All],
        ResourceType::Cluster => {
            &[Create, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, Alter, Describe, All]
        }
        ResourceType::TransactionalId => &[Describe, Write, All],
    }
}

/// `[None]` for no items (the filter matches anything), else each item.
fn any_or<T>(items: Vec<T>) -> Vec<Option<T>> {
    if items.is_empty() {
        vec![None]
    } else {
        items.into_iter().map(Some).collect()
    }
}

impl ResourceArgs {
    /// The named resources, in the order topics, groups, cluster, transactional ids.
    fn resources(&self) -> Vec<Resource> {
        let named = |t: ResourceType, names: &[String]| names.iter().map(move |n| (t, n.clone())).collect::<Vec<_>>();
        let mut out = named(ResourceType::Topic, &self.topics);
        out.extend(named(ResourceType::Group, &self.groups));
        if self.cluster {
            out.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
        }
        out.extend(named(ResourceType::TransactionalId, &self.transactional_ids));
        out
    }

    /// The pattern type of the bindings `add` creates (literal by default).
    fn pattern_type(&self) -> anyhow::Result<PatternType> {
        match self.resource_pattern_type {
            None | Some(PatternArg::Literal) => Ok(PatternType::Literal),
            Some(PatternArg::Prefixed) => Ok(PatternType::Prefixed),
            Some(PatternArg::Any | PatternArg::Match) => {
                bail!("add needs --resource-pattern-type literal or prefixed (any and match only filter)")
            }
        }
    }

    /// The pattern filter of `list` and `remove`: literal by default, as in Kafka, but any
    /// when no resource is named (so a bare `list` shows every ACL).
    fn pattern_filter(&self) -> PatternFilter {
        match self.resource_pattern_type {
            None if self.resources().is_empty() => PatternFilter::Any,
            None | Some(PatternArg::Literal) => PatternFilter::Exactly(PatternType::Literal),
            Some(PatternArg::Prefixed) => PatternFilter::Exactly(PatternType::Prefixed),
            Some(PatternArg::Any) => PatternFilter::Any,
            Some(PatternArg::Match) => PatternFilter::Match,
        }
    }
}

/// A resource type and name.
type Resource = (ResourceType, String);
/// A resource with the operations the options give it.
type ResourceOperations = (Resource, Vec<Operation>);

/// A principal the options name, with one of its hosts (`None`: no host given) and whether
/// it is allowed or denied.
type PrincipalAt = (String, Option<String>, Permission);

impl BindingArgs {
    /// Each allowed principal at each --allow-host, each denied one at each --deny-host.
    fn principals(&self) -> anyhow::Result<Vec<PrincipalAt>> {
        let mut out = Vec::new();
        for (principals, hosts, permission, flag) in [
            (&self.allow_principals, &self.allow_hosts, Permission::Allow, "allow"),
            (&self.deny_principals, &self.deny_hosts, Permission::Deny, "deny"),
        ] {
            if principals.is_empty() && !hosts.is_empty() {
                bail!("--{flag}-host needs --{flag}-principal");
            }
            for principal in principals {
                for host in any_or(hosts.clone()) {
                    out.push((principal.clone(), host, permission));
                }
            }
        }
        Ok(out)
    }

    /// Each resource with its operations: every --operation, or what the --producer and
    /// --consumer roles need there; empty when no operation is named.
    fn resource_operations(&self) -> anyhow::Result<Vec<ResourceOperations>> {
        let resources = self.resources.resources();
        if resources.is_empty() {
            bail!("name a resource: --topic, --group, --cluster or --transactional-id");
        }
        if self.idempotent && !self.producer {
            bail!("--idempotent goes with --producer");
        }
        if !self.producer && !self.consumer {
            return Ok(resources.into_iter().map(|r| (r, self.operations.clone())).collect());
        }
        if !self.operations.is_empty() || !self.deny_principals.is_empty() || !self.deny_hosts.is_empty() {
            bail!("--producer and --consumer take no --operation, --deny-principal or --deny-host");
        }
        if self.resources.topics.is_empty() {
            bail!("--producer and --consumer need --topic");
        }
        if self.consumer && self.resources.groups.is_empty() {
            bail!("--consumer needs --group");
        }
        resources
            .into_iter()
            .map(|(resource_type, name)| {
                use Operation::*;
                let producer: &[Operation] = match resource_type {
                    ResourceType::Topic if self.producer => &[Write, Describe, Create],
                    ResourceType::TransactionalId if self.producer => &[Write, Describe],
                    _ => &[],
                };
                let consumer: &[Operation] = match resource_type {
                    ResourceType::Topic if self.consumer => &[Read, Describe],
                    ResourceType::Group if self.consumer => &[Read],
                    _ => &[],
                };
                let mut operations = [producer, consumer].concat();
                if operations.is_empty() {
                    bail!("--producer and --consumer give {} {name} no operation", kafka_name(resource_type));
                }
                operations.sort();
                operations.dedup();
                Ok(((resource_type, name), operations))
            })
            .collect()
    }

    /// The bindings `add` creates.
    fn bindings(&self) -> anyhow::Result<BTreeSet<AclBinding>> {
        let pattern_type = self.resources.pattern_type()?;
        let resources = self.resource_operations()?;
        let principals = self.principals()?;
        if principals.is_empty() {
            bail!("name a principal: --allow-principal or --deny-principal");
        }
        let mut out = BTreeSet::new();
        for ((resource_type, resource_name), operations) in resources {
            if operations.is_empty() {
                bail!("name an --operation (or --producer / --consumer)");
            }
            for operation in operations {
                if !valid_operations(resource_type).contains(&operation) {
                    let valid: Vec<_> = valid_operations(resource_type).iter().map(kafka_name).collect();
                    let (resource_type, operation) = (kafka_name(resource_type), kafka_name(operation));
                    bail!("{resource_type} takes no {operation} ACL; it takes {}", valid.join(", "));
                }
                for (principal, host, permission) in &principals {
                    let binding = AclBinding {
                        resource_type,
                        resource_name: resource_name.clone(),
                        pattern_type,
                        principal: principal.clone(),
                        host: host.clone().unwrap_or_else(|| WILDCARD.to_string()),
                        operation,
                        permission: *permission,
                    };
                    check_binding(&binding).map_err(|why| anyhow!("{}: {why}", describe(&binding)))?;
                    out.insert(binding);
                }
            }
        }
        Ok(out)
    }

    /// The filters `remove` sends: one per resource, operation and principal at host named,
    /// where an option left out matches anything.
    fn remove_filters(&self) -> anyhow::Result<Vec<AclFilter>> {
        let pattern = self.resources.pattern_filter();
        let resources = self.resource_operations()?;
        let principals = any_or(self.principals()?);
        let mut out = Vec::new();
        for ((resource_type, resource_name), operations) in resources {
            for operation in any_or(operations) {
                for principal in &principals {
                    let (principal, host, permission) = match principal.clone() {
                        Some((principal, host, permission)) => (Some(principal), host, Some(permission)),
                        None => (None, None, None),
                    };
                    out.push(AclFilter {
                        resource_type: Some(resource_type),
                        resource_name: Some(resource_name.clone()),
                        pattern,
                        principal,
                        host,
                        operation,
                        permission,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// The filters `list` sends: each named resource (or any) with each principal (or any).
fn list_filters(resources: &ResourceArgs, principals: &[String]) -> Vec<AclFilter> {
    let pattern = resources.pattern_filter();
    let mut out = Vec::new();
    for resource in any_or(resources.resources()) {
        for principal in any_or(principals.to_vec()) {
            let (resource_type, resource_name) = resource.clone().unzip();
            out.push(AclFilter { resource_type, resource_name, pattern, principal, ..AclFilter::default() });
        }
    }
    out
}

fn pattern_filter_code(pattern: PatternFilter) -> i8 {
    match pattern {
        PatternFilter::Any => ANY_CODE,
        PatternFilter::Match => MATCH_CODE,
        PatternFilter::Exactly(pattern_type) => pattern_type.code(),
    }
}

fn str_bytes(text: &Option<String>) -> Option<StrBytes> {
    text.clone().map(StrBytes::from_string)
}

/// A DescribeAcls request or a DeleteAcls filter (the same fields) from a filter.
macro_rules! filter_message {
    ($message:ty, $filter:expr) => {{
        let filter: &AclFilter = $filter;
        <$message>::default()
            .with_resource_type_filter(filter.resource_type.map_or(ANY_CODE, ResourceType::code))
            .with_resource_name_filter(str_bytes(&filter.resource_name))
            .with_pattern_type_filter(pattern_filter_code(filter.pattern))
            .with_principal_filter(str_bytes(&filter.principal))
            .with_host_filter(str_bytes(&filter.host))
            .with_operation(filter.operation.map_or(ANY_CODE, Operation::code))
            .with_permission_type(filter.permission.map_or(ANY_CODE, Permission::code))
    }};
}

fn describe_request(filter: &AclFilter) -> DescribeAclsRequest {
    filter_message!(DescribeAclsRequest, filter)
}

fn delete_filter(filter: &AclFilter) -> DeleteAclsFilter {
    filter_message!(DeleteAclsFilter, filter)
}

fn creation(binding: &AclBinding) -> AclCreation {
    AclCreation::default()
        .with_resource_type(binding.resource_type.code())
        .with_resource_name(StrBytes::from_string(binding.resource_name.clone()))
        .with_resource_pattern_type(binding.pattern_type.code())
        .with_principal(StrBytes::from_string(binding.principal.clone()))
        .with_host(StrBytes::from_string(binding.host.clone()))
        .with_operation(binding.operation.code())
        .with_permission_type(binding.permission.code())
}

fn row(binding: &AclBinding) -> [String; 7] {
    [
        kafka_name(binding.resource_type),
        binding.resource_name.clone(),
        kafka_name(binding.pattern_type),
        binding.principal.clone(),
        binding.host.clone(),
        kafka_name(binding.operation),
        kafka_name(binding.permission),
    ]
}

/// One line: `TOPIC orders LITERAL User:alice * READ ALLOW`.
fn describe(binding: &AclBinding) -> String {
    row(binding).join(" ")
}

/// A header and one line per binding, in columns two spaces apart.
fn table(bindings: &[AclBinding]) -> String {
    let header = ["RESOURCE_TYPE", "RESOURCE_NAME", "PATTERN_TYPE", "PRINCIPAL", "HOST", "OPERATION", "PERMISSION"];
    let rows: Vec<[String; 7]> = std::iter::once(header.map(String::from)).chain(bindings.iter().map(row)).collect();
    let mut widths = [0; 7];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `--json`: an array of objects with Kafka's names in lower case.
fn json(bindings: &[AclBinding]) -> serde_json::Value {
    bindings
        .iter()
        .map(|b| {
            let lower = |value: &dyn std::fmt::Debug| kafka_name(value).to_ascii_lowercase();
            serde_json::json!({
                "resource_type": lower(&b.resource_type),
                "resource_name": b.resource_name,
                "pattern_type": lower(&b.pattern_type),
                "principal": b.principal,
                "host": b.host,
                "operation": lower(&b.operation),
                "permission": lower(&b.permission),
            })
        })
        .collect()
}

/// Prints every failure; an error if there was one.
fn report(failures: &[anyhow::Error], what: &str) -> anyhow::Result<()> {
    for failure in failures {
        eprintln!("{failure:#}");
    }
    match failures.len() {
        0 => Ok(()),
        n => bail!("{what}: {n} error(s), printed above"),
    }
}

pub async fn run(args: AclArgs) -> anyhow::Result<()> {
    match args.command {
        AclCommand::Add(options) => {
            let bindings: Vec<AclBinding> = options.bindings()?.into_iter().collect();
            let (mut conn, _security) = args.connect.connect().await?;
            let request = CreateAclsRequest::default().with_creations(bindings.iter().map(creation).collect());
            let response = conn.send(&request, VERSION).await?;
            if response.results.len() != bindings.len() {
                bail!("CreateAcls answered {} results for {} bindings", response.results.len(), bindings.len());
            }
            let (mut created, mut failures) = (Vec::new(), Vec::new());
            for (binding, result) in bindings.into_iter().zip(&response.results) {
                let what = format!("adding {}", describe(&binding));
                match check(result.error_code, result.error_message.as_ref(), &what) {
                    Ok(()) => created.push(binding),
                    Err(failure) => failures.push(failure),
                }
            }
            if !created.is_empty() {
                print!("{}", table(&created));
            }
            report(&failures, "adding ACLs")
        }
        AclCommand::List { resources, principals, json: as_json } => {
            let as_json = as_json || args.connect.json();
            let filters = list_filters(&resources, &principals);
            let (mut conn, _security) = args.connect.connect().await?;
            let mut found = BTreeSet::new();
            for filter in &filters {
                let response = conn.send(&describe_request(filter), VERSION).await?;
                check(response.error_code, response.error_message.as_ref(), "listing ACLs")?;
                for resource in &response.resources {
                    for acl in &resource.acls {
                        let binding = binding_from_codes(
                            resource.resource_type,
                            &resource.resource_name,
                            resource.pattern_type,
                            &acl.principal,
                            &acl.host,
                            acl.operation,
                            acl.permission_type,
                        );
                        found.insert(binding.context(UNREADABLE)?);
                    }
                }
            }
            let found: Vec<AclBinding> = found.into_iter().collect();
            if as_json {
                println!("{}", serde_json::to_string_pretty(&json(&found))?);
            } else {
                print!("{}", table(&found));
            }
            Ok(())
        }
        AclCommand::Remove { selection, force: _ } => {
            let filters = selection.remove_filters()?;
            let (mut conn, _security) = args.connect.connect().await?;
            let request = DeleteAclsRequest::default().with_filters(filters.iter().map(delete_filter).collect());
            let response = conn.send(&request, VERSION).await?;
            let (mut removed, mut failures) = (BTreeSet::new(), Vec::new());
            if response.filter_results.len() != filters.len() {
                bail!("DeleteAcls answered {} results for {} filters", response.filter_results.len(), filters.len());
            }
            for (filter, result) in filters.iter().zip(&response.filter_results) {
                let what = format!("removing ACLs by {filter:?}");
                if let Err(failure) = check(result.error_code, result.error_message.as_ref(), &what) {
                    failures.push(failure);
                }
                for acl in &result.matching_acls {
                    let binding = binding_from_codes(
                        acl.resource_type,
                        &acl.resource_name,
                        acl.pattern_type,
                        &acl.principal,
                        &acl.host,
                        acl.operation,
                        acl.permission_type,
                    )
                    .context(UNREADABLE)?;
                    let what = format!("removing {}", describe(&binding));
                    match check(acl.error_code, acl.error_message.as_ref(), &what) {
                        Ok(()) => {
                            removed.insert(binding);
                        }
                        Err(failure) => failures.push(failure),
                    }
                }
            }
            let removed: Vec<AclBinding> = removed.into_iter().collect();
            if !removed.is_empty() {
                print!("{}", table(&removed));
            } else if failures.is_empty() {
                println!("no ACL matched");
            }
            report(&failures, "removing ACLs")
        }
    }
}

#[cfg(test)]
mod tests;
