//! ApiVersions: advertises exactly the table in `runnel_protocol::api`.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use runnel_protocol::api::SUPPORTED;
use runnel_protocol::ResponseError;

use super::{Context, DispatchError};
use crate::response::{encode, Frame};

fn versions() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|range| {
            ApiVersion::default().with_api_key(range.key as i16).with_min_version(range.min).with_max_version(range.max)
        })
        .collect()
}

pub fn handle(_ctx: &Context, _request: ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(versions())
}

/// The v0 answer to an ApiVersions request of a version we do not implement.
pub fn unsupported_version(correlation_id: i32) -> Result<Frame, DispatchError> {
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(versions());
    Ok(encode(correlation_id, ApiKey::ApiVersions.response_header_version(0), &response, 0)?)
}
