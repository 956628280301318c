//! SCRAM credentials (KIP-554): stored in the metadata log so that every node knows every
//! user as soon as the change commits, and altered by a pure decision that checks each
//! change as Kafka's controller does.
//!
//! Only the salted, derived keys are stored (RFC 5802: `StoredKey = H(HMAC(SaltedPassword,
//! "Client Key"))`, `ServerKey = HMAC(SaltedPassword, "Server Key")`), never a password.
//!
//! Invariants: a user has at most one credential per mechanism; iterations are within
//! [`ITERATIONS_MIN`, `ITERATIONS_MAX`]; user names are non-empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Kafka's bounds on SCRAM iterations (`ScramMechanism.minIterations` and its maximum).
pub const ITERATIONS_MIN: u32 = 4096;
pub const ITERATIONS_MAX: u32 = 16384;

/// The SCRAM mechanisms Kafka supports, with its mechanism type codes (1 and 2).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    ScramSha256,
    ScramSha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::ScramSha256, ScramMechanism::ScramSha512];

    /// The SASL mechanism name (`SCRAM-SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::ScramSha256 => "SCRAM-SHA-256",
            ScramMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Kafka's `ScramMechanism` type code in the credential APIs.
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::ScramSha256 => 1,
            ScramMechanism::ScramSha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    /// The hash output length: the length of a salted password, stored key and server key.
    pub fn key_bytes(self) -> usize {
        match self {
            ScramMechanism::ScramSha256 => 32,
            ScramMechanism::ScramSha512 => 64,
        }
    }
}

/// One user's credential for one mechanism.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

/// Every user's credentials: user name -> mechanism -> credential.
pub type ScramCredentials = BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>;

/// Why one credential change is refused (Kafka's error for each).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// UNACCEPTABLE_CREDENTIAL
    #[error("user name must not be empty")]
    EmptyName,
    /// UNSUPPORTED_SASL_MECHANISM
    #[error("unknown SCRAM mechanism {0}")]
    UnknownMechanism(i8),
    /// UNACCEPTABLE_CREDENTIAL
    #[error("iterations must be between {ITERATIONS_MIN} and {ITERATIONS_MAX}, got {0}")]
    Iterations(i32),
    /// UNACCEPTABLE_CREDENTIAL
    #[error("salted password of {got} bytes; {mechanism} needs {wanted}")]
    KeyLength { mechanism: &'static str, got: usize, wanted: usize },
    /// UNACCEPTABLE_CREDENTIAL
    #[error("empty salt")]
    EmptySalt,
    /// RESOURCE_NOT_FOUND
    #[error("no {mechanism} credential for the user")]
    NotFound { mechanism: &'static str },
    /// DUPLICATE_RESOURCE
    #[error("the user and mechanism appear more than once in the request")]
    Duplicate,
}

/// Checks an upsertion's values; the caller derives the keys from the salted password.
pub fn check_upsertion(
    name: &str,
    mechanism: i8,
    iterations: i32,
    salt: &[u8],
    salted_password: &[u8],
) -> Result<ScramMechanism, ScramError> {
    if name.is_empty() {
        return Err(ScramError::EmptyName);
    }
    let mechanism = ScramMechanism::from_code(mechanism).ok_or(ScramError::UnknownMechanism(mechanism))?;
    let in_range = u32::try_from(iterations).is_ok_and(|i| (ITERATIONS_MIN..=ITERATIONS_MAX).contains(&i));
    if !in_range {
        return Err(ScramError::Iterations(iterations));
    }
    if salt.is_empty() {
        return Err(ScramError::EmptySalt);
    }
    if salted_password.len() != mechanism.key_bytes() {
        return Err(ScramError::KeyLength {
            mechanism: mechanism.name(),
            got: salted_password.len(),
            wanted: mechanism.key_bytes(),
        });
    }
    Ok(mechanism)
}

/// Checks a deletion against the current credentials.
pub fn check_deletion(credentials: &ScramCredentials, name: &str, mechanism: i8) -> Result<ScramMechanism, ScramError> {
    if name.is_empty() {
        return Err(ScramError::EmptyName);
    }
    let mechanism = ScramMechanism::from_code(mechanism).ok_or(ScramError::UnknownMechanism(mechanism))?;
    if credentials.get(name).is_none_or(|m| !m.contains_key(&mechanism)) {
        return Err(ScramError::NotFound { mechanism: mechanism.name() });
    }
    Ok(mechanism)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsertions_are_checked_as_kafka_checks_them() {
        let ok = check_upsertion("alice", 1, 4096, b"salt", &[0; 32]);
        assert_eq!(ok, Ok(ScramMechanism::ScramSha256));
        assert_eq!(check_upsertion("", 1, 4096, b"s", &[0; 32]), Err(ScramError::EmptyName));
        assert_eq!(check_upsertion("a", 3, 4096, b"s", &[0; 32]), Err(ScramError::UnknownMechanism(3)));
        assert_eq!(check_upsertion("a", 2, 4095, b"s", &[0; 64]), Err(ScramError::Iterations(4095)));
        assert_eq!(check_upsertion("a", 2, 16385, b"s", &[0; 64]), Err(ScramError::Iterations(16385)));
        assert!(matches!(check_upsertion("a", 2, 4096, b"s", &[0; 32]), Err(ScramError::KeyLength { .. })));
        assert_eq!(check_upsertion("a", 1, 4096, b"", &[0; 32]), Err(ScramError::EmptySalt));
    }

    #[test]
    fn a_deletion_needs_the_credential() {
        let mut credentials = ScramCredentials::new();
        let credential = ScramCredential { salt: vec![1], stored_key: vec![2], server_key: vec![3], iterations: 4096 };
        credentials.entry("alice".into()).or_default().insert(ScramMechanism::ScramSha512, credential);
        assert_eq!(check_deletion(&credentials, "alice", 2), Ok(ScramMechanism::ScramSha512));
        assert!(matches!(check_deletion(&credentials, "alice", 1), Err(ScramError::NotFound { .. })));
        assert!(matches!(check_deletion(&credentials, "bob", 2), Err(ScramError::NotFound { .. })));
    }
}
