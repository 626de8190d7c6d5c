//! The scribe output's parameters, as fluent-plugin-scribe's out_scribe reads them, and its
//! servers.

use ferry_config::Section;
use std::time::Duration;

/// One scribed (or ferry scribe input) to send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScribeServer {
    pub host: String,
    pub port: u16,
    /// Used only while every server that is not a standby fails.
    pub standby: bool,
}

impl std::fmt::Display for ScribeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A parsed `<match> @type scribe`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScribeOutputConfig {
    /// In the order they are tried: the servers, then the standbys.
    pub servers: Vec<ScribeServer>,
    pub field_ref: String,
    /// Connecting, and waiting for each call's answer.
    pub timeout: Duration,
    pub remove_prefix: Option<String>,
    pub add_newline: bool,
    pub default_category: String,
    pub format_to_json: bool,
}

impl ScribeOutputConfig {
    pub fn from_section(s: &Section<'_>) -> Self {
        let sections = s.children("server");
        let mut servers: Vec<ScribeServer> = sections
            .into_iter()
            .map(|c| {
                let server = ScribeServer {
                    host: c.required_str("host").unwrap_or_default(),
                    port: c.port_or("port", 1463),
                    standby: c.bool_or("standby", false),
                };
                c.finish();
                server
            })
            .collect();
        if servers.is_empty() {
            servers.push(ScribeServer {
                host: s.str_or("host", "localhost"),
                port: s.port_or("port", 1463),
                standby: false,
            });
        } else if s.has("host") || s.has("port") {
            s.error(
                Some("host"),
                "give the scribed servers as host and port or as <server> sections, not both",
            );
        }
        if servers.iter().all(|v| v.standby) {
            s.error(
                None,
                "every <server> is a standby: at least one must not be",
            );
        }
        servers.sort_by_key(|v| v.standby);
        let _ = s.opt_bool("ignore_invalid_record");
        s.no_effect(
            "ignore_invalid_record",
            "every record encodes as JSON in ferry; records without field_ref are skipped and counted",
        );
        let timeout = s.duration_or("timeout", Duration::from_secs(30));
        if timeout.is_zero() {
            s.error(Some("timeout"), "timeout must be more than 0");
        }
        Self {
            servers,
            field_ref: s.str_or("field_ref", "message"),
            timeout: timeout.max(Duration::from_millis(1)),
            remove_prefix: s.str("remove_prefix"),
            add_newline: s.bool_or("add_newline", false),
            default_category: s.str_or("default_category", "unknown"),
            format_to_json: s.bool_or("format_to_json", false),
        }
    }

    /// The category of a chunk's events: its tag, without `remove_prefix` (the tag that is only
    /// the prefix becomes `default_category`).
    pub fn category<'a>(&'a self, tag: &'a str) -> &'a str {
        let Some(prefix) = &self.remove_prefix else {
            return tag;
        };
        if tag == prefix {
            return &self.default_category;
        }
        match tag
            .strip_prefix(prefix.as_str())
            .and_then(|t| t.strip_prefix('.'))
        {
            Some("") => &self.default_category,
            Some(rest) => rest,
            None => tag,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(body: &str) -> Result<ScribeOutputConfig, String> {
        let text = format!("<match **>\n@type scribe\n{body}\n</match>\n");
        let root = ferry_config::parse_str(&text, "scribe.conf").unwrap();
        let errors = ferry_config::Errors::new();
        let c = {
            let s = Section::new(&root.children[0], &errors);
            let _ = s.plugin_type();
            let c = ScribeOutputConfig::from_section(&s);
            s.finish();
            c
        };
        errors.into_result(c).map_err(|e| e.to_string())
    }

    #[test]
    fn fluent_plugin_scribes_defaults_and_the_category() {
        let c = config("").unwrap();
        assert_eq!(
            c.servers,
            vec![ScribeServer {
                host: "localhost".into(),
                port: 1463,
                standby: false
            }]
        );
        assert_eq!(
            (c.field_ref.as_str(), c.timeout),
            ("message", Duration::from_secs(30))
        );
        assert_eq!(c.category("app.web"), "app.web");
        let c = config("remove_prefix app\ndefault_category misc").unwrap();
        assert_eq!(c.category("app.web.x"), "web.x");
        assert_eq!(c.category("app"), "misc");
        assert_eq!(c.category("apple.web"), "apple.web");
    }

    #[test]
    fn servers_come_in_order_standbys_last_and_bad_ones_are_refused() {
        let c = config(
            "<server>\nhost b\nstandby true\n</server>\n<server>\nhost a\nport 1464\n</server>",
        )
        .unwrap();
        assert_eq!(c.servers[0].host, "a");
        assert!(c.servers[1].standby);
        for (body, needle) in [
            ("host a\n<server>\nhost b\n</server>", "not both"),
            ("<server>\nhost b\nstandby true\n</server>", "at least one"),
            ("<server>\nport 1\n</server>", "host"),
            ("port 70000", "65535"),
            ("timeout 0", "timeout"),
        ] {
            let e = config(body).unwrap_err();
            assert!(e.contains(needle), "{body}: {e}");
        }
    }
}
