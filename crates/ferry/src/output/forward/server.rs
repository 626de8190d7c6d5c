//! One server of the forward output (`<server>`, a static discovery's `<service>`, or a
//! discovered entry): its parameters and how a section is read into them.

use crate::tls::client::{self as tls, TlsOptions};
use ferry_config::Section;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// A secret from the configuration: shown as `<secret>` in debug output.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// `<server>`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// `name`, or `host:port`: how log lines and metrics name the server.
    pub name: String,
    pub weight: u32,
    pub standby: bool,
    pub shared_key: Option<Secret>,
    pub username: String,
    pub password: Secret,
    /// The TLS client for this server (`transport tls`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl ServerConfig {
    /// `host` as an IP address when it is one: such a server never needs DNS.
    pub fn ip(&self) -> Option<IpAddr> {
        tls::host_ip(&self.host)
    }

    /// The same server as far as service discovery can tell: every parameter equal (the TLS
    /// client is built from them).
    pub fn same_server(&self, other: &Self) -> bool {
        self.host == other.host
            && self.port == other.port
            && self.name == other.name
            && self.weight == other.weight
            && self.standby == other.standby
            && self.shared_key == other.shared_key
            && self.username == other.username
            && self.password == other.password
    }

    /// `<server> name` when it was configured (not the default `host:port`).
    pub fn configured_name(&self) -> Option<&str> {
        (self.name != format!("{}:{}", self.host, self.port)).then_some(self.name.as_str())
    }
}

/// A `<server>` (or a static discovery's `<service>`).
pub fn read_server(s: &Section<'_>, tls: Option<&TlsOptions>) -> Option<ServerConfig> {
    let host = s.required_str("host")?;
    let port = s.u64_or("port", 24224);
    let Ok(port) = u16::try_from(port) else {
        s.error(
            Some("port"),
            format!("port {port} is out of range (1-65535)"),
        );
        return None;
    };
    let weight = s.u64_or("weight", 60);
    let weight = u32::try_from(weight).unwrap_or_else(|_| {
        s.error(Some("weight"), "weight is too large");
        60
    });
    let name = s.str("name").unwrap_or_else(|| format!("{host}:{port}"));
    let mut server = ServerConfig {
        host,
        port,
        name,
        weight,
        standby: s.bool_or("standby", false),
        shared_key: s.str("shared_key").map(Secret),
        username: s.str_or("username", ""),
        password: Secret(s.str_or("password", "")),
        tls: None,
    };
    if let Some(options) = tls {
        match tls::client_config(options, &server.host, server.configured_name()) {
            Ok(c) => server.tls = Some(c),
            Err(e) => {
                s.error(None, format!("server {}: {e}", server.name));
                return None;
            }
        }
    }
    Some(server)
}
