//! SASL/PLAIN (RFC 4616) with users from Kafka's JAAS configuration:
//! `listener.name.<listener>.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";`
//! Each `user_NAME="PASSWORD"` option is one user; `username` and `password` (the broker's
//! own client credentials in Kafka) are accepted and ignored.

use std::collections::BTreeMap;

use super::SaslFailure;

pub use runnel_client::security::jaas_options;

/// The `user_NAME="PASSWORD"` options of a PlainLoginModule JAAS configuration; `Err` names
/// what is wrong.
pub fn users_from_jaas(jaas: &str) -> Result<BTreeMap<String, String>, String> {
    let (module, options) = jaas_options(jaas)?;
    if !module.ends_with("PlainLoginModule") {
        return Err(format!("login module {module} is not PlainLoginModule"));
    }
    let mut users = BTreeMap::new();
    for (key, value) in options {
        if let Some(user) = key.strip_prefix("user_") {
            if user.is_empty() {
                return Err("user_ needs a name".into());
            }
            users.insert(user.to_string(), value);
        }
    }
    Ok(users)
}

/// Checks a PLAIN message (`authzid NUL authcid NUL passwd`); returns the user.
pub fn authenticate(message: &[u8], users: &BTreeMap<String, String>) -> Result<String, SaslFailure> {
    let text = std::str::from_utf8(message).map_err(|_| SaslFailure::Malformed("not UTF-8"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslFailure::Malformed("expected authzid NUL user NUL password"));
    };
    if user.is_empty() || password.is_empty() {
        return Err(SaslFailure::Malformed("empty user or password"));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(SaslFailure::BadCredentials);
    }
    let expected = users.get(user).ok_or(SaslFailure::BadCredentials)?;
    // Digests first: equal lengths, so the comparison's time says nothing about the password.
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    if !super::same_secret(digest(expected).as_ref(), digest(password).as_ref()) {
        return Err(SaslFailure::BadCredentials);
    }
    Ok(user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice secret";"#;

    #[test]
    fn users_come_from_the_user_options() {
        let users = users_from_jaas(JAAS).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users["alice"], "alice secret");
        assert!(users_from_jaas("PlainLoginModule required user_a=\"x\"").is_err(), "missing ';'");
        assert!(users_from_jaas("ScramLoginModule required;").is_err());
        assert!(users_from_jaas("PlainLoginModule maybe;").is_err());
        assert!(users_from_jaas("PlainLoginModule required user_a=x;").is_err());
    }

    #[test]
    fn plain_messages_are_checked() {
        let users = users_from_jaas(JAAS).unwrap();
        assert_eq!(authenticate(b"\0alice\0alice secret", &users).unwrap(), "alice");
        assert_eq!(authenticate(b"alice\0alice\0alice secret", &users).unwrap(), "alice");
        assert!(matches!(authenticate(b"\0alice\0wrong", &users), Err(SaslFailure::BadCredentials)));
        assert!(matches!(authenticate(b"admin\0alice\0alice secret", &users), Err(SaslFailure::BadCredentials)));
        assert!(matches!(authenticate(b"\0nobody\0x", &users), Err(SaslFailure::BadCredentials)));
        assert!(authenticate(b"alice", &users).is_err());
        assert!(authenticate(b"\0a\0b\0c", &users).is_err());
    }
}
