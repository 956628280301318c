//! SASL/OAUTHBEARER (RFC 7628, KIP-255) with signed JWTs validated as Kafka's
//! `OAuthBearerValidatorCallbackHandler` validates them (KIP-768): the signature against a
//! key from a JWKS file (`sasl.oauthbearer.jwks.endpoint.url=file:///path/jwks.json`),
//! `exp` (and `nbf`, `iat`) with `sasl.oauthbearer.clock.skew.seconds` of slack,
//! `sasl.oauthbearer.expected.issuer` and `sasl.oauthbearer.expected.audience` when set, and
//! the principal from `sasl.oauthbearer.sub.claim.name` (default `sub`). The scope claim
//! (`sasl.oauthbearer.scope.claim.name`, default `scope`) must be a string or a list of
//! strings when present. Algorithms: RS256 and ES256. The JWKS file is re-read when it
//! changes.
//!
//! Invariants: a token is accepted only with a valid signature by a key the JWKS names
//! (`alg: none` and unknown `kid`s are refused); with `connections.max.reauth.ms` set, a
//! session ends no later than its token expires (as in Kafka).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

use super::SaslFailure;
use crate::locks::MutexExt;

/// The validation settings.
#[derive(Debug, Clone)]
pub struct OauthSettings {
    pub jwks: PathBuf,
    pub expected_issuer: Option<String>,
    pub expected_audience: Vec<String>,
    pub sub_claim: String,
    pub scope_claim: String,
    pub clock_skew_ms: i64,
}

/// A verification key from the JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    EcP256 { point: Vec<u8> },
}

/// The JWKS keys by their `kid`.
type Keys = Vec<(Option<String>, Key)>;
/// A file's modification time and length, for change detection.
type Stamp = Option<(SystemTime, u64)>;

/// The keys of the JWKS file, reloaded when the file changes.
pub struct Validator {
    settings: OauthSettings,
    keys: Mutex<(Stamp, Keys)>,
}

/// A validated token: the principal name and when the token expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub principal: String,
    pub expires_ms: i64,
}

