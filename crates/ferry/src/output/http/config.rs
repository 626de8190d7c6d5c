//! `<match> @type http` parameters, with Fluentd's out_http names and defaults (v1.16; `compress`
//! as Fluentd 1.17 names it). Everything that can be checked before a request is checked here,
//! with file:line: the endpoint and its placeholders against the chunk keys, header names and
//! values, the TLS files.

use crate::format::{FormatConfig, FormatKind};
use crate::output::buffer_section::{BufferDefaults, BufferSetup};
use crate::output::placeholders::{Escape, Template};
use crate::root_dir::RootDir;
use crate::tls::client::{self as tls, TlsOptions, TlsParams};
use base64::Engine as _;
use ferry_config::Section;
use http::{HeaderName, HeaderValue, Method};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Fluentd leaves `open_timeout` and `read_timeout` unset, and Ruby's Net::HTTP then waits
/// without end; ferry waits this long, Net::HTTP's own default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Fluentd's default `retryable_response_codes`.
pub const DEFAULT_RETRYABLE: &[u16] = &[503];

/// `compress`: the request body as it is, or gzip with `Content-Encoding: gzip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    Text,
    Gzip,
}

/// What happens to a chunk the endpoint answers with a status that is neither a success nor
/// retryable (`error_response_as_unrecoverable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnErrorResponse {
    /// `true` (the default): the chunk goes to `<secondary>`, else to the quarantine
    /// directory. Nothing is lost; nothing is sent again to an endpoint that refused it.
    SetAside,
    /// `false`: the error is logged and the chunk deleted as if delivered, as Fluentd does. The
    /// events are lost, and counted in `ferry_events_dropped_total{reason="error_response"}`.
    Drop,
}

/// A checked `<match> @type http`.
#[derive(Debug, Clone)]
pub struct HttpOutputConfig {
    pub endpoint: Template,
    /// The endpoint's host comes from placeholders: checked against `allowed_hosts`.
    pub dynamic_host: bool,
    pub allowed_hosts: Vec<String>,
    pub method: Method,
    pub content_type: HeaderValue,
    pub json_array: bool,
    pub format: FormatConfig,
    pub compress: Compress,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub headers_from_placeholders: Vec<(HeaderName, Template)>,
    /// `<auth>`: the `Authorization` header.
    pub authorization: Option<HeaderValue>,
    pub open_timeout: Duration,
    pub read_timeout: Duration,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub retryable_response_codes: Vec<u16>,
    pub on_error_response: OnErrorResponse,
    /// Connections kept alive: one per flush thread.
    pub connections: usize,
}

