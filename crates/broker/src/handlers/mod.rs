//! The dispatch table: API key -> handler, in one place. Each handler module is one Kafka
//! API (or family): a function from a typed request and the broker state it reads to a typed
//! response. Fetch alone encodes its own response, for sendfile.

mod api_versions;
mod configs;
mod create_partitions;
pub(crate) mod create_topics;
mod delete_topics;
mod describe_cluster;
mod describe_log_dirs;
mod describe_quorum;
mod elect_leaders;
pub mod fetch;
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
mod reassignments;
mod sasl;
mod scram_credentials;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use runnel_protocol::api::is_supported;
use runnel_protocol::frame::{decode_header, peek_prefix, FrameError};
use tokio::sync::watch;

use crate::broker::Broker;
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
}

fn decode_body<T: Decodable>(api: ApiKey, version: i16, mut body: Bytes) -> Result<T, DispatchError> {
    T::decode(&mut body, version).map_err(|e| DispatchError::Malformed { api, version, why: e.to_string() })
}

fn respond<T: Encodable>(api: ApiKey, ctx: &Context, response: &T) -> Result<Option<Frame>, DispatchError> {
    let header_version = api.response_header_version(ctx.version);
    let frame = encode(ctx.header.correlation_id, header_version, response, ctx.version)
        .map_err(|e| EncodeError(format!("{api:?} v{}: {}", ctx.version, e.0)))?;
    Ok(Some(frame))
}

