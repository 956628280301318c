//! The console's JSON API. Every answer is built from Kafka API calls made as the signed-in
//! user, mostly by the CLI's own functions (`cluster info`, `topic list|describe|create|
//! delete`, `config describe|set|delete`, `group list|describe|reset-offsets`), so the
//! console and the CLI show the same thing.

use std::collections::{BTreeMap, BTreeSet};

use hyper::Method;
use kafka_protocol::messages::{DescribeLogDirsRequest, MetadataResponse};
use runnel_client::security::ClientSecurity;
use serde_json::{json, Value};

use super::{ApiError, Console, Credentials};

/// Partitions listed per topic page, at most.
const PARTITIONS_SHOWN_MAX: usize = 1000;

pub async fn route(
    console: &Console,
    method: &Method,
    path: &[&str],
    query: &[(String, String)],
    body: &Value,
    who: &Credentials,
) -> Result<Value, ApiError> {
    let (mut conn, security) = console.connect(who).await?;
    let conn = &mut conn;
    match (method.clone(), path) {
        (Method::GET, ["whoami"]) => {
            Ok(json!({ "user": who.as_ref().map(|(user, _)| user.clone()), "sasl": console.sasl }))
        }
        (Method::GET, ["overview"]) => overview(console, conn, &security).await,
        (Method::GET, ["topics"]) => topics(console, conn, &security).await,
        (Method::POST, ["topics"]) => create_topic(conn, body).await,
        (Method::GET, ["topics", name]) => topic(console, conn, &security, name).await,
        (Method::DELETE, ["topics", topic]) => {
            crate::topic::delete(conn, topic).await?;
            Ok(json!({ "deleted": topic }))
        }
        (Method::POST, ["topics", topic, "configs"]) => alter_configs(conn, topic, body).await,
        (Method::GET, ["topics", topic, "messages"]) => {
            let query = super::browse::Query::parse(query)?;
            let _reading = console.browsing.try_acquire().map_err(|_| {
                ApiError::Unavailable("other message pages are being read; try again in a moment".into())
            })?;
            Ok(super::browse::messages(conn, &security, topic, &query).await?)
        }
        (Method::GET, ["groups"]) => {
            let mut listed = crate::group::list_value(conn).await?;
            for group in listed["groups"].as_array_mut().into_iter().flatten() {
                let lag = group["group"].as_str().and_then(|id| console.history.group(id).last().map(|(_, lag)| *lag));
                group["lag"] = json!(lag);
            }
            Ok(listed)
        }
        (Method::GET, ["groups", group]) => {
            let mut coordinator = crate::group::coordinator(conn, group, &security).await?;
            let mut described = crate::group::describe_value(conn, &security, &mut coordinator, group).await?;
            described["lag_history"] = json!(console.history.group(group));
            Ok(described)
        }
        (Method::POST, ["groups", group, "reset"]) => reset(conn, &security, group, body).await,
        _ => Err(ApiError::NotFound(format!("no API {method} /api/{}", path.join("/")))),
    }
}

fn text<'a>(body: &'a Value, key: &str) -> Result<&'a str, ApiError> {
    body[key].as_str().filter(|s| !s.is_empty()).ok_or_else(|| ApiError::Bad(format!("`{key}` is required")))
}

fn number(body: &Value, key: &str) -> Result<i64, ApiError> {
    match &body[key] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| ApiError::Bad(format!("`{key}` must be a whole number")))
}

async fn overview(
    console: &Console,
    conn: &mut runnel_client::Connection,
    _security: &ClientSecurity,
) -> Result<Value, ApiError> {
    let cluster = crate::cluster::info_value(conn).await?;
    let metadata = crate::offsets::metadata(conn, None).await?;
    let live: BTreeSet<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
    let (mut partitions, mut under, mut offline, mut leaderless) = (0, 0, 0, 0);
    for t in &metadata.topics {
        for p in &t.partitions {
            partitions += 1;
            under += usize::from(p.isr_nodes.len() < p.replica_nodes.len());
            offline += usize::from(p.replica_nodes.iter().any(|r| !live.contains(&r.0)));
            leaderless += usize::from(p.leader_id.0 < 0);
        }
    }
    Ok(json!({
        "cluster": cluster,
        "topics": metadata.topics.iter().filter(|t| !t.is_internal).count(),
        "partitions": {
            "total": partitions,
            "under_replicated": under,
            "with_offline_replicas": offline,
            "leaderless": leaderless,
        },
        "node_traffic": console.history.node(),
    }))
}

