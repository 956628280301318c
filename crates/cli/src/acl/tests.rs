//! Unit tests of `runnel acl`: how the options expand into bindings and filters, and the output.

use super::*;

/// The command `runnel acl ARGS` parses to (ARGS split at spaces).
fn parse(args: &str) -> AclCommand {
    AclArgs::try_parse_from(std::iter::once("acl").chain(args.split_whitespace())).expect("the options parse").command
}

/// The bindings `runnel acl add ARGS` creates, one line each.
fn add(args: &str) -> anyhow::Result<Vec<String>> {
    let AclCommand::Add(options) = parse(&format!("add {args}")) else { unreachable!() };
    Ok(options.bindings()?.iter().map(describe).collect())
}

fn remove(args: &str) -> anyhow::Result<Vec<AclFilter>> {
    let AclCommand::Remove { selection, .. } = parse(&format!("remove {args}")) else { unreachable!() };
    selection.remove_filters()
}

/// Asserts `result` is an error saying `why`.
#[track_caller]
fn fails<T: std::fmt::Debug>(result: anyhow::Result<T>, why: &str) {
    let error = result.expect_err("an error").to_string();
    assert!(error.contains(why), "{error:?} does not say {why:?}");
}

#[test]
fn add_crosses_resources_operations_principals_and_hosts() {
    let lines = add("--allow-principal User:alice --allow-principal User:carol --allow-host 10.0.0.1 \
                     --deny-principal User:bob --operation read --operation DESCRIBE --topic orders --group billing")
    .unwrap();
    assert_eq!(lines.len(), 2 * 2 * 3, "{lines:#?}");
    assert!(lines.contains(&"TOPIC orders LITERAL User:alice 10.0.0.1 READ ALLOW".to_string()));
    assert!(lines.contains(&"GROUP billing LITERAL User:carol 10.0.0.1 DESCRIBE ALLOW".to_string()));
    assert!(lines.contains(&"GROUP billing LITERAL User:bob * DESCRIBE DENY".to_string()));
}

#[test]
fn operations_parse_by_kafka_spellings_in_any_case() {
    for (text, op) in [
        ("Read", Operation::Read),
        ("ClusterAction", Operation::ClusterAction),
        ("cluster_action", Operation::ClusterAction),
        ("IDEMPOTENT_WRITE", Operation::IdempotentWrite),
        ("describeconfigs", Operation::DescribeConfigs),
        ("All", Operation::All),
    ] {
        assert_eq!(parse_operation(text), Ok(op));
    }
    assert!(parse_operation("Fly").is_err());
    assert!(AclArgs::try_parse_from(["acl", "add", "--operation", "Fly"]).is_err());
}

#[test]
fn producer_expands_to_write_describe_create() {
    assert_eq!(
        add("--allow-principal User:p --producer --topic t").unwrap(),
        [
            "TOPIC t LITERAL User:p * WRITE ALLOW",
            "TOPIC t LITERAL User:p * CREATE ALLOW",
            "TOPIC t LITERAL User:p * DESCRIBE ALLOW"
        ]
    );
    // --idempotent adds nothing (no IdempotentWrite since Kafka 3); a transactional id
    // gets Write and Describe.
    assert_eq!(
        add("--allow-principal User:p --producer --idempotent --topic t --transactional-id x").unwrap()[3..],
        ["TRANSACTIONAL_ID x LITERAL User:p * WRITE ALLOW", "TRANSACTIONAL_ID x LITERAL User:p * DESCRIBE ALLOW"]
    );
    fails(
        add("--allow-principal User:p --idempotent --topic t --operation Write"),
        "--idempotent goes with --producer",
    );
    fails(add("--allow-principal User:p --producer --transactional-id x"), "need --topic");
    fails(add("--deny-principal User:p --producer --topic t"), "take no --operation, --deny-principal");
    fails(add("--allow-principal User:p --producer --topic t --operation Read"), "take no --operation");
    fails(add("--allow-principal User:p --producer --topic t --group g"), "GROUP g no operation");
}

