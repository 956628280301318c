//! The log cleaner (Kafka's `LogCleaner` and `LogCleanerManager`): `log.cleaner.threads`
//! threads, each repeatedly taking the dirtiest compacted log this node hosts (leader or
//! follower: every replica cleans on its own) and running one pass over it
//! (`runnel_storage::cleaner`), or sleeping `log.cleaner.backoff.ms` when none is due.
//!
//! Owns `cleaner-offset-checkpoint` in the data directory: per partition, the offset below
//! which its log is clean (its first dirty offset), in Kafka's checkpoint format.
//!
//! Invariants: one pass at a time per log (`in_progress`); the log's lock is held only to
//! plan and to swap, never while segments are read or written; a checkpoint never stays
//! above an offset the log was truncated to, nor applies to a recreated topic of the same
//! name (it is kept with the topic id it was taken for); a log whose pass fails for any
//! reason but a stop or a changed log is marked uncleanable and left alone until restart
//! (Kafka's `uncleanable-partitions`), so one bad log cannot stop the others' cleaning.

pub mod config;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use runnel_storage::cleaner::choose::{choose, dirtiness, LogState};
use runnel_storage::cleaner::{clean, CleanSettings, CommitOutcome, Throttle};
use runnel_storage::{OffsetCheckpoint, StorageError};
use uuid::Uuid;

pub use config::CleanerConfig;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::locks::MutexExt;
use crate::partition::{Partition, PartitionError};

pub const CLEANER_CHECKPOINT: &str = "cleaner-offset-checkpoint";

type Key = (String, i32);

/// What `topic describe` and the metrics show of one compacted partition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartitionCleaning {
    /// Everything below is clean (the checkpoint).
    pub first_dirty: i64,
    /// Cleanable bytes over the log's bytes up to the first uncleanable offset.
    pub dirty_ratio: f64,
    /// When a pass last committed on this log, -1 if never since start.
    pub last_cleaned_ms: i64,
    /// Since when the log has been due without being cleaned, -1 when it is not due.
    pub due_since_ms: i64,
    /// Why the log is left alone, if a pass failed.
    pub uncleanable: Option<String>,
    /// When the earliest tombstone kept by the last pass may go (-1: none known).
    pub earliest_delete_horizon: i64,
}

/// Totals since start, for the metrics.
#[derive(Debug, Default)]
pub struct CleanerStats {
    pub passes: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub busy_ms: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Per partition: the topic id the checkpoint was taken for (unknown when read from
    /// the file) and the first dirty offset.
    checkpoints: BTreeMap<Key, (Option<Uuid>, i64)>,
    in_progress: BTreeSet<Key>,
    partitions: BTreeMap<Key, PartitionCleaning>,
    stopping: bool,
}

pub struct LogCleaner {
    /// Replaced whole by [`LogCleaner::reconfigure`] (dynamic broker settings).
    config: Mutex<CleanerConfig>,
    /// The broker the threads work for, once started.
    broker: std::sync::OnceLock<std::sync::Weak<Broker>>,
    checkpoint_path: PathBuf,
    throttle: Throttle,
    state: Mutex<State>,
    wake: Condvar,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// The numbers of the threads running now.
    running: Mutex<BTreeSet<usize>>,
    pub stats: CleanerStats,
}

/// The log chosen for a pass and what the pass needs to know about it.
struct Chosen {
    partition: Arc<Partition>,
    key: Key,
    first_dirty: i64,
    first_uncleanable: i64,
    delete_retention_ms: i64,
}

impl LogCleaner {
    /// The cleaner of the node whose data directory is `data_dir`, with its checkpoint.
    pub fn new(config: &CleanerConfig, data_dir: &Path) -> Self {
        let checkpoint_path = data_dir.join(CLEANER_CHECKPOINT);
        let checkpoints = crate::log_dirs::read_checkpoint(&checkpoint_path)
            .unwrap_or_default()
            .into_iter()
            .map(|(key, offset)| (key, (None, offset)))
            .collect();
        LogCleaner {
            config: Mutex::new(config.clone()),
            broker: std::sync::OnceLock::new(),
            checkpoint_path,
            throttle: Throttle::new(config.io_max_bytes_per_second),
            state: Mutex::new(State { checkpoints, ..State::default() }),
            wake: Condvar::new(),
            threads: Mutex::new(Vec::new()),
            running: Mutex::new(BTreeSet::new()),
            stats: CleanerStats::default(),
        }
    }

