//! SASL authentication on the SASL_PLAINTEXT and SASL_SSL listeners (Kafka's
//! SaslHandshake and SaslAuthenticate, KIP-152), with PLAIN, SCRAM-SHA-256/512 and
//! OAUTHBEARER (signed JWTs checked against a JWKS file, `oauthbearer.rs`).
//!
//! Settings, by Kafka's names: `sasl.enabled.mechanisms` (or
//! `listener.name.<name>.sasl.enabled.mechanisms`; default: SCRAM-SHA-256 and SCRAM-SHA-512,
//! plus PLAIN when the listener has a PLAIN JAAS configuration), PLAIN users from
//! `listener.name.<name>.plain.sasl.jaas.config`, SCRAM users from the metadata log
//! (AlterUserScramCredentials), `connections.max.reauth.ms` (KIP-368: a session lives that
//! long, then the client must authenticate again on the same connection or be
//! disconnected), `connection.failed.authentication.delay.ms` (a failure is answered after
//! this delay, then the connection closes), and Runnel's bound on failed attempts,
//! `sasl.failed.authentications.per.minute` per client address.
//!
//! Invariants: on a SASL listener no request other than ApiVersions, SaslHandshake and
//! SaslAuthenticate is served before authentication succeeds or after its session expired
//! (enforced in one place, `handlers::handle`); a failed authentication always closes the
//! connection; re-authentication keeps the principal.

pub mod oauthbearer;
pub mod plain;
pub mod scram;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use runnel_metadata::scram::{ScramCredential, ScramMechanism};
use runnel_metadata::MetadataImage;

use crate::config::ConfigError;
use crate::listeners::{listener_setting, ListenerName};
use crate::locks::MutexExt;

/// Whether two secrets are equal, in time that depends only on their lengths (callers
/// compare fixed-length digests, so not even that leaks).
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |differ, (x, y)| differ | (x ^ y)) == 0
}

/// A SASL mechanism Runnel serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
    OAuthBearer,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("PLAIN") {
            return Some(Mechanism::Plain);
        }
        if name.eq_ignore_ascii_case("OAUTHBEARER") {
            return Some(Mechanism::OAuthBearer);
        }
        ScramMechanism::from_name(name).map(Mechanism::Scram)
    }
}

/// Why an authentication failed. Both end the connection with SASL_AUTHENTICATION_FAILED;
/// the distinction is for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslFailure {
    #[error("invalid credentials")]
    BadCredentials,
    #[error("malformed SASL message: {0}")]
    Malformed(&'static str),
}

/// One SASL listener's settings.
#[derive(Clone)]
pub struct SaslSettings {
    pub enabled: Vec<Mechanism>,
    plain_users: BTreeMap<String, String>,
    /// The JWT validator, when OAUTHBEARER is enabled.
    oauth: Option<Arc<oauthbearer::Validator>>,
}

