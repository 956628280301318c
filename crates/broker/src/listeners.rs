//! Kafka's listener settings, parsed and resolved. Pure: no sockets are opened here.
//!
//! `listeners` names where the node accepts clients (`NAME://host:port`, several per node),
//! `listener.security.protocol.map` gives each name its security protocol (by default a
//! name that is itself a protocol maps to that protocol), `advertised.listeners` what
//! clients are told per name (by default the listener's own address), and
//! `inter.broker.listener.name` which listener replicas use to reach each other (by default
//! the first). A plain `host:port` (`--listen`) is the one-listener shorthand for
//! `PLAINTEXT://host:port`.
//!
//! Invariants of a [`Listeners`] value: at least one listener; names are unique (compared
//! upper-cased, as Kafka normalises them) and so are bind addresses; every listener has a
//! security protocol; every advertised name is a listener; the inter-broker listener
//! exists; no advertised host is the unspecified address.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use crate::config::ConfigError;

/// How a listener secures its connections (Kafka's `SecurityProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    /// Whether connections are wrapped in TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients must authenticate with SASL before any other request.
    pub fn uses_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A listener's name, upper-cased (Kafka compares them case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerName(String);

impl ListenerName {
    pub fn new(name: &str) -> Self {
        ListenerName(name.trim().to_ascii_uppercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ListenerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `NAME://host:port` entry; an empty host means every interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: ListenerName,
    pub host: String,
    pub port: u16,
}

/// A listener as the node runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: ListenerName,
    pub protocol: SecurityProtocol,
    /// Where it binds (port 0: any free port, replaced once bound).
    pub bind: SocketAddr,
    /// What clients connected to this listener are told about this node.
    pub advertised: (String, u16),
}

/// Every listener of the node and which one replicas use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    pub all: Vec<Listener>,
    pub inter_broker: ListenerName,
}

impl Listeners {
    pub fn get(&self, name: &ListenerName) -> Option<&Listener> {
        self.all.iter().find(|l| &l.name == name)
    }

    /// The listener replicas connect through.
    pub fn inter_broker(&self) -> &Listener {
        self.get(&self.inter_broker).expect("the inter-broker listener exists (checked when resolved)")
    }

    /// Records the address a listener actually bound (a port 0 becomes the chosen port,
    /// in the advertised address too when it was not given).
    pub fn bound(&mut self, name: &ListenerName, addr: SocketAddr) {
        if let Some(listener) = self.all.iter_mut().find(|l| &l.name == name) {
            if listener.advertised.1 == 0 {
                listener.advertised.1 = addr.port();
            }
            listener.bind = addr;
        }
    }
}

/// The raw settings, as `set` receives them one by one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerSettings {
    pub listeners: Vec<Endpoint>,
    pub advertised: Vec<Endpoint>,
    pub protocol_map: BTreeMap<ListenerName, SecurityProtocol>,
    pub inter_broker: Option<ListenerName>,
}

/// A per-listener setting: `listener.name.<name>.<key>` when given, else the plain `key`
/// (Kafka's rule); an empty value counts as absent.
pub fn listener_setting<'a>(
    settings: &'a BTreeMap<String, String>,
    listener: &ListenerName,
    key: &str,
) -> Option<&'a str> {
    listener_setting_raw(settings, listener, key).filter(|v| !v.is_empty())
}

/// Like [`listener_setting`], but an empty value is returned as given (for settings where
/// empty means something, such as `ssl.endpoint.identification.algorithm`).
pub fn listener_setting_raw<'a>(
    settings: &'a BTreeMap<String, String>,
    listener: &ListenerName,
    key: &str,
) -> Option<&'a str> {
    let specific = format!("listener.name.{}.{key}", listener.as_str().to_ascii_lowercase());
    settings.get(&specific).or_else(|| settings.get(key)).map(|v| v.trim())
}

fn invalid(key: &str, value: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), value: value.into(), why: why.into() }
}

