//! DescribeLogDirs v0-4: the node's one log directory (its data dir) with the size of
//! every partition replica it hosts, and from v4 the file system's total and usable bytes.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use runnel_protocol::runnel_tags::{self, CleanerState};

use super::Context;
use crate::log_cleaner::PartitionCleaning;
use crate::partition::Partition;

/// Whether the request asks about `topic`-`index` (a null topic list asks about all).
fn requested(request: &DescribeLogDirsRequest, topic: &str, index: i32) -> bool {
    request
        .topics
        .as_ref()
        .is_none_or(|topics| topics.iter().any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&index)))
}

/// One hosted replica, or `None` if it was deleted while we looked. A compacted replica
/// carries the cleaner's view, a tiered one its local and remote parts, in Runnel's tags
/// (`runnel_protocol::runnel_tags`).
fn describe(
    partition: &Partition,
    cleaning: Option<PartitionCleaning>,
    tiered: Option<runnel_tags::TieredState>,
) -> Option<DescribeLogDirsPartition> {
    let size_bytes = partition.inspect_log(|log| Ok(log.size_bytes())).ok()?;
    // Kafka's definition for a current log: how far its end is behind the high watermark.
    // A leader's end is never behind; a follower's can be only until it appends what its
    // leader reported as committed, so this is 0 nearly always. How far a follower is behind
    // its leader's log end is not known here (the leader knows it: see the ISR).
    let offset_lag = (partition.high_watermark() - partition.log_end_offset()).max(0);
    let mut described = DescribeLogDirsPartition::default()
        .with_partition_index(partition.index)
        .with_partition_size(i64::try_from(size_bytes).unwrap_or(i64::MAX))
        .with_offset_lag(offset_lag)
        .with_is_future_key(false);
    if let Some(cleaning) = cleaning {
        let state = CleanerState {
            first_dirty: cleaning.first_dirty,
            dirty_ratio: cleaning.dirty_ratio,
            last_cleaned_ms: cleaning.last_cleaned_ms,
            uncleanable: cleaning.uncleanable.is_some(),
        };
        described.unknown_tagged_fields.insert(runnel_tags::CLEANER_STATE, state.encode().into());
    }
    if let Some(state) = tiered {
        described.unknown_tagged_fields.insert(runnel_tags::TIERED_STATE, state.encode().into());
    }
    Some(described)
}

/// The file system's (total, usable) bytes under `dir`, as statvfs(3) reports them.
#[allow(unsafe_code)]
fn file_system_bytes(dir: &Path) -> Option<(i64, i64)> {
    let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is a NUL-terminated string that outlives the call and `stats` points to
    // writable memory of the right type; statvfs fills it completely when it returns 0.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    let fragment_bytes = u128::from(stats.f_frsize);
    let bytes = |blocks: u128| i64::try_from(blocks * fragment_bytes).unwrap_or(i64::MAX);
    Some((bytes(u128::from(stats.f_blocks)), bytes(u128::from(stats.f_bavail))))
}

/// The data dir as an absolute path, which is how Kafka names log dirs.
fn absolute(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).or_else(|_| std::path::absolute(dir)).unwrap_or_else(|_| dir.to_path_buf())
}

pub fn handle(ctx: &Context, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let broker = ctx.broker;
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for partition in broker.replicas.all_partitions() {
        if !requested(&request, &partition.topic, partition.index) {
            continue;
        }
        let cleaning = broker.cleaner.describe(&partition.topic, partition.index);
        if let Some(described) = describe(&partition, cleaning, crate::tiering::partition_state(broker, &partition)) {
            topics.entry(partition.topic.clone()).or_default().push(described);
        }
    }
    let topics = topics
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    let dir = absolute(&broker.config.data_dir);
    let mut result = DescribeLogDirsResult::default()
        .with_error_code(0)
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(topics);
    // Sizes exist from v4; the defaults (-1, "unknown") stay when statvfs fails.
    if ctx.version >= 4 {
        if let Some((total_bytes, usable_bytes)) = file_system_bytes(&dir) {
            result = result.with_total_bytes(total_bytes).with_usable_bytes(usable_bytes);
        }
    }
    DescribeLogDirsResponse::default().with_results(vec![result])
}
