//! `runnel group list|describe|delete|reset-offsets`, over the Kafka protocol, in the manner of
//! Kafka's `kafka-consumer-groups.sh`: describe shows each partition's committed offset, log
//! end offset and lag; reset-offsets is a dry run unless `--execute` is given, and only for an
//! inactive group.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use runnel_client::security::ClientSecurity;
use runnel_client::Connection;

#[derive(Parser)]
pub struct GroupArgs {
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Subcommand)]
enum GroupCommand {
    /// List groups with their state.
    List,
    /// Show a group's state, members, assignments, and per partition the committed offset,
    /// log end offset and lag.
    Describe { group: String },
    /// Delete an empty group and its committed offsets.
    Delete { group: String },
    /// Move an inactive group's committed offsets (a dry run unless --execute).
    ResetOffsets(ResetArgs),
}

#[derive(Args)]
struct ResetArgs {
    group: String,
    /// TOPIC or TOPIC:PARTITION,PARTITION,...
    #[arg(long)]
    topic: String,
    #[command(flatten)]
    to: ResetTo,
    /// Apply the new offsets; without it, only show them.
    #[arg(long)]
    execute: bool,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct ResetTo {
    #[arg(long)]
    to_earliest: bool,
    #[arg(long)]
    to_latest: bool,
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// Epoch milliseconds, or YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM] (UTC when no zone is given).
    #[arg(long, value_name = "TIMESTAMP")]
    to_datetime: Option<String>,
}

use crate::offsets::{EARLIEST, LATEST};

fn group_id(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.to_string()))
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn check(error_code: i16, what: &str) -> anyhow::Result<()> {
    match ResponseError::try_from_code(error_code) {
        None => Ok(()),
        Some(error) => bail!("{what}: {error:?} ({error})"),
    }
}

pub async fn run(args: GroupArgs) -> anyhow::Result<()> {
    let json = args.connect.json();
    let (mut conn, security) = args.connect.connect().await?;
    match args.command {
        GroupCommand::List => list(&mut conn, json).await,
        GroupCommand::Describe { group } => {
            let mut coordinator = coordinator(&mut conn, &group, &security).await?;
            describe(&mut conn, &security, &mut coordinator, &group, json).await
        }
        GroupCommand::Delete { group } => {
            let mut coordinator = coordinator(&mut conn, &group, &security).await?;
            let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(&group)]);
            let response = coordinator.send(&request, 2).await?;
            for result in &response.results {
                check(result.error_code, &format!("deleting group {group}"))?;
            }
            println!("deleted group {group}");
            Ok(())
        }
        GroupCommand::ResetOffsets(reset) => {
            let mut coordinator = coordinator(&mut conn, &reset.group, &security).await?;
            reset_offsets(&mut conn, &security, &mut coordinator, &reset).await
        }
    }
}

/// A connection to the group's coordinator (which may be the bootstrap broker itself).
pub async fn coordinator(conn: &mut Connection, group: &str, security: &ClientSecurity) -> anyhow::Result<Connection> {
    let addr = coordinator_address(conn, group).await?;
    crate::connect::connect_to(&addr, security).await.with_context(|| format!("the coordinator of {group}"))
}

/// The `host:port` of the group's coordinator (FindCoordinator).
pub async fn coordinator_address(conn: &mut Connection, group: &str) -> anyhow::Result<String> {
    let request = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string()));
    let response = conn.send(&request, 3).await?;
    check(response.error_code, &format!("finding the coordinator of {group}"))?;
    Ok(format!("{}:{}", response.host.as_str(), response.port))
}

/// `group list --output json`.
pub async fn list_value(conn: &mut Connection) -> anyhow::Result<serde_json::Value> {
    let response = conn.send(&ListGroupsRequest::default(), 4).await?;
    check(response.error_code, "listing groups")?;
    let mut groups: Vec<_> = response.groups.iter().collect();
    groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    let groups: Vec<serde_json::Value> = groups
        .iter()
        .map(|g| {
            serde_json::json!({
                "group": g.group_id.0.to_string(),
                "state": g.group_state.to_string(),
                "protocol_type": g.protocol_type.to_string(),
            })
        })
        .collect();
    Ok(serde_json::json!({ "groups": groups }))
}

