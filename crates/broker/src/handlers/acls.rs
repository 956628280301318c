//! CreateAcls, DescribeAcls and DeleteAcls. The bindings live in the metadata log, so every
//! node decides with the same ones once a change commits; the authorizer learns of them
//! through the metadata publisher. Without `authorizer.class.name` all three answer
//! SECURITY_DISABLED, as Kafka does.
//!
//! CreateAcls stores the valid bindings of a request together (creating a binding that
//! exists already succeeds and stores nothing); an invalid one gets INVALID_REQUEST with the
//! reason. DeleteAcls removes, in one commit, every binding some filter matches, and
//! reports each under every filter that matched it.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use runnel_metadata::acl::{binding_from_codes, check_binding, AclBinding, AclError, AclFilter};
use runnel_metadata::MetadataRecord;
use runnel_protocol::ResponseError;
use uuid::Uuid;

use super::Context;

const DISABLED: ResponseError = ResponseError::SecurityDisabled;

fn disabled_message() -> Option<StrBytes> {
    Some(StrBytes::from_static_str("No Authorizer is configured (authorizer.class.name)."))
}

fn text(message: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(message))
}

/// Publishes a committed image, so the authorizer decides with the new ACLs before the
/// response leaves (in a cluster, the image follower publishes it on every other node).
fn publish(ctx: &Context, image: &std::sync::Arc<runnel_metadata::MetadataImage>) {
    if let Err(e) = tokio::task::block_in_place(|| ctx.broker.publish(image)) {
        tracing::error!(error = %e, "publishing metadata after an ACL change failed");
    }
}

pub fn create(ctx: &Context, request: CreateAclsRequest) -> CreateAclsResponse {
    if !ctx.broker.authorizer.enabled() {
        let results = request
            .creations
            .iter()
            .map(|_| {
                AclCreationResult::default().with_error_code(DISABLED.code()).with_error_message(disabled_message())
            })
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let checked: Vec<Result<AclBinding, AclError>> = request
        .creations
        .iter()
        .map(|c| {
            let binding = binding_from_codes(
                c.resource_type,
                c.resource_name.as_str(),
                c.resource_pattern_type,
                c.principal.as_str(),
                c.host.as_str(),
                c.operation,
                c.permission_type,
            )?;
            check_binding(&binding)?;
            Ok(binding)
        })
        .collect();
    let wanted: BTreeSet<&AclBinding> = checked.iter().filter_map(|r| r.as_ref().ok()).collect();
    let committed = if wanted.is_empty() {
        None
    } else {
        Some(ctx.broker.metadata.commit(|image| {
            let present: BTreeSet<&AclBinding> = image.acls.values().collect();
            let records = wanted
                .iter()
                .filter(|binding| !present.contains(**binding))
                .map(|binding| MetadataRecord::Acl { id: Uuid::new_v4(), binding: (*binding).clone() })
                .collect();
            Ok::<_, std::convert::Infallible>(records)
        }))
    };
    let failure = match committed {
        Some(Ok(Ok(image))) => {
            publish(ctx, &image);
            None
        }
        Some(Ok(Err(never))) => match never {},
        Some(Err(e)) => Some((crate::metadata_store::metadata_error_code(&e), e.to_string())),
        None => None,
    };
    let results = checked
        .into_iter()
        .map(|result| match (result, &failure) {
            (Err(e), _) => AclCreationResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(text(e.to_string())),
            (Ok(_), Some((code, why))) => {
                AclCreationResult::default().with_error_code(code.code()).with_error_message(text(why.clone()))
            }
            (Ok(_), None) => AclCreationResult::default().with_error_message(None),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub fn describe(ctx: &Context, request: DescribeAclsRequest) -> DescribeAclsResponse {
    if !ctx.broker.authorizer.enabled() {
        return DescribeAclsResponse::default().with_error_code(DISABLED.code()).with_error_message(disabled_message());
    }
    let filter = AclFilter::from_codes(
        request.resource_type_filter,
        request.resource_name_filter.as_deref(),
        request.pattern_type_filter,
        request.principal_filter.as_deref(),
        request.host_filter.as_deref(),
        request.operation,
        request.permission_type,
    );
    let filter = match filter {
        Ok(filter) => filter,
        Err(e) => {
            return DescribeAclsResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(text(e.to_string()))
        }
    };
    let image = ctx.broker.metadata.image();
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for binding in image.acls.values().filter(|b| filter.matches(b)) {
        let key = (binding.resource_type.code(), binding.resource_name.clone(), binding.pattern_type.code());
        by_resource.entry(key).or_default().push(
            AclDescription::default()
                .with_principal(StrBytes::from_string(binding.principal.clone()))
                .with_host(StrBytes::from_string(binding.host.clone()))
                .with_operation(binding.operation.code())
                .with_permission_type(binding.permission.code()),
        );
    }
    let resources = by_resource
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name))
                .with_pattern_type(pattern_type)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_error_message(None).with_resources(resources)
}

fn matching(binding: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_error_message(None)
        .with_resource_type(binding.resource_type.code())
        .with_resource_name(StrBytes::from_string(binding.resource_name.clone()))
        .with_pattern_type(binding.pattern_type.code())
        .with_principal(StrBytes::from_string(binding.principal.clone()))
        .with_host(StrBytes::from_string(binding.host.clone()))
        .with_operation(binding.operation.code())
        .with_permission_type(binding.permission.code())
}

pub fn delete(ctx: &Context, request: DeleteAclsRequest) -> DeleteAclsResponse {
    if !ctx.broker.authorizer.enabled() {
        let results = request
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(DISABLED.code())
                    .with_error_message(disabled_message())
            })
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let filters: Vec<Result<AclFilter, AclError>> = request
        .filters
        .iter()
        .map(|f| {
            AclFilter::from_codes(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                f.pattern_type_filter,
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    // What each filter matched, decided against the image the removal commits on.
    let mut matched: Vec<Vec<AclBinding>> = Vec::new();
    let committed = ctx.broker.metadata.commit(|image| {
        matched = filters
            .iter()
            .map(|filter| match filter {
                Ok(filter) => image.acls.values().filter(|b| filter.matches(b)).cloned().collect(),
                Err(_) => Vec::new(),
            })
            .collect();
        let removed: Vec<MetadataRecord> = image
            .acls
            .iter()
            .filter(|(_, binding)| filters.iter().flatten().any(|f| f.matches(binding)))
            .map(|(id, _)| MetadataRecord::RemoveAcl { id: *id })
            .collect();
        Ok::<_, std::convert::Infallible>(removed)
    });
    let failure = match committed {
        Ok(Ok(image)) => {
            publish(ctx, &image);
            None
        }
        Ok(Err(never)) => match never {},
        Err(e) => Some((crate::metadata_store::metadata_error_code(&e), e.to_string())),
    };
    let results = filters
        .iter()
        .zip(matched.into_iter().chain(std::iter::repeat_with(Vec::new)))
        .map(|(filter, bindings)| match (filter, &failure) {
            (Err(e), _) => DeleteAclsFilterResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(text(e.to_string())),
            (Ok(_), Some((code, why))) => {
                DeleteAclsFilterResult::default().with_error_code(code.code()).with_error_message(text(why.clone()))
            }
            (Ok(_), None) => DeleteAclsFilterResult::default()
                .with_error_message(None)
                .with_matching_acls(bindings.iter().map(matching).collect()),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