#[test]
fn consumer_expands_to_read_describe_and_needs_a_group() {
    assert_eq!(
        add("--allow-principal User:c --consumer --topic t --group g").unwrap(),
        [
            "TOPIC t LITERAL User:c * READ ALLOW",
            "TOPIC t LITERAL User:c * DESCRIBE ALLOW",
            "GROUP g LITERAL User:c * READ ALLOW"
        ]
    );
    fails(add("--allow-principal User:c --consumer --topic t"), "--consumer needs --group");
    fails(add("--allow-principal User:c --consumer --group g"), "need --topic");
    fails(
        add("--allow-principal User:c --consumer --topic t --group g --cluster"),
        "CLUSTER kafka-cluster no operation",
    );
    // Both roles: the union, Describe once.
    assert_eq!(add("--allow-principal User:c --producer --consumer --topic t --group g").unwrap().len(), 5);
}

#[test]
fn add_needs_a_resource_a_principal_and_an_operation() {
    fails(add("--allow-principal User:a --operation Read"), "name a resource");
    fails(add("--topic t --operation Read"), "name a principal");
    fails(add("--allow-principal User:a --topic t"), "name an --operation");
    fails(
        add("--allow-host h --deny-principal User:a --topic t --operation Read"),
        "--allow-host needs --allow-principal",
    );
    fails(add("--allow-principal alice --topic t --operation Read"), "User:NAME");
    fails(add("--allow-principal User:a --group g --operation Write"), "GROUP takes no WRITE ACL");
    fails(
        add("--allow-principal User:a --topic t --operation Read --resource-pattern-type match"),
        "literal or prefixed",
    );
}

#[test]
fn cluster_and_prefixed_patterns() {
    assert_eq!(
        add("--allow-principal User:a --cluster --operation ClusterAction --resource-pattern-type PREFIXED").unwrap(),
        ["CLUSTER kafka-cluster PREFIXED User:a * CLUSTER_ACTION ALLOW"]
    );
    fails(add("--allow-principal User:a --topic * --operation Read --resource-pattern-type prefixed"), "wildcard");
}

#[test]
fn remove_leaves_out_what_is_not_given() {
    assert_eq!(
        remove("--topic t --force").unwrap(),
        [AclFilter {
            resource_type: Some(ResourceType::Topic),
            resource_name: Some("t".into()),
            pattern: PatternFilter::Exactly(PatternType::Literal),
            ..AclFilter::default()
        }]
    );
    let filters = remove("--topic t --deny-principal User:b --operation Read --resource-pattern-type any").unwrap();
    assert_eq!(filters.len(), 1);
    assert_eq!(filters[0].principal.as_deref(), Some("User:b"));
    assert_eq!((filters[0].host.as_deref(), filters[0].permission), (None, Some(Permission::Deny)));
    assert_eq!((filters[0].operation, filters[0].pattern), (Some(Operation::Read), PatternFilter::Any));
    assert_eq!(remove("--allow-principal User:c --consumer --topic t --group g").unwrap().len(), 3);
    fails(remove("--allow-principal User:b"), "name a resource");
}

#[test]
fn list_filters_and_output() {
    let AclCommand::List { resources, principals, .. } = parse("list") else { unreachable!() };
    assert_eq!(list_filters(&resources, &principals), [AclFilter::default()]);
    let AclCommand::List { resources, principals, .. } =
        parse("list --topic a --group g --principal User:x --resource-pattern-type match")
    else {
        unreachable!()
    };
    let filters = list_filters(&resources, &principals);
    assert_eq!(filters.len(), 2);
    assert_eq!(filters[1].resource_type, Some(ResourceType::Group));
    assert_eq!((filters[1].pattern, filters[1].principal.as_deref()), (PatternFilter::Match, Some("User:x")));
    let request = describe_request(&filters[1]);
    assert_eq!(
        (request.resource_type_filter, request.pattern_type_filter, request.operation),
        (3, MATCH_CODE, ANY_CODE)
    );

    let binding = binding_from_codes(5, "tx", 3, "User:alice", "*", 12, 3).unwrap();
    assert_eq!(
        table(std::slice::from_ref(&binding)),
        "RESOURCE_TYPE     RESOURCE_NAME  PATTERN_TYPE  PRINCIPAL   HOST  OPERATION         PERMISSION\n\
         TRANSACTIONAL_ID  tx             LITERAL       User:alice  *     IDEMPOTENT_WRITE  ALLOW\n"
    );
    assert_eq!(
        json(&[binding])[0],
        serde_json::json!({"resource_type": "transactional_id", "resource_name": "tx", "pattern_type": "literal",
            "principal": "User:alice", "host": "*", "operation": "idempotent_write", "permission": "allow"})
    );
}
