//! `<system>`: every parameter Fluentd 1.16 defines is accepted. What applies to ferry has its
//! effect; what ferry's design makes moot logs one warning at start with file:line (see
//! docs/design.md, "Parameters accepted with no effect"); what cannot apply is refused with the
//! reason.
//!
//! | parameter | in ferry |
//! |---|---|
//! | `log_level`, `<log> format text\|json`, `<log> time_format` | the log lines ([`crate::logging`]) |
//! | `root_dir` | [`crate::root_dir`] (`--root-dir` wins) |
//! | `rpc_endpoint` | [`crate::admin::rpc`] |
//! | `suppress_config_dump` | the configuration is printed at start (secrets masked) unless set |
//! | `without_source` | no `<source>` is started: buffers drain, nothing new comes in |
//! | `process_name` | the process's name (`ps -o comm`, 15 bytes) |
//! | `workers N` | one process that uses every core: each directive runs once (a warning) |
//! | `counter_server`, `counter_client` | refused: ferry has no counter API |

use ferry_config::{Element, Section};
use std::path::PathBuf;

pub use crate::logging::LogFormat;

/// `<system>`.
#[derive(Debug, Clone, Default)]
pub struct SystemConfig {
    pub log_level: Option<String>,
    pub root_dir: Option<PathBuf>,
    /// Where state dumps are written (SIGCONT, `/api/dump`); default `/tmp`, as sigdump.
    pub dump_dir: Option<PathBuf>,
    /// `host:port` of Fluentd's HTTP RPC ([`crate::admin::rpc`]).
    pub rpc_endpoint: Option<String>,
    pub log_format: LogFormat,
    /// `<log> time_format` (strftime), Fluentd's `%Y-%m-%d %H:%M:%S %z` when unset.
    pub log_time_format: Option<String>,
    pub suppress_config_dump: bool,
    pub without_source: bool,
    pub process_name: Option<String>,
}

const LOGGING: &str = "a failure is logged once per episode and its repeats are counted, so nothing is repeated to suppress";

/// Reads `<system>` (the caller finishes the section).
pub fn read(section: &Section<'_>) -> SystemConfig {
    let log_level = section.str("log_level").map(|_| {
        section
            .enum_or("log_level", crate::LOG_LEVELS, "info")
            .to_string()
    });
    let root_dir = section.str("root_dir").map(PathBuf::from);
    let dump_dir = section.str("dump_dir").map(PathBuf::from);
    let rpc_endpoint = section.str("rpc_endpoint");
    if let Some(ep) = &rpc_endpoint
        && ep
            .rsplit_once(':')
            .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        section.error(
            Some("rpc_endpoint"),
            format!("rpc_endpoint must be host:port, got {ep:?}"),
        );
    }
    let workers = section.u64_or("workers", 1);
    if workers == 0 {
        section.error(Some("workers"), "workers must be at least 1");
    } else if workers > 1 {
        section.no_effect(
            "workers",
            "ferry is one process that uses every core; each directive runs once",
        );
    }
    let _ = section.opt_duration("restart_worker_interval");
    section.no_effect(
        "restart_worker_interval",
        "ferry has no worker processes to restart",
    );
    let _ = section.opt_bool("suppress_repeated_stacktrace");
    section.no_effect("suppress_repeated_stacktrace", "ferry logs no stack traces");
    for key in [
        "emit_error_log_interval",
        "ignore_repeated_log_interval",
        "ignore_same_log_interval",
    ] {
        let _ = section.opt_duration(key);
        section.no_effect(key, LOGGING);
    }
    let _ = section.opt_bool("log_event_verbose");
    section.no_effect(
        "log_event_verbose",
        "ferry's own log lines are never routed as events",
    );
    let _ = section.opt_bool("enable_get_dump");
    section.no_effect(
        "enable_get_dump",
        "the state dump is served at /api/dump on the admin endpoints and written on SIGCONT",
    );
    for key in ["enable_input_metrics", "enable_size_metrics"] {
        let _ = section.opt_bool(key);
        section.no_effect_unless(key, true, "ferry always counts events and bytes per plugin");
    }
    let _ = section.opt_bool("enable_msgpack_time_support");
    section.no_effect_unless(
        "enable_msgpack_time_support",
        true,
        "EventTime values are always read and written",
    );
    let _ = section.opt_bool("strict_config_value");
    section.no_effect_unless(
        "strict_config_value",
        true,
        "every value is always checked strictly",
    );
    let _ = section.opt_bool("disable_shared_socket");
    section.no_effect(
        "disable_shared_socket",
        "ferry is one process: no socket is shared with workers",
    );
    let _ = section.opt_bool("enable_jit");
    section.no_effect("enable_jit", "ferry is compiled ahead of time");
    let suppress_config_dump = section.bool_or("suppress_config_dump", false);
    let without_source = section.bool_or("without_source", false);
    let process_name = section.str("process_name");
    if process_name.as_deref().is_some_and(str::is_empty) {
        section.error(Some("process_name"), "process_name must not be empty");
    }
    for key in ["file_permission", "dir_permission"] {
        if section.has(key) {
            section.error(
                Some(key),
                format!("{key} is not supported yet: files are created with mode 0644 and directories 0755 (minus the umask); set the umask of the service instead"),
            );
        }
    }
    for name in ["counter_server", "counter_client"] {
        if let Some(c) = section.child(name) {
            c.error(
                None,
                format!("<{name}> is refused: ferry has no counter API (Fluentd's counters shared between worker processes)"),
            );
            c.abandon();
        }
    }
    if let Some(m) = section.child("metrics") {
        // `local` is what ferry does anyway.
        match m.plugin_type() {
            None | Some("local") => m.finish(),
            Some(kind) => {
                m.error(
                    Some("@type"),
                    format!("metrics type {kind} is not available in ferry: its metrics are local to the process"),
                );
                m.abandon();
            }
        }
    }
    let (log_format, log_time_format) = match section.child("log") {
        Some(l) => {
            let format = match l.enum_or("format", &["text", "json"], "text") {
                "json" => LogFormat::Json,
                _ => LogFormat::Text,
            };
            let time_format = l.str("time_format");
            if let Some(f) = &time_format
                && let Err(e) = crate::time::Strftime::parse(f)
            {
                l.error(Some("time_format"), e.to_string());
            }
            for key in ["rotate_age", "rotate_size"] {
                if l.has(key) {
                    l.error(
                        Some(key),
                        format!("{key}: ferry logs to stderr; rotate with the service manager (journald) or redirect to a file rotated by logrotate"),
                    );
                }
            }
            l.finish();
            (format, time_format)
        }
        None => (LogFormat::Text, None),
    };
    SystemConfig {
        log_level,
        root_dir,
        dump_dir,
        rpc_endpoint,
        log_format,
        log_time_format,
        suppress_config_dump,
        without_source,
        process_name,
    }
}