fn parse_jwks(text: &str) -> Result<Keys, String> {
    let json: Value = serde_json::from_str(text).map_err(|e| format!("JWKS is not JSON: {e}"))?;
    let keys = json.get("keys").and_then(Value::as_array).ok_or("JWKS has no keys array")?;
    let field = |key: &Value, name: &str| -> Result<Vec<u8>, String> {
        let text = key.get(name).and_then(Value::as_str).ok_or_else(|| format!("JWK without {name}"))?;
        B64URL.decode(text.trim_end_matches('=')).map_err(|_| format!("JWK {name} is not base64url"))
    };
    let mut parsed = Vec::new();
    for key in keys {
        let kid = key.get("kid").and_then(Value::as_str).map(str::to_string);
        match key.get("kty").and_then(Value::as_str) {
            Some("RSA") => parsed.push((kid, Key::Rsa { n: field(key, "n")?, e: field(key, "e")? })),
            Some("EC") if key.get("crv").and_then(Value::as_str) == Some("P-256") => {
                let (x, y) = (field(key, "x")?, field(key, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err("P-256 JWK coordinates must be 32 bytes".into());
                }
                let mut point = vec![0x04];
                point.extend(x);
                point.extend(y);
                parsed.push((kid, Key::EcP256 { point }));
            }
            // Other key types are skipped, as a JWKS may hold keys for other uses.
            _ => {}
        }
    }
    if parsed.is_empty() {
        return Err("JWKS holds no RSA or P-256 key".into());
    }
    Ok(parsed)
}

fn stamp(path: &PathBuf) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Validator {
    /// Loads the JWKS file; fails at start when it cannot be read or holds no usable key.
    pub fn new(settings: OauthSettings) -> Result<Self, String> {
        let text = std::fs::read_to_string(&settings.jwks)
            .map_err(|e| format!("reading the JWKS {}: {e}", settings.jwks.display()))?;
        let keys = parse_jwks(&text)?;
        let stamp = stamp(&settings.jwks);
        Ok(Validator { settings, keys: Mutex::new((stamp, keys)) })
    }

    /// The keys, re-read first if the file changed (a file that does not parse keeps the
    /// previous keys).
    fn keys(&self) -> Keys {
        let mut keys = self.keys.locked();
        let now = stamp(&self.settings.jwks);
        if now != keys.0 {
            keys.0 = now;
            match std::fs::read_to_string(&self.settings.jwks).map_err(|e| e.to_string()).and_then(|t| parse_jwks(&t)) {
                Ok(parsed) => {
                    tracing::info!(jwks = %self.settings.jwks.display(), keys = parsed.len(), "JWKS reloaded");
                    keys.1 = parsed;
                }
                Err(error) => tracing::warn!(%error, "JWKS changed but does not load; keeping the previous keys"),
            }
        }
        keys.1.clone()
    }

    /// Validates the client's initial response (`n,,` GS2 header, then `auth=Bearer TOKEN`
    /// among 0x01-separated pairs) at `now_ms`.
    pub fn authenticate(&self, message: &[u8], now_ms: i64) -> Result<Token, SaslFailure> {
        let text = std::str::from_utf8(message).map_err(|_| SaslFailure::Malformed("not UTF-8"))?;
        let (header, pairs) = text.split_once('\u{1}').ok_or(SaslFailure::Malformed("no key-value pairs"))?;
        if !header.starts_with("n,") && !header.starts_with("y,") {
            return Err(SaslFailure::Malformed("bad GS2 header"));
        }
        // A GS2 authorization id, when given, must be the token's principal (as in Kafka).
        let authzid = header.split(',').nth(1).and_then(|a| a.strip_prefix("a=")).filter(|a| !a.is_empty());
        let token = pairs
            .split('\u{1}')
            .find_map(|pair| pair.strip_prefix("auth="))
            .and_then(|auth| auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("bearer ")))
            .ok_or(SaslFailure::Malformed("no bearer token"))?;
        let token = self.validate(token.trim(), now_ms)?;
        if authzid.is_some_and(|a| a != token.principal) {
            return Err(SaslFailure::BadCredentials);
        }
        Ok(token)
    }

    /// Validates one compact JWS.
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<Token, SaslFailure> {
        let mut parts = token.split('.');
        let (Some(header64), Some(claims64), Some(signature64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SaslFailure::Malformed("a JWT has three parts"));
        };
        let decode = |part: &str| B64URL.decode(part).map_err(|_| SaslFailure::Malformed("JWT part is not base64url"));
        let header: Value =
            serde_json::from_slice(&decode(header64)?).map_err(|_| SaslFailure::Malformed("JWT header"))?;
        let claims: Value =
            serde_json::from_slice(&decode(claims64)?).map_err(|_| SaslFailure::Malformed("JWT claims"))?;
        let signature = decode(signature64)?;
        let signed = format!("{header64}.{claims64}");
        let kid = header.get("kid").and_then(Value::as_str);
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("none");
        let keys = self.keys();
        let candidates = keys.iter().filter(|(k, _)| kid.is_none() || k.as_deref() == kid);
        let verified = candidates.into_iter().any(|(_, key)| match (alg, key) {
            ("RS256", Key::Rsa { n, e }) => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
                .is_ok(),
            ("ES256", Key::EcP256 { point }) => UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed.as_bytes(), &signature)
                .is_ok(),
            _ => false,
        });
        if !verified {
            return Err(SaslFailure::BadCredentials);
        }
        let skew = self.settings.clock_skew_ms;
        let seconds = |name: &str| claims.get(name).and_then(Value::as_f64).map(|s| (s * 1000.0) as i64);
        let expires_ms = seconds("exp").ok_or(SaslFailure::BadCredentials)?;
        if expires_ms.saturating_add(skew) <= now_ms {
            return Err(SaslFailure::BadCredentials);
        }
        let in_future = |at: i64| at.saturating_sub(skew) > now_ms;
        if seconds("nbf").is_some_and(in_future) || seconds("iat").is_some_and(in_future) {
            return Err(SaslFailure::BadCredentials);
        }
        if let Some(issuer) = &self.settings.expected_issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
                return Err(SaslFailure::BadCredentials);
            }
        }
        if !self.settings.expected_audience.is_empty() {
            let audiences: Vec<&str> = match claims.get("aud") {
                Some(Value::String(one)) => vec![one.as_str()],
                Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !audiences.iter().any(|a| self.settings.expected_audience.iter().any(|e| e == a)) {
                return Err(SaslFailure::BadCredentials);
            }
        }
        match claims.get(&self.settings.scope_claim) {
            None | Some(Value::String(_)) => {}
            Some(Value::Array(scopes)) if scopes.iter().all(Value::is_string) => {}
            Some(_) => return Err(SaslFailure::BadCredentials),
        }
        let principal = claims
            .get(&self.settings.sub_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(SaslFailure::BadCredentials)?;
        Ok(Token { principal: principal.to_string(), expires_ms })
    }
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    use super::*;

    struct Issuer {
        key: EcdsaKeyPair,
        jwks: tempfile::NamedTempFile,
    }

    impl Issuer {
        fn new(kid: &str) -> Issuer {
            let rng = SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
            let point = key.public_key().as_ref();
            let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": kid,
                "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..65])}]});
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), jwks.to_string()).unwrap();
            Issuer { key, jwks: file }
        }

        fn token(&self, kid: &str, claims: Value) -> String {
            let header = B64URL.encode(serde_json::json!({"alg": "ES256", "kid": kid}).to_string());
            let body = B64URL.encode(claims.to_string());
            let signed = format!("{header}.{body}");
            let signature = self.key.sign(&SystemRandom::new(), signed.as_bytes()).unwrap();
            format!("{signed}.{}", B64URL.encode(signature.as_ref()))
        }

        fn validator(&self) -> Validator {
            Validator::new(OauthSettings {
                jwks: self.jwks.path().to_path_buf(),
                expected_issuer: Some("https://issuer.example".into()),
                expected_audience: vec!["runnel".into()],
                sub_claim: "sub".into(),
                scope_claim: "scope".into(),
                clock_skew_ms: 30_000,
            })
            .unwrap()
        }
    }

    const NOW_MS: i64 = 1_800_000_000_000;

    fn claims(exp_s: i64) -> Value {
        serde_json::json!({"sub": "alice", "iss": "https://issuer.example", "aud": ["runnel", "other"], "exp": exp_s, "scope": "kafka"})
    }

    #[test]
    fn a_signed_current_token_for_the_audience_authenticates() {
        let issuer = Issuer::new("k1");
        let token = issuer.token("k1", claims(NOW_MS / 1000 + 600));
        let message = format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}");
        let accepted = issuer.validator().authenticate(message.as_bytes(), NOW_MS).unwrap();
        assert_eq!(accepted, Token { principal: "alice".into(), expires_ms: NOW_MS + 600_000 });
    }

    #[test]
    fn expired_foreign_unsigned_or_misaddressed_tokens_are_refused() {
        let issuer = Issuer::new("k1");
        let validator = issuer.validator();
        let refused = |token: &str| validator.validate(token, NOW_MS).is_err();
        assert!(refused(&issuer.token("k1", claims(NOW_MS / 1000 - 60))), "expired beyond the skew");
        assert!(refused(&Issuer::new("k1").token("k1", claims(NOW_MS / 1000 + 600))), "signed by another key");
        assert!(refused(&issuer.token("k2", claims(NOW_MS / 1000 + 600))), "unknown kid");
        let mut wrong_audience = claims(NOW_MS / 1000 + 600);
        wrong_audience["aud"] = serde_json::json!("elsewhere");
        assert!(refused(&issuer.token("k1", wrong_audience)));
        let mut wrong_issuer = claims(NOW_MS / 1000 + 600);
        wrong_issuer["iss"] = serde_json::json!("https://evil.example");
        assert!(refused(&issuer.token("k1", wrong_issuer)));
        let mut no_subject = claims(NOW_MS / 1000 + 600);
        no_subject.as_object_mut().unwrap().remove("sub");
        assert!(refused(&issuer.token("k1", no_subject)));
        let unsigned = format!(
            "{}.{}.",
            B64URL.encode(r#"{"alg":"none"}"#),
            B64URL.encode(claims(NOW_MS / 1000 + 600).to_string())
        );
        assert!(refused(&unsigned), "alg none");
        assert!(refused("not.a.jwt.at-all"));
        assert!(validator.authenticate(b"garbage", NOW_MS).is_err());
    }
}