    /// Starts the cleaner threads over `broker`'s partitions (none when
    /// `log.cleaner.enable` is false). They end with [`LogCleaner::shutdown`], or when the
    /// broker is gone.
    pub fn start(self: &Arc<Self>, broker: &Arc<Broker>) {
        if !self.config().enable || self.broker.set(Arc::downgrade(broker)).is_err() {
            return;
        }
        self.spawn_threads();
    }

    fn config(&self) -> CleanerConfig {
        self.config.locked().clone()
    }

    /// Takes new settings at runtime: the I/O bound, back-off and buffer apply to the next
    /// pass; more threads start at once, and threads above a lowered count end after their
    /// current pass (Kafka resizes its cleaner the same way).
    pub fn reconfigure(self: &Arc<Self>, config: &CleanerConfig) {
        self.throttle.set_rate(config.io_max_bytes_per_second);
        *self.config.locked() = CleanerConfig { enable: self.config().enable, ..config.clone() };
        self.wake.notify_all();
        if self.broker.get().is_some() {
            self.spawn_threads();
        }
    }

    /// Starts threads up to the configured count (threads numbered at or above the count
    /// end by themselves).
    fn spawn_threads(self: &Arc<Self>) {
        let Some(broker) = self.broker.get().cloned() else { return };
        let mut threads = self.threads.locked();
        threads.retain(|handle| !handle.is_finished());
        let running: BTreeSet<usize> = self.running.locked().clone();
        for i in (0..self.config().threads).filter(|i| !running.contains(i)) {
            let cleaner = Arc::clone(self);
            let broker = broker.clone();
            self.running.locked().insert(i);
            let spawned = std::thread::Builder::new().name(format!("log-cleaner-{i}")).spawn(move || {
                loop {
                    if cleaner.state.locked().stopping || i >= cleaner.config().threads {
                        break;
                    }
                    let Some(partitions) = broker.upgrade().map(|b| b.replicas.all_partitions()) else { break };
                    let mut worked = false;
                    crate::locks::run_guarded("log cleaner", || worked = cleaner.clean_once(&partitions, now_ms()));
                    drop(partitions);
                    if !worked {
                        cleaner.sleep(Duration::from_millis(cleaner.config().backoff_ms));
                    }
                }
                cleaner.running.locked().remove(&i);
            });
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(error) => {
                    self.running.locked().remove(&i);
                    tracing::error!(%error, "could not start a log cleaner thread");
                }
            }
        }
    }

    /// Stops the threads: a pass under way is abandoned (its files removed).
    pub fn shutdown(&self) {
        self.state.locked().stopping = true;
        self.throttle.cancel();
        self.wake.notify_all();
        for handle in std::mem::take(&mut *self.threads.locked()) {
            let _ = handle.join();
        }
    }

    fn sleep(&self, duration: Duration) {
        let state = self.state.locked();
        if !state.stopping {
            let _ = self.wake.wait_timeout(state, duration);
        }
    }

    /// The cleaner's view of one partition, if it is compacted and was looked at.
    pub fn describe(&self, topic: &str, partition: i32) -> Option<PartitionCleaning> {
        self.state.locked().partitions.get(&(topic.to_string(), partition)).cloned()
    }

    /// Every partition's view, for the metrics.
    pub fn partitions(&self) -> BTreeMap<(String, i32), PartitionCleaning> {
        self.state.locked().partitions.clone()
    }

