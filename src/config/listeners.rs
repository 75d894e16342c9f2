//! Kafka's listener table: `listeners`, `advertised.listeners` and `listener.security.protocol.map`.
//!
//! ```text
//!  listeners                      = PLAINTEXT://127.0.0.1:9092,INTERNAL://10.0.0.5:9093
//!  advertised.listeners           = PLAINTEXT://broker.example:9092          (INTERNAL: its own address)
//!  listener.security.protocol.map = INTERNAL:PLAINTEXT,PLAINTEXT:PLAINTEXT,...
//! ```
//! The keys are kept as given ([`ListenerConfig`]) because they may come in any order (a TOML
//! file's keys arrive sorted, flags come last); [`ListenerConfig::resolve`] turns them into the
//! [`Listener`]s a broker binds, once, at start-up. A name is compared upper-cased, as Kafka's
//! `ListenerName.normalised` does.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// Kafka's default `listener.security.protocol.map`.
pub const DEFAULT_SECURITY_PROTOCOL_MAP: &str = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

/// The name of the listener that today's single-address keys (`listen`, `--listen`) describe.
pub const PLAINTEXT_LISTENER: &str = "PLAINTEXT";

/// A security protocol, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL authentication without TLS.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name of the protocol.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether this broker can serve a listener of this protocol yet (only PLAINTEXT).
    pub fn is_served(self) -> bool {
        self == SecurityProtocol::Plaintext
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SecurityProtocol {
    type Err = String;

    /// Kafka's `SecurityProtocol.forName`, which upper-cases first.
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            _ => Err(format!("{text:?} is not a security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)")),
        }
    }
}

/// One `NAME://host:port` entry of `listeners` or `advertised.listeners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The listener's name, upper-cased.
    pub listener: String,
    /// The host as written, without IPv6 brackets; empty means every interface.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl Endpoint {
    /// The endpoint of a socket address on listener `name`.
    pub fn of_addr(name: &str, addr: SocketAddr) -> Endpoint {
        Endpoint { listener: name.to_ascii_uppercase(), host: addr.ip().to_string(), port: addr.port() }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.listener, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.listener, self.host, self.port)
        }
    }
}

/// The three listener keys as configured, before [`ListenerConfig::resolve`] checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// `listeners`: never empty. An entry without `NAME://` is a PLAINTEXT listener.
    pub listeners: Vec<Endpoint>,
    /// `advertised.listeners` entries with a name; a listener without one advertises its own address.
    pub advertised: Vec<Endpoint>,
    /// An `advertised.listeners` entry without `NAME://` (today's `--advertised-listener
    /// host:port`): the first listener's advertised host and port.
    pub advertised_unnamed: Option<(String, u16)>,
    /// `listener.security.protocol.map`: listener name to protocol.
    pub protocol_map: BTreeMap<String, SecurityProtocol>,
}

/// A listener ready to bind: its name, protocol, bind address and advertised endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The listener's name (upper-cased), as in `listeners`.
    pub name: String,
    /// Its protocol, from `listener.security.protocol.map`.
    pub security_protocol: SecurityProtocol,
    /// Where each shard binds it.
    pub bind: SocketAddr,
    /// The host clients that arrive on this listener are told to connect to.
    pub advertised_host: String,
    /// The port clients that arrive on this listener are told to connect to.
    pub advertised_port: u16,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.name, self.bind)
    }
}

/// Why the listener table cannot be served. Each names the listener at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListenerError {
    /// The listener's protocol is one Ringlog does not serve yet.
    #[error("listener {listener}: security protocol {protocol} is not supported yet (only PLAINTEXT listeners are served)")]
    UnsupportedProtocol {
        /// The listener.
        listener: String,
        /// Its protocol.
        protocol: SecurityProtocol,
    },
    /// The listener's name is not in `listener.security.protocol.map`.
    #[error("listener {listener}: no security protocol for this name in listener.security.protocol.map")]
    UnmappedName {
        /// The listener.
        listener: String,
    },
    /// Two entries of `listeners` have the same name.
    #[error("listener {listener}: the name appears twice in listeners")]
    DuplicateName {
        /// The listener.
        listener: String,
    },
    /// Two listeners would bind the same port (SO_REUSEPORT would let them split its clients).
    #[error("listener {listener}: {bind} overlaps listener {other}'s address")]
    SharedPort {
        /// The listener.
        listener: String,
        /// Its bind address.
        bind: SocketAddr,
        /// The listener it collides with.
        other: String,
    },
    /// An `advertised.listeners` name has no listener.
    #[error("advertised listener {listener}: no listener of that name in listeners")]
    UnknownAdvertised {
        /// The advertised entry's name.
        listener: String,
    },
    /// The listener's host does not resolve to an address.
    #[error("listener {listener}: cannot resolve host {host:?}: {reason}")]
    Unresolved {
        /// The listener.
        listener: String,
        /// Its host.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// The listener would advertise 0.0.0.0, which no client can connect to. Kafka refuses it
    /// too ("advertised.listeners cannot use the nonroutable meta-address 0.0.0.0").
    #[error("listener {listener}: advertised.listeners cannot use the nonroutable meta-address 0.0.0.0; advertise a routable host")]
    NonRoutableAdvertised {
        /// The listener.
        listener: String,
    },
}

