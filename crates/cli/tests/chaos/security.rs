//! The security a chaos run's cluster is started with, and the proof that it was enforced.
//!
//! Secured: every node's one Kafka listener (still named PLAINTEXT, the one it advertises
//! through its proxy) speaks SASL_SSL with SCRAM-SHA-512, so the test's clients and the
//! brokers' follower fetches are encrypted and authenticated (the brokers as `broker`, the
//! test as `chaos`, both super users); the quorum listener (CONTROLLER) speaks TLS and
//! demands a client certificate of the cluster's CA; the standard authorizer is on. The
//! certificates are made by the test ([`Pki`]) and name 127.0.0.1, which clients verify.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_client::security::ClientSecurity;
use tempfile::TempDir;

use crate::support::cluster::{connect_with, NodeProxies};
use crate::support::secure::Pki;
use crate::TOPIC;

const MECHANISM: &str = "SCRAM-SHA-512";
/// The brokers' own principal, for their follower fetches (a super user: ClusterAction).
const BROKER: (&str, &str) = ("broker", "broker-secret");
/// The principal of every client the test makes (a super user).
const CLIENT: (&str, &str) = ("chaos", "chaos-secret");
/// An authenticated user without any ACL, whom the authorizer must refuse.
const OUTSIDER: (&str, &str) = ("outsider", "outsider-secret");
/// One request of the final checks.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the cluster of a run is secured.
pub(crate) enum Security {
    Plaintext,
    Secured(Secured),
}

/// The files of a secured run, removed when it ends.
pub(crate) struct Secured {
    _dir: TempDir,
    ca: PathBuf,
    /// Every node's key and certificate chain (PEM), for both its listeners and as its
    /// client certificate in the quorum.
    keystore: PathBuf,
    /// A client certificate and key of the cluster's CA, to show that the quorum listener
    /// speaks TLS.
    quorum_client: (PathBuf, PathBuf),
}

impl Security {
    /// A fresh certificate authority and broker certificate in a temporary directory.
    pub(crate) fn secured() -> Security {
        let dir = TempDir::new().expect("a directory for the chaos PKI");
        let pki = Pki::new(dir.path(), "chaos");
        let keystore = pki.keystore();
        let quorum_client = pki.write_client("quorum-probe");
        Security::Secured(Secured { ca: pki.ca_path(), keystore, quorum_client, _dir: dir })
    }

    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Security::Plaintext => "plaintext",
            Security::Secured(_) => {
                "SASL_SSL with SCRAM-SHA-512 on the Kafka listener, mutual TLS on the quorum, the authorizer on"
            }
        }
    }

    /// `runnel server` arguments for every node, beside the scenario's own settings.
    pub(crate) fn node_args(&self) -> Vec<String> {
        let Security::Secured(secured) = self else { return Vec::new() };
        let jaas = format!(
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="{}" password="{}";"#,
            BROKER.0, BROKER.1
        );
        let settings = [
            "listener.security.protocol.map=PLAINTEXT:SASL_SSL,CONTROLLER:SSL".to_string(),
            "listener.name.controller.ssl.client.auth=required".to_string(),
            format!("sasl.enabled.mechanisms={MECHANISM}"),
            format!("sasl.mechanism.inter.broker.protocol={MECHANISM}"),
            format!("listener.name.plaintext.{}.sasl.jaas.config={jaas}", MECHANISM.to_ascii_lowercase()),
            format!("ssl.keystore.location={}", secured.keystore.display()),
            format!("ssl.truststore.location={}", secured.ca.display()),
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
            format!("super.users=User:{};User:{}", BROKER.0, CLIENT.0),
        ];
        let users = [BROKER, CLIENT, OUTSIDER].map(|(name, password)| {
            ["--add-scram".to_string(), format!("{MECHANISM}=[name={name},password={password}]")]
        });
        settings
            .into_iter()
            .flat_map(|setting| ["--set".to_string(), setting])
            .chain(users.into_iter().flatten())
            .collect()
    }

    /// Client properties (librdkafka's and the Java client's names) of the test's clients;
    /// none for plaintext.
    pub(crate) fn client_properties(&self) -> Vec<(String, String)> {
        match self {
            Security::Plaintext => Vec::new(),
            Security::Secured(secured) => secured.properties(Some(CLIENT)).into_iter().collect(),
        }
    }

    /// The same for the test's own (`runnel_client`) connections.
    pub(crate) fn client_security(&self) -> ClientSecurity {
        match self {
            Security::Plaintext => ClientSecurity::plaintext(),
            Security::Secured(secured) => secured.client(Some(CLIENT)),
        }
    }

    /// Shows that the cluster was secured, through every node's advertised addresses:
    /// a plaintext Kafka client, a TLS client that does not authenticate and one with a
    /// wrong password get no answer; an authenticated user without ACLs is refused the
    /// topic; the quorum listener completes a TLS handshake with the cluster's CA and fails
    /// a client without a certificate. Returns what was checked and how the first node
    /// refused, for the report.
    pub(crate) async fn assert_enforced(&self, seed: u64, proxies: &BTreeMap<i32, NodeProxies>) -> String {
        let Security::Secured(secured) = self else { return "plaintext: nothing to enforce".to_string() };
        let fail = |what: String| -> ! { panic!("chaos[{seed:#x}] the cluster was not secured: {what}") };
        let mut refusals: Vec<String> = Vec::new();
        for (id, node) in proxies {
            let mut refused = |what: &str, why: String| {
                if refusals.len() < 4 {
                    refusals.push(format!("{what}: {why}"));
                }
            };
            let kafka = node.kafka_addr().to_string();
            match metadata(&kafka, &ClientSecurity::plaintext()).await {
                Ok(answer) => fail(format!("node {id} answered a plaintext client at {kafka}: {answer:?}")),
                Err(e) => refused("plaintext", e),
            }
            match metadata(&kafka, &secured.client(None)).await {
                Ok(answer) => {
                    fail(format!("node {id} answered a TLS client that did not authenticate at {kafka}: {answer:?}"))
                }
                Err(e) => refused("TLS without SASL", e),
            }
            match connect_with(&kafka, &secured.client(Some((CLIENT.0, "not-the-password")))).await {
                Ok(_) => fail(format!("node {id} authenticated {} with a wrong password at {kafka}", CLIENT.0)),
                Err(e) if !e.contains("authentication failed") => {
                    fail(format!("node {id} refused a wrong password at {kafka} otherwise than expected: {e}"))
                }
                Err(e) => refused("a wrong password", e),
            }
            let outsider = metadata(&kafka, &secured.client(Some(OUTSIDER)))
                .await
                .unwrap_or_else(|e| fail(format!("node {id} did not answer an authenticated user at {kafka}: {e}")));
            let code = outsider.topics.first().map(|t| t.error_code);
            if code != Some(ResponseError::TopicAuthorizationFailed.code()) {
                fail(format!(
                    "node {id} showed {TOPIC} to {} (no ACLs) with error code {code:?}, not \
                     TOPIC_AUTHORIZATION_FAILED: is the authorizer on?",
                    OUTSIDER.0
                ));
            }
            let quorum = node.controller_addr().to_string();
            if let Err(e) = connect_with(&quorum, &secured.quorum_client()).await {
                fail(format!("node {id}'s quorum listener at {quorum} did not complete a TLS handshake: {e}"));
            }
            match quorum_exchange(&quorum, &secured.client(None)).await {
                Ok(()) => {
                    fail(format!("node {id}'s quorum listener at {quorum} served a client without a certificate"))
                }
                Err(e) if !e.to_ascii_lowercase().contains("certificate") => fail(format!(
                    "node {id}'s quorum listener at {quorum} failed a client without a certificate otherwise than \
                     expected: {e}"
                )),
                Err(e) => refused("a quorum client without a certificate", e),
            }
        }
        format!(
            "all {} nodes refused plaintext, unauthenticated and wrong-password clients, showed {TOPIC} to no \
             outsider, and speak TLS demanding client certificates on the quorum (the first refusals: {})",
            proxies.len(),
            refusals.join("; ")
        )
    }
}

