//! `<security>` `<client>`: which peers a network input serves, by `host` (resolved once at
//! start, as Fluentd does) or `network` (an address or a CIDR block). The forward input adds
//! each client's own shared key and users; the tcp input only admits or refuses.

use anyhow::Context;
use ferry_config::Section;
use std::net::IpAddr;

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

    /// One address.
    pub fn host(addr: IpAddr) -> Self {
        let addr = addr.to_canonical();
        Self {
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
        }
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

/// Reads a `<client>`'s `host` or `network` (exactly one), with Fluentd's messages. A `host`
/// written as an address is taken as that address.
pub fn read_source(c: &Section<'_>) -> Option<ClientSource> {
    match (c.str("host"), c.str("network")) {
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
    }
}

/// The networks of `source`: a host name is resolved now; one that does not resolve is an
/// error (it stops start-up, as in Fluentd).
pub async fn resolve(source: &ClientSource) -> anyhow::Result<Vec<Network>> {
    match source {
        ClientSource::Network(n) => Ok(vec![*n]),
        ClientSource::Host(host) => {
            let addrs = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .with_context(|| format!("<client> host '{host}' cannot be resolved"))?;
            let networks: Vec<Network> = addrs.map(|a| Network::host(a.ip())).collect();
            anyhow::ensure!(
                !networks.is_empty(),
                "<client> host '{host}' has no address"
            );
            Ok(networks)
        }
    }
}

/// The peers an input serves: every network of its `<client>`s, or everyone when it has none.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    networks: Option<Vec<Network>>,
}

impl Acl {
    /// Resolves every client; `None` serves everyone.
    pub async fn build(clients: Option<&[ClientSource]>) -> anyhow::Result<Self> {
        let Some(clients) = clients else {
            return Ok(Self::default());
        };
        let mut networks = Vec::new();
        for c in clients {
            networks.extend(resolve(c).await?);
        }
        Ok(Self {
            networks: Some(networks),
        })
    }

    /// Whether a peer at `ip` is served (a Unix socket peer, `None`, always is).
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        match (&self.networks, ip) {
            (None, _) | (_, None) => true,
            (Some(nets), Some(ip)) => nets.iter().any(|n| n.contains(ip)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_addresses_inside_their_prefix() {
        let n = Network::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = Network::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let all = Network::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
        let v6 = Network::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("example.com").is_err());
    }

    #[tokio::test]
    async fn an_acl_serves_its_clients_networks_and_without_clients_everyone() {
        let acl = Acl::build(Some(&[
            ClientSource::Network(Network::parse("10.0.0.0/8").unwrap()),
            ClientSource::Host("localhost".into()),
        ]))
        .await
        .unwrap();
        assert!(acl.allows(Some("10.9.9.9".parse().unwrap())));
        assert!(acl.allows(Some("127.0.0.1".parse().unwrap())));
        assert!(!acl.allows(Some("192.168.0.1".parse().unwrap())));
        assert!(acl.allows(None));
        assert!(
            Acl::build(None)
                .await
                .unwrap()
                .allows(Some("1.2.3.4".parse().unwrap()))
        );
        assert!(
            Acl::build(Some(&[ClientSource::Host("no-such-host.invalid".into())]))
                .await
                .is_err()
        );
    }
}