impl ListenerConfig {
    /// One PLAINTEXT listener on `addr`, advertised as itself, and Kafka's default protocol map.
    pub fn plaintext(addr: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            listeners: vec![Endpoint::of_addr(PLAINTEXT_LISTENER, addr)],
            advertised: Vec::new(),
            advertised_unnamed: None,
            // The default map parses: tested below.
            protocol_map: parse_protocol_map(DEFAULT_SECURITY_PROTOCOL_MAP).unwrap_or_default(),
        }
    }

    /// Moves the first listener to `addr` (`--listen`, the `listen` key), keeping its name.
    pub fn set_first_address(&mut self, addr: SocketAddr) {
        let name = self.listeners.first().map_or(PLAINTEXT_LISTENER.to_string(), |l| l.listener.clone());
        let endpoint = Endpoint::of_addr(&name, addr);
        match self.listeners.first_mut() {
            Some(first) => *first = endpoint,
            None => self.listeners.push(endpoint),
        }
    }

    /// Sets `listeners`: a comma list of `NAME://host:port` (a bare `host:port` is PLAINTEXT).
    pub fn set_listeners(&mut self, value: &str) -> Result<(), String> {
        let mut listeners = Vec::new();
        for entry in entries(value) {
            let (name, host, port) = parse_entry(entry)?;
            listeners.push(Endpoint { listener: name.unwrap_or_else(|| PLAINTEXT_LISTENER.to_string()), host, port });
        }
        if listeners.is_empty() {
            return Err("at least one listener is needed".into());
        }
        self.listeners = listeners;
        Ok(())
    }

    /// Sets `advertised.listeners`: a comma list of `NAME://host:port`; a bare `host:port` is
    /// the first listener's.
    pub fn set_advertised(&mut self, value: &str) -> Result<(), String> {
        let (mut advertised, mut unnamed) = (Vec::new(), None);
        for entry in entries(value) {
            match parse_entry(entry)? {
                (Some(name), _, _) if advertised.iter().any(|a: &Endpoint| a.listener == name) => {
                    return Err(format!("advertised listener {name} appears twice"));
                }
                (Some(name), host, port) => advertised.push(Endpoint { listener: name, host, port }),
                (None, _, _) if unnamed.is_some() => return Err("only one entry may go without NAME://".into()),
                (None, host, port) => unnamed = Some((host, port)),
            }
        }
        (self.advertised, self.advertised_unnamed) = (advertised, unnamed);
        Ok(())
    }

    /// Sets `listener.security.protocol.map`.
    pub fn set_protocol_map(&mut self, value: &str) -> Result<(), String> {
        self.protocol_map = parse_protocol_map(value)?;
        Ok(())
    }

    /// Checks the table and resolves each listener's protocol, bind address and advertised
    /// endpoint. Fails on the first listener that cannot be served.
    pub fn resolve(&self) -> Result<Vec<Listener>, ListenerError> {
        let mut resolved: Vec<Listener> = Vec::with_capacity(self.listeners.len());
        for (i, endpoint) in self.listeners.iter().enumerate() {
            let name = &endpoint.listener;
            if resolved.iter().any(|l| &l.name == name) {
                return Err(ListenerError::DuplicateName { listener: name.clone() });
            }
            let protocol = *self
                .protocol_map
                .get(name)
                .ok_or_else(|| ListenerError::UnmappedName { listener: name.clone() })?;
            if !protocol.is_served() {
                return Err(ListenerError::UnsupportedProtocol { listener: name.clone(), protocol });
            }
            let bind = bind_address(endpoint)?;
            if let Some(other) = resolved.iter().find(|l| overlaps(l.bind, bind)) {
                return Err(ListenerError::SharedPort { listener: name.clone(), bind, other: other.name.clone() });
            }
            let named = self.advertised.iter().find(|a| &a.listener == name).map(|a| (a.host.clone(), a.port));
            let unnamed = self.advertised_unnamed.clone().filter(|_| i == 0);
            // As Kafka: a listener without an advertised entry advertises its own address, and
            // one bound to every interface by an empty host advertises the machine's name.
            let own = || {
                let host = if endpoint.host.is_empty() { machine_host_name(bind) } else { endpoint.host.clone() };
                (host, endpoint.port)
            };
            let (advertised_host, advertised_port) = named.or(unnamed).unwrap_or_else(own);
            if advertised_host == "0.0.0.0" {
                return Err(ListenerError::NonRoutableAdvertised { listener: name.clone() });
            }
            resolved.push(Listener { name: name.clone(), security_protocol: protocol, bind, advertised_host, advertised_port });
        }
        if let Some(stray) = self.advertised.iter().find(|a| !resolved.iter().any(|l| l.name == a.listener)) {
            return Err(ListenerError::UnknownAdvertised { listener: stray.listener.clone() });
        }
        Ok(resolved)
    }
}