/// Each partition's local log size on its leader (DescribeLogDirs of every live broker, for
/// the topics `metadata` names); a broker that cannot be asked, or refuses, leaves its
/// partitions out (shown as unknown).
async fn leader_log_sizes(metadata: &MetadataResponse, security: &ClientSecurity) -> BTreeMap<(String, i32), i64> {
    let leaders: BTreeMap<(String, i32), i32> = metadata
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| (n.0.to_string(), t)))
        .flat_map(|(name, t)| t.partitions.iter().map(move |p| ((name.clone(), p.partition_index), p.leader_id.0)))
        .collect();
    let mut sizes = BTreeMap::new();
    for broker in &metadata.brokers {
        // Sizes are extra: a broker that cannot be asked leaves its partitions out.
        let Ok(mut conn) = crate::connect::connect_to_node(metadata, broker.node_id.0, security).await else {
            continue;
        };
        let topics = metadata.topics.iter().filter_map(|t| t.name.clone()).map(|name| {
            let partitions = metadata
                .topics
                .iter()
                .filter(|x| x.name.as_ref() == Some(&name))
                .flat_map(|x| x.partitions.iter().map(|p| p.partition_index))
                .collect();
            kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic::default()
                .with_topic(name)
                .with_partitions(partitions)
        });
        let request = DescribeLogDirsRequest::default().with_topics(Some(topics.collect()));
        let Ok(response) = conn.send(&request, 4).await else { continue };
        if response.error_code != 0 {
            continue;
        }
        for dir in response.results.iter().filter(|d| d.error_code == 0) {
            for t in &dir.topics {
                for p in &t.partitions {
                    let key = (t.name.0.to_string(), p.partition_index);
                    if leaders.get(&key) == Some(&broker.node_id.0) {
                        sizes.insert(key, p.partition_size);
                    }
                }
            }
        }
    }
    sizes
}

async fn topics(
    console: &Console,
    conn: &mut runnel_client::Connection,
    security: &ClientSecurity,
) -> Result<Value, ApiError> {
    let metadata = crate::offsets::metadata(conn, None).await?;
    let sizes = leader_log_sizes(&metadata, security).await;
    let ends = crate::offsets::latest_of_all(&metadata, security, super::history::TOPICS_MAX).await?;
    let rates = console.history.topic_rates();
    let mut topics: Vec<Value> = metadata
        .topics
        .iter()
        .filter_map(|t| {
            let name = t.name.as_ref()?.0.to_string();
            let replication = t.partitions.iter().map(|p| p.replica_nodes.len()).max().unwrap_or(0);
            // Unknown (null) rather than a wrong number when a partition could not be asked.
            let all = |known: &BTreeMap<(String, i32), i64>| -> Option<i64> {
                t.partitions.iter().map(|p| known.get(&(name.clone(), p.partition_index)).copied()).sum()
            };
            let size = all(&sizes);
            let end = all(&ends);
            let under = t.partitions.iter().filter(|p| p.isr_nodes.len() < p.replica_nodes.len()).count();
            Some(json!({
                "name": name,
                "internal": t.is_internal,
                "partitions": t.partitions.len(),
                "replication_factor": replication,
                "size_bytes": size,
                "log_end_offsets": end,
                "under_replicated": under,
                "messages_per_second": rates.get(&name),
            }))
        })
        .collect();
    topics.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(json!({ "topics": topics }))
}

