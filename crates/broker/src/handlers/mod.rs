//! The dispatch table: API key -> handler, in one place. Each handler module is one Kafka
//! API (or family): a function from a typed request and the broker state it reads to a typed
//! response. Fetch alone encodes its own response, for sendfile.

mod acls;
mod alter_configs;
mod api_versions;
mod client_quotas;
mod configs;
mod create_partitions;
pub(crate) mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_log_dirs;
mod describe_producers;
mod describe_quorum;
mod describe_topic_partitions;
mod elect_leaders;
pub mod fetch;
pub(crate) mod fetch_remote;
mod find_coordinator;
mod group_admin;
mod group_membership;
pub use group_membership::GROUP_STRING_BYTES_MAX;
mod group_offsets;
#[cfg(test)]
mod group_tests;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod offsets_for_leader_epoch;
mod produce;
mod raft_voters;
mod reassignments;
mod sasl;
mod scram_credentials;
pub(crate) mod transactions;
mod write_txn_markers;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use runnel_protocol::api::is_supported;
use runnel_protocol::frame::{decode_header, peek_prefix, FrameError};
use tokio::sync::watch;

use crate::access::{self, Access};
use crate::broker::Broker;
use crate::quotas::response::Throttled;
use crate::quotas::{mutations, Busy, BusyClock, Charge, QuotaKind};
use crate::response::{encode, EncodeError, Frame};
use crate::session::Session;

/// Why a connection is closed rather than answered.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("{api:?} v{version} is not supported")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("{api:?} v{version}: malformed body: {why}")]
    Malformed { api: ApiKey, version: i16, why: String },
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("{0}")]
    Refused(String),
}

/// What a handler sees besides its request.
pub struct Context<'a> {
    pub broker: &'a Arc<Broker>,
    pub header: &'a RequestHeader,
    pub version: i16,
    pub stop: &'a watch::Receiver<bool>,
    /// The client's address, reported as `client_host` in group descriptions.
    pub peer: SocketAddr,
    /// The connection's listener and security.
    pub session: &'a Session,
    /// What the session's principal may do (`access/` decides with it).
    pub access: Access,
    /// What the request costs against the client's quotas (`None`: no quota is stored).
    pub charge: Option<Charge>,
    /// Microseconds the request waited on others (Kafka's remote time: acks=all waiting for
    /// followers, a fetch's long poll and remote storage reads).
    pub remote_micros: std::sync::atomic::AtomicU64,
}

impl Context<'_> {
    /// Counts `waited` as remote time (see [`Context::remote_micros`]).
    pub fn waited(&self, waited: std::time::Duration) {
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.remote_micros.fetch_add(micros, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sets the throttle the request earned on its response (see `quotas/`).
    pub fn throttle<T: Throttled>(&self, response: &mut T) {
        if let Some(charge) = &self.charge {
            response.set_throttle_time_ms(charge.finish());
        }
    }
}

/// What the connection does after a request: send the response, if any, then read nothing
/// from the client for `mute` (a quota's throttle, KIP-219).
#[derive(Debug)]
pub struct Answer {
    pub frame: Option<Frame>,
    pub mute: std::time::Duration,
    /// How the request spent its time, for a request of an API and version Runnel serves.
    pub timing: Option<Timing>,
}

/// A served request's API and where its handling time went; the connection adds the queue
/// and send times and records them (`record_timing`).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub api_key: i16,
    pub version: i16,
    pub correlation_id: i32,
    /// From decoding to the response ready, waits included.
    pub handled: std::time::Duration,
    /// The part of `handled` spent waiting on others.
    pub remote: std::time::Duration,
}

