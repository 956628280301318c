//! TxnOffsetCommit (KIP-98, KIP-447): a transactional producer commits a group's offsets
//! as part of its transaction. The offsets are appended to the group's `__consumer_offsets`
//! partition as a transactional batch of the producer, held aside (`ShardState::pend`) and
//! applied only when the producer's commit marker reaches that partition (dropped at an
//! abort marker); a load replays the same way, so a restart or a new coordinator sees
//! exactly the offsets whose transactions committed.
//!
//! The checks are OffsetCommit's (`offsets::commit`): a group that does not exist yet is
//! created by the commit, a member of a live group must name its generation.

use runnel_protocol::ResponseError;

use super::coordinator::GroupCoordinator;
use super::host::GroupHost;
use super::offsets::{self, CommitPartition, CommitRequest, CommitResponse};
use super::outcome::Reply;
use super::record::Record;
use crate::clock::now_ms;
use crate::locks::MutexExt;

/// One TxnOffsetCommit.
#[derive(Debug, Clone)]
pub struct TxnCommitRequest {
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// -1 (and an empty member id) before v3, or from a producer outside the group.
    pub generation_id: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub topics: Vec<(String, Vec<CommitPartition>)>,
}

impl GroupCoordinator {
    pub async fn txn_commit(&self, host: &dyn GroupHost, request: &TxnCommitRequest) -> CommitResponse {
        let fail = |error| {
            let all = request.topics.iter();
            all.map(|(topic, ps)| (topic.clone(), ps.iter().map(|p| (p.partition, Some(error))).collect())).collect()
        };
        match self.txn_commit_written(host, request).await {
            Ok(response) => response,
            Err(error) => fail(error),
        }
    }

    async fn txn_commit_written(
        &self,
        host: &dyn GroupHost,
        request: &TxnCommitRequest,
    ) -> Result<CommitResponse, ResponseError> {
        if request.group_id.is_empty() || request.group_id.len() > crate::handlers::GROUP_STRING_BYTES_MAX {
            return Err(ResponseError::InvalidGroupId);
        }
        self.ensure_ready(host)?;
        let shard = self.shards.for_key(&request.group_id).ok_or(ResponseError::NotCoordinator)?;
        let partition = host
            .offsets_partition(shard.partition)
            .filter(|p| p.is_leader() && p.leader_epoch() == shard.leader_epoch)
            .ok_or(ResponseError::NotCoordinator)?;
        let now = now_ms();
        let commit = CommitRequest {
            group_id: request.group_id.clone(),
            generation_id: request.generation_id,
            member_id: request.member_id.clone(),
            instance_id: request.instance_id.clone(),
            retention_time_ms: offsets::DEFAULT_RETENTION_TIME,
            topics: request.topics.clone(),
            // ILLEGAL_GENERATION (not GROUP_ID_NOT_FOUND) for a generation of no group,
            // as Kafka's transactional commit answers.
            version: 8,
        };
        let (response, last_offset) = {
            let mut state = shard.state.locked();
            let outcome = offsets::commit(state.groups.get(&request.group_id), &commit, self.config(), now);
            let Reply::Now(response) = outcome.reply else { unreachable!("a commit never parks") };
            // Only the offsets are kept: the session a plain commit refreshes is not the
            // producer's to keep alive.
            let offsets: Vec<Record> =
                outcome.records.into_iter().filter(|r| matches!(r, Record::OffsetCommit { .. })).collect();
            let encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> =
                offsets.iter().filter_map(|r| super::codec::encode(&request.group_id, r)).collect();
            let producer = (request.producer_id, request.producer_epoch);
            let appended = crate::coordinator_runtime::append_transactional_records(
                &partition,
                shard.leader_epoch,
                &encoded,
                producer,
                now,
            );
            let last_offset = appended.map_err(|error| {
                tracing::warn!(group = %request.group_id, %error, "appending transactional offsets failed");
                match error {
                    crate::partition::PartitionError::Storage(runnel_storage::StorageError::Producer(
                        runnel_storage::ProducerError::InvalidEpoch { .. },
                    )) => ResponseError::ProducerFenced,
                    _ => ResponseError::NotCoordinator,
                }
            })?;
            tracing::debug!(
                group = %request.group_id,
                producer_id = request.producer_id,
                epoch = request.producer_epoch,
                offsets = ?offsets,
                "transactional offsets held until the transaction ends"
            );
            for record in offsets {
                state.pend(request.producer_id, request.group_id.clone(), record);
            }
            (response, last_offset)
        };
        if let Some(last_offset) = last_offset {
            let flush = host.flush_before_ack();
            crate::coordinator_runtime::settle(&partition, shard.leader_epoch, last_offset, flush).await?;
        }
        Ok(response)
    }

    /// A marker of `producer_id` was appended to offsets partition `partition` here.
    pub fn transaction_ended(&self, partition: i32, producer_id: i64, commit: bool) {
        match self.shards.all().into_iter().find(|s| s.partition == partition) {
            Some(shard) => shard.state.locked().transaction_ended(producer_id, commit),
            None => {
                tracing::debug!(partition, producer_id, "a transaction ended on an offsets partition not loaded here")
            }
        }
    }

    /// Whether an open transaction holds an offset of the group for the partition.
    pub fn has_pending(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.shards.for_key(group_id).is_some_and(|shard| shard.state.locked().has_pending(group_id, topic, partition))
    }
}