impl Secured {
    /// Client properties: TLS trusting the cluster's CA, and SCRAM as `user` when given.
    fn properties(&self, user: Option<(&str, &str)>) -> BTreeMap<String, String> {
        let mut properties = BTreeMap::from([("ssl.ca.location".to_string(), self.ca.display().to_string())]);
        match user {
            None => {
                properties.insert("security.protocol".to_string(), "ssl".to_string());
            }
            Some((name, password)) => properties.extend([
                ("security.protocol".to_string(), "sasl_ssl".to_string()),
                ("sasl.mechanism".to_string(), MECHANISM.to_string()),
                ("sasl.username".to_string(), name.to_string()),
                ("sasl.password".to_string(), password.to_string()),
            ]),
        }
        properties
    }

    fn client(&self, user: Option<(&str, &str)>) -> ClientSecurity {
        ClientSecurity::from_properties(&self.properties(user)).expect("the chaos client properties")
    }

    /// TLS with the quorum probe's client certificate.
    fn quorum_client(&self) -> ClientSecurity {
        let mut properties = self.properties(None);
        properties.insert("ssl.certificate.location".to_string(), self.quorum_client.0.display().to_string());
        properties.insert("ssl.key.location".to_string(), self.quorum_client.1.display().to_string());
        ClientSecurity::from_properties(&properties).expect("the quorum probe's properties")
    }
}

/// Metadata v12 for the topic from `addr`, connecting with `security`.
async fn metadata(addr: &str, security: &ClientSecurity) -> Result<MetadataResponse, String> {
    let mut conn = connect_with(addr, security).await?;
    conn.set_timeout(PROBE_TIMEOUT);
    let topic = MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))));
    let request = MetadataRequest::default().with_topics(Some(vec![topic])).with_allow_auto_topic_creation(false);
    conn.send(&request, 12).await.map_err(|e| e.to_string())
}

/// Connects to a quorum listener with `security` and exchanges one frame (a Kafka request,
/// which a quorum member does not answer): where TLS 1.3 completes the client's side of the
/// handshake before the server has judged the client's certificate, the refusal arrives here.
async fn quorum_exchange(addr: &str, security: &ClientSecurity) -> Result<(), String> {
    let mut conn = connect_with(addr, security).await?;
    conn.set_timeout(PROBE_TIMEOUT);
    let request = MetadataRequest::default().with_topics(Some(Vec::new()));
    conn.send(&request, 12).await.map(|_| ()).map_err(|e| e.to_string())
}
