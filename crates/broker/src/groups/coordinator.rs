//! The async shell around the pure group state machine: one shard per `__consumer_offsets`
//! partition (a lock, its groups, its parked requests, its timers), the offsets topic's
//! creation and start-up replay, and the waits of parked JoinGroup / SyncGroup requests.
//!
//! A parked request waits on a oneshot channel, never holding a lock, so it blocks only its
//! own connection (which Kafka clients expect: the broker answers one request per connection
//! at a time). It ends when the state machine answers it, when the server stops (NOT_COORDINATOR,
//! as Kafka answers when a coordinator unloads), or after a safety bound well past every
//! timeout that should have answered it. Parked requests per shard are bounded by
//! `max.connections`; beyond that JoinGroup and SyncGroup get COORDINATOR_NOT_AVAILABLE.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use runnel_metadata::MetadataImage;
use runnel_protocol::ResponseError;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use super::group::Group;
use super::host::GroupHost;
use super::join::{self, JoinRequest, JoinResponse};
use super::loader::{self, GroupLoadError};
use super::offsets::{self, CommitRequest, CommitResponse, DeleteOffsetsResponse, FetchedOffset};
use super::outcome::{Outcome, Parked};
use super::shard::{Landed, ShardState};
use super::sync::{self, HeartbeatRequest, LeaveResponse, LeavingMember, SyncRequest, SyncResponse};
use super::{timers, GroupConfig, OFFSETS_TOPIC};
use crate::clock::now_ms;
use crate::coordinator_runtime::Shards;
use crate::locks::MutexExt;
use crate::partition::Partition;

/// Timer rounds run inline after a request (a zero initial delay, a session found expired).
const INLINE_TIMER_ROUNDS_MAX: usize = 4;
/// Added to a parked request's own timeouts before the safety bound answers it.
const PARK_SAFETY_MARGIN_MS: u64 = 10_000;

/// One offsets partition's groups on the node that leads it (the shared runtime's shard).
type Shard = crate::coordinator_runtime::Shard<ShardState>;

/// What the offsets topic is created with, from the broker's `offsets.topic.*` settings.
#[derive(Debug, Clone)]
pub struct OffsetsTopicSettings {
    pub partitions: i32,
    pub segment_bytes: u64,
}

pub struct GroupCoordinator {
    config: GroupConfig,
    topic: OffsetsTopicSettings,
    /// One shard per offsets partition this node leads (in a cluster, the coordinator of a
    /// group is the leader of its partition), on the runtime shared with the transaction
    /// coordinator.
    pub(super) shards: Shards<ShardState>,
    parked_per_shard_max: usize,
}

