//! Client quotas (KIP-55, KIP-546): what is stored per entity, and which stored quota
//! applies to a client.
//!
//! An entity names a user, a client id, or both, each either a name or the default
//! (`<default>`: any user / any client id without a quota of its own). Kafka picks, for a
//! given user and client id, the first entity in this order that has the quota key set
//! (`ClientQuotaManager`'s `DefaultQuotaCallback`):
//!
//! 1. user and client id
//! 2. user and default client id
//! 3. user
//! 4. default user and client id
//! 5. default user and default client id
//! 6. default user
//! 7. client id
//! 8. default client id
//!
//! Invariants: pure; a quota value is finite and positive (`check_value`), so a stored quota
//! always bounds something; resolution is a function of the image alone, so every node
//! throttles a client alike.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One part of an entity: a name, or the default for its type.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityName {
    Default,
    Named(String),
}

impl EntityName {
    /// Kafka's encoding in DescribeClientQuotas / AlterClientQuotas: a null name is the
    /// default.
    pub fn from_wire(name: Option<&str>) -> Self {
        match name {
            None => EntityName::Default,
            Some(name) => EntityName::Named(name.to_string()),
        }
    }

    pub fn to_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(name) => Some(name),
        }
    }
}

/// What a quota is set on: a user, a client id, or both.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
}

/// Kafka's entity type names.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";

/// The quota keys Kafka defines for users and client ids.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const QUOTA_KEYS: &[&str] = &[PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE, CONTROLLER_MUTATION_RATE];

/// Why an entity or a value is refused (Kafka answers INVALID_REQUEST).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("unknown quota entity type '{0}' (user and client-id are supported)")]
    UnknownEntityType(String),
    #[error("entity type '{0}' named twice")]
    DuplicateEntityType(String),
    #[error("an entity needs a user, a client id, or both")]
    EmptyEntity,
    #[error("unknown quota key '{0}'")]
    UnknownKey(String),
    #[error("quota {key} must be a positive number, not {value}")]
    BadValue { key: String, value: String },
}

impl QuotaEntity {
    /// The entity from (type, name) pairs as the wire carries them.
    pub fn from_parts<'a>(parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Result<Self, QuotaError> {
        let mut entity = QuotaEntity { user: None, client_id: None };
        for (kind, name) in parts {
            let slot = match kind {
                USER => &mut entity.user,
                CLIENT_ID => &mut entity.client_id,
                other => return Err(QuotaError::UnknownEntityType(other.to_string())),
            };
            if slot.is_some() {
                return Err(QuotaError::DuplicateEntityType(kind.to_string()));
            }
            *slot = Some(EntityName::from_wire(name));
        }
        if entity.user.is_none() && entity.client_id.is_none() {
            return Err(QuotaError::EmptyEntity);
        }
        Ok(entity)
    }

    /// (type, name) pairs for the wire, user first.
    pub fn parts(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut parts = Vec::with_capacity(2);
        if let Some(user) = &self.user {
            parts.push((USER, user.to_wire()));
        }
        if let Some(client) = &self.client_id {
            parts.push((CLIENT_ID, client.to_wire()));
        }
        parts
    }
}

/// Every stored quota, by entity.
pub type Quotas = BTreeMap<QuotaEntity, BTreeMap<String, f64>>;

/// Checks a quota key and value as AlterClientQuotas receives them.
pub fn check_value(key: &str, value: f64) -> Result<(), QuotaError> {
    if !QUOTA_KEYS.contains(&key) {
        return Err(QuotaError::UnknownKey(key.to_string()));
    }
    if !value.is_finite() || value <= 0.0 {
        return Err(QuotaError::BadValue { key: key.to_string(), value: value.to_string() });
    }
    Ok(())
}

/// The quota `key` that applies to a client of `user` with `client_id`, and the entity it
/// was set on, in Kafka's order (see the module doc). `None`: the client is unthrottled.
pub fn resolve<'a>(quotas: &'a Quotas, user: &str, client_id: &str, key: &str) -> Option<(&'a QuotaEntity, f64)> {
    let named = |s: &str| Some(EntityName::Named(s.to_string()));
    let default = || Some(EntityName::Default);
    let order = [
        (named(user), named(client_id)),
        (named(user), default()),
        (named(user), None),
        (default(), named(client_id)),
        (default(), default()),
        (default(), None),
        (None, named(client_id)),
        (None, default()),
    ];
    order.into_iter().find_map(|(user, client_id)| {
        let (entity, values) = quotas.get_key_value(&QuotaEntity { user, client_id })?;
        values.get(key).map(|value| (entity, *value))
    })
}

