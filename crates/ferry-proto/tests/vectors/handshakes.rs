//! The captured handshakes replayed through ferry's digest and check functions: the digests in
//! every PING and PONG recompute from the configured keys, and ferry's server-side verdict on
//! each PING is the one the real server gave.

use ferry_proto::handshake::{Ping, check_ping, check_pong, password_digest, shared_key_digest};

use super::support::load::{Vector, load_all};
use super::support::render::Convention;
use super::{Msg, decode_vector};

/// Values of `key` (case-insensitive first word of a line) in a Fluentd or Fluent Bit config.
fn values(config: &str, key: &str) -> Vec<String> {
    config
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let (k, rest) = l.split_once(char::is_whitespace)?;
            k.eq_ignore_ascii_case(key).then(|| rest.trim().to_owned())
        })
        .collect()
}

fn value(config: &str, key: &str) -> Option<String> {
    values(config, key).into_iter().next()
}

type Users = Vec<(String, String)>;

/// The server's shared key, users (when user authentication is on) and hostname.
fn server_auth(v: &Vector) -> Option<(String, Option<Users>, String)> {
    let cfg = v.server_config.as_deref()?;
    let key = value(cfg, "shared_key")?;
    let host = value(cfg, "self_hostname").expect("server self_hostname");
    let users = match v.conv {
        Convention::Fluentd => (value(cfg, "user_auth").as_deref() == Some("true")).then(|| {
            values(cfg, "username")
                .into_iter()
                .zip(values(cfg, "password"))
                .collect()
        }),
        Convention::FluentBit => {
            let users: Vec<_> = values(cfg, "Security.Users")
                .iter()
                .map(|u| {
                    let (n, p) = u.split_once(' ').expect("user and password");
                    (n.to_owned(), p.trim().to_owned())
                })
                .collect();
            (!users.is_empty()).then_some(users)
        }
    };
    Some((key, users, host))
}

/// The client's shared key, hostname, username and password, when its config was captured.
fn client_auth(v: &Vector) -> Option<(String, String, String, String)> {
    let cfg = v.client_config.as_deref()?;
    let key = value(cfg, "shared_key")?;
    Some((
        key,
        value(cfg, "self_hostname").expect("client self_hostname"),
        value(cfg, "username").unwrap_or_default(),
        value(cfg, "password").unwrap_or_default(),
    ))
}

#[test]
fn spec_digest_test_vectors() {
    let nonce: Vec<u8> = (0u8..16).collect();
    assert_eq!(
        shared_key_digest(
            b"0123456789abcdef0123456789abcdef",
            b"client.example",
            &nonce,
            b"secret"
        ),
        "3a680037d3979b4f789647cd22e7e55f2197791eb498799823c424e2213124ed63938d1c422f50e08ec02957ef44df338e46c77e8ea164b0dde6d64e171b30df"
    );
    let auth: Vec<u8> = (0x10u8..0x20).collect();
    assert_eq!(
        password_digest(&auth, b"alice", b"pw"),
        "175443d1726b2836999b8b7b54c1fcf0a2ec1071f20fbec9f6e0a7594cf70f208e7ed315db82d7e4f45981d04990e9b9b46ea8f69444a5cf5e25601d72aa83e5"
    );
}

