//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete, the retention of offsets of
//! empty groups, and DeleteGroups.

use runnel_protocol::ResponseError;

use super::group::{CommittedOffset, Group, GroupState};
use super::outcome::{Outcome, Tx};
use super::record::Record;
use super::GroupConfig;

/// Kafka's "no retention time given" in OffsetCommit v2-v4.
pub const DEFAULT_RETENTION_TIME: i64 = -1;

#[derive(Debug, Clone)]
pub struct CommitPartition {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    /// OffsetCommit v1's commit time; -1 (every other version): the time of the commit.
    pub commit_timestamp_ms: i64,
}

#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub retention_time_ms: i64,
    pub topics: Vec<(String, Vec<CommitPartition>)>,
    /// v9+ answers GROUP_ID_NOT_FOUND where older versions say ILLEGAL_GENERATION.
    pub version: i16,
}

/// Per topic, per partition: the error, if the commit of that partition failed.
pub type CommitResponse = Vec<(String, Vec<(i32, Option<ResponseError>)>)>;

/// Kafka's `validateOffsetCommit`.
fn validate_commit(group: Option<&Group>, request: &CommitRequest) -> Result<(), ResponseError> {
    let Some(group) = group else {
        return match (request.generation_id < 0, request.version >= 9) {
            // A consumer without group management (or an admin tool) commits for a group
            // that does not exist yet: a "simple" group is created.
            (true, _) => Ok(()),
            (false, true) => Err(ResponseError::GroupIdNotFound),
            (false, false) => Err(ResponseError::IllegalGeneration),
        };
    };
    if request.generation_id < 0 && group.is(GroupState::Empty) {
        return Ok(());
    }
    if request.generation_id >= 0 || !request.member_id.is_empty() || request.instance_id.is_some() {
        group.validate_member(&request.member_id, request.instance_id.as_deref())?;
        if request.generation_id != group.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
    } else if !group.is(GroupState::Empty) {
        return Err(ResponseError::UnknownMemberId);
    }
    if group.is(GroupState::CompletingRebalance) {
        return Err(ResponseError::RebalanceInProgress);
    }
    Ok(())
}

pub fn commit(
    group: Option<&Group>,
    request: &CommitRequest,
    config: &GroupConfig,
    now_ms: i64,
) -> Outcome<CommitResponse> {
    let mut tx = Tx::new(group, &request.group_id);
    if let Err(error) = validate_commit(group, request) {
        let all =
            request.topics.iter().map(|(t, ps)| (t.clone(), ps.iter().map(|p| (p.partition, Some(error))).collect()));
        return tx.now(all.collect());
    }
    // In Stable and PreparingRebalance a commit keeps the member's session alive.
    let keeps_session = tx.group().is(GroupState::Stable) || tx.group().is(GroupState::PreparingRebalance);
    if let Some(member) = tx.group().member(&request.member_id).filter(|_| keeps_session) {
        let deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        tx.emit(Record::Heartbeat { member_id: request.member_id.clone(), deadline_ms });
    }
    let expire_timestamp_ms =
        (request.retention_time_ms != DEFAULT_RETENTION_TIME).then(|| now_ms.saturating_add(request.retention_time_ms));
    let mut response = Vec::with_capacity(request.topics.len());
    for (topic, partitions) in &request.topics {
        let mut results = Vec::with_capacity(partitions.len());
        for p in partitions {
            let metadata = p.metadata.clone().unwrap_or_default();
            if metadata.len() > config.offset_metadata_max_bytes {
                results.push((p.partition, Some(ResponseError::OffsetMetadataTooLarge)));
                continue;
            }
            let value = CommittedOffset {
                offset: p.offset,
                // Kafka's record with an expiry time (value v1) has no leader epoch; the
                // requests that set one (v2-v4) carry none anyway.
                leader_epoch: if expire_timestamp_ms.is_some() { -1 } else { p.leader_epoch },
                metadata,
                commit_timestamp_ms: if p.commit_timestamp_ms == -1 { now_ms } else { p.commit_timestamp_ms },
                expire_timestamp_ms,
            };
            tx.emit(Record::OffsetCommit { topic: topic.clone(), partition: p.partition, value: Some(value) });
            results.push((p.partition, None));
        }
        response.push((topic.clone(), results));
    }
    tx.now(response)
}

/// One partition's committed offset as OffsetFetch reports it: -1, -1, "" when none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

impl FetchedOffset {
    fn of(partition: i32, committed: Option<&CommittedOffset>) -> Self {
        match committed {
            Some(c) => FetchedOffset {
                partition,
                offset: c.offset,
                leader_epoch: c.leader_epoch,
                metadata: c.metadata.clone(),
            },
            None => FetchedOffset { partition, offset: -1, leader_epoch: -1, metadata: String::new() },
        }
    }
}