/// Parses a `listeners` / `advertised.listeners` value: comma-separated `NAME://host:port`,
/// or one plain `host:port` meaning `PLAINTEXT://host:port`. IPv6 hosts are bracketed.
pub fn parse_endpoints(key: &str, value: &str) -> Result<Vec<Endpoint>, ConfigError> {
    let mut endpoints: Vec<Endpoint> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, address) = entry.split_once("://").unwrap_or(("PLAINTEXT", entry));
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(invalid(key, value, format!("bad listener name '{name}'")));
        }
        let (host, port) = address.rsplit_once(':').ok_or_else(|| invalid(key, value, "expected NAME://HOST:PORT"))?;
        let port = port.parse::<u16>().map_err(|_| invalid(key, value, format!("bad port in '{entry}'")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let endpoint = Endpoint { name: ListenerName::new(name), host, port };
        if endpoints.iter().any(|e| e.name == endpoint.name) {
            return Err(invalid(key, value, format!("listener name {} given twice", endpoint.name)));
        }
        endpoints.push(endpoint);
    }
    if endpoints.is_empty() {
        return Err(invalid(key, value, "no listener given"));
    }
    Ok(endpoints)
}

/// Parses `listener.security.protocol.map`: comma-separated `NAME:PROTOCOL`.
pub fn parse_protocol_map(key: &str, value: &str) -> Result<BTreeMap<ListenerName, SecurityProtocol>, ConfigError> {
    let mut map = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry.split_once(':').ok_or_else(|| invalid(key, value, "expected NAME:PROTOCOL"))?;
        let protocol = SecurityProtocol::parse(protocol)
            .ok_or_else(|| invalid(key, value, format!("unknown security protocol '{protocol}'")))?;
        if map.insert(ListenerName::new(name), protocol).is_some() {
            return Err(invalid(key, value, format!("listener {name} mapped twice")));
        }
    }
    Ok(map)
}

impl ListenerSettings {
    /// The protocol of listener `name`: from the map, else the name itself when it names a
    /// protocol (Kafka's default map maps each protocol name to itself).
    pub fn protocol_of(&self, name: &ListenerName) -> Option<SecurityProtocol> {
        self.protocol_map.get(name).copied().or_else(|| SecurityProtocol::parse(name.as_str()))
    }

    /// Checks the settings together and resolves bind addresses (host names are looked up
    /// once, here) and advertised addresses. `default` is used when no listener was set.
    pub fn resolve(&self, default: &[Endpoint]) -> Result<Listeners, ConfigError> {
        let endpoints = if self.listeners.is_empty() { default } else { &self.listeners[..] };
        let mut all = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let protocol = self.protocol_of(&endpoint.name).ok_or_else(|| {
                invalid(
                    "listener.security.protocol.map",
                    &endpoint.name.0,
                    format!("no security protocol for listener {}", endpoint.name),
                )
            })?;
            let bind = bind_address(endpoint)?;
            if all.iter().any(|l: &Listener| l.bind.port() != 0 && l.bind == bind) {
                return Err(invalid("listeners", &endpoint.name.0, format!("two listeners bind {bind}")));
            }
            let advertised = match self.advertised.iter().find(|a| a.name == endpoint.name) {
                Some(a) => (a.host.clone(), a.port),
                None => (advertised_host(&endpoint.host, bind.ip()), bind.port()),
            };
            if advertised.0.is_empty() || advertised.0.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
                return Err(invalid(
                    "advertised.listeners",
                    &advertised.0,
                    "clients cannot connect to the unspecified address; advertise a reachable host",
                ));
            }
            all.push(Listener { name: endpoint.name.clone(), protocol, bind, advertised });
        }
        if let Some(unknown) = self.advertised.iter().find(|a| !all.iter().any(|l| l.name == a.name)) {
            return Err(invalid("advertised.listeners", &unknown.name.0, "names no listener in `listeners`"));
        }
        let inter_broker = match &self.inter_broker {
            Some(name) if all.iter().any(|l| &l.name == name) => name.clone(),
            Some(name) => return Err(invalid("inter.broker.listener.name", &name.0, "names no listener")),
            None => all[0].name.clone(),
        };
        Ok(Listeners { all, inter_broker })
    }
}

/// The socket address a listener binds: its host looked up (IPv4 preferred), every
/// interface when the host is empty.
fn bind_address(endpoint: &Endpoint) -> Result<SocketAddr, ConfigError> {
    if endpoint.host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), endpoint.port));
    }
    let text = format!("{}:{}", endpoint.host, endpoint.port);
    let bracketed = format!("[{}]:{}", endpoint.host, endpoint.port);
    let lookup = if endpoint.host.contains(':') { bracketed } else { text };
    let addrs: Vec<SocketAddr> = lookup
        .to_socket_addrs()
        .map_err(|e| invalid("listeners", &endpoint.host, format!("cannot resolve host: {e}")))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| invalid("listeners", &endpoint.host, "host resolves to no address"))
}