/// A listed group: id, state name, protocol type.
pub type ListedGroup = (String, &'static str, String);

/// A landed outcome and where its records went, for durability.
type Executed<R> = (Landed<R>, Option<Written>);

/// Where a group write went: the offsets partition, the leader epoch it was written in,
/// and its last offset.
type Written = (Arc<Partition>, i32, i64);

/// One group as the metrics show it ([`GroupCoordinator::metrics_view`]).
pub struct GroupMetrics {
    pub group_id: String,
    pub state: &'static str,
    /// Bumped by every completed rebalance: its rate is the group's rebalance rate.
    pub generation: i32,
    pub members: usize,
    pub offsets: Vec<((String, i32), i64)>,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig, topic: OffsetsTopicSettings, parked_per_shard_max: usize) -> Self {
        GroupCoordinator { config, topic, shards: Shards::new(OFFSETS_TOPIC), parked_per_shard_max }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Makes this node the coordinator of exactly the offsets partitions it leads: a
    /// partition it has just come to lead (or leads in a new epoch) is replayed from its log
    /// into a fresh shard; one it no longer leads is unloaded (its parked requests end with
    /// NOT_COORDINATOR and its clients look the coordinator up again). Runs at start-up and
    /// after every metadata change, so the coordinator moves with leadership.
    pub fn load(
        &self,
        offsets_partition: &dyn Fn(i32) -> Option<Arc<Partition>>,
        image: &MetadataImage,
        now_ms: i64,
    ) -> Result<(), GroupLoadError> {
        let (mut records, mut skipped) = (0, 0);
        let changed = self.shards.load(offsets_partition, image, |partition| {
            let mut state = ShardState::default();
            let stats = loader::replay(partition, &mut state, now_ms)?;
            records += stats.records;
            skipped += stats.skipped;
            Ok::<_, GroupLoadError>(state)
        })?;
        if changed {
            let shards = self.shards.all();
            let groups: usize = shards.iter().map(|s| s.state.locked().groups.len()).sum();
            tracing::info!(groups, records, skipped, partitions = shards.len(), "loaded consumer groups");
        }
        Ok(())
    }

    /// Creates the offsets topic on first need (FindCoordinator, any group write).
    pub fn ensure_ready(&self, host: &dyn GroupHost) -> Result<(), ResponseError> {
        if self.shards.is_ready() {
            return Ok(());
        }
        // The creator waits on the metadata quorum: wait for it off the runtime's workers.
        crate::metadata_store::blocking(|| self.shards.ensure_ready(|| self.create_and_load(host)))
    }

    fn create_and_load(&self, host: &dyn GroupHost) -> Result<(), ResponseError> {
        if host.image().topic(OFFSETS_TOPIC).is_none() {
            let mut configs = BTreeMap::new();
            configs.insert("cleanup.policy".to_string(), "compact".to_string());
            configs.insert("segment.bytes".to_string(), self.topic.segment_bytes.to_string());
            host.create_offsets_topic(self.topic.partitions, &configs)?;
        }
        self.load(&|index| host.offsets_partition(index), &host.image(), now_ms()).map_err(|error| {
            tracing::error!(%error, "loading the offsets topic failed");
            ResponseError::CoordinatorNotAvailable
        })
    }

    fn shard_for(&self, group_id: &str) -> Option<Arc<Shard>> {
        self.shards.for_key(group_id)
    }

    /// Runs a pure handler on a group under its shard's lock and lands the outcome, then runs
    /// any timer of the group that is already due.
    fn execute<R>(
        &self,
        host: &dyn GroupHost,
        group_id: &str,
        parks: bool,
        now_ms: i64,
        handler: impl FnOnce(Option<&Group>) -> Outcome<R>,
    ) -> Result<Executed<R>, ResponseError> {
        if group_id.len() > crate::handlers::GROUP_STRING_BYTES_MAX {
            // Group ids are stored with int16 lengths.
            return Err(ResponseError::InvalidGroupId);
        }
        self.ensure_ready(host)?;
        let shard = self.shard_for(group_id).ok_or(ResponseError::CoordinatorNotAvailable)?;
        let partition = host
            .offsets_partition(shard.partition)
            .filter(|p| p.is_leader() && p.leader_epoch() == shard.leader_epoch)
            .ok_or(ResponseError::NotCoordinator)?;
        let mut state = shard.state.locked();
        if parks && state.waiter_count() >= self.parked_per_shard_max {
            tracing::warn!(limit = self.parked_per_shard_max, "too many parked group requests");
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let outcome = handler(state.groups.get(group_id));
        let epoch = shard.leader_epoch;
        let (landed, appended) = state.land(&partition, epoch, group_id, outcome, now_ms)?;
        let mut last_offset = appended.last_offset;
        for _ in 0..INLINE_TIMER_ROUNDS_MAX {
            if !state.is_due(group_id, now_ms) {
                break;
            }
            let outcome = timers::tick(&state.groups[group_id], &self.config, now_ms);
            match state.land(&partition, epoch, group_id, outcome, now_ms) {
                Ok((_, appended)) => last_offset = appended.last_offset.or(last_offset),
                Err(error) => {
                    tracing::warn!(group = group_id, ?error, "group timer failed");
                    break;
                }
            }
        }
        Ok((landed, last_offset.map(|offset| (partition, epoch, offset))))
    }

    /// Waits until the in-sync replicas hold the records (acks=all, as Kafka's coordinator
    /// writes) and, with `log.flush.before.ack`, until they are on disk here.
    async fn settle(host: &dyn GroupHost, written: Option<Written>) -> Result<(), ResponseError> {
        let Some((partition, leader_epoch, last_offset)) = written else { return Ok(()) };
        crate::coordinator_runtime::settle(&partition, leader_epoch, last_offset, host.flush_before_ack()).await
    }

    /// Runs `handler` and answers at once (the requests that never park).
    async fn run<R>(
        &self,
        host: &dyn GroupHost,
        group_id: &str,
        handler: impl FnOnce(Option<&Group>, i64) -> Outcome<R>,
    ) -> Result<R, ResponseError> {
        let now = now_ms();
        let (landed, written) = self.execute(host, group_id, false, now, |group| handler(group, now))?;
        Self::settle(host, written).await?;
        match landed {
            Landed::Now(response) => Ok(response),
            Landed::Parked(_) => unreachable!("this handler never parks"),
        }
    }

    pub async fn join(
        &self,
        host: &dyn GroupHost,
        request: &JoinRequest,
        stop: &watch::Receiver<bool>,
    ) -> JoinResponse {
        let now = now_ms();
        let fresh = Uuid::new_v4();
        let executed = self
            .execute(host, &request.group_id, true, now, |group| join::join(group, request, &self.config, now, fresh));
        let fail = |error| JoinResponse::error(&request.member_id, error);
        let (landed, written) = match executed {
            Ok(executed) => executed,
            Err(error) => return fail(error),
        };
        if let Err(error) = Self::settle(host, written).await {
            return fail(error);
        }
        let receiver = match landed {
            Landed::Now(response) => return response,
            Landed::Parked(receiver) => receiver,
        };
        let timeout_ms = 2 * u64::try_from(request.rebalance_timeout_ms.max(request.session_timeout_ms)).unwrap_or(0);
        match wait_parked(receiver, stop, timeout_ms).await {
            Ok(Parked::Join(response)) => response,
            Ok(Parked::Sync(_)) => fail(ResponseError::UnknownServerError),
            Err(error) => fail(error),
        }
    }

    pub async fn sync(
        &self,
        host: &dyn GroupHost,
        request: &SyncRequest,
        stop: &watch::Receiver<bool>,
    ) -> SyncResponse {
        let now = now_ms();
        let executed = self.execute(host, &request.group_id, true, now, |group| sync::sync(group, request, now));
        let (landed, written) = match executed {
            Ok(executed) => executed,
            Err(error) => return SyncResponse::error(error),
        };
        if let Err(error) = Self::settle(host, written).await {
            return SyncResponse::error(error);
        }
        let receiver = match landed {
            Landed::Now(response) => return response,
            Landed::Parked(receiver) => receiver,
        };
        let timeout_ms = u64::try_from(self.config.max_session_timeout_ms).unwrap_or(0);
        match wait_parked(receiver, stop, timeout_ms).await {
            Ok(Parked::Sync(response)) => response,
            Ok(Parked::Join(_)) => SyncResponse::error(ResponseError::UnknownServerError),
            Err(error) => SyncResponse::error(error),
        }
    }

    pub async fn heartbeat(&self, host: &dyn GroupHost, request: &HeartbeatRequest) -> Option<ResponseError> {
        let result = self.run(host, &request.group_id, |group, now| sync::heartbeat(group, request, now)).await;
        result.unwrap_or_else(Some)
    }

    pub async fn leave(&self, host: &dyn GroupHost, group_id: &str, members: &[LeavingMember]) -> LeaveResponse {
        let result = self.run(host, group_id, |group, now| sync::leave(group, group_id, members, &self.config, now));
        result.await.unwrap_or_else(|error| LeaveResponse { error: Some(error), members: Vec::new() })
    }

    pub async fn commit(&self, host: &dyn GroupHost, request: &CommitRequest) -> CommitResponse {
        let result = self.run(host, &request.group_id, |group, now| offsets::commit(group, request, &self.config, now));
        result.await.unwrap_or_else(|error| {
            let all = request.topics.iter();
            all.map(|(topic, ps)| (topic.clone(), ps.iter().map(|p| (p.partition, Some(error))).collect())).collect()
        })
    }

    pub async fn delete_offsets(
        &self,
        host: &dyn GroupHost,
        group_id: &str,
        topics: &[(String, Vec<i32>)],
    ) -> DeleteOffsetsResponse {
        let result = self.run(host, group_id, |group, _| offsets::delete_offsets(group, group_id, topics)).await;
        result.unwrap_or_else(Err)
    }

    pub async fn delete_group(&self, host: &dyn GroupHost, group_id: &str) -> Option<ResponseError> {
        self.run(host, group_id, |group, _| offsets::delete_group(group, group_id)).await.unwrap_or_else(Some)
    }

    /// Committed offsets of a group (`topics` of `None`: all of them). Only durable state is
    /// answered: the read is taken under the shard's lock together with the partition's log
    /// end, and answered once the in-sync replicas hold everything below it, so a commit that
    /// is applied but not yet replicated (and could still be lost with the leader) is never
    /// returned. Kafka keeps such commits aside as pending; waiting for them gives the same
    /// guarantee without a second copy of the state.
    pub async fn fetch(
        &self,
        host: &dyn GroupHost,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<(String, Vec<FetchedOffset>)>, ResponseError> {
        self.read_committed(host, group_id, |group| offsets::fetch(group, topics)).await
    }

    /// A copy of the group as its replicated records leave it, for DescribeGroups.
    pub async fn describe_committed(
        &self,
        host: &dyn GroupHost,
        group_id: &str,
    ) -> Result<Option<Group>, ResponseError> {
        self.read_committed(host, group_id, |group| group.cloned()).await
    }

    /// Reads `group_id` under its shard's lock, then waits until what was written before
    /// the read is replicated (see [`GroupCoordinator::fetch`]).
    async fn read_committed<T>(
        &self,
        host: &dyn GroupHost,
        group_id: &str,
        read: impl FnOnce(Option<&Group>) -> T,
    ) -> Result<T, ResponseError> {
        let Some(shard) = self.shard_for(group_id) else { return Ok(read(None)) };
        let (answer, written) = {
            let state = shard.state.locked();
            let written = host.offsets_partition(shard.partition).and_then(|partition| {
                let end = partition.log_end_offset();
                (end > 0).then_some((partition, shard.leader_epoch, end - 1))
            });
            (read(state.groups.get(group_id)), written)
        };
        Self::settle(host, written).await?;
        Ok(answer)
    }

    /// A copy of the group, for tests (no wait for replication).
    pub fn describe(&self, group_id: &str) -> Option<Group> {
        let shard = self.shard_for(group_id)?;
        let state = shard.state.locked();
        state.groups.get(group_id).cloned()
    }

    /// Every group this node coordinates, as the metrics show it: id, state, members and
    /// committed offsets; at most `max` groups.
    pub fn metrics_view(&self, max: usize) -> Vec<GroupMetrics> {
        let mut groups = Vec::new();
        for shard in self.shards.all() {
            let state = shard.state.locked();
            groups.extend(state.groups.values().map(|g| GroupMetrics {
                group_id: g.group_id.clone(),
                state: g.state.name(),
                generation: g.generation_id,
                members: g.members.len(),
                offsets: g.offsets.iter().map(|(tp, committed)| (tp.clone(), committed.offset)).collect(),
            }));
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        groups.truncate(max);
        groups
    }

    /// Every group this node coordinates.
    pub fn list(&self) -> Vec<ListedGroup> {
        let mut listed = Vec::new();
        for shard in self.shards.all() {
            let state = shard.state.locked();
            listed.extend(
                state
                    .groups
                    .values()
                    .map(|g| (g.group_id.clone(), g.state.name(), g.protocol_type.clone().unwrap_or_default())),
            );
        }
        listed.sort();
        listed
    }

    /// Runs every due timer; the server calls this every few tens of milliseconds.
    pub fn tick(&self, host: &dyn GroupHost, now_ms: i64) {
        self.for_each_shard(host, |state, partition, leader_epoch| {
            state.forget_abandoned();
            for group_id in state.due(now_ms) {
                let outcome = timers::tick(&state.groups[&group_id], &self.config, now_ms);
                if let Err(error) = state.land(partition, leader_epoch, &group_id, outcome, now_ms) {
                    tracing::warn!(group = %group_id, ?error, "group timer failed");
                }
            }
        });
    }

    /// Removes expired offsets and the empty groups left without any
    /// (`offsets.retention.check.interval.ms`).
    pub fn expire_offsets(&self, host: &dyn GroupHost, now_ms: i64) {
        self.for_each_shard(host, |state, partition, leader_epoch| {
            let ids: Vec<String> = state.groups.keys().cloned().collect();
            for group_id in ids {
                let outcome = offsets::expire(&state.groups[&group_id], &self.config, now_ms);
                if outcome.records.is_empty() {
                    continue;
                }
                tracing::info!(group = %group_id, records = outcome.records.len(), "expiring offsets");
                if let Err(error) = state.land(partition, leader_epoch, &group_id, outcome, now_ms) {
                    tracing::warn!(group = %group_id, ?error, "offset expiration failed");
                }
            }
        });
    }

    /// Runs `f` on every shard with its partition and the leader epoch it was loaded in
    /// (writes are refused once the partition no longer leads in it).
    fn for_each_shard(&self, host: &dyn GroupHost, mut f: impl FnMut(&mut ShardState, &Partition, i32)) {
        for shard in self.shards.all() {
            let Some(partition) = host.offsets_partition(shard.partition) else { continue };
            let mut state = shard.state.locked();
            f(&mut state, &partition, shard.leader_epoch);
        }
    }
}

/// Waits for a parked request's answer, the server's stop, or the safety bound.
async fn wait_parked(
    receiver: oneshot::Receiver<Parked>,
    stop: &watch::Receiver<bool>,
    timeout_ms: u64,
) -> Result<Parked, ResponseError> {
    let mut stop = stop.clone();
    if *stop.borrow_and_update() {
        return Err(ResponseError::NotCoordinator);
    }
    let bound = Duration::from_millis(timeout_ms.saturating_add(PARK_SAFETY_MARGIN_MS));
    tokio::select! {
        // A dropped sender means a newer request of the same member replaced this one.
        answer = receiver => answer.map_err(|_| ResponseError::RebalanceInProgress),
        _ = stop.changed() => Err(ResponseError::NotCoordinator),
        _ = tokio::time::sleep(bound) => {
            tracing::warn!(?bound, "parked group request outlived its safety bound");
            Err(ResponseError::RebalanceInProgress)
        }
    }
}