async fn topic(
    console: &Console,
    conn: &mut runnel_client::Connection,
    security: &ClientSecurity,
    topic: &str,
) -> Result<Value, ApiError> {
    let mut described = crate::topic::describe_value(conn, topic).await?;
    let metadata = crate::offsets::metadata(conn, Some(&[topic])).await?;
    let indexes: BTreeSet<i32> = metadata
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
        .take(PARTITIONS_SHOWN_MAX)
        .collect();
    // Offsets of a partition without a leader (or whose leader cannot be asked) are unknown:
    // shown empty, while the others are shown.
    let ask = |ts| crate::offsets::of_available_partitions(&metadata, security, topic, &indexes, ts);
    let earliest = ask(crate::offsets::EARLIEST).await?;
    let latest = ask(crate::offsets::LATEST).await?;
    let sizes = leader_log_sizes(&metadata, security).await;
    for partition in described["partitions"].as_array_mut().into_iter().flatten() {
        let Some(index) = partition["partition"].as_i64().and_then(|i| i32::try_from(i).ok()) else { continue };
        partition["earliest_offset"] = json!(earliest.get(&index));
        partition["latest_offset"] = json!(latest.get(&index));
        partition["size_bytes"] = json!(sizes.get(&(topic.to_string(), index)));
    }
    let settings: Vec<Value> =
        crate::config::describe_topic(conn, topic).await?.iter().map(crate::config::entry_json).collect();
    described["settings"] = json!(settings);
    described["messages_per_second"] = json!(console.history.topic(topic));
    Ok(described)
}

async fn create_topic(conn: &mut runnel_client::Connection, body: &Value) -> Result<Value, ApiError> {
    let name = text(body, "name")?;
    let partitions =
        i32::try_from(number(body, "partitions")?).map_err(|_| ApiError::Bad("too many partitions".into()))?;
    let replication = match body.get("replication_factor") {
        None | Some(Value::Null) => -1,
        Some(_) => i16::try_from(number(body, "replication_factor")?)
            .map_err(|_| ApiError::Bad("replication_factor out of range".into()))?,
    };
    let configs: Vec<(String, String)> = body["configs"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
        .collect();
    let (partitions, id) = crate::topic::create(conn, name, partitions, replication, &configs).await?;
    Ok(json!({ "created": name, "partitions": partitions, "topic_id": id }))
}

async fn alter_configs(conn: &mut runnel_client::Connection, topic: &str, body: &Value) -> Result<Value, ApiError> {
    let mut changes: Vec<(String, Option<String>)> = body["set"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Some(v.as_str().map_or_else(|| v.to_string(), str::to_string))))
        .collect();
    changes.extend(
        body["delete"].as_array().into_iter().flatten().filter_map(|k| k.as_str()).map(|k| (k.to_string(), None)),
    );
    if changes.is_empty() {
        return Err(ApiError::Bad("nothing to change: give `set` and/or `delete`".into()));
    }
    crate::config::alter_topic(conn, topic, &changes).await?;
    Ok(json!({ "updated": topic, "changes": changes.len() }))
}

/// Plans (and with `"execute": true` commits) a reset of the group's offsets, as `runnel
/// group reset-offsets` does.
async fn reset(
    conn: &mut runnel_client::Connection,
    security: &ClientSecurity,
    group: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    use crate::group::ResetTarget;
    let spec = text(body, "topic")?;
    let target = match text(body, "to")? {
        "earliest" => ResetTarget::Earliest,
        "latest" => ResetTarget::Latest,
        "offset" => ResetTarget::Offset(number(body, "value")?),
        "datetime" => ResetTarget::Timestamp(crate::group::parse_timestamp(text(body, "value")?)?),
        other => return Err(ApiError::Bad(format!("`to` {other}: expected earliest, latest, offset or datetime"))),
    };
    let execute = body["execute"].as_bool().unwrap_or(false);
    let mut coordinator = crate::group::coordinator(conn, group, security).await?;
    let plan = crate::group::plan_reset(conn, security, &mut coordinator, group, spec, &target).await?;
    if execute {
        crate::group::commit_reset(&mut coordinator, group, &plan).await?;
    }
    let offsets: Vec<Value> = plan.offsets.iter().map(|(p, o)| json!({ "partition": p, "new_offset": o })).collect();
    Ok(json!({ "group": group, "topic": plan.topic, "offsets": offsets, "executed": execute }))
}
