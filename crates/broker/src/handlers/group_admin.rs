//! ListGroups (v0-5, state and type filters), DescribeGroups (v0-5) and DeleteGroups (v0-2).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, GroupId,
    ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ResponseError;

use super::Context;
use crate::groups::{Group, GroupState};

/// Every group here is a classic group (the KIP-848 "consumer" type is not implemented).
const GROUP_TYPE: &str = "classic";

pub fn list(ctx: &Context, request: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = request.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = request.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let type_matches = types.is_empty() || types.iter().any(|t| t == GROUP_TYPE);
    let groups = ctx
        .broker
        .groups
        .list()
        .into_iter()
        .filter(|(_, state, _)| type_matches && (states.is_empty() || states.contains(&state.to_lowercase())))
        .map(|(group_id, state, protocol_type)| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(group_id)))
                .with_protocol_type(StrBytes::from_string(protocol_type))
                .with_group_state(StrBytes::from_static_str(state))
                .with_group_type(StrBytes::from_static_str(GROUP_TYPE))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

fn describe_one(group_id: &GroupId, group: Option<Group>) -> DescribedGroup {
    let described = DescribedGroup::default().with_group_id(group_id.clone());
    if group_id.0.is_empty() {
        return described.with_error_code(ResponseError::InvalidGroupId.code());
    }
    let Some(group) = group else {
        return described.with_group_state(StrBytes::from_static_str(GroupState::Dead.name()));
    };
    // Member metadata and assignments are meaningful only in a settled generation.
    let stable_protocol = group.protocol_name.as_deref().filter(|_| group.is(GroupState::Stable));
    let members = group
        .members
        .values()
        .map(|m| {
            let member = DescribedGroupMember::default()
                .with_member_id(StrBytes::from_string(m.member_id.clone()))
                .with_group_instance_id(m.instance_id.clone().map(StrBytes::from_string))
                .with_client_id(StrBytes::from_string(m.client_id.clone()))
                .with_client_host(StrBytes::from_string(m.client_host.clone()));
            match stable_protocol {
                Some(protocol) => {
                    member.with_member_metadata(m.metadata(protocol)).with_member_assignment(m.assignment.clone())
                }
                None => member,
            }
        })
        .collect();
    described
        .with_group_state(StrBytes::from_static_str(group.state.name()))
        .with_protocol_type(StrBytes::from_string(group.protocol_type.clone().unwrap_or_default()))
        .with_protocol_data(StrBytes::from_string(stable_protocol.unwrap_or_default().to_string()))
        .with_members(members)
}

pub async fn describe(ctx: &Context<'_>, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(request.groups.len());
    for id in &request.groups {
        groups.push(match ctx.broker.groups.describe_committed(ctx.broker.as_ref(), id.0.as_str()).await {
            Ok(group) => describe_one(id, group),
            Err(error) => DescribedGroup::default().with_group_id(id.clone()).with_error_code(error.code()),
        });
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn delete(ctx: &Context<'_>, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in &request.groups_names {
        let error = if group_id.0.is_empty() {
            Some(ResponseError::InvalidGroupId)
        } else {
            ctx.broker.groups.delete_group(ctx.broker.as_ref(), group_id.0.as_str()).await
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id.clone())
                .with_error_code(error.map_or(0, |e| e.code())),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
