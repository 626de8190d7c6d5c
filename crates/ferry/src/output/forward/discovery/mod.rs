//! `<service_discovery>`: where the forward output's servers come from besides `<server>`, as
//! Fluentd 1.16 has it (its `sd_static`, `sd_file` and `sd_srv` plugins).
//!
//! | `@type` | servers | changes |
//! |---|---|---|
//! | `static` | its `<service>` sections (the parameters of `<server>`) | never |
//! | `file` ([`file`]) | a YAML or JSON list in `path` | when the file changes |
//! | `srv` ([`srv`]) | the DNS SRV records of `_service._proto.hostname` | every `interval` |
//!
//! `<server>` sections and any number of `<service_discovery>` sections go together, as in
//! Fluentd (which turns the `<server>`s into one more static discovery): the output's servers
//! are the union of every list. A list that cannot be read at start is a configuration error
//! with its file and line; later, a list that cannot be read or looked up keeps the last good
//! one, logs why and is counted ([`watch`]). How a change reaches the rotation without losing
//! or repeating a request: [`super::members`].
//!
//! | module | job |
//! |---|---|
//! | [`file`] | the file's formats (YAML, JSON by Fluentd's rule), encodings, entries |
//! | [`srv`] | SRV lookups (hickory) against the system's or a given name server |
//! | [`watch`] | the tasks that re-read files and re-query SRV records |

pub mod file;
pub mod srv;
pub mod watch;

use super::server::{Secret, ServerConfig, read_server};
use crate::tls::client::{self as tls, TlsOptions};
use ferry_config::Section;

/// One server as a discovery names it (Fluentd's `ServiceDiscovery::Service`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub host: String,
    pub port: u16,
    /// `None`: `host:port`.
    pub name: Option<String>,
    pub weight: u32,
    pub standby: bool,
    /// `None`: `<security>`'s.
    pub shared_key: Option<String>,
    pub username: String,
    pub password: String,
}

impl Service {
    /// The server, with its TLS client when the output uses TLS.
    pub fn server_config(&self, tls_options: Option<&TlsOptions>) -> Result<ServerConfig, String> {
        let mut server = ServerConfig {
            host: self.host.clone(),
            port: self.port,
            name: self
                .name
                .clone()
                .unwrap_or_else(|| format!("{}:{}", self.host, self.port)),
            weight: self.weight,
            standby: self.standby,
            shared_key: self.shared_key.clone().map(Secret),
            username: self.username.clone(),
            password: Secret(self.password.clone()),
            tls: None,
        };
        if let Some(options) = tls_options {
            let client = tls::client_config(options, &server.host, server.configured_name())
                .map_err(|e| format!("server {}: {e}", server.name))?;
            server.tls = Some(client);
        }
        Ok(server)
    }
}

/// Every service as a server; the first that cannot be one is the error.
pub fn server_configs(
    services: &[Service],
    tls_options: Option<&TlsOptions>,
) -> Result<Vec<ServerConfig>, String> {
    services
        .iter()
        .map(|s| s.server_config(tls_options))
        .collect()
}

/// A `<service_discovery>` whose list changes while ferry runs.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    File(file::FileSource),
    Srv(srv::SrvSource),
}

impl SourceConfig {
    /// The list known with the configuration (the file's; SRV records are looked up at start).
    pub fn initial(&self) -> &[ServerConfig] {
        match self {
            Self::File(f) => &f.initial,
            Self::Srv(_) => &[],
        }
    }

    /// Whether the list is only known once looked up (at start, not with `--dry-run`).
    pub fn is_looked_up(&self) -> bool {
        matches!(self, Self::Srv(_))
    }

    /// How log lines and `ferry status` name it.
    pub fn describe(&self) -> String {
        match self {
            Self::File(f) => format!("sd_file: path={}", f.path.display()),
            Self::Srv(s) => format!("sd_srv: {}", s.target()),
        }
    }
}

/// Reads every `<service_discovery>` of the output: static services go to `servers`, the
/// others to `sources`. Returns how many sections could not be read (already reported).
pub fn read(
    s: &Section<'_>,
    tls_options: Option<&TlsOptions>,
    servers: &mut Vec<ServerConfig>,
    sources: &mut Vec<SourceConfig>,
) -> usize {
    let mut refused = 0;
    for sd in s.children("service_discovery") {
        let kind =
            crate::plugin::plugin_type(&sd, "service discovery", &["static", "file", "srv"], &[]);
        match kind {
            Some("static") => {
                for service in sd.children("service") {
                    match read_server(&service, tls_options) {
                        Some(sc) => servers.push(sc),
                        None => refused += 1,
                    }
                    service.finish();
                }
            }
            Some("file") => match file::read_config(&sd, tls_options) {
                Some(f) => sources.push(SourceConfig::File(f)),
                None => refused += 1,
            },
            Some("srv") => match srv::read_config(&sd) {
                Some(r) => sources.push(SourceConfig::Srv(r)),
                None => refused += 1,
            },
            _ => {
                sd.abandon();
                refused += 1;
                continue;
            }
        }
        sd.finish();
    }
    refused
}