async fn list(conn: &mut Connection, json: bool) -> anyhow::Result<()> {
    if json {
        crate::connect::print_json(&list_value(conn).await?);
        return Ok(());
    }
    let response = conn.send(&ListGroupsRequest::default(), 4).await?;
    check(response.error_code, "listing groups")?;
    let mut groups: Vec<_> = response.groups.iter().collect();
    groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| vec![g.group_id.0.to_string(), g.group_state.to_string(), g.protocol_type.to_string()])
        .collect();
    print_table(&["GROUP", "STATE", "PROTOCOL-TYPE"], &rows);
    Ok(())
}

async fn describe_group(coordinator: &mut Connection, group: &str) -> anyhow::Result<DescribedGroup> {
    let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
    let response = coordinator.send(&request, 5).await?;
    let described = response.groups.into_iter().next().context("DescribeGroups answered no group")?;
    check(described.error_code, &format!("describing {group}"))?;
    Ok(described)
}

/// Committed offsets of the group: topic -> partition -> offset.
pub async fn committed(
    coordinator: &mut Connection,
    group: &str,
) -> anyhow::Result<BTreeMap<String, BTreeMap<i32, i64>>> {
    let request = OffsetFetchRequest::default()
        .with_groups(vec![OffsetFetchRequestGroup::default().with_group_id(group_id(group)).with_topics(None)]);
    let response = coordinator.send(&request, 8).await?;
    let mut offsets: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    for g in &response.groups {
        check(g.error_code, &format!("fetching offsets of {group}"))?;
        for topic in &g.topics {
            for p in &topic.partitions {
                check(p.error_code, &format!("offset of {}-{}", topic.name.0, p.partition_index))?;
                if p.committed_offset >= 0 {
                    offsets.entry(topic.name.0.to_string()).or_default().insert(p.partition_index, p.committed_offset);
                }
            }
        }
    }
    Ok(offsets)
}

/// Who holds each partition: (topic, partition) -> (member id, host, client id).
type Owners = BTreeMap<(String, i32), (String, String, String)>;

fn owners(group: &DescribedGroup) -> Owners {
    let mut owners = Owners::new();
    for member in &group.members {
        for (topic, partitions) in parse_assignment(&member.member_assignment).unwrap_or_default() {
            for p in partitions {
                let who = (member.member_id.to_string(), or_dash(&member.client_host), or_dash(&member.client_id));
                owners.insert((topic.clone(), p), who);
            }
        }
    }
    owners
}

/// `group describe --output json`: state, members with their assignments, and per
/// partition the committed offset, log end offset and lag.
pub async fn describe_value(
    conn: &mut Connection,
    security: &ClientSecurity,
    coordinator: &mut Connection,
    group: &str,
) -> anyhow::Result<serde_json::Value> {
    let described = describe_group(coordinator, group).await?;
    if described.group_state.as_str() == "Dead" {
        bail!("group {group} does not exist");
    }
    let rows = offset_rows(conn, security, coordinator, group, &described).await?;
    Ok(group_json(group, &described, &rows))
}

async fn describe(
    conn: &mut Connection,
    security: &ClientSecurity,
    coordinator: &mut Connection,
    group: &str,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        crate::connect::print_json(&describe_value(conn, security, coordinator, group).await?);
        return Ok(());
    }
    let described = describe_group(coordinator, group).await?;
    let state = described.group_state.to_string();
    if state == "Dead" {
        bail!("group {group} does not exist");
    }
    let protocol =
        if described.protocol_data.is_empty() { "-".to_string() } else { described.protocol_data.to_string() };
    println!(
        "Group {group}: state {state}, protocol type {}, protocol {protocol}, {} member(s)",
        if described.protocol_type.is_empty() { "-" } else { described.protocol_type.as_str() },
        described.members.len()
    );
    print_members(&described);
    let rows: Vec<Vec<String>> = offset_rows(conn, security, coordinator, group, &described)
        .await?
        .into_iter()
        .map(|r| {
            let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            let (member, host, client) = r.owner.unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
            vec![r.topic, r.partition.to_string(), show(r.current), show(r.end), show(r.lag), member, host, client]
        })
        .collect();
    println!();
    let header = ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"];
    print_table(&header, &rows);
    Ok(())
}

