//! DescribeClientQuotas and AlterClientQuotas (KIP-546): quotas by user, client id, or
//! both, with `<default>` entities, stored as `ClientQuota` records in the metadata log
//! and published to every node's quota manager (`quotas/`).
//!
//! Invariants: an entry is refused whole (INVALID_REQUEST) for an unknown entity type or
//! key, a type named twice, or a value that is not a positive number; the valid entries
//! of a request are committed together; validate_only commits nothing.

use kafka_protocol::messages::alter_client_quotas_response::{EntityData as AlteredEntity, EntryData as Altered};
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_metadata::quota::{self, QuotaEntity, QuotaError};
use runnel_metadata::MetadataRecord;
use runnel_protocol::ResponseError;

use super::Context;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The entities of `quotas` a filter selects (see `quota::component_matches`).
fn matching<'a>(
    quotas: &'a quota::Quotas,
    request: &DescribeClientQuotasRequest,
) -> Result<Vec<&'a QuotaEntity>, String> {
    let mut types = Vec::new();
    for component in &request.components {
        let kind = component.entity_type.as_str();
        if kind != quota::USER && kind != quota::CLIENT_ID {
            return Err(format!("unknown entity type '{kind}'"));
        }
        if types.contains(&kind) {
            return Err(format!("entity type '{kind}' named twice"));
        }
        if component.match_type == 0 && component._match.is_none() {
            return Err(format!("an exact match on '{kind}' needs a name"));
        }
        types.push(kind);
    }
    let mut selected = Vec::new();
    for entity in quotas.keys() {
        let mut all = true;
        for component in &request.components {
            let part = if component.entity_type.as_str() == quota::USER { &entity.user } else { &entity.client_id };
            match quota::component_matches(part.as_ref(), component.match_type, component._match.as_deref()) {
                Some(matches) => all &= matches,
                None => return Err(format!("unknown match type {}", component.match_type)),
            }
        }
        let extra = (entity.user.is_some() && !types.contains(&quota::USER))
            || (entity.client_id.is_some() && !types.contains(&quota::CLIENT_ID));
        if all && !(request.strict && extra) {
            selected.push(entity);
        }
    }
    Ok(selected)
}

pub fn describe(ctx: &Context, request: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    let image = ctx.broker.metadata.image();
    match matching(&image.quotas, &request) {
        Err(why) => DescribeClientQuotasResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(text(&why)))
            .with_entries(None),
        Ok(entities) => {
            let entries = entities
                .into_iter()
                .map(|entity| {
                    let parts = entity
                        .parts()
                        .into_iter()
                        .map(|(kind, name)| {
                            EntityData::default().with_entity_type(text(kind)).with_entity_name(name.map(text))
                        })
                        .collect();
                    let values = image.quotas[entity]
                        .iter()
                        .map(|(key, value)| ValueData::default().with_key(text(key)).with_value(*value))
                        .collect();
                    EntryData::default().with_entity(parts).with_values(values)
                })
                .collect();
            DescribeClientQuotasResponse::default().with_entries(Some(entries))
        }
    }
}

/// One entry's records, checked.
fn entry_records(
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
) -> Result<Vec<MetadataRecord>, QuotaError> {
    let entity =
        QuotaEntity::from_parts(entry.entity.iter().map(|e| (e.entity_type.as_str(), e.entity_name.as_deref())))?;
    let mut records = Vec::with_capacity(entry.ops.len());
    for op in &entry.ops {
        let key = op.key.to_string();
        let value = if op.remove {
            if !quota::QUOTA_KEYS.contains(&key.as_str()) {
                return Err(QuotaError::UnknownKey(key));
            }
            None
        } else {
            quota::check_value(&key, op.value)?;
            Some(op.value)
        };
        records.push(MetadataRecord::ClientQuota { entity: entity.clone(), key, value });
    }
    Ok(records)
}

pub fn alter(ctx: &Context, request: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    let mut outcomes = Vec::with_capacity(request.entries.len());
    let mut records = Vec::new();
    for entry in &request.entries {
        let outcome = entry_records(entry);
        if let Ok(entry_records) = &outcome {
            records.extend(entry_records.iter().cloned());
        }
        outcomes.push(outcome.map(|_| ()).map_err(|e| (ResponseError::InvalidRequest, e.to_string())));
    }
    if !request.validate_only && !records.is_empty() {
        let committed = ctx.broker.metadata.commit(|_| Ok::<_, ()>(records.clone()));
        let failure = match committed {
            Ok(Ok(image)) => tokio::task::block_in_place(|| ctx.broker.publish(&image))
                .err()
                .map(|e| (ResponseError::KafkaStorageError, e.to_string())),
            Ok(Err(())) => None,
            Err(e) => Some((crate::metadata_store::metadata_error_code(&e), e.to_string())),
        };
        if let Some(failure) = failure {
            for outcome in outcomes.iter_mut().filter(|o| o.is_ok()) {
                *outcome = Err(failure.clone());
            }
        } else {
            tracing::info!(entries = request.entries.len(), "client quotas changed");
        }
    }
    let entries = request
        .entries
        .iter()
        .zip(outcomes)
        .map(|(entry, outcome)| {
            let entity = entry
                .entity
                .iter()
                .map(|e| {
                    AlteredEntity::default()
                        .with_entity_type(e.entity_type.clone())
                        .with_entity_name(e.entity_name.clone())
                })
                .collect();
            let (code, message) = match outcome {
                Ok(()) => (0, None),
                Err((error, message)) => (error.code(), Some(text(&message))),
            };
            Altered::default().with_error_code(code).with_error_message(message).with_entity(entity)
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