impl SaslSettings {
    pub fn from_settings(listener: &ListenerName, settings: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let invalid =
            |key: &str, value: &str, why: String| ConfigError::Invalid { key: key.into(), value: value.into(), why };
        let jaas_key = "plain.sasl.jaas.config";
        let plain_users = match listener_setting(settings, listener, jaas_key) {
            Some(jaas) => plain::users_from_jaas(jaas).map_err(|why| {
                invalid(
                    &format!("listener.name.{}.{jaas_key}", listener.as_str().to_ascii_lowercase()),
                    "(hidden)",
                    why,
                )
            })?,
            None => BTreeMap::new(),
        };
        let enabled = match listener_setting(settings, listener, "sasl.enabled.mechanisms") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(|m| {
                    Mechanism::parse(m).ok_or_else(|| {
                        invalid(
                            "sasl.enabled.mechanisms",
                            m,
                            "supported: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER".into(),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => {
                let mut default =
                    vec![Mechanism::Scram(ScramMechanism::ScramSha256), Mechanism::Scram(ScramMechanism::ScramSha512)];
                if !plain_users.is_empty() {
                    default.push(Mechanism::Plain);
                }
                default
            }
        };
        if enabled.is_empty() {
            return Err(invalid("sasl.enabled.mechanisms", "", "no mechanism enabled".into()));
        }
        if enabled.contains(&Mechanism::Plain) && plain_users.is_empty() {
            return Err(invalid(
                &format!("listener.name.{}.{jaas_key}", listener.as_str().to_ascii_lowercase()),
                "",
                format!("PLAIN is enabled on listener {listener} but no user_NAME=\"PASSWORD\" is configured"),
            ));
        }
        let oauth = if enabled.contains(&Mechanism::OAuthBearer) {
            Some(Arc::new(oauth_validator(listener, settings)?))
        } else {
            None
        };
        Ok(SaslSettings { enabled, plain_users, oauth })
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.enabled.iter().map(|m| m.name()).collect()
    }
}

/// The JWT validation settings of a listener with OAUTHBEARER, by Kafka's names (KIP-768).
fn oauth_validator(
    listener: &ListenerName,
    settings: &BTreeMap<String, String>,
) -> Result<oauthbearer::Validator, ConfigError> {
    let get = |key: &str| listener_setting(settings, listener, key);
    let invalid = |key: &str, value: &str, why: &str| ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        why: why.into(),
    };
    let url_key = "sasl.oauthbearer.jwks.endpoint.url";
    let url = get(url_key).ok_or_else(|| invalid(url_key, "", "OAUTHBEARER needs a JWKS to check tokens against"))?;
    let path = url
        .strip_prefix("file://")
        .ok_or_else(|| invalid(url_key, url, "only file: URLs are supported (fetch the JWKS with your own tooling)"))?;
    let skew_key = "sasl.oauthbearer.clock.skew.seconds";
    let skew: i64 = get(skew_key)
        .unwrap_or("30")
        .parse()
        .ok()
        .filter(|s| (0..=3600).contains(s))
        .ok_or_else(|| invalid(skew_key, get(skew_key).unwrap_or(""), "seconds between 0 and 3600"))?;
    let audience = get("sasl.oauthbearer.expected.audience")
        .map(|list| list.split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect())
        .unwrap_or_default();
    oauthbearer::Validator::new(oauthbearer::OauthSettings {
        jwks: path.into(),
        expected_issuer: get("sasl.oauthbearer.expected.issuer").map(str::to_string),
        expected_audience: audience,
        sub_claim: get("sasl.oauthbearer.sub.claim.name").unwrap_or("sub").to_string(),
        scope_claim: get("sasl.oauthbearer.scope.claim.name").unwrap_or("scope").to_string(),
        clock_skew_ms: skew.saturating_mul(1000),
    })
    .map_err(|why| invalid(url_key, url, &why))
}

/// One exchange in progress.
pub enum Exchange {
    Plain,
    Scram(Box<scram::ScramServer>),
    OAuthBearer,
}

/// What a step produced.
pub enum Step {
    /// Send this and wait for the client's next message.
    Challenge(Vec<u8>),
    /// Authenticated as `user`; send `response`. `expires_ms`: when the credential itself
    /// expires (an OAuth token), if it does.
    Done { user: String, response: Vec<u8>, expires_ms: Option<i64> },
}

impl Exchange {
    pub fn new(mechanism: Mechanism) -> Self {
        match mechanism {
            Mechanism::Plain => Exchange::Plain,
            Mechanism::Scram(m) => Exchange::Scram(Box::new(scram::ScramServer::new(m))),
            Mechanism::OAuthBearer => Exchange::OAuthBearer,
        }
    }

    pub fn step(&mut self, token: &[u8], settings: &SaslSettings, image: &MetadataImage) -> Result<Step, SaslFailure> {
        match self {
            Exchange::Plain => plain::authenticate(token, &settings.plain_users).map(|user| Step::Done {
                user,
                response: Vec::new(),
                expires_ms: None,
            }),
            Exchange::OAuthBearer => {
                let validator = settings.oauth.as_ref().ok_or(SaslFailure::Malformed("OAUTHBEARER is not enabled"))?;
                let token = validator.authenticate(token, crate::clock::now_ms())?;
                Ok(Step::Done { user: token.principal, response: Vec::new(), expires_ms: Some(token.expires_ms) })
            }
            Exchange::Scram(server) => {
                let mechanism = server.mechanism();
                let lookup =
                    |user: &str| -> Option<ScramCredential> { image.scram.get(user)?.get(&mechanism).cloned() };
                match server.step(token, &lookup)? {
                    scram::ScramStep::Challenge(challenge) => Ok(Step::Challenge(challenge)),
                    scram::ScramStep::Done { user, server_final } => {
                        Ok(Step::Done { user, response: server_final, expires_ms: None })
                    }
                }
            }
        }
    }
}

/// Failed authentications per client address within the current minute, bounded in
/// entries: beyond [`FailureLimiter::ADDRESSES_MAX`] addresses the oldest windows go first.
pub struct FailureLimiter {
    per_minute: u32,
    windows: std::sync::Mutex<HashMap<IpAddr, (i64, u32)>>,
}

impl FailureLimiter {
    pub const ADDRESSES_MAX: usize = 10_000;
    const WINDOW_MS: i64 = 60_000;

    pub fn new(per_minute: u32) -> Self {
        FailureLimiter { per_minute, windows: std::sync::Mutex::new(HashMap::new()) }
    }

    /// Whether `address` may try to authenticate now.
    pub fn allowed(&self, address: IpAddr, now_ms: i64) -> bool {
        let windows = self.windows.locked();
        windows.get(&address).is_none_or(|(start, count)| now_ms - start >= Self::WINDOW_MS || *count < self.per_minute)
    }

    /// Counts a failure of `address`.
    pub fn failed(&self, address: IpAddr, now_ms: i64) {
        let mut windows = self.windows.locked();
        if windows.len() >= Self::ADDRESSES_MAX && !windows.contains_key(&address) {
            windows.retain(|_, (start, _)| now_ms - *start < Self::WINDOW_MS);
            if windows.len() >= Self::ADDRESSES_MAX {
                if let Some(oldest) = windows.iter().min_by_key(|(_, (start, _))| *start).map(|(a, _)| *a) {
                    windows.remove(&oldest);
                }
            }
        }
        let window = windows.entry(address).or_insert((now_ms, 0));
        if now_ms - window.0 >= Self::WINDOW_MS {
            *window = (now_ms, 0);
        }
        window.1 = window.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_to_scram_and_add_plain_with_users() {
        let listener = ListenerName::new("SASL_SSL");
        let mut settings = BTreeMap::new();
        assert_eq!(
            SaslSettings::from_settings(&listener, &settings).unwrap().names(),
            vec!["SCRAM-SHA-256", "SCRAM-SHA-512"]
        );
        settings.insert(
            "listener.name.sasl_ssl.plain.sasl.jaas.config".to_string(),
            "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"b\";".to_string(),
        );
        assert_eq!(SaslSettings::from_settings(&listener, &settings).unwrap().names().len(), 3);
        settings.insert("sasl.enabled.mechanisms".to_string(), "GSSAPI".to_string());
        assert!(SaslSettings::from_settings(&listener, &settings).is_err());
        settings.insert("sasl.enabled.mechanisms".to_string(), "PLAIN".to_string());
        assert!(SaslSettings::from_settings(&ListenerName::new("OTHER"), &settings).is_err(), "PLAIN without users");
    }

    #[test]
    fn failures_are_bounded_per_address_and_window() {
        let limiter = FailureLimiter::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        limiter.failed(a, 0);
        assert!(limiter.allowed(a, 1));
        limiter.failed(a, 1);
        assert!(!limiter.allowed(a, 2), "the third attempt within a minute is refused");
        assert!(limiter.allowed(b, 2), "other addresses are not affected");
        assert!(limiter.allowed(a, 60_001), "a new minute starts afresh");
        for i in 0..(FailureLimiter::ADDRESSES_MAX as u32 + 10) {
            limiter.failed(IpAddr::from(i.to_be_bytes()), 5);
        }
        assert!(limiter.windows.locked().len() <= FailureLimiter::ADDRESSES_MAX);
    }
}