/// What to advertise for a listener without an advertised entry: its host as given, or
/// for every interface this machine's host name (Kafka advertises the canonical host name).
fn advertised_host(host: &str, bound: IpAddr) -> String {
    if !host.is_empty() && !bound.is_unspecified() {
        return host.to_string();
    }
    local_host_name().unwrap_or_else(|| "localhost".to_string())
}

fn local_host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()).filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(listeners: &str) -> ListenerSettings {
        ListenerSettings { listeners: parse_endpoints("listeners", listeners).unwrap(), ..Default::default() }
    }

    #[test]
    fn a_plain_address_is_one_plaintext_listener() {
        let resolved = settings("127.0.0.1:9092").resolve(&[]).unwrap();
        assert_eq!(resolved.all.len(), 1);
        let only = &resolved.all[0];
        assert_eq!((only.name.as_str(), only.protocol), ("PLAINTEXT", SecurityProtocol::Plaintext));
        assert_eq!(only.bind, "127.0.0.1:9092".parse().unwrap());
        assert_eq!(only.advertised, ("127.0.0.1".to_string(), 9092));
        assert_eq!(resolved.inter_broker.as_str(), "PLAINTEXT");
    }

    #[test]
    fn several_listeners_with_a_map_advertised_addresses_and_an_inter_broker_choice() {
        let mut s = settings("plaintext://127.0.0.1:9092,INTERNAL://127.0.0.1:9094, SSL://127.0.0.1:9093");
        s.protocol_map = parse_protocol_map("map", "INTERNAL:SASL_SSL,PLAINTEXT:PLAINTEXT").unwrap();
        s.advertised = parse_endpoints("advertised.listeners", "SSL://broker.example:19093").unwrap();
        s.inter_broker = Some(ListenerName::new("internal"));
        let resolved = s.resolve(&[]).unwrap();
        let protocols: Vec<_> = resolved.all.iter().map(|l| (l.name.as_str(), l.protocol)).collect();
        assert_eq!(
            protocols,
            vec![
                ("PLAINTEXT", SecurityProtocol::Plaintext),
                ("INTERNAL", SecurityProtocol::SaslSsl),
                ("SSL", SecurityProtocol::Ssl)
            ]
        );
        assert_eq!(resolved.get(&ListenerName::new("ssl")).unwrap().advertised, ("broker.example".to_string(), 19093));
        assert_eq!(resolved.inter_broker().protocol, SecurityProtocol::SaslSsl);
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        let refused = |s: ListenerSettings| s.resolve(&[]).unwrap_err().to_string();
        assert!(refused(settings("CUSTOM://127.0.0.1:1")).contains("no security protocol"));
        assert!(refused(settings("PLAINTEXT://127.0.0.1:7,SSL://127.0.0.1:7")).contains("two listeners bind"));
        let mut unknown = settings("PLAINTEXT://127.0.0.1:1");
        unknown.advertised = parse_endpoints("a", "SSL://h:1").unwrap();
        assert!(refused(unknown).contains("names no listener"));
        let mut inter = settings("PLAINTEXT://127.0.0.1:1");
        inter.inter_broker = Some(ListenerName::new("SSL"));
        assert!(refused(inter).contains("names no listener"));
        let mut unspecified = settings("PLAINTEXT://0.0.0.0:1");
        unspecified.advertised = parse_endpoints("a", "PLAINTEXT://0.0.0.0:1").unwrap();
        assert!(refused(unspecified).contains("unspecified"));
        for bad in ["", "PLAINTEXT://nohost", "PLAINTEXT://h:x", "A://h:1,a://h:2", "b@d://h:1"] {
            assert!(parse_endpoints("listeners", bad).is_err(), "{bad:?} must be refused");
        }
        assert!(parse_protocol_map("m", "A:TLS").is_err());
    }

    #[test]
    fn every_interface_advertises_the_host_name_and_port_zero_takes_the_bound_port() {
        let mut resolved = settings("PLAINTEXT://:0").resolve(&[]).unwrap();
        assert!(resolved.all[0].bind.ip().is_unspecified());
        assert!(!resolved.all[0].advertised.0.is_empty() && resolved.all[0].advertised.0 != "0.0.0.0");
        resolved.bound(&ListenerName::new("PLAINTEXT"), "0.0.0.0:4242".parse().unwrap());
        assert_eq!(resolved.all[0].advertised.1, 4242);
    }
}