/// Handles one request frame. `Ok(None)`: no response is due (Produce with acks=0).
pub async fn handle(
    broker: &Arc<Broker>,
    frame: Bytes,
    stop: &watch::Receiver<bool>,
    session: &Session,
) -> Result<Option<Frame>, DispatchError> {
    let peer = session.peer;
    // After a SaslHandshake v0 the client sends raw SASL tokens, not requests.
    if session.expects_raw_token() {
        return sasl::raw_token(broker, session, frame).await;
    }
    let prefix = peek_prefix(&frame)?;
    if prefix.api_key == ApiKey::ApiVersions as i16 && !is_supported(ApiKey::ApiVersions, prefix.api_version) {
        // Kafka answers an ApiVersions it cannot parse with v0 and UNSUPPORTED_VERSION, so
        // that the client learns which versions to use.
        return Ok(Some(api_versions::unsupported_version(prefix.correlation_id)?));
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
    let ctx = Context { broker, header: &header, version, stop, peer, session };
    match api {
        ApiKey::SaslHandshake => respond(api, &ctx, &sasl::handshake(&ctx, decode_body(api, version, body)?)),
        ApiKey::SaslAuthenticate => {
            respond(api, &ctx, &sasl::authenticate(&ctx, decode_body(api, version, body)?).await)
        }
        ApiKey::DescribeUserScramCredentials => {
            respond(api, &ctx, &scram_credentials::describe(&ctx, decode_body(api, version, body)?))
        }
        ApiKey::AlterUserScramCredentials => {
            respond(api, &ctx, &scram_credentials::alter(&ctx, decode_body(api, version, body)?))
        }
        ApiKey::ApiVersions => respond(api, &ctx, &api_versions::handle(&ctx, decode_body(api, version, body)?)),
        ApiKey::Metadata => respond(api, &ctx, &metadata::handle(&ctx, decode_body(api, version, body)?)),
        ApiKey::CreateTopics => respond(api, &ctx, &create_topics::handle(&ctx, decode_body(api, version, body)?)),
        ApiKey::DeleteTopics => respond(api, &ctx, &delete_topics::handle(&ctx, decode_body(api, version, body)?)),
        ApiKey::DescribeConfigs if version == 0 => {
            let request = runnel_protocol::legacy::describe_configs_v0(body).map_err(|e| DispatchError::Malformed {
                api,
                version,
                why: e.to_string(),
            })?;
            Ok(Some(configs::v0::respond(&ctx, request)))
        }
        ApiKey::DescribeConfigs => respond(api, &ctx, &configs::describe(&ctx, decode_body(api, version, body)?)),
        ApiKey::DescribeCluster => {
            respond(api, &ctx, &describe_cluster::handle(&ctx, decode_body(api, version, body)?))
        }
        ApiKey::ListOffsets => respond(api, &ctx, &list_offsets::handle(&ctx, decode_body(api, version, body)?)),
        ApiKey::Produce => match produce::handle(&ctx, decode_body(api, version, body)?).await {
            produce::Reply::Respond(response) => respond(api, &ctx, &response),
            produce::Reply::Nothing => Ok(None),
            produce::Reply::Close(why) => Err(DispatchError::Refused(why)),
        },
        ApiKey::Fetch => Ok(Some(fetch::handle(&ctx, decode_body(api, version, body)?).await?)),
        ApiKey::CreatePartitions => {
            respond(api, &ctx, &create_partitions::handle(&ctx, decode_body(api, version, body)?))
        }
        ApiKey::ElectLeaders => respond(api, &ctx, &elect_leaders::handle(&ctx, decode_body(api, version, body)?)),
        ApiKey::AlterPartitionReassignments => {
            respond(api, &ctx, &reassignments::alter(&ctx, decode_body(api, version, body)?))
        }
        ApiKey::ListPartitionReassignments => {
            respond(api, &ctx, &reassignments::list(&ctx, decode_body(api, version, body)?))
        }
        ApiKey::DescribeLogDirs => {
            respond(api, &ctx, &describe_log_dirs::handle(&ctx, decode_body(api, version, body)?))
        }
        ApiKey::DescribeQuorum => {
            respond(api, &ctx, &describe_quorum::handle(&ctx, decode_body(api, version, body)?).await)
        }
        ApiKey::OffsetForLeaderEpoch if version < 2 => {
            let request = runnel_protocol::legacy::offset_for_leader_epoch_v0_v1(body)
                .map_err(|e| DispatchError::Malformed { api, version, why: e.to_string() })?;
            Ok(Some(offsets_for_leader_epoch::legacy::respond(&ctx, request)))
        }
        ApiKey::OffsetForLeaderEpoch => {
            respond(api, &ctx, &offsets_for_leader_epoch::handle(&ctx, decode_body(api, version, body)?))
        }
        ApiKey::InitProducerId => respond(api, &ctx, &init_producer_id::handle(&ctx, decode_body(api, version, body)?)),
        ApiKey::FindCoordinator => {
            respond(api, &ctx, &find_coordinator::handle(&ctx, decode_body(api, version, body)?))
        }
        ApiKey::JoinGroup => respond(api, &ctx, &group_membership::join(&ctx, decode_body(api, version, body)?).await),
        ApiKey::SyncGroup => respond(api, &ctx, &group_membership::sync(&ctx, decode_body(api, version, body)?).await),
        ApiKey::Heartbeat => {
            respond(api, &ctx, &group_membership::heartbeat(&ctx, decode_body(api, version, body)?).await)
        }
        ApiKey::LeaveGroup => {
            respond(api, &ctx, &group_membership::leave(&ctx, decode_body(api, version, body)?).await)
        }
        ApiKey::OffsetCommit => {
            respond(api, &ctx, &group_offsets::commit(&ctx, decode_body(api, version, body)?).await)
        }
        ApiKey::OffsetFetch => respond(api, &ctx, &group_offsets::fetch(&ctx, decode_body(api, version, body)?).await),
        ApiKey::OffsetDelete => {
            respond(api, &ctx, &group_offsets::delete(&ctx, decode_body(api, version, body)?).await)
        }
        ApiKey::ListGroups => respond(api, &ctx, &group_admin::list(&ctx, decode_body(api, version, body)?)),
        ApiKey::DescribeGroups => {
            respond(api, &ctx, &group_admin::describe(&ctx, decode_body(api, version, body)?).await)
        }
        ApiKey::DeleteGroups => respond(api, &ctx, &group_admin::delete(&ctx, decode_body(api, version, body)?).await),
        other => Err(DispatchError::UnsupportedVersion { api: other, version }),
    }
}
