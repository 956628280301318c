//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup: each request is turned into the group
//! state machine's version-free form ([`crate::groups`]) and its answer back into the
//! version the client speaks. JoinGroup and SyncGroup may wait for the rebalance.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ResponseError;

use super::Context;
use crate::groups::join::{JoinRequest, JoinResponse};
use crate::groups::member::Protocol;
use crate::groups::sync::{self, LeavingMember, SyncRequest};

fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}

/// Longest group id, instance id or protocol name accepted (int16 lengths on disk).
pub const GROUP_STRING_BYTES_MAX: usize = 16 * 1024;
/// Longest client id kept in a member (and its member id).
const CLIENT_ID_BYTES_MAX: usize = 1024;

fn truncated(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn string(s: &StrBytes) -> String {
    s.as_str().to_string()
}

fn join_request(ctx: &Context, request: &JoinGroupRequest) -> JoinRequest {
    JoinRequest {
        group_id: string(&request.group_id.0),
        member_id: string(&request.member_id),
        instance_id: request.group_instance_id.as_ref().map(string),
        // Informational, and part of the member id: kept short enough to store.
        client_id: truncated(ctx.header.client_id.as_deref().unwrap_or_default(), CLIENT_ID_BYTES_MAX),
        // Kafka reports the address as InetAddress.toString() does: "/1.2.3.4".
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout serves as both.
        rebalance_timeout_ms: if ctx.version == 0 { request.session_timeout_ms } else { request.rebalance_timeout_ms },
        protocol_type: string(&request.protocol_type),
        protocols: request
            .protocols
            .iter()
            // Copied out: a slice would pin the whole request frame for the life of the group.
            .map(|p| Protocol { name: string(&p.name), metadata: bytes::Bytes::copy_from_slice(&p.metadata) })
            .collect(),
        require_known_member_id: ctx.version >= 4,
        supports_skip_assignment: ctx.version >= 9,
    }
}

fn join_response(ctx: &Context, response: JoinResponse) -> JoinGroupResponse {
    let members = response
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_group_instance_id(m.instance_id.map(StrBytes::from_string))
                .with_metadata(m.metadata)
        })
        .collect();
    // The protocol name is nullable only from v7; Kafka sends "" before that.
    let protocol_name = match response.protocol_name {
        None if ctx.version < 7 => Some(String::new()),
        name => name,
    };
    JoinGroupResponse::default()
        .with_error_code(code(response.error))
        .with_generation_id(response.generation_id)
        .with_protocol_type(response.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(protocol_name.map(StrBytes::from_string))
        .with_leader(StrBytes::from_string(response.leader))
        .with_skip_assignment(ctx.version >= 9 && response.skip_assignment)
        .with_member_id(StrBytes::from_string(response.member_id))
        .with_members(members)
}

/// Strings stored in `__consumer_offsets` records carry int16 lengths; longer ones from a
/// client are refused here rather than reaching the record encoder.
fn too_long(request: &JoinRequest) -> bool {
    let long = |s: &str| s.len() > GROUP_STRING_BYTES_MAX;
    long(&request.group_id)
        || long(&request.protocol_type)
        || request.instance_id.as_deref().is_some_and(long)
        || request.protocols.iter().any(|p| long(&p.name))
}

pub async fn join(ctx: &Context<'_>, request: JoinGroupRequest) -> JoinGroupResponse {
    let request = join_request(ctx, &request);
    if too_long(&request) {
        return JoinGroupResponse::default().with_error_code(ResponseError::InvalidRequest.code());
    }
    let response = ctx.broker.groups.join(ctx.broker.as_ref(), &request, ctx.stop).await;
    join_response(ctx, response)
}

pub async fn sync(ctx: &Context<'_>, request: SyncGroupRequest) -> SyncGroupResponse {
    let request = SyncRequest {
        group_id: string(&request.group_id.0),
        generation_id: request.generation_id,
        member_id: string(&request.member_id),
        instance_id: request.group_instance_id.as_ref().map(string),
        protocol_type: request.protocol_type.as_ref().map(string),
        protocol_name: request.protocol_name.as_ref().map(string),
        // Copied out of the frame, like the join metadata.
        assignments: request
            .assignments
            .iter()
            .map(|a| (string(&a.member_id), bytes::Bytes::copy_from_slice(&a.assignment)))
            .collect(),
    };
    let response = ctx.broker.groups.sync(ctx.broker.as_ref(), &request, ctx.stop).await;
    SyncGroupResponse::default()
        .with_error_code(code(response.error))
        .with_protocol_type(response.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(response.protocol_name.map(StrBytes::from_string))
        .with_assignment(response.assignment)
}

pub async fn heartbeat(ctx: &Context<'_>, request: HeartbeatRequest) -> HeartbeatResponse {
    let request = sync::HeartbeatRequest {
        group_id: string(&request.group_id.0),
        generation_id: request.generation_id,
        member_id: string(&request.member_id),
        instance_id: request.group_instance_id.as_ref().map(string),
    };
    let error = ctx.broker.groups.heartbeat(ctx.broker.as_ref(), &request).await;
    HeartbeatResponse::default().with_error_code(code(error))
}

pub async fn leave(ctx: &Context<'_>, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let group_id = string(&request.group_id.0);
    // v0-2 name one member; v3+ a batch (KIP-345), possibly by instance id alone.
    let leaving: Vec<LeavingMember> = if ctx.version < 3 {
        vec![LeavingMember { member_id: string(&request.member_id), instance_id: None }]
    } else {
        request
            .members
            .iter()
            .map(|m| LeavingMember {
                member_id: string(&m.member_id),
                instance_id: m.group_instance_id.as_ref().map(string),
            })
            .collect()
    };
    let response = ctx.broker.groups.leave(ctx.broker.as_ref(), &group_id, &leaving).await;
    if ctx.version < 3 {
        let member_error = response.members.first().and_then(|(_, _, e)| *e);
        return LeaveGroupResponse::default().with_error_code(code(response.error.or(member_error)));
    }
    let members = response
        .members
        .into_iter()
        .map(|(member_id, instance_id, error)| {
            MemberResponse::default()
                .with_member_id(StrBytes::from_string(member_id))
                .with_group_instance_id(instance_id.map(StrBytes::from_string))
                .with_error_code(code(error))
        })
        .collect();
    LeaveGroupResponse::default().with_error_code(code(response.error)).with_members(members)
}
