//! One partition this node hosts: its log behind a lock of its own, its role (leader,
//! follower, offline) and replication state, the high watermark consumers and acks=all
//! producers wait on, the log end offset follower fetches wait on, and group commit for
//! fsync-before-acknowledge.
//!
//! As leader it tracks each follower's log end offset (the offset of its last fetch) and
//! when it was last caught up; the high watermark is the minimum log end over the ISR and
//! never moves back. ISR changes are decided here and proposed through the metadata quorum
//! by the caller (AlterPartition); the in-memory ISR changes only when the committed image
//! says so, so a pending shrink still holds the high watermark back, and a replica proposed
//! to join counts from the moment it is proposed (Kafka's maximal ISR).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};

use runnel_metadata::PartitionImage;
use runnel_protocol::ResponseError;
use runnel_storage::{AppendInfo, PartitionLog, ReadInfo, StorageError};
use tokio::sync::watch;
use uuid::Uuid;

use crate::locks::{MutexExt, RwLockExt};
use crate::topic_config::TopicSettings;

/// What this node is for a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower {
        leader: i32,
    },
    /// No leader (or not yet told): serves nobody.
    Offline,
}

/// What a leader knows of one follower.
#[derive(Clone, Copy, Debug)]
struct FollowerState {
    /// The offset of its last fetch: it holds everything below. -1 until it fetches.
    log_end: i64,
    last_caught_up_ms: i64,
    /// The leader's log end and the time when the previous fetch was answered.
    last_fetch_leader_end: i64,
    last_fetch_ms: i64,
    /// Its log start offset as its last fetch reported it; -1 until it does.
    log_start: i64,
}

#[derive(Debug)]
struct Replication {
    role: Role,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    followers: BTreeMap<i32, FollowerState>,
    /// An ISR change proposed against this partition epoch and not yet seen committed.
    pending_isr_change: Option<i32>,
    /// Replicas proposed to join the ISR against partition epoch `joining.0`: the high
    /// watermark counts them until an image with another partition epoch settles whether
    /// they joined (Kafka's maximal ISR). Otherwise, between the commit and this node
    /// taking the image, the high watermark could pass what a new ISR member holds, and
    /// that member could be elected without it. Kept when a proposal seems to fail: a
    /// commit that timed out may still land.
    joining: (i32, Vec<i32>),
    /// Where the leader's current epoch starts: a follower joins the ISR only past it.
    epoch_start_offset: i64,
}

/// What changed when the partition took a new image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    None,
    BecameLeader,
    /// A new leader or a new leader epoch to follow: truncate, then fetch.
    BecameFollower {
        leader: i32,
        leader_epoch: i32,
    },
    BecameOffline,
}

/// An ISR change the leader wants: propose it with the partition epoch it was decided on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrChange {
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
}

/// What [`Partition::read`] found, all as of one look at the log: the read, the log start
/// offset, the last stable offset, and for read_committed the aborted transactions
/// (producer id, first offset) the read may hold.
pub struct Read {
    pub info: Result<ReadInfo, StorageError>,
    pub log_start_offset: i64,
    pub last_stable_offset: i64,
    pub aborted: Option<Vec<(i64, i64)>>,
}

pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub topic_id: Uuid,
    node_id: i32,
    leader_epoch: AtomicI32,
    /// `None` once the partition has been deleted; handlers then answer UNKNOWN_TOPIC.
    log: Mutex<Option<PartitionLog>>,
    settings: RwLock<TopicSettings>,
    replication: Mutex<Replication>,
    high_watermark: watch::Sender<i64>,
    log_end: watch::Sender<i64>,
    /// Serialises fsyncs: whoever holds it syncs everything appended so far (group commit).
    flush_lock: tokio::sync::Mutex<()>,
    durable_offset: AtomicI64,
    /// Producers whose transaction the coordinator confirmed includes this partition, with
    /// the epoch confirmed (KIP-890; see `partition_txn.rs`).
    pub(crate) txn_verified: Mutex<std::collections::HashMap<i64, i16>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("partition was deleted")]
    Deleted,
    #[error("this replica does not lead the partition in that leader epoch")]
    NotLeader,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("fsync failed: {0}")]
    Sync(std::io::Error),
}