/// One partition the group has an offset for or owns.
struct OffsetRow {
    topic: String,
    partition: i32,
    current: Option<i64>,
    end: Option<i64>,
    lag: Option<i64>,
    /// (member id, host, client id) of the member it is assigned to.
    owner: Option<(String, String, String)>,
}

async fn offset_rows(
    conn: &mut Connection,
    security: &ClientSecurity,
    coordinator: &mut Connection,
    group: &str,
    described: &DescribedGroup,
) -> anyhow::Result<Vec<OffsetRow>> {
    let owners = owners(described);
    let offsets = committed(coordinator, group).await?;
    let mut partitions: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for (topic, ps) in &offsets {
        partitions.entry(topic.clone()).or_default().extend(ps.keys());
    }
    for (topic, p) in owners.keys() {
        partitions.entry(topic.clone()).or_default().insert(*p);
    }
    let mut rows = Vec::new();
    let names: Vec<&str> = partitions.keys().map(String::as_str).collect();
    let metadata = crate::offsets::metadata(conn, Some(&names)).await?;
    for (topic, ps) in &partitions {
        // A topic deleted since the offsets were committed has no end offsets.
        let ends = crate::offsets::of_partitions(&metadata, security, topic, ps, LATEST).await.unwrap_or_default();
        for p in ps {
            let current = offsets.get(topic).and_then(|o| o.get(p)).copied();
            let end = ends.get(p).copied();
            let lag = current.zip(end).map(|(c, e)| (e - c).max(0));
            let owner = owners.get(&(topic.clone(), *p)).cloned();
            rows.push(OffsetRow { topic: topic.clone(), partition: *p, current, end, lag, owner });
        }
    }
    Ok(rows)
}

/// `group describe --output json`.
fn group_json(group: &str, described: &DescribedGroup, rows: &[OffsetRow]) -> serde_json::Value {
    let members: Vec<serde_json::Value> = described
        .members
        .iter()
        .map(|m| {
            let assignment: serde_json::Map<String, serde_json::Value> = parse_assignment(&m.member_assignment)
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| (t, serde_json::json!(ps)))
                .collect();
            serde_json::json!({
                "member_id": m.member_id.to_string(),
                "instance_id": m.group_instance_id.as_ref().map(|i| i.to_string()),
                "client_id": m.client_id.to_string(),
                "host": m.client_host.to_string(),
                "assignment": assignment,
            })
        })
        .collect();
    let offsets: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "topic": r.topic,
                "partition": r.partition,
                "current_offset": r.current,
                "log_end_offset": r.end,
                "lag": r.lag,
                "member_id": r.owner.as_ref().map(|(m, _, _)| m.clone()),
            })
        })
        .collect();
    serde_json::json!({
        "group": group,
        "state": described.group_state.to_string(),
        "protocol_type": described.protocol_type.to_string(),
        "protocol": described.protocol_data.to_string(),
        "members": members,
        "offsets": offsets,
    })
}

fn print_members(group: &DescribedGroup) {
    if group.members.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = group
        .members
        .iter()
        .map(|m| {
            let assignment = match parse_assignment(&m.member_assignment) {
                Some(topics) if !topics.is_empty() => topics
                    .iter()
                    .map(|(t, ps)| format!("{t}:{}", ps.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => "-".to_string(),
            };
            let instance = m.group_instance_id.as_ref().map_or("-".to_string(), |i| i.to_string());
            vec![m.member_id.to_string(), instance, or_dash(&m.client_id), or_dash(&m.client_host), assignment]
        })
        .collect();
    println!();
    print_table(&["CONSUMER-ID", "INSTANCE-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"], &rows);
}

/// A consumer's assignment (`ConsumerProtocolAssignment`): version, then topics with their
/// partitions (user data and later fields are ignored). `None` if it does not parse.
fn parse_assignment(bytes: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let mut rest = bytes;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    let _version = i16::from_be_bytes(take(2)?.try_into().ok()?);
    let topics = i32::from_be_bytes(take(4)?.try_into().ok()?);
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let length = i16::from_be_bytes(take(2)?.try_into().ok()?);
        let name = String::from_utf8(take(usize::try_from(length).ok()?)?.to_vec()).ok()?;
        let count = i32::from_be_bytes(take(4)?.try_into().ok()?);
        let mut partitions = Vec::new();
        for _ in 0..count.max(0) {
            partitions.push(i32::from_be_bytes(take(4)?.try_into().ok()?));
        }
        out.push((name, partitions));
    }
    Some(out)
}

/// Empty cells print as "-" so that columns stay columns.
fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s.to_string()
    }
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Where `reset-offsets` moves a group's offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResetTarget {
    Earliest,
    Latest,
    /// An offset, clamped into each partition's log.
    Offset(i64),
    /// The first offset at or after a time (epoch ms); the log end when no record is that late.
    Timestamp(i64),
}

