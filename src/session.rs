//! Who is on the other end of a connection: the [`Session`] that `net` creates when it accepts
//! a connection and that every request handler sees (Kafka's `RequestChannel.Session`).
//!
//! It lives outside `net` because `protocol` reads it and `net` calls `protocol`: with the type
//! in `net`, the two modules would import each other.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use crate::config::{Listener, SecurityProtocol};

/// An authenticated identity, in Kafka's `Type:name` form (`User:alice`), as `KafkaPrincipal`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    principal_type: Cow<'static, str>,
    name: Cow<'static, str>,
}

impl Principal {
    /// Kafka's principal type of users.
    pub const USER_TYPE: &'static str = "User";

    /// `User:ANONYMOUS`: every client of a PLAINTEXT listener, as in Kafka.
    pub const ANONYMOUS: Principal = Principal { principal_type: Cow::Borrowed(Self::USER_TYPE), name: Cow::Borrowed("ANONYMOUS") };

    /// A principal of any type.
    pub fn new(principal_type: impl Into<String>, name: impl Into<String>) -> Principal {
        Principal { principal_type: Cow::Owned(principal_type.into()), name: Cow::Owned(name.into()) }
    }

    /// `User:<name>`.
    pub fn user(name: impl Into<String>) -> Principal {
        Principal { principal_type: Cow::Borrowed(Self::USER_TYPE), name: Cow::Owned(name.into()) }
    }

    /// The type (`User`).
    pub fn principal_type(&self) -> &str {
        &self.principal_type
    }

    /// The name within the type.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// A principal string that is not `Type:name`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("principal {0:?} is not Type:name")]
pub struct PrincipalParseError(pub String);

impl FromStr for Principal {
    type Err = PrincipalParseError;

    /// Kafka's `SecurityUtils.parseKafkaPrincipal`: split at the first `:`, neither side empty.
    fn from_str(text: &str) -> Result<Principal, PrincipalParseError> {
        match text.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(Principal::new(kind, name)),
            _ => Err(PrincipalParseError(text.to_string())),
        }
    }
}

/// One connection's identity and origin, fixed when it is accepted. Shared by the connection's
/// requests (an `Rc` each: no allocation per request).
#[derive(Debug, Clone)]
pub struct Session {
    /// Who the client is (`User:ANONYMOUS` on PLAINTEXT).
    pub principal: Principal,
    /// The listener the connection arrived on: its name, protocol and advertised endpoint.
    pub listener: Arc<Listener>,
    /// The client's socket address.
    pub peer: SocketAddr,
    /// The client's host as Kafka describes group members: `/<ip>`.
    pub client_host: String,
}

impl Session {
    /// The session of a connection from `peer` on `listener`, as `principal`.
    pub fn new(principal: Principal, listener: Arc<Listener>, peer: SocketAddr) -> Session {
        Session { principal, listener, peer, client_host: format!("/{}", peer.ip()) }
    }

    /// The session of an unauthenticated connection (`User:ANONYMOUS`).
    pub fn anonymous(listener: Arc<Listener>, peer: SocketAddr) -> Session {
        Session::new(Principal::ANONYMOUS, listener, peer)
    }

    /// The listener's name (`PLAINTEXT`, `INTERNAL`, ...).
    pub fn listener_name(&self) -> &str {
        &self.listener.name
    }

    /// The listener's security protocol.
    pub fn security_protocol(&self) -> SecurityProtocol {
        self.listener.security_protocol
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_use_kafkas_form() {
        assert_eq!(Principal::ANONYMOUS.to_string(), "User:ANONYMOUS");
        assert_eq!(Principal::user("alice").to_string(), "User:alice");
        let parsed: Principal = "User:CN=broker,O=example:1".parse().unwrap();
        assert_eq!((parsed.principal_type(), parsed.name()), ("User", "CN=broker,O=example:1"), "split at the first ':'");
        assert_eq!("User:ANONYMOUS".parse::<Principal>().unwrap(), Principal::ANONYMOUS);
        for bad in ["alice", ":alice", "User:", ""] {
            assert!(bad.parse::<Principal>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_session_knows_its_listener_and_client() {
        let listener = crate::config::ListenerConfig::plaintext("127.0.0.1:9092".parse().unwrap()).resolve().unwrap().remove(0);
        let session = Session::anonymous(Arc::new(listener), "10.1.2.3:45678".parse().unwrap());
        assert_eq!(session.principal, Principal::ANONYMOUS);
        assert_eq!(session.listener_name(), "PLAINTEXT");
        assert_eq!(session.security_protocol(), SecurityProtocol::Plaintext);
        assert_eq!(session.client_host, "/10.1.2.3");
        let v6 = Session::anonymous(Arc::clone(&session.listener), "[::1]:5".parse().unwrap());
        assert_eq!(v6.client_host, "/::1");
    }
}