impl HttpOutputConfig {
    /// Reads the section and its `<buffer>` (no chunk keys by default, as in Fluentd; `tag` is
    /// added when the format writes the tag).
    pub fn from_section(
        section: &Section<'_>,
        id: &str,
        root: &RootDir,
        has_secondary: bool,
    ) -> Option<(Self, BufferSetup)> {
        let buffer = section.child("buffer");
        let defaults = BufferDefaults {
            keys: "",
            timekey: None,
        };
        let mut setup =
            BufferSetup::from_section(buffer.as_ref(), defaults, id, root, has_secondary);
        if let Some(b) = buffer {
            b.finish();
        }
        let format = FormatConfig::from_section(section, FormatKind::Json);
        let writes_tag = format.kind == FormatKind::Stdout
            || (format.kind == FormatKind::OutFile && format.options.output_tag)
            || format.inject.tag_key.is_some();
        if writes_tag {
            setup.keys.tag = true;
        }
        let time = setup.keys.time.then(|| setup.timekey_zone.clone());
        let source = section.required_str("endpoint");
        let endpoint = source.as_deref().and_then(|s| {
            Template::parse_text(s, Escape::Url, time.clone())
                .and_then(|t| t.check(&setup.keys).map(|()| t))
                .map_err(|e| section.error(Some("endpoint"), e))
                .ok()
        });
        let host_part = source.as_deref().map(authority).unwrap_or_default();
        let dynamic_host = host_part.contains("${") || (time.is_some() && host_part.contains('%'));
        let scheme_https = source.as_deref().is_some_and(|s| s.starts_with("https"));
        if let Some(s) = source.as_deref().filter(|_| !dynamic_host) {
            check_static_url(section, s, endpoint.as_ref());
        }
        let allowed_hosts = section.array("allowed_hosts").unwrap_or_default();
        if dynamic_host && allowed_hosts.is_empty() {
            section.error(
                Some("endpoint"),
                "the endpoint's host comes from placeholders: list the hosts events may choose in allowed_hosts",
            );
        }
        let method = match section.enum_or("http_method", &["post", "put"], "post") {
            "put" => Method::PUT,
            _ => Method::POST,
        };
        if let Some(proxy) = section.str("proxy") {
            section.error(
                Some("proxy"),
                format!(
                    "the http output does not go through a proxy ({proxy}): it connects to the endpoint directly; remove proxy"
                ),
            );
        }
        let json_array = section.bool_or("json_array", false);
        if json_array && format.kind != FormatKind::Json {
            section.error(
                Some("json_array"),
                "json_array could be used with the json format only",
            );
        }
        let content_type = section
            .str("content_type")
            .unwrap_or_else(|| default_content_type(format.kind, json_array).to_string());
        let content_type = HeaderValue::from_str(&content_type).unwrap_or_else(|_| {
            section.error(Some("content_type"), "not a valid header value");
            HeaderValue::from_static("application/octet-stream")
        });
        let compress = match section.enum_or("compress", &["text", "gzip"], "text") {
            "gzip" => Compress::Gzip,
            _ => Compress::Text,
        };
        let headers = read_headers(section);
        let headers_from_placeholders = section
            .hash("headers_from_placeholders")
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, value)| {
                let name = header_name(section, "headers_from_placeholders", &name)?;
                Template::parse_text(&value, Escape::None, time.clone())
                    .and_then(|t| t.check(&setup.keys).map(|()| (name, t)))
                    .map_err(|e| section.error(Some("headers_from_placeholders"), e))
                    .ok()
            })
            .collect();
        let authorization = read_auth(section);
        let open_timeout = timeout_param(section, "open_timeout");
        let read_timeout = timeout_param(section, "read_timeout");
        let _ = section.opt_duration("ssl_timeout");
        section.no_effect(
            "ssl_timeout",
            "it is the lifetime of Ruby's TLS session cache, and ferry resumes no TLS session; open_timeout bounds the handshake",
        );
        let _ = section.opt_bool("reuse_connections");
        section.no_effect_unless(
            "reuse_connections",
            true,
            "ferry keeps one connection alive per flush thread and reuses it for every chunk",
        );
        let tls = read_tls(section, scheme_https);
        let retryable_response_codes = read_codes(section);
        let on_error_response = if section.bool_or("error_response_as_unrecoverable", true) {
            OnErrorResponse::SetAside
        } else {
            OnErrorResponse::Drop
        };
        let config = Self {
            endpoint: endpoint?,
            dynamic_host,
            allowed_hosts,
            method,
            content_type,
            json_array,
            format,
            compress,
            headers,
            headers_from_placeholders,
            authorization,
            open_timeout,
            read_timeout,
            tls,
            retryable_response_codes,
            on_error_response,
            connections: setup.flush_thread_count,
        };
        Some((config, setup))
    }
}

/// out_http's Content-Type for each format.
pub fn default_content_type(kind: FormatKind, json_array: bool) -> &'static str {
    match kind {
        FormatKind::Json if json_array => "application/json",
        FormatKind::Json => "application/x-ndjson",
        FormatKind::Csv => "text/csv",
        FormatKind::Ltsv => "text/tab-separated-values",
        FormatKind::Msgpack => "application/x-msgpack",
        FormatKind::OutFile | FormatKind::SingleValue | FormatKind::Stdout => "text/plain",
    }
}

/// The authority of a URL written in the configuration (between `://` and the path).
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

/// An endpoint whose host is written out must be a URL ferry can send to (its placeholders
/// in the path or query are filled with a sample value to check it).
fn check_static_url(section: &Section<'_>, source: &str, template: Option<&Template>) {
    let sample = match template {
        Some(t) => t
            .render(
                &ferry_buffer::ChunkKey {
                    tag: Some("tag".into()),
                    timekey: Some(0),
                    variables: Vec::new(),
                },
                "0",
            )
            .text(),
        None => source.to_string(),
    };
    let checked = sample
        .parse::<http::Uri>()
        .map_err(|e| e.to_string())
        .and_then(|u| crate::http::client::Origin::of(&u).map(|_| ()));
    if let Err(e) = checked {
        section.error(
            Some("endpoint"),
            format!("'{source}' is not an http or https URL: {e}"),
        );
    }
}

fn header_name(section: &Section<'_>, key: &str, name: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| section.error(Some(key), format!("'{name}' is not a header name")))
        .ok()
}