impl ResetTarget {
    fn of(to: &ResetTo) -> anyhow::Result<Self> {
        Ok(if to.to_earliest {
            ResetTarget::Earliest
        } else if to.to_latest {
            ResetTarget::Latest
        } else if let Some(offset) = to.to_offset {
            ResetTarget::Offset(offset)
        } else {
            ResetTarget::Timestamp(parse_timestamp(to.to_datetime.as_deref().expect("clap requires one target"))?)
        })
    }
}

/// The new offsets of a reset: the topic and each partition's new offset.
pub struct ResetPlan {
    pub topic: String,
    pub offsets: BTreeMap<i32, i64>,
}

/// The offsets a reset of `group` on `spec` (TOPIC or TOPIC:P,P,...) would commit. Only for
/// an inactive group (Empty or Dead), as Kafka's tool.
pub async fn plan_reset(
    conn: &mut Connection,
    security: &ClientSecurity,
    coordinator: &mut Connection,
    group: &str,
    spec: &str,
    target: &ResetTarget,
) -> anyhow::Result<ResetPlan> {
    let described = describe_group(coordinator, group).await?;
    let state = described.group_state.to_string();
    if state != "Empty" && state != "Dead" {
        bail!("group {group} is {state}: offsets can only be reset while the group is inactive (no members)");
    }
    let (topic, listed) = match spec.split_once(':') {
        Some((topic, list)) => {
            let parsed: Result<BTreeSet<i32>, _> = list.split(',').map(|p| p.trim().parse::<i32>()).collect();
            (topic.to_string(), Some(parsed.with_context(|| format!("--topic {spec}: bad partition list"))?))
        }
        None => (spec.to_string(), None),
    };
    let metadata = crate::offsets::metadata(conn, Some(&[topic.as_str()])).await?;
    let described = metadata.topics.first().context("Metadata answered no topic")?;
    check(described.error_code, &format!("topic {topic}"))?;
    let all: BTreeSet<i32> = described.partitions.iter().map(|p| p.partition_index).collect();
    let partitions = listed.unwrap_or_else(|| all.clone());
    if let Some(missing) = partitions.iter().find(|p| !all.contains(p)) {
        bail!("topic {topic} has no partition {missing}");
    }
    let list = |timestamp| crate::offsets::of_partitions(&metadata, security, &topic, &partitions, timestamp);
    let earliest = list(EARLIEST).await?;
    let latest = list(LATEST).await?;
    let offsets: BTreeMap<i32, i64> = match target {
        ResetTarget::Earliest => earliest,
        ResetTarget::Latest => latest,
        ResetTarget::Offset(offset) => {
            partitions.iter().map(|p| (*p, (*offset).clamp(earliest[p], latest[p]))).collect()
        }
        ResetTarget::Timestamp(timestamp) => {
            let found = list(*timestamp).await?;
            // No record at or after the time: the end of the log, as Kafka's tool does.
            partitions.iter().map(|p| (*p, if found[p] < 0 { latest[p] } else { found[p] })).collect()
        }
    };
    Ok(ResetPlan { topic, offsets })
}