#[test]
fn captured_handshakes_recompute_and_get_the_real_servers_verdict() {
    let (mut servers, mut clients, mut inputs) = (0, 0, 0);
    for v in load_all().vectors {
        let (c2s, s2c) = decode_vector(&v);
        let Some(helo) = s2c.iter().find_map(|d| match &d.msg {
            Msg::Helo(h) => Some(h),
            _ => None,
        }) else {
            continue;
        };
        assert!(
            matches!(s2c[0].msg, Msg::Helo(_)),
            "{}: HELO comes first",
            v.name
        );
        let pong = s2c.iter().find_map(|d| match &d.msg {
            Msg::Pong(p) => Some(p),
            _ => None,
        });
        let first = c2s
            .first()
            .unwrap_or_else(|| panic!("{}: no client message", v.name));
        let (key, users, server_host) =
            server_auth(&v).unwrap_or_else(|| panic!("{}: no server key", v.name));
        let users_ref: Option<Vec<(&[u8], &[u8])>> = users.as_ref().map(|u| {
            u.iter()
                .map(|(n, p)| (n.as_bytes(), p.as_bytes()))
                .collect()
        });
        match Ping::parse(&first.frame) {
            Err(e) => {
                let pong = pong.unwrap_or_else(|| panic!("{}: refused PING without PONG", v.name));
                assert!(!pong.ok, "{}", v.name);
                assert_eq!(pong.reason, e.reason(), "{}: reason for a non-PING", v.name);
            }
            Ok(ping) => {
                let verdict = check_ping(
                    &ping,
                    &helo.nonce,
                    &helo.auth,
                    key.as_bytes(),
                    users_ref.as_deref(),
                );
                match (verdict, pong) {
                    (Ok(()), Some(p)) => {
                        assert!(p.ok, "{}: ferry accepts a PING the server refused", v.name);
                        assert_eq!(&p.hostname[..], server_host.as_bytes(), "{}", v.name);
                        check_pong(
                            p,
                            &ping.hostname,
                            &ping.shared_key_salt,
                            &helo.nonce,
                            key.as_bytes(),
                        )
                        .unwrap_or_else(|e| panic!("{}: {e}", v.name));
                    }
                    (Ok(()), None) => panic!("{}: accepted PING but no PONG captured", v.name),
                    (Err(rej), Some(p)) => {
                        assert!(
                            !p.ok,
                            "{}: ferry refuses ({rej}) a PING the server accepted",
                            v.name
                        );
                        assert_eq!(p.reason, rej.reason(), "{}", v.name);
                    }
                    (Err(_), None) => {
                        assert_eq!(
                            v.conv,
                            Convention::FluentBit,
                            "{}: only Fluent Bit closes without PONG",
                            v.name
                        )
                    }
                }
                servers += 1;
                if let Some((ckey, chost, user, pass)) = client_auth(&v) {
                    assert_eq!(&ping.hostname[..], chost.as_bytes(), "{}", v.name);
                    let digest = shared_key_digest(
                        &ping.shared_key_salt,
                        chost.as_bytes(),
                        &helo.nonce,
                        ckey.as_bytes(),
                    );
                    assert_eq!(
                        digest.as_bytes(),
                        &ping.shared_key_hexdigest[..],
                        "{}: PING digest",
                        v.name
                    );
                    let pw = password_digest(&helo.auth, user.as_bytes(), pass.as_bytes());
                    assert_eq!(
                        pw.as_bytes(),
                        &ping.password_hexdigest[..],
                        "{}: password digest",
                        v.name
                    );
                    assert_eq!(&ping.username[..], user.as_bytes(), "{}", v.name);
                    clients += 1;
                }
                if let Some(i) = &v.digest_inputs {
                    let s = |k: &str| i[k].as_str().expect("input").as_bytes().to_vec();
                    let d = shared_key_digest(
                        &ping.shared_key_salt,
                        &s("client_self_hostname"),
                        &helo.nonce,
                        &s("shared_key"),
                    );
                    assert_eq!(d.as_bytes(), &ping.shared_key_hexdigest[..], "{}", v.name);
                    let pw = password_digest(&helo.auth, &s("username"), &s("password"));
                    assert_eq!(pw.as_bytes(), &ping.password_hexdigest[..], "{}", v.name);
                    let p = pong.expect("PONG");
                    let d = shared_key_digest(
                        &ping.shared_key_salt,
                        &s("server_self_hostname"),
                        &helo.nonce,
                        &s("shared_key"),
                    );
                    assert_eq!(d.as_bytes(), &p.shared_key_hexdigest[..], "{}", v.name);
                    inputs += 1;
                }
            }
        }
    }
    println!(
        "server verdicts {servers}, client digests {clients}, digest_verification inputs {inputs}"
    );
    assert!(
        servers >= 17 && clients >= 12 && inputs >= 6,
        "{servers} {clients} {inputs}"
    );
}
