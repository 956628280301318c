//! Metrics computed from the node's state at scrape time, beside the counters of
//! `metrics.rs`: consumer groups (state, members, committed offsets and lag), the metadata
//! quorum as this node sees it (and, on the quorum's leader, each member's progress), and
//! the process (open file descriptors, resident memory).
//!
//! Invariants: read-only; bounded ([`GROUPS_MAX`] groups, [`GROUP_OFFSETS_MAX`] offset
//! series); lag is reported where this node knows the partition's high watermark (it hosts
//! a replica), as the log end a consumer can reach minus the committed offset, never below 0.

use std::fmt::Write;

use crate::broker::Broker;
use crate::request_metrics::escape;

/// Groups with series of their own, at most.
pub const GROUPS_MAX: usize = 1000;
/// Committed-offset and lag series, at most.
pub const GROUP_OFFSETS_MAX: usize = 10_000;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Groups this node coordinates.
pub fn groups(broker: &Broker, out: &mut String) {
    let groups = broker.groups.metrics_view(GROUPS_MAX);
    family(out, "runnel_group_members", "gauge", "Members of each consumer group coordinated here.");
    for g in &groups {
        let _ = writeln!(out, "runnel_group_members{{group=\"{}\"}} {}", escape(&g.group_id), g.members);
    }
    family(out, "runnel_group_generation", "gauge", "Each group's generation: one more per completed rebalance.");
    for g in &groups {
        let _ = writeln!(out, "runnel_group_generation{{group=\"{}\"}} {}", escape(&g.group_id), g.generation);
    }
    family(out, "runnel_group_state", "gauge", "1 for each group's current state (Empty, Stable, ...).");
    for g in &groups {
        let _ = writeln!(out, "runnel_group_state{{group=\"{}\",state=\"{}\"}} 1", escape(&g.group_id), g.state);
    }
    let mut committed = String::new();
    let mut lag = String::new();
    let offsets = groups.iter().flat_map(|g| g.offsets.iter().map(move |o| (g, o))).take(GROUP_OFFSETS_MAX);
    for (g, ((topic, partition), offset)) in offsets {
        let labels = format!("group=\"{}\",topic=\"{}\",partition=\"{partition}\"", escape(&g.group_id), escape(topic));
        let _ = writeln!(committed, "runnel_group_committed_offset{{{labels}}} {offset}");
        if let Some(hosted) = broker.replicas.partition(topic, *partition) {
            let _ = writeln!(lag, "runnel_group_lag{{{labels}}} {}", (hosted.high_watermark() - offset).max(0));
        }
    }
    family(out, "runnel_group_committed_offset", "gauge", "Committed offset per group and partition.");
    out.push_str(&committed);
    family(
        out,
        "runnel_group_lag",
        "gauge",
        "High watermark minus committed offset, per group and partition this node hosts.",
    );
    out.push_str(&lag);
}

/// The metadata quorum as this node sees it.
pub fn quorum(broker: &Broker, out: &mut String) {
    let image = broker.metadata.image();
    let fenced = image.brokers.values().filter(|b| b.fenced).count();
    let offline = image.topics.values().flat_map(|t| t.partitions.iter()).filter(|p| p.leader < 0).count();
    let gauges = [
        ("runnel_metadata_records_applied", image.records_applied as i64, "Metadata records applied by this node."),
        (
            "runnel_active_controller",
            i64::from(broker.controller_id()),
            "The node id of the active controller (-1: none known).",
        ),
        ("runnel_registered_brokers", image.brokers.len() as i64, "Brokers registered with the cluster."),
        ("runnel_fenced_brokers", fenced as i64, "Registered brokers that are fenced."),
        ("runnel_offline_partitions", offline as i64, "Partitions without a leader (cluster-wide, from the metadata)."),
    ];
    for (name, value, help) in gauges {
        family(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let counters = [
        (
            "runnel_leader_elections_total",
            image.leader_elections,
            "Partition leader changes in the metadata log (cluster-wide).",
        ),
        (
            "runnel_unclean_leader_elections_total",
            image.unclean_elections,
            "Leader changes to a replica outside the ISR (cluster-wide).",
        ),
    ];
    for (name, value, help) in counters {
        family(out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    // The Raft quorum (cluster mode): where this node's copy of the metadata log is, and on
    // the quorum's leader how far each member has replicated it.
    if let Some(quorum) = broker.metadata.quorum() {
        let m = quorum.metrics();
        let index = |i: Option<u64>| i.map_or(-1, |i| i as i64);
        let gauges = [
            ("runnel_quorum_last_log_index", index(m.last_log_index), "The last index of this node's metadata log."),
            (
                "runnel_quorum_last_applied_index",
                index(m.last_applied_index),
                "The last metadata log index applied here.",
            ),
            ("runnel_quorum_term", m.current_term as i64, "The quorum's current term as this node knows it."),
            (
                "runnel_quorum_leader",
                m.current_leader.map_or(-1, |l| l as i64),
                "The quorum leader's node id (-1: none known).",
            ),
        ];
        for (name, value, help) in gauges {
            family(out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        let name = "runnel_quorum_replicated_index";
        family(out, name, "gauge", "On the quorum leader: the highest index each member has replicated.");
        for (node, replicated) in &m.replicated_index {
            let _ = writeln!(out, "{name}{{node=\"{node}\"}} {}", index(*replicated));
        }
    }
    let name = "runnel_metadata_commit_seconds";
    family(out, name, "histogram", "Metadata commits made by this node, from proposal to applied here.");
    broker.metadata.commit_latency.render(name, "", out);
}

/// This process: open file descriptors and resident memory (Linux `/proc`).
pub fn process(out: &mut String) {
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        family(out, "process_open_fds", "gauge", "Open file descriptors.");
        let _ = writeln!(out, "process_open_fds {}", entries.count());
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let resident_kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    if let Some(kb) = resident_kb {
        family(out, "process_resident_memory_bytes", "gauge", "Resident memory.");
        let _ = writeln!(out, "process_resident_memory_bytes {}", kb * 1024);
    }
}