/// Commits a reset's offsets for `group` (generation -1: an admin commit, refused by a group
/// with members).
pub async fn commit_reset(coordinator: &mut Connection, group: &str, plan: &ResetPlan) -> anyhow::Result<()> {
    let commit = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(topic_name(&plan.topic)).with_partitions(
            plan.offsets
                .iter()
                .map(|(p, o)| {
                    OffsetCommitRequestPartition::default().with_partition_index(*p).with_committed_offset(*o)
                })
                .collect(),
        )]);
    let response = coordinator.send(&commit, 8).await?;
    for t in &response.topics {
        for p in &t.partitions {
            check(p.error_code, &format!("committing {}-{}", t.name.0, p.partition_index))?;
        }
    }
    Ok(())
}

async fn reset_offsets(
    conn: &mut Connection,
    security: &ClientSecurity,
    coordinator: &mut Connection,
    args: &ResetArgs,
) -> anyhow::Result<()> {
    let group = args.group.as_str();
    let target = ResetTarget::of(&args.to)?;
    let plan = plan_reset(conn, security, coordinator, group, &args.topic, &target).await?;
    let rows: Vec<Vec<String>> = plan
        .offsets
        .iter()
        .map(|(p, o)| vec![group.to_string(), plan.topic.clone(), p.to_string(), o.to_string()])
        .collect();
    print_table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows);
    if !args.execute {
        println!("(dry run: add --execute to apply)");
        return Ok(());
    }
    commit_reset(coordinator, group, &plan).await?;
    println!("reset {} partition(s) of {} for group {group}", plan.offsets.len(), plan.topic);
    Ok(())
}

/// Epoch milliseconds, or an ISO-8601 date-time (UTC unless it carries a zone).
pub fn parse_timestamp(text: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || anyhow::anyhow!("--to-datetime {text}: expected epoch ms or YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM]");
    let (date, time) = text.split_once('T').ok_or_else(bad)?;
    let mut d = date.split('-').map(|s| s.parse::<i64>());
    let (year, month, day) = match (d.next(), d.next(), d.next(), d.next()) {
        (Some(Ok(y)), Some(Ok(m)), Some(Ok(d)), None) => (y, m, d),
        _ => return Err(bad()),
    };
    let (clock, offset_minutes) = split_zone(time).ok_or_else(bad)?;
    let (hms, millis) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, format!("{frac:0<3}")[..3].parse::<i64>().map_err(|_| bad())?),
        None => (clock, 0),
    };
    let parts: Vec<i64> = hms.split(':').map(|s| s.parse::<i64>()).collect::<Result<_, _>>().map_err(|_| bad())?;
    let [hour, minute, second] = parts[..] else { return Err(bad()) };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    Ok(((days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60) * 1_000) + millis)
}

/// Splits a trailing `Z` or `±HH:MM` off a time of day: (clock, zone offset in minutes).
fn split_zone(time: &str) -> Option<(&str, i64)> {
    if let Some(clock) = time.strip_suffix('Z') {
        return Some((clock, 0));
    }
    match time.rfind(['+', '-']) {
        Some(at) => {
            let (clock, zone) = time.split_at(at);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..].split_once(':').unwrap_or((&zone[1..], "0"));
            Some((clock, sign * (h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?)))
        }
        None => Some((time, 0)),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_as_utc_unless_zoned() {
        assert_eq!(parse_timestamp("1700000000123").unwrap(), 1_700_000_000_123);
        assert_eq!(parse_timestamp("1970-01-01T00:00:00").unwrap(), 0);
        assert_eq!(parse_timestamp("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_timestamp("2023-11-14T22:13:20.5").unwrap(), 1_700_000_000_500);
        assert_eq!(parse_timestamp("2023-11-15T00:13:20.123+02:00").unwrap(), 1_700_000_000_123);
        assert_eq!(parse_timestamp("2023-11-14T21:13:20-01:00").unwrap(), 1_700_000_000_000);
        assert!(parse_timestamp("2023-13-01T00:00:00").is_err());
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn assignments_parse() {
        let bytes = [0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(parse_assignment(&bytes), Some(vec![("t".to_string(), vec![3, 5])]));
        assert_eq!(parse_assignment(&[]), Some(vec![]));
        assert_eq!(parse_assignment(&[0, 1, 0]), None);
    }
}