/// Records a request's latency split (Kafka's RequestMetrics: queue, local, remote, send,
/// total) and logs it when it is at least `request.log.slow.ms`.
pub fn record_timing(
    broker: &Broker,
    session: &Session,
    timing: Timing,
    queued: std::time::Duration,
    sent: std::time::Duration,
) {
    let split = crate::request_metrics::Split {
        queue: queued,
        local: timing.handled.saturating_sub(timing.remote),
        remote: timing.remote,
        send: sent,
    };
    broker.request_metrics.request(timing.api_key, timing.version, split);
    let total = split.total();
    let slow = broker.config.request_log_slow_ms;
    if slow > 0 && total.as_millis() >= u128::from(slow) {
        let api = ApiKey::try_from(timing.api_key).map(|k| format!("{k:?}")).unwrap_or_default();
        tracing::warn!(
            request_id = broker.request_metrics.next_request_id(),
            api,
            version = timing.version,
            correlation_id = timing.correlation_id,
            client = %session.peer,
            elapsed_ms = total.as_millis() as u64,
            queue_ms = split.queue.as_millis() as u64,
            local_ms = split.local.as_millis() as u64,
            remote_ms = split.remote.as_millis() as u64,
            send_ms = split.send.as_millis() as u64,
            "slow request"
        );
    }
}

fn decode_body<T: Decodable>(api: ApiKey, version: i16, mut body: Bytes) -> Result<T, DispatchError> {
    T::decode(&mut body, version).map_err(|e| DispatchError::Malformed { api, version, why: e.to_string() })
}

fn respond<T: Encodable + Throttled + crate::response_errors::ErrorCodes>(
    api: ApiKey,
    ctx: &Context,
    mut response: T,
) -> Result<Option<Frame>, DispatchError> {
    ctx.throttle(&mut response);
    ctx.broker.request_metrics.errors(api as i16, &response);
    let header_version = api.response_header_version(ctx.version);
    let frame = encode(ctx.header.correlation_id, header_version, &response, ctx.version)
        .map_err(|e| EncodeError(format!("{api:?} v{}: {}", ctx.version, e.0)))?;
    Ok(Some(frame))
}

/// Handles one request frame. `Answer::frame` is `None` when no response is due (Produce
/// with acks=0). While any client quota is stored, the request's thread time is measured
/// (`quotas::Busy`) and its costs charged; otherwise nothing is.
pub async fn handle(
    broker: &Arc<Broker>,
    frame: Bytes,
    stop: &watch::Receiver<bool>,
    session: &Session,
) -> Result<Answer, DispatchError> {
    // Every request is timed here; the connection adds queue and send time
    // (`record_timing`). `dispatch` names the API and version only for requests it served
    // (a supported API and version), so a client cannot add labels.
    let began = std::time::Instant::now();
    let answer = if !broker.quotas.is_active() {
        dispatch(broker, frame, stop, session, None).await
    } else {
        let clock = Arc::new(BusyClock::default());
        Busy::new(dispatch(broker, frame, stop, session, Some(clock.clone())), clock).await
    };
    answer.map(|mut answer| {
        if let Some(timing) = &mut answer.timing {
            timing.handled = began.elapsed();
        }
        answer
    })
}

async fn dispatch(
    broker: &Arc<Broker>,
    frame: Bytes,
    stop: &watch::Receiver<bool>,
    session: &Session,
    clock: Option<Arc<BusyClock>>,
) -> Result<Answer, DispatchError> {
    let peer = session.peer;
    // After a SaslHandshake v0 the client sends raw SASL tokens, not requests.
    if session.expects_raw_token() {
        let frame = sasl::raw_token(broker, session, frame).await?;
        return Ok(Answer { frame, mute: std::time::Duration::ZERO, timing: None });
    }
    let request_bytes = frame.len();
    let prefix = peek_prefix(&frame)?;
    if prefix.api_key == ApiKey::ApiVersions as i16 && !is_supported(ApiKey::ApiVersions, prefix.api_version) {
        // Kafka answers an ApiVersions it cannot parse with v0 and UNSUPPORTED_VERSION, so
        // that the client learns which versions to use.
        let frame = api_versions::unsupported_version(prefix.correlation_id)?;
        return Ok(Answer { frame: Some(frame), mute: std::time::Duration::ZERO, timing: None });
    }
    let (api, header, body) = decode_header(frame)?;
    let version = header.request_api_version;
    if !is_supported(api, version) {
        return Err(DispatchError::UnsupportedVersion { api, version });
    }
    // The one gate on a SASL listener: nothing but authentication before it succeeds.
    session
        .admits(api, crate::clock::now_ms())
        .map_err(|refused| DispatchError::Refused(format!("{api:?}: {refused}")))?;
    let access = broker.authorizer.access(session);
    let charge = clock.map(|clock| {
        let client_id = header.client_id.as_deref().unwrap_or("");
        Charge::new(broker.quotas.clone(), &session.principal(), client_id, clock)
    });
    if let Some(charge) = &charge {
        match api {
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => charge.exempt(),
            ApiKey::Produce => charge.bytes(QuotaKind::Produce, request_bytes),
            _ => {}
        }
    }
    let remote_micros = std::sync::atomic::AtomicU64::new(0);
    let ctx = Context { broker, header: &header, version, stop, peer, session, access, charge, remote_micros };
    let frame = serve(&ctx, api, version, body).await?;
    let mute = ctx.charge.as_ref().map_or(0, |charge| u64::try_from(charge.finish()).unwrap_or(0));
    let mute = std::time::Duration::from_millis(mute);
    // `handle` sets the handling time once the whole request is done.
    let remote = std::time::Duration::from_micros(ctx.remote_micros.load(std::sync::atomic::Ordering::Relaxed));
    let handled = std::time::Duration::ZERO;
    let timing = Timing { api_key: api as i16, version, correlation_id: header.correlation_id, handled, remote };
    Ok(Answer { frame, mute, timing: Some(timing) })
}

