//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka's broker runs them: the
//! server side of the exchange, and the key derivations both sides share (the CLI derives
//! a salted password before sending it in AlterUserScramCredentials).
//!
//! The exchange is two steps: the client-first message (user and client nonce) is answered
//! with the server-first message (combined nonce, salt, iterations); the client-final
//! message (channel binding, nonce, proof) is checked against the stored key and answered
//! with the server signature. Channel binding is not supported (`n` or `y` headers only), as
//! in Kafka, and neither are delegation tokens (`tokenauth`).
//!
//! Invariants: a proof is compared in constant time; a failed exchange reveals nothing
//! about whether the user exists beyond what Kafka's does (an unknown user fails at the
//! first step, as in Kafka).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use runnel_client::security::ScramHash;
use runnel_metadata::scram::{ScramCredential, ScramMechanism};

use super::SaslFailure;

/// SCRAM's arithmetic, shared with the client side (`runnel_client::security`).
fn hash_of(mechanism: ScramMechanism) -> ScramHash {
    match mechanism {
        ScramMechanism::ScramSha256 => ScramHash::Sha256,
        ScramMechanism::ScramSha512 => ScramHash::Sha512,
    }
}

fn hmac(mechanism: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    hash_of(mechanism).hmac(key, data)
}

fn hash(mechanism: ScramMechanism, data: &[u8]) -> Vec<u8> {
    hash_of(mechanism).hash(data)
}

/// `Hi(password, salt, iterations)`: the salted password.
pub fn salted_password(mechanism: ScramMechanism, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    hash_of(mechanism).salted_password(password, salt, iterations)
}

/// The credential stored for a salted password.
pub fn credential(mechanism: ScramMechanism, salt: &[u8], salted: &[u8], iterations: u32) -> ScramCredential {
    let client_key = hmac(mechanism, salted, b"Client Key");
    ScramCredential {
        salt: salt.to_vec(),
        stored_key: hash(mechanism, &client_key),
        server_key: hmac(mechanism, salted, b"Server Key"),
        iterations,
    }
}

/// A SCRAM user to create at start if it has no credential for its mechanism (Kafka's
/// `kafka-storage format --add-scram`), so a new secured node or cluster has a first user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapUser {
    pub mechanism: ScramMechanism,
    pub name: String,
    pub password: String,
    pub iterations: u32,
}

/// Parses Kafka's `--add-scram` form: `SCRAM-SHA-256=[name=alice,password=alice-secret]`,
/// optionally with `iterations=8192` (default 4096) and `salt=...` (ignored: a random
/// salt is drawn).
pub fn parse_bootstrap_user(text: &str) -> Result<BootstrapUser, String> {
    let (mechanism, rest) = text.split_once('=').ok_or("expected MECHANISM=[name=...,password=...]")?;
    let mechanism = ScramMechanism::from_name(mechanism.trim())
        .ok_or_else(|| format!("unknown mechanism {mechanism}; use SCRAM-SHA-256 or SCRAM-SHA-512"))?;
    let inner = rest.trim().strip_prefix('[').and_then(|r| r.strip_suffix(']')).ok_or("the user goes in [...]")?;
    let (mut name, mut password, mut iterations) = (None, None, runnel_metadata::scram::ITERATIONS_MIN);
    for pair in inner.split(',') {
        let (key, value) = pair.split_once('=').ok_or("expected key=value pairs")?;
        let value = value.trim().trim_matches('"');
        match key.trim() {
            "name" => name = Some(value.to_string()),
            "password" => password = Some(value.to_string()),
            "iterations" => iterations = value.parse().map_err(|_| format!("bad iterations {value}"))?,
            "salt" => {}
            other => return Err(format!("unknown key {other}")),
        }
    }
    let range = runnel_metadata::scram::ITERATIONS_MIN..=runnel_metadata::scram::ITERATIONS_MAX;
    if !range.contains(&iterations) {
        return Err(format!("iterations must be within {range:?}"));
    }
    let name = name.filter(|n| !n.is_empty()).ok_or("name is required")?;
    let password = password.filter(|p| !p.is_empty()).ok_or("password is required")?;
    Ok(BootstrapUser { mechanism, name, password, iterations })
}

/// Random bytes from the system's generator.
pub fn random_bytes(len: usize) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut out = vec![0u8; len];
    ring::rand::SystemRandom::new().fill(&mut out).expect("the system random generator works");
    out
}