impl Partition {
    /// A hosted partition in the role `image` gives it. `high_watermark` is the last one
    /// checkpointed (clamped to the log); a sole in-sync leader moves it to its log end.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topic: String,
        topic_id: Uuid,
        node_id: i32,
        image: &PartitionImage,
        log: PartitionLog,
        settings: TopicSettings,
        high_watermark: i64,
        now_ms: i64,
    ) -> Self {
        let end = log.log_end_offset();
        let durable = log.recovery_point();
        let high_watermark = high_watermark.clamp(log.log_start_offset(), end);
        let partition = Partition {
            topic,
            index: image.partition,
            topic_id,
            node_id,
            leader_epoch: AtomicI32::new(-1),
            log: Mutex::new(Some(log)),
            settings: RwLock::new(settings),
            replication: Mutex::new(Replication {
                role: Role::Offline,
                leader_epoch: -1,
                partition_epoch: -1,
                replicas: Vec::new(),
                isr: Vec::new(),
                followers: BTreeMap::new(),
                pending_isr_change: None,
                joining: (-1, Vec::new()),
                epoch_start_offset: 0,
            }),
            high_watermark: watch::Sender::new(high_watermark),
            log_end: watch::Sender::new(end),
            flush_lock: tokio::sync::Mutex::new(()),
            durable_offset: AtomicI64::new(durable),
            txn_verified: Mutex::new(std::collections::HashMap::new()),
        };
        if let Err(e) = partition.apply_image(image, now_ms) {
            tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "taking the partition's role failed");
        }
        partition
    }

    fn state(&self) -> MutexGuard<'_, Replication> {
        self.replication.locked()
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Kafka's fencing by the leader epoch a request names (KIP-320): none (-1) passes, an
    /// older one is FENCED_LEADER_EPOCH (the client is behind), a newer one
    /// UNKNOWN_LEADER_EPOCH (this replica is behind).
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), ResponseError> {
        let epoch = self.leader_epoch();
        match current_leader_epoch {
            requested if requested < 0 || requested == epoch => Ok(()),
            requested if requested < epoch => Err(ResponseError::FencedLeaderEpoch),
            _ => Err(ResponseError::UnknownLeaderEpoch),
        }
    }

    pub fn role(&self) -> Role {
        self.state().role
    }

    pub fn is_leader(&self) -> bool {
        self.role() == Role::Leader
    }

    pub fn replica_count(&self) -> usize {
        self.state().replicas.len()
    }

    /// How many replicas are in sync as this node last heard (leader: as committed).
    pub fn isr_len(&self) -> usize {
        self.state().isr.len()
    }

    pub fn settings(&self) -> TopicSettings {
        self.settings.read_locked().clone()
    }

    /// `remote.storage.enable`, without copying the settings (the fetch path asks per partition).
    pub fn remote_storage(&self) -> bool {
        self.settings.read_locked().remote_storage
    }

    pub fn min_insync_replicas(&self) -> usize {
        self.settings.read_locked().min_insync_replicas
    }

    /// Runs with `settings` from now on (a topic config changed at runtime): the log takes
    /// its part at its next append, roll or retention pass. Settings the storage refuses
    /// cannot arrive here (topic configs are checked as a whole before they are committed);
    /// if they did, the log keeps its previous ones.
    pub fn update_settings(&self, settings: &TopicSettings) {
        // The log's lock is never taken under the settings' lock (nor the reverse).
        let log_changed = self.settings.read_locked().log != settings.log;
        if log_changed {
            let applied = self.with_log(|log| log.set_config(settings.log.clone()));
            if let Err(error) = applied.as_ref().map_err(|e| e.to_string()) {
                tracing::error!(topic = %self.topic, partition = self.index, %error, "new log settings refused");
            }
        }
        *self.settings.write_locked() = settings.clone();
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    pub fn log_end_offset(&self) -> i64 {
        *self.log_end.borrow()
    }

    /// The last stable offset (LSO): the high watermark, or below it the first offset of the
    /// oldest open transaction. A read_committed consumer reads only below it.
    pub fn last_stable_offset(&self) -> i64 {
        let high_watermark = self.high_watermark();
        self.inspect_log(|log| Ok(log.last_stable_offset(high_watermark))).unwrap_or(high_watermark)
    }

    /// A receiver that wakes when the high watermark moves (or the role changes). Subscribe
    /// before reading so a concurrent append cannot slip between the read and the wait.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// A receiver that wakes when the log end moves: what follower fetches wait on.
    pub fn subscribe_log_end(&self) -> watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    /// Takes the role, epochs and ISR of `image`. On becoming leader the new epoch starts
    /// at the log end and every follower starts unknown (caught up now if in the ISR).
    pub fn apply_image(&self, image: &PartitionImage, now_ms: i64) -> Result<Transition, PartitionError> {
        let role = match image.leader {
            leader if leader == self.node_id => Role::Leader,
            leader if leader >= 0 => Role::Follower { leader },
            _ => Role::Offline,
        };
        let mut state = self.state();
        // Images reach a partition from more than one task (the image follower, a handler
        // that just committed): one older than what it already took changes nothing.
        if image.partition_epoch < state.partition_epoch {
            return Ok(Transition::None);
        }
        state.replicas = image.replicas.clone();
        state.isr = image.isr.clone();
        if state.pending_isr_change.is_some_and(|epoch| epoch != image.partition_epoch) {
            state.pending_isr_change = None;
        }
        if state.joining.0 != image.partition_epoch {
            state.joining = (image.partition_epoch, Vec::new());
        }
        state.partition_epoch = image.partition_epoch;
        if role == state.role && image.leader_epoch == state.leader_epoch {
            if role == Role::Leader {
                let known: Vec<i32> = state.followers.keys().copied().collect();
                for id in image.replicas.iter().filter(|id| **id != self.node_id && !known.contains(id)) {
                    state.followers.insert(*id, FollowerState::unknown(0));
                }
                self.advance_high_watermark(&mut state);
            }
            return Ok(Transition::None);
        }
        state.role = role;
        state.leader_epoch = image.leader_epoch;
        state.pending_isr_change = None;
        state.followers.clear();
        self.leader_epoch.store(image.leader_epoch, Ordering::Release);
        let transition = match role {
            Role::Leader => {
                let end = self.with_log(|log| {
                    log.assign_leader_epoch(image.leader_epoch)?;
                    Ok(log.log_end_offset())
                })?;
                state.epoch_start_offset = end;
                for id in image.replicas.iter().filter(|id| **id != self.node_id) {
                    let caught_up = if image.isr.contains(id) { now_ms } else { 0 };
                    state.followers.insert(*id, FollowerState::unknown(caught_up));
                }
                self.advance_high_watermark(&mut state);
                Transition::BecameLeader
            }
            Role::Follower { leader } => Transition::BecameFollower { leader, leader_epoch: image.leader_epoch },
            Role::Offline => Transition::BecameOffline,
        };
        drop(state);
        // Wake parked fetches and acks=all produces: they re-check the role.
        self.high_watermark.send_modify(|_| {});
        self.log_end.send_modify(|_| {});
        Ok(transition)
    }

    /// Leader: the high watermark is the smallest log end over the ISR and the replicas
    /// proposed to join it. Never moves back.
    fn advance_high_watermark(&self, state: &mut Replication) {
        if state.role != Role::Leader {
            return;
        }
        let own_end = self.log_end_offset();
        let mut candidate = own_end;
        for id in state.isr.iter().chain(&state.joining.1).filter(|id| **id != self.node_id) {
            candidate = candidate.min(state.followers.get(id).map_or(-1, |f| f.log_end));
        }
        if candidate > self.high_watermark() {
            self.high_watermark.send_replace(candidate);
        }
    }

    /// Leader: a follower fetched from `fetch_offset`. Updates what the leader knows of it
    /// and the high watermark; returns an ISR expansion to propose when the follower is
    /// back in sync. `None` when this node is not the leader. Refused, changing nothing:
    /// a fetch from a broker that is not a replica (NOT_LEADER_OR_FOLLOWER, Kafka's answer)
    /// and an offset beyond the leader's log end (OFFSET_OUT_OF_RANGE: no follower can
    /// hold what the leader does not, so believing it would move the high watermark past
    /// unreplicated records).
    pub fn record_follower_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        log_start_offset: i64,
        now_ms: i64,
    ) -> Result<Option<IsrChange>, ResponseError> {
        let mut state = self.state();
        if state.role != Role::Leader {
            return Ok(None);
        }
        if !state.replicas.contains(&replica) || replica == self.node_id {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        let leader_end = self.log_end_offset();
        if fetch_offset > leader_end || fetch_offset < 0 {
            return Err(ResponseError::OffsetOutOfRange);
        }
        let follower = state.followers.entry(replica).or_insert(FollowerState::unknown(0));
        // Kafka's rule: caught up now if it asked for the log end; caught up as of the
        // previous fetch if it asked for what was the log end then.
        if fetch_offset >= leader_end {
            follower.last_caught_up_ms = now_ms;
        } else if fetch_offset >= follower.last_fetch_leader_end {
            follower.last_caught_up_ms = follower.last_caught_up_ms.max(follower.last_fetch_ms);
        }
        follower.log_end = fetch_offset.min(leader_end);
        // Its own log start, which DeleteRecords waits on (`low_watermark`).
        follower.log_start = log_start_offset;
        follower.last_fetch_leader_end = leader_end;
        follower.last_fetch_ms = now_ms;
        self.advance_high_watermark(&mut state);
        let in_sync = fetch_offset >= self.high_watermark() && fetch_offset >= state.epoch_start_offset;
        if state.isr.contains(&replica) || !in_sync || state.pending_isr_change.is_some() {
            return Ok(None);
        }
        let mut isr = state.isr.clone();
        isr.push(replica);
        state.pending_isr_change = Some(state.partition_epoch);
        if state.joining.0 != state.partition_epoch {
            state.joining = (state.partition_epoch, Vec::new());
        }
        if !state.joining.1.contains(&replica) {
            state.joining.1.push(replica);
        }
        Ok(Some(IsrChange { isr, partition_epoch: state.partition_epoch }))
    }

    /// Leader: the lowest log start offset among this replica and the followers `alive`
    /// says are up (Kafka's low watermark); -1 while such a follower has not reported one.
    pub fn low_watermark(&self, alive: impl Fn(i32) -> bool) -> i64 {
        let own = self.with_log(|log| Ok(log.log_start_offset())).unwrap_or(-1);
        let state = self.state();
        state
            .replicas
            .iter()
            .filter(|id| **id != self.node_id && alive(**id))
            .map(|id| state.followers.get(id).map_or(-1, |f| f.log_start))
            .fold(own, i64::min)
    }

    /// Leader: each in-sync follower's log end as of its last fetch (KIP-392: the replicas a
    /// consumer may be sent to). Empty on a follower.
    pub fn in_sync_follower_log_ends(&self) -> Vec<(i32, i64)> {
        let state = self.state();
        if state.role != Role::Leader {
            return Vec::new();
        }
        state.followers.iter().filter(|(id, _)| state.isr.contains(id)).map(|(id, f)| (*id, f.log_end)).collect()
    }

    /// Leader: how far each follower is behind, as (replica, messages behind the log end,
    /// ms since it was last caught up; 0 when it is). Empty on a follower.
    pub fn follower_lags(&self, now_ms: i64) -> Vec<(i32, i64, i64)> {
        let log_end = self.log_end_offset();
        let state = self.state();
        if state.role != Role::Leader {
            return Vec::new();
        }
        state
            .followers
            .iter()
            .map(|(id, f)| {
                let behind = (log_end - f.log_end.max(0)).max(0);
                let since = if behind == 0 { 0 } else { (now_ms - f.last_caught_up_ms).max(0) };
                (*id, behind, since)
            })
            .collect()
    }

    /// Leader: followers in the ISR not caught up for `lag_time_max_ms` leave it.
    pub fn isr_shrink(&self, now_ms: i64, lag_time_max_ms: i64) -> Option<IsrChange> {
        let mut state = self.state();
        if state.role != Role::Leader || state.pending_isr_change.is_some() {
            return None;
        }
        let lagging = |id: &i32| {
            *id != self.node_id
                && state.followers.get(id).is_none_or(|f| now_ms.saturating_sub(f.last_caught_up_ms) > lag_time_max_ms)
        };
        if !state.isr.iter().any(lagging) {
            return None;
        }
        let isr: Vec<i32> = state.isr.iter().copied().filter(|id| !lagging(id)).collect();
        state.pending_isr_change = Some(state.partition_epoch);
        Some(IsrChange { isr, partition_epoch: state.partition_epoch })
    }

    /// A proposed ISR change did not commit: allow deciding again.
    pub fn isr_change_failed(&self, change: &IsrChange) {
        let mut state = self.state();
        if state.pending_isr_change == Some(change.partition_epoch) {
            state.pending_isr_change = None;
        }
    }

    /// Runs `f` with the log locked, read-only: what request handlers use. Changes to a log
    /// go through the partition's own methods, which keep the replication state in step.
    pub fn inspect_log<T>(
        &self,
        f: impl FnOnce(&PartitionLog) -> Result<T, StorageError>,
    ) -> Result<T, PartitionError> {
        let guard = self.log.locked();
        let log = guard.as_ref().ok_or(PartitionError::Deleted)?;
        Ok(f(log)?)
    }

    /// Runs `f` with the log locked, for changes (the partition, the replica manager and the
    /// coordinator's loader); request handlers use [`Partition::inspect_log`].
    pub fn with_log<T>(
        &self,
        f: impl FnOnce(&mut PartitionLog) -> Result<T, StorageError>,
    ) -> Result<T, PartitionError> {
        let mut guard: MutexGuard<'_, Option<PartitionLog>> = self.log.locked();
        let log = guard.as_mut().ok_or(PartitionError::Deleted)?;
        Ok(f(log)?)
    }

    /// Leader in `leader_epoch`: appends validated batches (the coordinator's own writes).
    pub fn append(
        &self,
        records: &mut [u8],
        leader_epoch: i32,
        log_append_time: bool,
        now_ms: i64,
    ) -> Result<AppendInfo, PartitionError> {
        self.append_as_leader(leader_epoch, |log| log.append(records, leader_epoch, log_append_time, now_ms))
            .map(|(info, _)| info)
    }

    /// Leader in `leader_epoch`: appends one validated batch straight from the request
    /// buffer (no copy of the records). Returns the offsets and the log start offset the
    /// response reports, under one acquisition of the log lock.
    pub fn append_batch(
        &self,
        batch: &[u8],
        leader_epoch: i32,
        log_append_time: bool,
        now_ms: i64,
    ) -> Result<(AppendInfo, i64), PartitionError> {
        self.append_as_leader(leader_epoch, |log| log.append_batch(batch, leader_epoch, log_append_time, now_ms))
    }

    /// Appends under the replication state lock, refused with [`PartitionError::NotLeader`]
    /// unless this replica leads in `leader_epoch`. Role changes take the same lock, so a
    /// write checked against an older role can never land on a replica that has just become
    /// a follower: stamped with its new leader's epoch, such a batch would survive the
    /// follower's truncation and its log would diverge from the leader's. Kafka appends
    /// under `leaderIsrUpdateLock` for the same reason.
    pub(crate) fn append_as_leader(
        &self,
        leader_epoch: i32,
        append: impl FnOnce(&mut PartitionLog) -> Result<AppendInfo, StorageError>,
    ) -> Result<(AppendInfo, i64), PartitionError> {
        let mut state = self.state();
        if !state.leads_in(leader_epoch) {
            return Err(PartitionError::NotLeader);
        }
        let (info, end, start) = self.with_log(|log| {
            let info = append(log)?;
            Ok((info, log.log_end_offset(), log.log_start_offset()))
        })?;
        // From the log end, not the batch: a duplicate answers with older offsets.
        self.log_end.send_replace(end);
        self.advance_high_watermark(&mut state);
        Ok((info, start))
    }

    /// Leader in `leader_epoch`: whether every ISR member holds everything below `offset`.
    /// [`PartitionError::NotLeader`] once this replica no longer leads in that epoch. The
    /// high watermark is read before the role: a replica that still leads in the epoch
    /// afterwards computed it as that epoch's leader, over its own log. A replica that lost
    /// the epoch meanwhile may have truncated `offset` away and taken a new leader's high
    /// watermark past it; acknowledging then would acknowledge another producer's records.
    pub fn replicated_to(&self, offset: i64, leader_epoch: i32) -> Result<bool, PartitionError> {
        let high_watermark = self.high_watermark();
        if !self.state().leads_in(leader_epoch) {
            return Err(PartitionError::NotLeader);
        }
        Ok(high_watermark >= offset)
    }

    /// Follower: appends batches fetched from `fetched_from` in `leader_epoch` and takes the
    /// leader's high watermark, bounded by what this replica holds. Returns false (and
    /// appends nothing) when this replica no longer follows that leader in that epoch: a
    /// fetch answered by a deposed leader must not land after the truncation for the new one.
    pub fn append_as_follower(
        &self,
        fetched_from: (i32, i32),
        records: &[u8],
        leader_high_watermark: i64,
        now_ms: i64,
    ) -> Result<bool, PartitionError> {
        let state = self.state();
        if !state.follows(fetched_from) {
            return Ok(false);
        }
        let end = self.with_log(|log| {
            log.append_as_follower(records, now_ms)?;
            Ok(log.log_end_offset())
        })?;
        drop(state);
        self.log_end.send_replace(end);
        self.follow_high_watermark(leader_high_watermark);
        Ok(true)
    }

    /// Follower: the leader's high watermark, bounded by this replica's log end.
    pub fn follow_high_watermark(&self, leader_high_watermark: i64) {
        let bounded = leader_high_watermark.min(self.log_end_offset());
        if bounded > self.high_watermark() {
            self.high_watermark.send_replace(bounded);
        }
    }

    /// Follower: the leader's log start offset moved (retention, deleted records): this
    /// replica's moves too, bounded by its high watermark, and the segments wholly below it
    /// go at the next retention pass (Kafka's `maybeIncrementLogStartOffset`).
    pub fn follow_log_start_offset(&self, leader_log_start: i64) {
        let bounded = leader_log_start.min(self.high_watermark());
        let _ = self.with_log(|log| {
            log.advance_log_start_offset(bounded);
            Ok(())
        });
    }

    /// Follower of `(leader, epoch)`: truncates to `offset` (the end of the last epoch it
    /// shares with the leader). `None` if it no longer follows them.
    pub fn truncate_to(&self, following: (i32, i32), offset: i64) -> Result<Option<i64>, PartitionError> {
        let state = self.state();
        if !state.follows(following) {
            return Ok(None);
        }
        let end = self.with_log(|log| {
            log.truncate_to(offset)?;
            Ok(log.log_end_offset())
        })?;
        drop(state);
        self.after_truncation(end);
        Ok(Some(end))
    }

    /// Follower of `(leader, epoch)`: the leader no longer has anything this log holds
    /// (its log starts past our end); start over at `offset`.
    pub fn truncate_fully_and_start_at(&self, following: (i32, i32), offset: i64) -> Result<bool, PartitionError> {
        let state = self.state();
        if !state.follows(following) {
            return Ok(false);
        }
        self.with_log(|log| log.truncate_fully_and_start_at(offset))?;
        drop(state);
        self.after_truncation(offset);
        self.high_watermark.send_replace(offset);
        Ok(true)
    }

    /// Follower of `(leader, epoch)` whose leader holds the offsets below `offset` only in
    /// remote storage: an empty log from `offset` with the producer state and leader epochs
    /// remote storage recorded there. `false` if it no longer follows them.
    pub fn install_tiered_start(
        &self,
        following: (i32, i32),
        offset: i64,
        snapshot: Option<&[u8]>,
        epochs: &[(i32, i64)],
    ) -> Result<bool, PartitionError> {
        let state = self.state();
        if !state.follows(following) {
            return Ok(false);
        }
        self.with_log(|log| log.install_tiered_start(offset, snapshot, epochs))?;
        drop(state);
        self.after_truncation(offset);
        self.high_watermark.send_replace(offset);
        Ok(true)
    }

    fn after_truncation(&self, end: i64) {
        self.log_end.send_replace(end);
        let durable = self.durable_offset.load(Ordering::Acquire).min(end);
        self.durable_offset.store(durable, Ordering::Release);
        if self.high_watermark() > end {
            self.high_watermark.send_replace(end);
        }
    }

    /// OffsetsForLeaderEpoch: the largest epoch <= `epoch` here and where it ends.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Result<(i32, i64), PartitionError> {
        self.with_log(|log| Ok(log.end_offset_for_epoch(epoch)))
    }

    pub fn latest_epoch(&self) -> Result<Option<i32>, PartitionError> {
        self.with_log(|log| Ok(log.latest_epoch()))
    }

    /// Reads up to the high watermark, or for a follower up to the log end; returns the
    /// read and the log start offset the response reports (also when the read itself
    /// fails, e.g. out of range), under one acquisition of the log lock.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        for_replica: bool,
        read_committed: bool,
    ) -> Result<Read, PartitionError> {
        let high_watermark = self.high_watermark();
        let read_committed = read_committed && !for_replica;
        // The last stable offset and the aborted transactions are taken under the read's own
        // lock: no second lock per partition.
        self.with_log(|log| {
            let last_stable_offset = log.last_stable_offset(high_watermark);
            let max_offset = match (for_replica, read_committed) {
                (true, _) => i64::MAX,
                (false, true) => last_stable_offset,
                (false, false) => high_watermark,
            };
            let info = log.read(offset, max_bytes, max_offset, min_one_batch);
            let aborted = read_committed.then(|| {
                let aborted = log.aborted_for_read(offset, last_stable_offset);
                aborted.into_iter().map(|a| (a.producer_id, a.first_offset)).collect()
            });
            Ok(Read { info, log_start_offset: log.log_start_offset(), last_stable_offset, aborted })
        })
    }

    /// Returns once everything up to `offset` (exclusive) is on disk. One fsync covers every
    /// append that arrived while the previous fsync ran.
    pub async fn make_durable(&self, offset: i64) -> Result<(), PartitionError> {
        if self.durable_offset.load(Ordering::Acquire) >= offset {
            return Ok(());
        }
        let _turn = self.flush_lock.lock().await;
        if self.durable_offset.load(Ordering::Acquire) >= offset {
            return Ok(());
        }
        let (files, dir, target) = self.with_log(|log| Ok(log.flush_target()))?;
        tokio::task::spawn_blocking(move || sync_target(&files, dir.as_deref()))
            .await
            .map_err(|e| PartitionError::Sync(std::io::Error::other(e)))?
            .map_err(PartitionError::Sync)?;
        self.with_log(|log| {
            log.mark_flushed(target);
            Ok(())
        })?;
        self.durable_offset.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    /// The time-based flush policy (`flush.ms`), with the fsync outside the log's lock (a
    /// produce to this partition does not wait for it). Blocking.
    pub fn flush_if_due(&self, now_ms: i64) -> Result<(), PartitionError> {
        let Some((files, dir, target)) =
            self.with_log(|log| Ok(log.flush_wanted(now_ms).then(|| log.flush_target())))?
        else {
            return Ok(());
        };
        sync_target(&files, dir.as_deref()).map_err(PartitionError::Sync)?;
        self.with_log(|log| {
            log.mark_flushed_at(target, now_ms);
            Ok(())
        })?;
        self.durable_offset.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    /// Runs the fsyncs this log's rolls owe, without holding its lock while they run, and
    /// moves the recovery point past each. Blocking: call from a blocking thread.
    pub fn flush_rolled(&self) -> Result<(), PartitionError> {
        let owed = self.with_log(|log| Ok(log.take_rolled_flushes()))?;
        for flush in owed {
            flush.run().map_err(PartitionError::Sync)?;
            self.with_log(|log| {
                log.mark_rolled_flushed(&flush);
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Takes the log out for closing or deleting; the partition answers as deleted after.
    pub fn take_log(&self) -> Option<PartitionLog> {
        let log = self.log.locked().take();
        // Wake waiters so they notice.
        self.high_watermark.send_modify(|_| {});
        self.log_end.send_modify(|_| {});
        log
    }
}

/// fsyncs a `PartitionLog::flush_target`: its files, then its directory when a roll is owed.
fn sync_target(files: &[std::sync::Arc<std::fs::File>], dir: Option<&std::path::Path>) -> std::io::Result<()> {
    for file in files {
        file.sync_data()?;
    }
    dir.map_or(Ok(()), runnel_storage::sync_dir)
}

impl Replication {
    fn follows(&self, (leader, epoch): (i32, i32)) -> bool {
        self.role == Role::Follower { leader } && self.leader_epoch == epoch
    }

    fn leads_in(&self, epoch: i32) -> bool {
        self.role == Role::Leader && self.leader_epoch == epoch
    }
}

impl FollowerState {
    fn unknown(last_caught_up_ms: i64) -> Self {
        FollowerState {
            log_end: -1,
            last_caught_up_ms,
            last_fetch_leader_end: -1,
            last_fetch_ms: last_caught_up_ms,
            log_start: -1,
        }
    }
}