/// Decodes the request, passes it through its gate and its handler, and encodes the
/// response.
async fn serve(ctx: &Context<'_>, api: ApiKey, version: i16, body: Bytes) -> Result<Option<Frame>, DispatchError> {
    let access = &ctx.access;
    let image = || ctx.broker.metadata.image();
    // Every API passes its gate (`access/`) between decoding and its handler.
    match api {
        ApiKey::SaslHandshake => respond(api, ctx, sasl::handshake(ctx, decode_body(api, version, body)?)),
        ApiKey::SaslAuthenticate => respond(api, ctx, sasl::authenticate(ctx, decode_body(api, version, body)?).await),
        ApiKey::ApiVersions => respond(api, ctx, api_versions::handle(ctx, decode_body(api, version, body)?)),
        ApiKey::DescribeUserScramCredentials => {
            let gate = access::cluster::describe_user_scram_credentials(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| scram_credentials::describe(ctx, r)))
        }
        ApiKey::AlterUserScramCredentials => {
            let gate = access::cluster::alter_user_scram_credentials(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| scram_credentials::alter(ctx, r)))
        }
        ApiKey::DescribeClientQuotas => {
            let gate = access::cluster::describe_client_quotas(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| client_quotas::describe(ctx, r)))
        }
        ApiKey::AlterClientQuotas => {
            let gate = access::cluster::alter_client_quotas(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| client_quotas::alter(ctx, r)))
        }
        ApiKey::CreateAcls => {
            let gate = access::cluster::create_acls(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| acls::create(ctx, r)))
        }
        ApiKey::DescribeAcls => {
            let gate = access::cluster::describe_acls(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| acls::describe(ctx, r)))
        }
        ApiKey::DeleteAcls => {
            let gate = access::cluster::delete_acls(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| acls::delete(ctx, r)))
        }
        ApiKey::Metadata => {
            let request: kafka_protocol::messages::MetadataRequest = decode_body(api, version, body)?;
            let all_topics = metadata::asks_for_every_topic(&request, version);
            let auto_create = metadata::may_auto_create(ctx, &request);
            let gate = access::topics::metadata(access, request, &image(), all_topics, auto_create);
            respond(api, ctx, gate.serve(|r| metadata::handle(ctx, r)))
        }
        ApiKey::CreateTopics => {
            let gate = access::topics::create_topics(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| mutations::create_topics(ctx, r, |r| create_topics::handle(ctx, r))))
        }
        ApiKey::DeleteTopics => {
            let gate = access::topics::delete_topics(access, decode_body(api, version, body)?, &image());
            respond(api, ctx, gate.serve(|r| mutations::delete_topics(ctx, r, |r| delete_topics::handle(ctx, r))))
        }
        ApiKey::DescribeConfigs if version == 0 => {
            let request = runnel_protocol::legacy::describe_configs_v0(body).map_err(|e| DispatchError::Malformed {
                api,
                version,
                why: e.to_string(),
            })?;
            let mut response = access::topics::describe_configs(access, request).serve(|r| configs::describe(ctx, r));
            ctx.throttle(&mut response);
            Ok(Some(configs::v0::respond(ctx, response)))
        }
        ApiKey::DescribeConfigs => {
            let gate = access::topics::describe_configs(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| configs::describe(ctx, r)))
        }
        ApiKey::DescribeProducers => {
            let gate = access::topics::describe_producers(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| describe_producers::handle(ctx, r)))
        }
        ApiKey::DescribeTopicPartitions => {
            let gate = access::topics::describe_topic_partitions(access, decode_body(api, version, body)?, &image());
            respond(api, ctx, gate.serve(|r| describe_topic_partitions::handle(ctx, r)))
        }
        ApiKey::DeleteRecords => {
            let gate = access::topics::delete_records(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| delete_records::handle(ctx, r)).await)
        }
        ApiKey::IncrementalAlterConfigs => {
            let gate = access::configs::incremental_alter_configs(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| alter_configs::incremental(ctx, r)))
        }
        ApiKey::AlterConfigs => {
            let gate = access::configs::alter_configs(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| alter_configs::alter(ctx, r)))
        }
        ApiKey::DescribeCluster => {
            let gate = access::cluster::describe_cluster(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| describe_cluster::handle(ctx, r)))
        }
        ApiKey::ListOffsets => {
            let gate = access::topics::list_offsets(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| list_offsets::handle(ctx, r)).await)
        }
        ApiKey::Produce => {
            let request: kafka_protocol::messages::ProduceRequest = decode_body(api, version, body)?;
            let acks = request.acks;
            let gate = access::topics::produce(access, request);
            if acks == 0 && gate.denied_anything() {
                // An acks=0 producer gets no response: Kafka closes the connection instead.
                return Err(DispatchError::Refused("acks=0 produce to a topic it may not write".into()));
            }
            match gate {
                access::Gate::Refuse(response) => respond(api, ctx, response),
                access::Gate::Pass(request, complete) => match produce::handle(ctx, request).await {
                    produce::Reply::Respond(mut response) => {
                        if let Some(complete) = complete {
                            complete(&mut response);
                        }
                        respond(api, ctx, response)
                    }
                    produce::Reply::Nothing => Ok(None),
                    produce::Reply::Close(why) => Err(DispatchError::Refused(why)),
                },
            }
        }
        ApiKey::Fetch => {
            let request: kafka_protocol::messages::FetchRequest = decode_body(api, version, body)?;
            let denied = access::topics::fetch(access, &request, version, image);
            let follower = request.replica_id.0 >= 0 || request.replica_state.replica_id.0 >= 0;
            let mut frame = fetch::handle(ctx, request, &denied).await?;
            if let Some(charge) = &ctx.charge {
                if follower {
                    charge.exempt(); // replication is not a client's traffic
                } else {
                    charge.bytes(QuotaKind::Fetch, frame.len());
                    fetch::set_throttle_time(&mut frame, version, charge.finish());
                }
            }
            Ok(Some(frame))
        }
        ApiKey::CreatePartitions => {
            let gate = access::topics::create_partitions(access, decode_body(api, version, body)?);
            let handle = |r| mutations::create_partitions(ctx, r, |r| create_partitions::handle(ctx, r));
            respond(api, ctx, gate.serve(handle))
        }
        ApiKey::ElectLeaders => {
            let gate = access::cluster::elect_leaders(access, decode_body(api, version, body)?, version);
            respond(api, ctx, gate.serve(|r| elect_leaders::handle(ctx, r)))
        }
        ApiKey::AlterPartitionReassignments => {
            let gate = access::cluster::alter_partition_reassignments(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| reassignments::alter(ctx, r)))
        }
        ApiKey::ListPartitionReassignments => {
            let gate = access::cluster::list_partition_reassignments(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| reassignments::list(ctx, r)))
        }
        ApiKey::DescribeLogDirs => {
            let gate = access::cluster::describe_log_dirs(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| describe_log_dirs::handle(ctx, r)))
        }
        ApiKey::DescribeQuorum => {
            let gate = access::cluster::describe_quorum(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| describe_quorum::handle(ctx, r)).await)
        }
        ApiKey::AddRaftVoter => {
            let gate = access::cluster::add_raft_voter(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| raft_voters::add(ctx, r)).await)
        }
        ApiKey::RemoveRaftVoter => {
            let gate = access::cluster::remove_raft_voter(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| raft_voters::remove(ctx, r)).await)
        }
        ApiKey::OffsetForLeaderEpoch if version < 2 => {
            let request = runnel_protocol::legacy::offset_for_leader_epoch_v0_v1(body)
                .map_err(|e| DispatchError::Malformed { api, version, why: e.to_string() })?;
            let gate = access::topics::offset_for_leader_epoch(access, request);
            let mut response = gate.serve(|r| offsets_for_leader_epoch::handle(ctx, r));
            ctx.throttle(&mut response);
            Ok(Some(offsets_for_leader_epoch::legacy::respond(ctx, response)))
        }
        ApiKey::OffsetForLeaderEpoch => {
            let gate = access::topics::offset_for_leader_epoch(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| offsets_for_leader_epoch::handle(ctx, r)))
        }
        ApiKey::InitProducerId => {
            let gate = access::cluster::init_producer_id(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| init_producer_id::handle(ctx, r)).await)
        }
        ApiKey::AddPartitionsToTxn => {
            let gate = access::transactions::add_partitions_to_txn(access, decode_body(api, version, body)?, version);
            respond(api, ctx, gate.serve_async(|r| transactions::add_partitions(ctx, r)).await)
        }
        ApiKey::AddOffsetsToTxn => {
            let gate = access::transactions::add_offsets_to_txn(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| transactions::add_offsets(ctx, r)).await)
        }
        ApiKey::EndTxn => {
            let gate = access::transactions::end_txn(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| transactions::end(ctx, r)).await)
        }
        ApiKey::WriteTxnMarkers => {
            let gate = access::transactions::write_txn_markers(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| write_txn_markers::handle(ctx, r)).await)
        }
        ApiKey::TxnOffsetCommit => {
            let gate = access::transactions::txn_offset_commit(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| transactions::txn_offset_commit(ctx, r)).await)
        }
        ApiKey::DescribeTransactions => {
            let gate = access::transactions::describe_transactions(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| transactions::describe(ctx, r)))
        }
        ApiKey::ListTransactions => {
            let request = decode_body(api, version, body)?;
            let visible = |id: &str| access::transactions::visible_transactional_id(access, id);
            respond(api, ctx, transactions::list(ctx, request, &visible))
        }
        ApiKey::FindCoordinator => {
            let gate = access::groups::find_coordinator(access, decode_body(api, version, body)?, version);
            respond(api, ctx, gate.serve(|r| find_coordinator::handle(ctx, r)))
        }
        ApiKey::JoinGroup => {
            let gate = access::groups::join_group(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| group_membership::join(ctx, r)).await)
        }
        ApiKey::SyncGroup => {
            let gate = access::groups::sync_group(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| group_membership::sync(ctx, r)).await)
        }
        ApiKey::Heartbeat => {
            let gate = access::groups::heartbeat(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| group_membership::heartbeat(ctx, r)).await)
        }
        ApiKey::LeaveGroup => {
            let gate = access::groups::leave_group(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| group_membership::leave(ctx, r)).await)
        }
        ApiKey::OffsetCommit => {
            let gate = access::groups::offset_commit(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| group_offsets::commit(ctx, r)).await)
        }
        ApiKey::OffsetFetch => {
            let gate = access::groups::offset_fetch(access, decode_body(api, version, body)?, version);
            respond(api, ctx, gate.serve_async(|r| group_offsets::fetch(ctx, r)).await)
        }
        ApiKey::OffsetDelete => {
            let gate = access::groups::offset_delete(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| group_offsets::delete(ctx, r)).await)
        }
        ApiKey::ListGroups => {
            let gate = access::groups::list_groups(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve(|r| group_admin::list(ctx, r)))
        }
        ApiKey::DescribeGroups => {
            let gate = access::groups::describe_groups(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| group_admin::describe(ctx, r)).await)
        }
        ApiKey::DeleteGroups => {
            let gate = access::groups::delete_groups(access, decode_body(api, version, body)?);
            respond(api, ctx, gate.serve_async(|r| group_admin::delete(ctx, r)).await)
        }
        other => Err(DispatchError::UnsupportedVersion { api: other, version }),
    }
}