/// Values of parameters whose name says they hold a secret are printed as Fluentd prints
/// `secret` parameters.
const MASK: &str = "xxxxxx";

fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passphrase",
        "shared_key",
        "secret",
        "token",
        "credential",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// The configuration as ferry read it, in Fluentd's syntax, with secrets masked: what is
/// printed at start unless `suppress_config_dump` is set.
pub fn dump(root: &Element) -> String {
    fn mask(e: &mut Element) {
        for p in &mut e.params {
            if is_secret(&p.key) && !p.value.is_empty() {
                p.value = MASK.to_string();
            }
        }
        for c in &mut e.children {
            mask(c);
        }
    }
    let mut copy = root.clone();
    mask(&mut copy);
    copy.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(text: &str) -> Result<SystemConfig, Vec<String>> {
        crate::plugin::read_section(text, read)
    }

    #[test]
    fn secrets_are_masked_in_the_dump() {
        let root = ferry_config::parse_str(
            "<match **>\n  @type forward\n  <security>\n    shared_key s3cret\n    self_hostname a\n  </security>\n  tls_client_private_key_passphrase pw\n  <server>\n    host h\n    password p4ss\n  </server>\n</match>\n",
            "t.conf",
        )
        .unwrap();
        let text = dump(&root);
        for secret in ["s3cret", "p4ss", " pw"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("shared_key xxxxxx"), "{text}");
        assert!(text.contains("self_hostname a"), "{text}");
        assert!(text.contains("host h"), "{text}");
    }

    #[test]
    fn every_fluentd_system_parameter_is_read() {
        let all = "<system>\n  workers 1\n  root_dir /r\n  log_level debug\n  suppress_repeated_stacktrace true\n  emit_error_log_interval 30s\n  ignore_repeated_log_interval 60s\n  ignore_same_log_interval 60s\n  suppress_config_dump true\n  log_event_verbose true\n  without_source true\n  rpc_endpoint 127.0.0.1:24444\n  enable_get_dump true\n  process_name ferry-agg\n  enable_msgpack_time_support true\n  disable_shared_socket true\n  enable_input_metrics true\n  enable_size_metrics true\n  enable_jit false\n  strict_config_value true\n  <log>\n    format json\n    time_format %Y-%m-%dT%H:%M:%S\n  </log>\n  <metrics>\n    @type local\n  </metrics>\n</system>\n";
        let s = system(all).unwrap();
        assert_eq!(s.log_level.as_deref(), Some("debug"));
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.log_time_format.as_deref(), Some("%Y-%m-%dT%H:%M:%S"));
        assert!(s.suppress_config_dump && s.without_source);
        assert_eq!(s.process_name.as_deref(), Some("ferry-agg"));
        assert_eq!(s.rpc_endpoint.as_deref(), Some("127.0.0.1:24444"));
        let refused =
            system("<system>\n  <counter_server>\n    scope x\n  </counter_server>\n</system>\n")
                .unwrap_err();
        assert!(refused[0].contains("no counter API"), "{refused:?}");
        for (text, why) in [
            ("  file_permission 0600\n", "file_permission"),
            ("  dir_permission 0700\n", "dir_permission"),
            ("  <log>\n    rotate_age 5\n  </log>\n", "rotate_age"),
            ("  <log>\n    rotate_size 1m\n  </log>\n", "rotate_size"),
            (
                "  <metrics>\n    @type cmetrics\n  </metrics>\n",
                "metrics type cmetrics",
            ),
            (
                "  <metrics>\n    type cmetrics\n  </metrics>\n",
                "metrics type cmetrics",
            ),
        ] {
            let refused = system(&format!("<system>\n{text}</system>\n")).unwrap_err();
            assert!(refused[0].contains(why), "{text}: {refused:?}");
        }
        assert!(system("<system>\n  workers 4\n</system>\n").is_ok());
    }
}
