//! `<security>`: the shared key, users and known clients.

use super::Secret;
use ferry_config::Section;
use std::net::IpAddr;

/// `<security>`.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityConfig {
    pub self_hostname: String,
    pub shared_key: Secret,
    pub user_auth: bool,
    pub allow_anonymous_source: bool,
    pub users: Vec<UserConfig>,
    pub clients: Vec<ClientConfig>,
}

/// `<user>` in `<security>`.
#[derive(Debug, Clone, PartialEq)]
pub struct UserConfig {
    pub username: String,
    pub password: Secret,
}

/// `<client>` in `<security>`: a known source, by host name or network.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    pub source: ClientSource,
    /// This client's own shared key (else the `<security>` one).
    pub shared_key: Option<Secret>,
    /// User names this client may authenticate as (else every `<user>`).
    pub users: Option<Vec<String>>,
}

/// Where a `<client>` connects from.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientSource {
    /// `host`: resolved once at start-up.
    Host(String),
    /// `network`: an address or a CIDR block.
    Network(Network),
}

/// An IP network (`10.0.0.0/8`, `::1`, `192.168.1.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Network {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{s}' is not an IP address or network (e.g. 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}' has an invalid prefix length (0-{max})"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    /// True when `ip` is inside this network (IPv4-mapped IPv6 peers match IPv4 networks).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> (u128, u32) {
            match a.to_canonical() {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let (net, net_len) = bits(self.addr);
        let (peer, peer_len) = bits(ip);
        if net_len != peer_len {
            return false;
        }
        // Both are left-aligned in 128 bits, so the prefix is always the top bits.
        let prefix = u32::from(self.prefix).min(net_len);
        if prefix == 0 {
            return true;
        }
        let mask = u128::MAX << (128 - prefix);
        net & mask == peer & mask
    }
}

pub(super) fn read(s: Section<'_>) -> SecurityConfig {
    let self_hostname = s.required_str("self_hostname").unwrap_or_default();
    let shared_key = Secret(s.required_str("shared_key").unwrap_or_default());
    let users: Vec<UserConfig> = s
        .children("user")
        .into_iter()
        .map(|u| {
            let user = UserConfig {
                username: u.required_str("username").unwrap_or_default(),
                password: Secret(u.required_str("password").unwrap_or_default()),
            };
            u.finish();
            user
        })
        .collect();
    let user_auth = s.bool_or("user_auth", false);
    if user_auth && users.is_empty() {
        s.error(
            Some("user_auth"),
            "user_auth true needs at least one <user>",
        );
    }
    let clients = s
        .children("client")
        .into_iter()
        .filter_map(|c| {
            let host = c.str("host");
            let network = c.str("network");
            let source = match (host, network) {
                (Some(_), Some(_)) => {
                    c.error(
                        None,
                        "both of 'host' and 'network' are specified for client",
                    );
                    None
                }
                (None, None) => {
                    c.error(
                        None,
                        "either of 'host' and 'network' must be specified for client",
                    );
                    None
                }
                (Some(h), None) => Some(match Network::parse(&h) {
                    Ok(n) => ClientSource::Network(n),
                    Err(_) => ClientSource::Host(h),
                }),
                (None, Some(n)) => match Network::parse(&n) {
                    Ok(n) => Some(ClientSource::Network(n)),
                    Err(e) => {
                        c.error(Some("network"), e);
                        None
                    }
                },
            };
            let client = source.map(|source| ClientConfig {
                source,
                shared_key: c.str("shared_key").map(Secret),
                users: c.array("users"),
            });
            c.finish();
            client
        })
        .collect();
    let cfg = SecurityConfig {
        self_hostname,
        shared_key,
        user_auth,
        allow_anonymous_source: s.bool_or("allow_anonymous_source", true),
        users,
        clients,
    };
    s.finish();
    cfg
}