/// Whether `entity` is selected by a DescribeClientQuotas filter component: `match_type` 0
/// (exact name, or the default when `name` is null), 1 (the default), 2 (any entity with
/// this type named).
pub fn component_matches(part: Option<&EntityName>, match_type: i8, name: Option<&str>) -> Option<bool> {
    match match_type {
        0 => Some(part == Some(&EntityName::from_wire(name))),
        1 => Some(part == Some(&EntityName::Default)),
        2 => Some(part.is_some()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(user: Option<EntityName>, client_id: Option<EntityName>) -> QuotaEntity {
        QuotaEntity { user, client_id }
    }

    fn named(s: &str) -> Option<EntityName> {
        Some(EntityName::Named(s.into()))
    }

    #[test]
    fn the_most_specific_entity_with_the_key_wins_in_kafkas_order() {
        let mut quotas = Quotas::new();
        let mut set = |e: QuotaEntity, v: f64| {
            quotas.entry(e).or_default().insert(PRODUCER_BYTE_RATE.to_string(), v);
        };
        set(entity(None, Some(EntityName::Default)), 8.0);
        set(entity(None, named("app")), 7.0);
        set(entity(Some(EntityName::Default), None), 6.0);
        set(entity(named("alice"), None), 3.0);
        set(entity(named("alice"), named("app")), 1.0);
        let rate = |user: &str, client: &str| resolve(&quotas, user, client, PRODUCER_BYTE_RATE).map(|(_, v)| v);
        assert_eq!(rate("alice", "app"), Some(1.0));
        assert_eq!(rate("alice", "other"), Some(3.0));
        assert_eq!(rate("bob", "app"), Some(6.0), "a default user quota comes before a client id quota");
        assert_eq!(rate("", "app"), Some(6.0), "anonymous users are users too");
        assert_eq!(resolve(&quotas, "bob", "app", CONSUMER_BYTE_RATE), None, "another key is unset");
        let mut clients_only = Quotas::new();
        clients_only.entry(entity(None, named("app"))).or_default().insert(PRODUCER_BYTE_RATE.into(), 7.0);
        clients_only.entry(entity(None, Some(EntityName::Default))).or_default().insert(PRODUCER_BYTE_RATE.into(), 8.0);
        assert_eq!(resolve(&clients_only, "bob", "app", PRODUCER_BYTE_RATE).map(|(_, v)| v), Some(7.0));
        assert_eq!(resolve(&clients_only, "bob", "x", PRODUCER_BYTE_RATE).map(|(_, v)| v), Some(8.0));
    }

    #[test]
    fn entities_and_values_are_checked() {
        assert_eq!(
            QuotaEntity::from_parts([(USER, Some("a")), (CLIENT_ID, None)]).unwrap(),
            entity(named("a"), Some(EntityName::Default))
        );
        assert!(QuotaEntity::from_parts([]).is_err());
        assert!(QuotaEntity::from_parts([(USER, None), (USER, None)]).is_err());
        assert!(QuotaEntity::from_parts([("ip", Some("1.2.3.4"))]).is_err());
        assert!(check_value(PRODUCER_BYTE_RATE, 1024.0).is_ok());
        assert!(check_value(PRODUCER_BYTE_RATE, 0.0).is_err());
        assert!(check_value(PRODUCER_BYTE_RATE, f64::NAN).is_err());
        assert!(check_value("bogus", 1.0).is_err());
        let e = entity(named("a"), Some(EntityName::Default));
        assert_eq!(QuotaEntity::from_parts(e.parts()).unwrap(), e);
        assert_eq!(component_matches(e.client_id.as_ref(), 1, None), Some(true));
        assert_eq!(component_matches(e.user.as_ref(), 0, Some("a")), Some(true));
        assert_eq!(component_matches(e.user.as_ref(), 0, None), Some(false));
        assert_eq!(component_matches(None, 2, None), Some(false));
        assert_eq!(component_matches(None, 7, None), None);
    }
}