/// Decodes a `saslname` (RFC 5802: `=2C` is `,` and `=3D` is `=`).
fn decode_name(name: &str) -> Result<String, SaslFailure> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(SaslFailure::Malformed("bad escape in the user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Where the server is in one exchange.
enum State {
    Initial,
    SentFirst {
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        user: String,
        credential: ScramCredential,
    },
    Done,
}

/// The server side of one SCRAM exchange.
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: State,
}

/// What a step produced: a challenge to send, or the authenticated user and the final
/// message.
pub enum ScramStep {
    Challenge(Vec<u8>),
    Done { user: String, server_final: Vec<u8> },
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> Self {
        ScramServer { mechanism, state: State::Initial }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Takes the client's next message; `lookup` finds a user's credential.
    pub fn step(
        &mut self,
        message: &[u8],
        lookup: &dyn Fn(&str) -> Option<ScramCredential>,
    ) -> Result<ScramStep, SaslFailure> {
        let text = std::str::from_utf8(message).map_err(|_| SaslFailure::Malformed("not UTF-8"))?;
        match std::mem::replace(&mut self.state, State::Done) {
            State::Initial => self.client_first(text, lookup),
            State::SentFirst { gs2_header, client_first_bare, server_first, nonce, user, credential } => {
                let final_without_proof_and_proof =
                    text.rsplit_once(",p=").ok_or(SaslFailure::Malformed("no proof"))?;
                let (without_proof, proof) = final_without_proof_and_proof;
                let mut binding = None;
                let mut client_nonce = None;
                for attribute in without_proof.split(',') {
                    match attribute.split_once('=') {
                        Some(("c", value)) => binding = Some(value),
                        Some(("r", value)) => client_nonce = Some(value),
                        _ => {}
                    }
                }
                if binding != Some(B64.encode(gs2_header.as_bytes()).as_str()) {
                    return Err(SaslFailure::Malformed("channel binding does not match the header"));
                }
                // Kafka checks that the nonce *ends with* the one it sent: librdkafka sends its
                // own nonce again in front of the combined one, and Kafka accepts that.
                if !client_nonce.is_some_and(|n| n.ends_with(nonce.as_str())) {
                    return Err(SaslFailure::Malformed("nonce mismatch"));
                }
                let proof = B64.decode(proof).map_err(|_| SaslFailure::Malformed("proof is not base64"))?;
                if proof.len() != self.mechanism.key_bytes() {
                    return Err(SaslFailure::BadCredentials);
                }
                let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
                let client_signature = hmac(self.mechanism, &credential.stored_key, auth_message.as_bytes());
                let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
                let computed = hash(self.mechanism, &client_key);
                if !super::same_secret(&computed, &credential.stored_key) {
                    return Err(SaslFailure::BadCredentials);
                }
                let server_signature = hmac(self.mechanism, &credential.server_key, auth_message.as_bytes());
                Ok(ScramStep::Done { user, server_final: format!("v={}", B64.encode(server_signature)).into_bytes() })
            }
            State::Done => Err(SaslFailure::Malformed("the exchange is over")),
        }
    }

    fn client_first(
        &mut self,
        text: &str,
        lookup: &dyn Fn(&str) -> Option<ScramCredential>,
    ) -> Result<ScramStep, SaslFailure> {
        // gs2-header: "n," or "y," then an optional "a=authzid", then ","
        let mut parts = text.splitn(3, ',');
        let (binding, authzid, bare) = match (parts.next(), parts.next(), parts.next()) {
            (Some(b), Some(a), Some(bare)) => (b, a, bare),
            _ => return Err(SaslFailure::Malformed("client-first message")),
        };
        if binding != "n" && binding != "y" {
            return Err(SaslFailure::Malformed("channel binding is not supported"));
        }
        let mut user = None;
        let mut client_nonce = None;
        for attribute in bare.split(',') {
            match attribute.split_once('=') {
                Some(("n", name)) => user = Some(decode_name(name)?),
                Some(("r", nonce)) if !nonce.is_empty() => client_nonce = Some(nonce),
                Some(("m", _)) => return Err(SaslFailure::Malformed("mandatory extension not supported")),
                Some(("tokenauth", _)) => return Err(SaslFailure::Malformed("delegation tokens are not supported")),
                _ => {}
            }
        }
        let user = user.ok_or(SaslFailure::Malformed("no user name"))?;
        let client_nonce = client_nonce.ok_or(SaslFailure::Malformed("no nonce"))?;
        if let Some(authzid) = authzid.strip_prefix("a=") {
            if decode_name(authzid)? != user {
                return Err(SaslFailure::BadCredentials);
            }
        }
        let credential = lookup(&user).ok_or(SaslFailure::BadCredentials)?;
        let nonce = format!("{client_nonce}{}", B64.encode(random_bytes(18)));
        let server_first = format!("r={nonce},s={},i={}", B64.encode(&credential.salt), credential.iterations);
        let reply = server_first.clone().into_bytes();
        self.state = State::SentFirst {
            gs2_header: format!("{binding},{authzid},"),
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
            user,
            credential,
        };
        Ok(ScramStep::Challenge(reply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client computing its messages as RFC 5802 describes, for the round trip.
    fn client_final(mechanism: ScramMechanism, password: &str, client_first_bare: &str, server_first: &str) -> String {
        let attributes: std::collections::HashMap<&str, &str> =
            server_first.split(',').filter_map(|a| a.split_once('=')).collect();
        let salt = B64.decode(attributes["s"]).unwrap();
        let iterations: u32 = attributes["i"].parse().unwrap();
        let salted = salted_password(mechanism, password, &salt, iterations);
        let client_key = hmac(mechanism, &salted, b"Client Key");
        let stored_key = hash(mechanism, &client_key);
        let without_proof = format!("c=biws,r={}", attributes["r"]);
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac(mechanism, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    fn exchange(mechanism: ScramMechanism, stored_password: &str, given_password: &str) -> Result<String, SaslFailure> {
        let salt = b"0123456789abcdef";
        let stored = credential(mechanism, salt, &salted_password(mechanism, stored_password, salt, 4096), 4096);
        let lookup = |user: &str| (user == "al,ice").then(|| stored.clone());
        let mut server = ScramServer::new(mechanism);
        let bare = "n=al=2Cice,r=clientnonce";
        let ScramStep::Challenge(first) = server.step(format!("n,,{bare}").as_bytes(), &lookup)? else {
            panic!("a challenge first")
        };
        let first = String::from_utf8(first).unwrap();
        assert!(first.starts_with("r=clientnonce"), "{first}");
        match server.step(client_final(mechanism, given_password, bare, &first).as_bytes(), &lookup)? {
            ScramStep::Done { user, server_final } => {
                assert!(server_final.starts_with(b"v="));
                Ok(user)
            }
            ScramStep::Challenge(_) => panic!("done after two steps"),
        }
    }

    #[test]
    fn both_mechanisms_accept_the_right_password_and_refuse_a_wrong_one() {
        for mechanism in ScramMechanism::ALL {
            assert_eq!(exchange(mechanism, "secret", "secret").ok().as_deref(), Some("al,ice"));
            assert!(matches!(exchange(mechanism, "secret", "guess"), Err(SaslFailure::BadCredentials)));
        }
    }

    #[test]
    fn unknown_users_channel_binding_and_garbage_are_refused() {
        let lookup = |_: &str| None;
        let refused =
            |message: &str| ScramServer::new(ScramMechanism::ScramSha256).step(message.as_bytes(), &lookup).is_err();
        assert!(refused("n,,n=nobody,r=abc"));
        assert!(refused("p=tls-unique,,n=a,r=abc"));
        assert!(refused("n,,n=a=ZZ,r=abc"));
        assert!(refused("n,,r=abc"));
        assert!(refused("garbage"));
        assert!(ScramServer::new(ScramMechanism::ScramSha256).step(&[0xff, 0xfe], &lookup).is_err());
    }

    #[test]
    fn bootstrap_users_parse_as_kafka_storage_takes_them() {
        let user = parse_bootstrap_user("SCRAM-SHA-512=[name=admin,password=\"a-secret\",iterations=8192]").unwrap();
        assert_eq!(user.mechanism, ScramMechanism::ScramSha512);
        assert_eq!((user.name.as_str(), user.password.as_str(), user.iterations), ("admin", "a-secret", 8192));
        assert!(parse_bootstrap_user("SCRAM-SHA-1=[name=a,password=b]").is_err());
        assert!(parse_bootstrap_user("SCRAM-SHA-256=[name=a]").is_err());
        assert!(parse_bootstrap_user("SCRAM-SHA-256=[name=a,password=b,iterations=10]").is_err());
        assert!(parse_bootstrap_user("SCRAM-SHA-256=name=a,password=b").is_err());
    }

    #[test]
    fn derivation_matches_rfc_7677_test_vector() {
        // RFC 7677 section 3: user "user", password "pencil", SCRAM-SHA-256.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = salted_password(ScramMechanism::ScramSha256, "pencil", &salt, 4096);
        let stored = credential(ScramMechanism::ScramSha256, &salt, &salted, 4096);
        let client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let final_message = client_final(ScramMechanism::ScramSha256, "pencil", client_first_bare, server_first);
        assert_eq!(
            final_message,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let auth_message =
            format!("{client_first_bare},{server_first},c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        let server_signature = hmac(ScramMechanism::ScramSha256, &stored.server_key, auth_message.as_bytes());
        assert_eq!(B64.encode(server_signature), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }
}