/// OffsetFetch: the requested partitions, or with `topics` of `None` every committed offset.
pub fn fetch(group: Option<&Group>, topics: Option<&[(String, Vec<i32>)]>) -> Vec<(String, Vec<FetchedOffset>)> {
    match topics {
        Some(topics) => topics
            .iter()
            .map(|(topic, partitions)| {
                let offsets = partitions
                    .iter()
                    .map(|p| FetchedOffset::of(*p, group.and_then(|g| g.offsets.get(&(topic.clone(), *p)))))
                    .collect();
                (topic.clone(), offsets)
            })
            .collect(),
        None => {
            let mut all: Vec<(String, Vec<FetchedOffset>)> = Vec::new();
            for ((topic, partition), committed) in group.map(|g| &g.offsets).into_iter().flatten() {
                if all.last().is_none_or(|(t, _)| t != topic) {
                    all.push((topic.clone(), Vec::new()));
                }
                all.last_mut().expect("pushed above").1.push(FetchedOffset::of(*partition, Some(committed)));
            }
            all
        }
    }
}

/// Per topic, per partition errors of OffsetDelete, or the group-level error.
pub type DeleteOffsetsResponse = Result<Vec<(String, Vec<(i32, Option<ResponseError>)>)>, ResponseError>;

/// OffsetDelete: a group's offsets for topics it does not consume may go at any time.
pub fn delete_offsets(
    group: Option<&Group>,
    group_id: &str,
    topics: &[(String, Vec<i32>)],
) -> Outcome<DeleteOffsetsResponse> {
    let mut tx = Tx::new(group, group_id);
    let Some(group) = group else { return tx.now(Err(ResponseError::GroupIdNotFound)) };
    let active = !group.is(GroupState::Empty);
    if active && group.protocol_type.as_deref() != Some(super::CONSUMER_PROTOCOL_TYPE) {
        return tx.now(Err(ResponseError::NonEmptyGroup));
    }
    let subscribed = if active { group.subscribed_topics() } else { Some(Default::default()) };
    let mut response = Vec::with_capacity(topics.len());
    for (topic, partitions) in topics {
        // An active group whose subscriptions cannot be read is treated as subscribed.
        let in_use = subscribed.as_ref().is_none_or(|s| s.contains(topic));
        let results = partitions
            .iter()
            .map(|p| {
                if in_use {
                    return (*p, Some(ResponseError::GroupSubscribedToTopic));
                }
                if group.offsets.contains_key(&(topic.clone(), *p)) {
                    tx.emit(Record::OffsetCommit { topic: topic.clone(), partition: *p, value: None });
                }
                (*p, None)
            })
            .collect();
        response.push((topic.clone(), results));
    }
    tx.now(Ok(response))
}

/// DeleteGroups for one group: only an empty group may be deleted; its offsets go with it.
pub fn delete_group(group: Option<&Group>, group_id: &str) -> Outcome<Option<ResponseError>> {
    let mut tx = Tx::new(group, group_id);
    match group {
        None => tx.now(Some(ResponseError::GroupIdNotFound)),
        Some(g) if !g.is(GroupState::Empty) => tx.now(Some(ResponseError::NonEmptyGroup)),
        Some(g) => {
            for (topic, partition) in g.offsets.keys() {
                tx.emit(Record::OffsetCommit { topic: topic.clone(), partition: *partition, value: None });
            }
            tx.emit(Record::GroupMetadata(None));
            tx.now(None)
        }
    }
}

/// Offsets retention (`offsets.retention.minutes`): an empty group's offsets expire that long
/// after the group became empty; a simple group's (no protocol type) that long after their
/// commit; a consumer group's offsets of topics it no longer subscribes to, likewise. A
/// group left with no offsets and no members is deleted.
pub fn expire(group: &Group, config: &GroupConfig, now_ms: i64) -> Outcome<()> {
    let mut tx = Tx::new(Some(group), &group.group_id);
    let base: Box<dyn Fn(&CommittedOffset) -> i64> = match (&group.protocol_type, group.state) {
        (None, _) => Box::new(|o| o.commit_timestamp_ms),
        (Some(_), GroupState::Empty) => {
            let since = group.state_timestamp_ms;
            Box::new(move |o: &CommittedOffset| if since >= 0 { since } else { o.commit_timestamp_ms })
        }
        (Some(_), GroupState::Stable) if group.subscribed_topics().is_some() => Box::new(|o| o.commit_timestamp_ms),
        _ => return tx.now(()),
    };
    let subscribed =
        if group.is(GroupState::Stable) { group.subscribed_topics().unwrap_or_default() } else { Default::default() };
    let mut all_expired = true;
    for ((topic, partition), committed) in &group.offsets {
        let expired = match committed.expire_timestamp_ms {
            Some(expire) => now_ms >= expire,
            // Timestamps come from stored records (a peer's or an old log's): saturate.
            None => now_ms.saturating_sub(base(committed)) >= config.offsets_retention_ms,
        };
        if expired && !subscribed.contains(topic) {
            tx.emit(Record::OffsetCommit { topic: topic.clone(), partition: *partition, value: None });
        } else {
            all_expired = false;
        }
    }
    if all_expired && group.is(GroupState::Empty) && group.members.is_empty() && group.pending_members.is_empty() {
        tx.emit(Record::GroupMetadata(None));
    }
    tx.now(())
}
