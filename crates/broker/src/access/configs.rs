//! The gates of the APIs that change settings: IncrementalAlterConfigs and AlterConfigs
//! need AlterConfigs on each topic they change, and on the cluster for broker resources
//! (Kafka's rules). A denied resource gets TOPIC_AUTHORIZATION_FAILED or
//! CLUSTER_AUTHORIZATION_FAILED in its place of the response.

use kafka_protocol::messages::*;
use runnel_metadata::acl::Operation;
use runnel_protocol::ResponseError;

use super::{completion_if, message, partition_by, Access, Gate};

/// The config APIs' resource type code for topics (every other type is checked on the
/// cluster).
pub(super) const RESOURCE_TOPIC: i8 = 2;

/// Whether `operation` is allowed on a config resource: on the topic, or on the cluster.
pub(super) fn allows(access: &Access, operation: Operation, resource_type: i8, name: &str) -> bool {
    if resource_type == RESOURCE_TOPIC {
        access.allows_topic(operation, name)
    } else {
        access.allows_cluster(operation)
    }
}

fn allowed(access: &Access, resource_type: i8, name: &str) -> bool {
    allows(access, Operation::AlterConfigs, resource_type, name)
}

/// What a denied config resource answers.
pub(super) fn denial(resource_type: i8) -> ResponseError {
    if resource_type == RESOURCE_TOPIC {
        ResponseError::TopicAuthorizationFailed
    } else {
        ResponseError::ClusterAuthorizationFailed
    }
}

pub fn incremental_alter_configs(
    access: &Access,
    mut request: IncrementalAlterConfigsRequest,
) -> Gate<IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    let (kept, denied) = partition_by(std::mem::take(&mut request.resources), |r| {
        allowed(access, r.resource_type, r.resource_name.as_str())
    });
    request.resources = kept;
    let complete = completion_if(
        denied,
        |response: &mut IncrementalAlterConfigsResponse,
         denied: Vec<incremental_alter_configs_request::AlterConfigsResource>| {
            for resource in denied {
                let error = denial(resource.resource_type);
                response.responses.push(
                    incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                        .with_resource_type(resource.resource_type)
                        .with_resource_name(resource.resource_name)
                        .with_error_code(error.code())
                        .with_error_message(message(error)),
                );
            }
        },
    );
    Gate::pass_completing(request, complete)
}

pub fn alter_configs(
    access: &Access,
    mut request: AlterConfigsRequest,
) -> Gate<AlterConfigsRequest, AlterConfigsResponse> {
    if access.is_unrestricted() {
        return Gate::pass(request);
    }
    let (kept, denied) = partition_by(std::mem::take(&mut request.resources), |r| {
        allowed(access, r.resource_type, r.resource_name.as_str())
    });
    request.resources = kept;
    let complete = completion_if(
        denied,
        |response: &mut AlterConfigsResponse, denied: Vec<alter_configs_request::AlterConfigsResource>| {
            for resource in denied {
                let error = denial(resource.resource_type);
                response.responses.push(
                    alter_configs_response::AlterConfigsResourceResponse::default()
                        .with_resource_type(resource.resource_type)
                        .with_resource_name(resource.resource_name)
                        .with_error_code(error.code())
                        .with_error_message(message(error)),
                );
            }
        },
    );
    Gate::pass_completing(request, complete)
}