fn read_headers(section: &Section<'_>) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for (name, value) in section.hash("headers").unwrap_or_default() {
        let Some(name) = header_name(section, "headers", &name) else {
            continue;
        };
        match HeaderValue::from_str(&value) {
            Ok(v) => out.push((name, v)),
            Err(_) => section.error(
                Some("headers"),
                format!("the value of header {name} is not a valid header value"),
            ),
        }
    }
    out
}

/// `<auth> method basic username password`.
fn read_auth(section: &Section<'_>) -> Option<HeaderValue> {
    let auth = section.child("auth")?;
    let _ = auth.enum_or("method", &["basic"], "basic");
    // Fluentd sends the header even without a username (`:` encoded).
    let user = auth.str_or("username", "");
    let password = auth.str_or("password", "");
    auth.finish();
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// A timeout in seconds (Fluentd reads an integer; `5s` and `500ms` are read too).
fn timeout_param(section: &Section<'_>, key: &str) -> Duration {
    let t = section.duration_or(key, DEFAULT_TIMEOUT);
    if t.is_zero() {
        section.error(Some(key), format!("{key} must be positive"));
        return DEFAULT_TIMEOUT;
    }
    t
}

fn read_codes(section: &Section<'_>) -> Vec<u16> {
    let Some(codes) = section.array("retryable_response_codes") else {
        return DEFAULT_RETRYABLE.to_vec();
    };
    codes
        .iter()
        .filter_map(|c| match c.trim().parse::<u16>() {
            Ok(n) if (100..=599).contains(&n) => Some(n),
            _ => {
                section.error(
                    Some("retryable_response_codes"),
                    format!("'{c}' is not an HTTP status code"),
                );
                None
            }
        })
        .collect()
}

/// The TLS parameters, used when the endpoint is `https` (Fluentd's rule: it starts with
/// `https`). Written for an `http` endpoint, they are an error: they would do nothing.
fn read_tls(s: &Section<'_>, https: bool) -> Option<Arc<rustls::ClientConfig>> {
    let insecure = s.enum_or("tls_verify_mode", &["peer", "none"], "peer") == "none";
    // Ruby's Net::HTTP pins the one version `tls_version` names (Fluentd's default TLSv1_2).
    let names = [
        "TLSv1_1", "TLSv1_2", "TLSv1_3", "TLS1_1", "TLS1_2", "TLS1_3",
    ];
    let version = match s.enum_or("tls_version", &names, "TLSv1_2") {
        "TLSv1_3" | "TLS1_3" => crate::tls::TlsVersion::Tls13,
        "TLSv1_1" | "TLS1_1" => {
            s.error(
                Some("tls_version"),
                "TLS 1.1 is refused: it is broken; use TLSv1_2 or TLSv1_3",
            );
            crate::tls::TlsVersion::Tls12
        }
        _ => crate::tls::TlsVersion::Tls12,
    };
    let ciphers = s.str("tls_ciphers");
    if let Some(list) = &ciphers
        && version == crate::tls::TlsVersion::Tls12
        && let Err(e) = crate::tls::check_cipher_list("tls_ciphers", list)
    {
        s.error(Some("tls_ciphers"), e);
    }
    let options = TlsOptions {
        params: TlsParams {
            ca: "tls_ca_cert_path",
            cert: "tls_client_cert_path",
            key: "tls_private_key_path",
        },
        version,
        max_version: version,
        ca_paths: s
            .str("tls_ca_cert_path")
            .map(PathBuf::from)
            .into_iter()
            .collect(),
        client_cert: s.str("tls_client_cert_path").map(PathBuf::from),
        client_key: s.str("tls_private_key_path").map(PathBuf::from),
        verify_hostname: true,
        insecure,
        allow_self_signed: false,
        ciphers,
        material: None,
    };
    if s.has("tls_private_key_passphrase") {
        s.error(
            Some("tls_private_key_passphrase"),
            "encrypted private keys are not supported: give an unencrypted PEM key",
        );
    }
    if options.client_cert.is_some() != options.client_key.is_some() {
        s.error(
            None,
            "tls_client_cert_path and tls_private_key_path go together",
        );
    }
    if !https {
        for key in [
            "tls_ca_cert_path",
            "tls_client_cert_path",
            "tls_private_key_path",
            "tls_verify_mode",
            "tls_version",
            "tls_ciphers",
        ] {
            if s.has(key) {
                s.error(
                    Some(key),
                    format!("{key} has no effect: the endpoint is not https"),
                );
            }
        }
        return None;
    }
    match tls::client_config(&options, "", None) {
        Ok(config) => Some(config),
        Err(e) => {
            s.error(None, format!("TLS: {e}"));
            None
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