/// This machine's host name (gethostname), what Kafka advertises for a listener with an empty
/// host; the bind address when there is none.
fn machine_host_name(bind: SocketAddr) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 { buf.split(|b| *b == 0).next().map(|n| String::from_utf8_lossy(n).into_owned()) } else { None };
    name.filter(|n| !n.is_empty()).unwrap_or_else(|| bind.ip().to_string())
}

/// The non-empty, trimmed entries of a comma list.
fn entries(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// Parses `NAME://host:port` or `host:port` into (upper-cased name, host, port). IPv6 hosts are
/// written in brackets, which are dropped.
fn parse_entry(entry: &str) -> Result<(Option<String>, String, u16), String> {
    let (name, address) = match entry.split_once("://") {
        Some((name, address)) if !name.is_empty() => (Some(name.to_ascii_uppercase()), address),
        Some(_) => return Err(format!("{entry:?}: empty listener name")),
        None => (None, entry),
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(|| format!("{entry:?}: want NAME://host:port"))?;
    let port = port.parse().map_err(|_| format!("{entry:?}: {port:?} is not a port"))?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.contains(':') && !address.starts_with('[') {
        return Err(format!("{entry:?}: write an IPv6 host in brackets"));
    }
    Ok((name, host.to_string(), port))
}

/// Parses `NAME:PROTOCOL,...`.
fn parse_protocol_map(value: &str) -> Result<BTreeMap<String, SecurityProtocol>, String> {
    let mut map = BTreeMap::new();
    for entry in entries(value) {
        let (name, protocol) = entry.split_once(':').ok_or_else(|| format!("{entry:?}: want NAME:PROTOCOL"))?;
        let name = name.trim().to_ascii_uppercase();
        if name.is_empty() {
            return Err(format!("{entry:?}: empty listener name"));
        }
        if map.insert(name, protocol.parse()?).is_some() {
            return Err(format!("{entry:?}: the name appears twice"));
        }
    }
    Ok(map)
}

/// Where a listener binds: an empty host is every interface, a name is resolved.
fn bind_address(endpoint: &Endpoint) -> Result<SocketAddr, ListenerError> {
    if endpoint.host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), endpoint.port));
    }
    if let Ok(ip) = endpoint.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, endpoint.port));
    }
    let unresolved = |reason: String| ListenerError::Unresolved {
        listener: endpoint.listener.clone(),
        host: endpoint.host.clone(),
        reason,
    };
    let mut addrs = (endpoint.host.as_str(), endpoint.port).to_socket_addrs().map_err(|e| unresolved(e.to_string()))?;
    addrs.next().ok_or_else(|| unresolved("no address".into()))
}

