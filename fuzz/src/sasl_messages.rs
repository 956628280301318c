//! `sasl_messages`: what a client sends during authentication, and the security material a
//! node reads, through the broker's own parsers. The first input byte picks the parser; the
//! rest is its input.
//!
//! - 0, 1: a SCRAM-SHA-256 / -512 server exchange (`sasl::scram::ScramServer`): the input,
//!   split at its first 0xff byte, is the client-first and client-final messages; every user
//!   has a credential, so the second step is reached.
//! - 2: a PLAIN message (`sasl::plain::authenticate`).
//! - 3: an OAUTHBEARER initial response (`sasl::oauthbearer::Validator::authenticate`)
//!   against a fixed P-256 JWKS.
//! - 4: a DER certificate's subject (`principal::subject_name`), then mapped by a rule.
//! - 5: text as a JAAS configuration, an `--add-scram` user, `ssl.principal.mapping.rules`
//!   and listener settings.
//!
//! Must never panic; every failure is an error value.

use std::sync::OnceLock;

use runnel_broker::listeners::{parse_endpoints, parse_protocol_map};
use runnel_broker::principal::{subject_name, PrincipalMapper};
use runnel_broker::sasl::oauthbearer::{OauthSettings, Validator};
use runnel_broker::sasl::scram::{credential, parse_bootstrap_user, salted_password, ScramServer, ScramStep};
use runnel_broker::sasl::{plain, SaslFailure};
use runnel_metadata::scram::{ScramCredential, ScramMechanism};

/// A fixed clock: runs must be deterministic.
const NOW_MS: i64 = 1_800_000_000_000;

/// A P-256 public key, as a JWKS names it.
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"3MQerYqW_pRPOamRUOYXa4ctAN5e7-jJOaY_Dv6-4Aw","y":"ryU6j-JLLrNTJjxgJmbprsXS_NaXFlz0PilCm7pDrfc"},{"kty":"RSA","kid":"r","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}]}"#;

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("runnel-fuzz-jwks-{}.json", std::process::id()));
        std::fs::write(&path, JWKS).expect("write the fuzz JWKS");
        Validator::new(OauthSettings {
            jwks: path,
            expected_issuer: Some("issuer".into()),
            expected_audience: vec!["runnel".into()],
            sub_claim: "sub".into(),
            scope_claim: "scope".into(),
            clock_skew_ms: 30_000,
        })
        .expect("the fixed JWKS loads")
    })
}

fn scram(mechanism: ScramMechanism, data: &[u8]) {
    // Derived once per mechanism: 4,096 PBKDF2 rounds per input would slow the fuzzer down.
    static CREDENTIALS: OnceLock<[ScramCredential; 2]> = OnceLock::new();
    let credentials = CREDENTIALS.get_or_init(|| {
        ScramMechanism::ALL.map(|m| credential(m, b"salt", &salted_password(m, "password", b"salt", 4096), 4096))
    });
    let stored = &credentials[usize::from(mechanism == ScramMechanism::ScramSha512)];
    let lookup = |_: &str| Some(stored.clone());
    let (first, last) = match data.iter().position(|b| *b == 0xff) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let mut server = ScramServer::new(mechanism);
    if let (Ok(ScramStep::Challenge(_)), Some(last)) = (server.step(first, &lookup), last) {
        // The server's nonce is random, so no input can carry a valid proof for it.
        let outcome = server.step(last, &lookup);
        assert!(!matches!(outcome, Ok(ScramStep::Done { .. })), "a proof was forged");
    }
}

pub fn run(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else { return };
    match selector % 6 {
        0 => scram(ScramMechanism::ScramSha256, rest),
        1 => scram(ScramMechanism::ScramSha512, rest),
        2 => {
            let users = [("alice".to_string(), "secret".to_string())].into_iter().collect();
            let outcome = plain::authenticate(rest, &users);
            if let Ok(user) = outcome {
                assert_eq!(user, "alice", "only the one user can authenticate");
            }
        }
        3 => {
            let outcome = validator().authenticate(rest, NOW_MS);
            assert!(
                matches!(outcome, Err(SaslFailure::BadCredentials | SaslFailure::Malformed(_))),
                "no token is signed"
            );
        }
        4 => {
            if let Some(subject) = subject_name(rest) {
                let mapper = PrincipalMapper::parse("RULE:^CN=(.*?),.*$/$1/L,DEFAULT").expect("the fixed rules parse");
                let _ = mapper.map(&subject);
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            let _ = plain::jaas_options(text);
            let _ = plain::users_from_jaas(text);
            let _ = parse_bootstrap_user(text);
            if let Ok(mapper) = PrincipalMapper::parse(text) {
                let _ = mapper.map("CN=fuzz,OU=a,O=b");
            }
            let _ = parse_endpoints("listeners", text);
            let _ = parse_protocol_map("listener.security.protocol.map", text);
        }
    }
}