    /// Cleans the dirtiest due log among `partitions`, if any; whether a pass committed or
    /// failed (a thread that gets `false` backs off, so a log that stays due without
    /// anything to clean is not chosen in a tight loop).
    pub fn clean_once(&self, partitions: &[Arc<Partition>], now_ms: i64) -> bool {
        let Some(chosen) = self.choose(partitions, now_ms) else { return false };
        let started = std::time::Instant::now();
        let outcome = self.run_pass(&chosen, now_ms);
        self.stats
            .busy_ms
            .fetch_add(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
        let mut state = self.state.locked();
        state.in_progress.remove(&chosen.key);
        let view = state.partitions.entry(chosen.key.clone()).or_default();
        match outcome {
            Ok(Some((map_end, earliest_delete_horizon))) => {
                view.first_dirty = map_end;
                view.earliest_delete_horizon = earliest_delete_horizon;
                view.last_cleaned_ms = now_ms;
                view.due_since_ms = -1;
                state.checkpoints.insert(chosen.key.clone(), (Some(chosen.partition.topic_id), map_end));
                self.stats.passes.fetch_add(1, Ordering::Relaxed);
                let live: BTreeSet<Key> = partitions.iter().map(|p| (p.topic.clone(), p.index)).collect();
                state.checkpoints.retain(|key, _| live.contains(key));
                state.partitions.retain(|key, _| live.contains(key));
                drop(state);
                self.write_checkpoint();
            }
            Ok(None)
            | Err(PassError::Partition(
                PartitionError::Deleted | PartitionError::Storage(StorageError::CleaningCancelled),
            )) => return false,
            Err(error) => {
                tracing::error!(topic = %chosen.key.0, partition = chosen.key.1, %error, "log cleaning failed; the log is uncleanable until restart");
                view.uncleanable = Some(error.to_string());
            }
        }
        true
    }

    /// Writes `cleaner-offset-checkpoint` from the checkpoints in memory.
    fn write_checkpoint(&self) {
        let entries: Vec<(Key, i64)> =
            self.state.locked().checkpoints.iter().map(|(k, (_, o))| (k.clone(), *o)).collect();
        if let Err(error) = OffsetCheckpoint::write(&self.checkpoint_path, &entries) {
            tracing::warn!(%error, "writing the cleaner checkpoint failed");
        }
    }

    /// Takes every compacted log's state and picks the dirtiest due one (marked in progress).
    fn choose(&self, partitions: &[Arc<Partition>], now_ms: i64) -> Option<Chosen> {
        let mut candidates = Vec::new();
        let mut states = Vec::new();
        for partition in partitions {
            let settings = partition.settings();
            if !settings.compacted {
                continue;
            }
            let key = (partition.topic.clone(), partition.index);
            let (checkpoint, busy, uncleanable) = {
                let state = self.state.locked();
                let checkpoint = state
                    .checkpoints
                    .get(&key)
                    .filter(|(topic_id, _)| topic_id.is_none_or(|id| id == partition.topic_id))
                    .map(|(_, offset)| *offset);
                let uncleanable = state.partitions.get(&key).is_some_and(|p| p.uncleanable.is_some());
                (checkpoint, state.in_progress.contains(&key), uncleanable)
            };
            if busy || uncleanable {
                continue;
            }
            // Nothing at or past the last stable offset is cleaned: an open transaction's
            // records must stay until its marker says what they are (Kafka bounds the
            // cleanable range by the first unstable offset too).
            let high_watermark = partition.last_stable_offset();
            let Ok((segments, first_dirty, truncated)) = partition.with_log(|log| {
                let truncated = log.take_truncation();
                let first_dirty = checkpoint
                    .map_or(log.log_start_offset(), |c| truncated.map_or(c, |t| c.min(t)))
                    .clamp(log.log_start_offset(), log.log_end_offset());
                Ok((log.segment_states()?, first_dirty, truncated))
            }) else {
                continue;
            };
            if truncated.is_some() {
                // Taken from the log once: the stored checkpoint must come down now, in
                // memory and on disk, whether or not this log is cleaned this round (else
                // records written again above the truncation would pass for clean).
                self.state.locked().checkpoints.insert(key.clone(), (Some(partition.topic_id), first_dirty));
                self.write_checkpoint();
            }
            let cleaning = settings.cleaning;
            let mut log = LogState {
                segments,
                first_dirty,
                high_watermark,
                min_cleanable_ratio: cleaning.min_cleanable_ratio,
                min_compaction_lag_ms: cleaning.min_compaction_lag_ms,
                max_compaction_lag_ms: cleaning.max_compaction_lag_ms,
                earliest_delete_horizon: -1,
            };
            let d = dirtiness(&log, now_ms);
            {
                let mut state = self.state.locked();
                let view = state.partitions.entry(key.clone()).or_insert_with(|| PartitionCleaning {
                    last_cleaned_ms: -1,
                    due_since_ms: -1,
                    earliest_delete_horizon: -1,
                    ..PartitionCleaning::default()
                });
                log.earliest_delete_horizon = view.earliest_delete_horizon;
                let due = runnel_storage::cleaner::choose::is_due(&log, &d, now_ms);
                view.first_dirty = first_dirty;
                view.dirty_ratio = d.ratio();
                view.due_since_ms = match (due, view.due_since_ms) {
                    (false, _) => -1,
                    (true, -1) => now_ms,
                    (true, since) => since,
                };
            }
            candidates.push((partition, key, d.first_uncleanable, cleaning.delete_retention_ms));
            states.push(log);
        }
        let index = choose(&states, now_ms)?;
        let (partition, key, first_uncleanable, delete_retention_ms) = candidates.swap_remove(index);
        let mut state = self.state.locked();
        if !state.in_progress.insert(key.clone()) {
            return None;
        }
        Some(Chosen {
            partition: Arc::clone(partition),
            key,
            first_dirty: states[index].first_dirty,
            first_uncleanable,
            delete_retention_ms,
        })
    }

    /// One pass over the chosen log; when it committed, the new first dirty offset and the
    /// earliest delete horizon it kept.
    fn run_pass(&self, chosen: &Chosen, now_ms: i64) -> Result<Option<(i64, i64)>, PassError> {
        let Some(plan) =
            chosen.partition.with_log(|log| log.plan_clean(chosen.first_dirty, chosen.first_uncleanable))?
        else {
            return Ok(None);
        };
        let settings = CleanSettings {
            dedupe_buffer_bytes: self.config().buffer_per_thread(),
            now_ms,
            delete_retention_ms: chosen.delete_retention_ms,
            decompressed_max_bytes: runnel_protocol::batch::DECOMPRESSED_BATCH_BYTES_MAX,
        };
        let result = clean(&plan, &settings, &self.throttle)?;
        let stats = result.stats;
        let map_end = result.map_end;
        self.stats.bytes_read.fetch_add(stats.bytes_read, Ordering::Relaxed);
        self.stats.bytes_written.fetch_add(stats.bytes_written, Ordering::Relaxed);
        if result.had_dirty && map_end <= chosen.first_dirty {
            return Err(PassError::BufferTooSmall);
        }
        match chosen.partition.with_log(|log| log.commit_clean(result)) {
            Ok(CommitOutcome::Committed) => {
                tracing::info!(
                    topic = %chosen.key.0, partition = chosen.key.1, first_dirty = chosen.first_dirty, map_end,
                    bytes_read = stats.bytes_read, bytes_written = stats.bytes_written, keys = stats.keys_mapped,
                    "cleaned log"
                );
                Ok(Some((map_end, stats.earliest_delete_horizon)))
            }
            Ok(CommitOutcome::Stale) => Ok(None),
            // A swap that failed half way leaves files only recovery may finish.
            Err(PartitionError::Storage(error)) => crate::storage_failure::fatal(&chosen.key.0, chosen.key.1, &error),
            Err(error) => Err(error.into()),
        }
    }
}

impl LogCleaner {
    /// The cleaner's metrics in Prometheus text (Kafka's `kafka.log:type=LogCleaner` and
    /// `LogCleanerManager` beans, by Runnel's names).
    pub fn render_metrics(&self, now_ms: i64) -> String {
        let stats = &self.stats;
        let partitions = self.partitions();
        let max_ratio = partitions.values().map(|p| p.dirty_ratio).fold(0.0, f64::max);
        let longest_wait_ms =
            partitions.values().filter(|p| p.due_since_ms >= 0).map(|p| now_ms - p.due_since_ms).max().unwrap_or(0);
        let uncleanable = partitions.values().filter(|p| p.uncleanable.is_some()).count();
        let metrics: [(&str, &str, &str, String); 7] = [
            (
                "runnel_log_cleaner_passes_total",
                "counter",
                "Cleaning passes committed.",
                stats.passes.load(Ordering::Relaxed).to_string(),
            ),
            (
                "runnel_log_cleaner_read_bytes_total",
                "counter",
                "Bytes of log the cleaner read.",
                stats.bytes_read.load(Ordering::Relaxed).to_string(),
            ),
            (
                "runnel_log_cleaner_written_bytes_total",
                "counter",
                "Bytes of cleaned log written.",
                stats.bytes_written.load(Ordering::Relaxed).to_string(),
            ),
            (
                "runnel_log_cleaner_busy_seconds_total",
                "counter",
                "Time the cleaner threads spent in passes.",
                (stats.busy_ms.load(Ordering::Relaxed) as f64 / 1000.0).to_string(),
            ),
            (
                "runnel_log_cleaner_max_dirty_ratio",
                "gauge",
                "The dirtiest compacted log's dirty ratio (Kafka's max-dirty-percent / 100).",
                max_ratio.to_string(),
            ),
            (
                "runnel_log_cleaner_max_wait_seconds",
                "gauge",
                "The longest a due log has waited to be cleaned.",
                (longest_wait_ms as f64 / 1000.0).to_string(),
            ),
            (
                "runnel_log_cleaner_uncleanable_partitions",
                "gauge",
                "Compacted logs left alone after a failed pass.",
                uncleanable.to_string(),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in metrics {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
        }
        out
    }
}

/// Why a pass did not complete.
#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error("log.cleaner.dedupe.buffer.size holds not even one batch's keys")]
    BufferTooSmall,
}

impl From<StorageError> for PassError {
    fn from(error: StorageError) -> Self {
        PassError::Partition(error.into())
    }
}