/// Whether two bind addresses take the same port on some interface.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.port() != 0 && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(listeners: &str) -> ListenerConfig {
        let mut cfg = ListenerConfig::plaintext("127.0.0.1:9092".parse().unwrap());
        cfg.set_listeners(listeners).unwrap();
        cfg
    }

    #[test]
    fn the_default_is_one_plaintext_listener_advertised_as_itself() {
        let cfg = ListenerConfig::plaintext("127.0.0.1:9092".parse().unwrap());
        assert_eq!(cfg.protocol_map.len(), 4, "Kafka's default map parses whole");
        assert_eq!(cfg.protocol_map.get("SASL_SSL"), Some(&SecurityProtocol::SaslSsl));
        let resolved = cfg.resolve().unwrap();
        assert_eq!(
            resolved,
            vec![Listener {
                name: "PLAINTEXT".into(),
                security_protocol: SecurityProtocol::Plaintext,
                bind: "127.0.0.1:9092".parse().unwrap(),
                advertised_host: "127.0.0.1".into(),
                advertised_port: 9092,
            }]
        );
        assert_eq!(resolved[0].to_string(), "PLAINTEXT://127.0.0.1:9092");
    }

    #[test]
    fn each_listener_advertises_its_own_entry_or_its_own_address() {
        let mut cfg = table("PLAINTEXT://127.0.0.1:9092, internal://127.0.0.1:9093");
        cfg.set_protocol_map("INTERNAL:PLAINTEXT,PLAINTEXT:PLAINTEXT").unwrap();
        cfg.set_advertised("INTERNAL://broker-internal:19093").unwrap();
        let resolved = cfg.resolve().unwrap();
        assert_eq!(resolved.len(), 2);
        assert_eq!(resolved[1].name, "INTERNAL", "names are upper-cased, as Kafka's ListenerName.normalised");
        assert_eq!(resolved[1].bind, "127.0.0.1:9093".parse().unwrap());
        assert_eq!((resolved[1].advertised_host.as_str(), resolved[1].advertised_port), ("broker-internal", 19093));
        assert_eq!((resolved[0].advertised_host.as_str(), resolved[0].advertised_port), ("127.0.0.1", 9092));
        // A bare host:port (today's --advertised-listener) is the first listener's.
        cfg.set_advertised("edge.example:29092").unwrap();
        let resolved = cfg.resolve().unwrap();
        assert_eq!((resolved[0].advertised_host.as_str(), resolved[0].advertised_port), ("edge.example", 29092));
        assert_eq!((resolved[1].advertised_host.as_str(), resolved[1].advertised_port), ("127.0.0.1", 9093));
    }

    #[test]
    fn hosts_empty_ipv6_and_named() {
        let resolved = table("PLAINTEXT://:9092").resolve().unwrap();
        assert_eq!(resolved[0].bind, "0.0.0.0:9092".parse().unwrap(), "an empty host is every interface");
        assert_eq!(resolved[0].advertised_host, machine_host_name(resolved[0].bind), "and advertises the machine's name");
        assert_ne!(resolved[0].advertised_host, "0.0.0.0");
        // 0.0.0.0 written out, or advertised, is refused as Kafka refuses it.
        let mut cfg = table("PLAINTEXT://0.0.0.0:9092");
        assert_eq!(cfg.resolve().unwrap_err(), ListenerError::NonRoutableAdvertised { listener: "PLAINTEXT".into() });
        cfg.set_advertised("PLAINTEXT://broker.example:9092").unwrap();
        assert_eq!(cfg.resolve().unwrap()[0].advertised_host, "broker.example");
        cfg.set_advertised("PLAINTEXT://0.0.0.0:9092").unwrap();
        assert!(matches!(cfg.resolve(), Err(ListenerError::NonRoutableAdvertised { .. })));
        assert!(cfg.set_advertised("PLAINTEXT://a:1,PLAINTEXT://b:2").unwrap_err().contains("twice"));
        let resolved = table("PLAINTEXT://[::1]:9092").resolve().unwrap();
        assert_eq!(resolved[0].bind, "[::1]:9092".parse().unwrap());
        assert_eq!(resolved[0].advertised_host, "::1");
        assert_eq!(table("PLAINTEXT://[::1]:9092").listeners[0].to_string(), "PLAINTEXT://[::1]:9092");
        let resolved = table("PLAINTEXT://localhost:9092").resolve().unwrap();
        assert!(resolved[0].bind.ip().is_loopback(), "{}", resolved[0].bind);
        assert_eq!(resolved[0].advertised_host, "localhost", "the host is advertised as written");
        let bare = table("127.0.0.1:9092");
        assert_eq!(bare.listeners[0].listener, "PLAINTEXT", "a bare address is a PLAINTEXT listener");
    }

    #[test]
    fn first_address_moves_and_keeps_the_name() {
        let mut cfg = table("INTERNAL://127.0.0.1:9093,PLAINTEXT://127.0.0.1:9092");
        cfg.set_first_address("127.0.0.1:7000".parse().unwrap());
        assert_eq!(cfg.listeners[0], Endpoint { listener: "INTERNAL".into(), host: "127.0.0.1".into(), port: 7000 });
        assert_eq!(cfg.listeners[1].port, 9092);
    }

    #[test]
    fn malformed_values_are_refused() {
        let mut cfg = ListenerConfig::plaintext("127.0.0.1:9092".parse().unwrap());
        let before = cfg.clone();
        for bad in ["", " , ", "PLAINTEXT://127.0.0.1", "PLAINTEXT://127.0.0.1:port", "://127.0.0.1:1", "PLAINTEXT://::1:9092", "x:70000"] {
            assert!(cfg.set_listeners(bad).is_err(), "{bad:?}");
        }
        assert!(cfg.set_advertised("a:1,b:2").is_err(), "two entries without a name");
        assert!(cfg.set_protocol_map("PLAINTEXT").is_err());
        assert!(cfg.set_protocol_map("PLAINTEXT:TLS").is_err(), "not a protocol");
        assert!(cfg.set_protocol_map("A:PLAINTEXT,a:SSL").is_err(), "a name twice");
        assert_eq!(cfg, before, "a refused value changes nothing");
        cfg.set_protocol_map("a:plaintext").unwrap();
        assert_eq!(cfg.protocol_map.get("A"), Some(&SecurityProtocol::Plaintext), "both sides are case-insensitive");
    }

    #[test]
    fn only_plaintext_is_served_and_errors_name_the_listener() {
        for (listeners, protocol) in [
            ("SSL://127.0.0.1:9093", SecurityProtocol::Ssl),
            ("SASL_PLAINTEXT://127.0.0.1:9093", SecurityProtocol::SaslPlaintext),
            ("PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9093", SecurityProtocol::SaslSsl),
        ] {
            let err = table(listeners).resolve().unwrap_err();
            let listener = protocol.name().to_string();
            assert_eq!(err, ListenerError::UnsupportedProtocol { listener: listener.clone(), protocol });
            assert!(err.to_string().starts_with(&format!("listener {listener}: security protocol {listener} is not supported")), "{err}");
        }
        let mut mapped = table("SECURE://127.0.0.1:9093");
        mapped.set_protocol_map("SECURE:SSL").unwrap();
        assert_eq!(
            mapped.resolve().unwrap_err(),
            ListenerError::UnsupportedProtocol { listener: "SECURE".into(), protocol: SecurityProtocol::Ssl }
        );
        assert_eq!(
            table("INTERNAL://127.0.0.1:9093").resolve().unwrap_err(),
            ListenerError::UnmappedName { listener: "INTERNAL".into() },
            "the default map has no INTERNAL"
        );
    }

    #[test]
    fn the_table_must_be_consistent() {
        let mut cfg = table("PLAINTEXT://127.0.0.1:9092,plaintext://127.0.0.1:9093");
        assert_eq!(cfg.resolve().unwrap_err(), ListenerError::DuplicateName { listener: "PLAINTEXT".into() });
        cfg.set_listeners("PLAINTEXT://:9092,INTERNAL://127.0.0.1:9092").unwrap();
        cfg.set_protocol_map("PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT").unwrap();
        assert!(matches!(cfg.resolve().unwrap_err(), ListenerError::SharedPort { listener, other, .. } if listener == "INTERNAL" && other == "PLAINTEXT"));
        cfg.set_listeners("PLAINTEXT://127.0.0.1:9092,INTERNAL://127.0.0.2:9092").unwrap();
        assert_eq!(cfg.resolve().unwrap().len(), 2, "the same port on two addresses is fine");
        cfg.set_advertised("EXTERNAL://example:1").unwrap();
        assert_eq!(cfg.resolve().unwrap_err(), ListenerError::UnknownAdvertised { listener: "EXTERNAL".into() });
        cfg.set_listeners("PLAINTEXT://no-such-host.invalid:9092").unwrap();
        cfg.set_advertised("").unwrap();
        assert!(matches!(cfg.resolve().unwrap_err(), ListenerError::Unresolved { listener, .. } if listener == "PLAINTEXT"));
    }
}
