//! `<security>`: the shared key, users and known clients.

use super::Secret;
use crate::input::net::acl::{self, ClientSource};
use ferry_config::Section;

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
            let source = acl::read_source(&c);
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
