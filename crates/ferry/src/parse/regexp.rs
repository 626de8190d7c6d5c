//! Parsers built on a regular expression with named captures: `regexp`, `multiline`, and the
//! presets `apache2`, `nginx` and `syslog` (Fluentd's expressions, rewritten for the `regex`
//! crate where Ruby syntax differs).

use super::record::{FieldType, Record, leading_int};
use super::{ParseError, TimeParse, TimeSpec, time::TimeFormat};
use ferry_config::Section;
use ferry_proto::time::EventTime;
use regex::bytes::Regex;

/// What a capture becomes in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Converted with the type; `-` becomes nil when `dash_nil`.
    Value { ty: FieldType, dash_nil: bool },
    /// apache2's `code`: an integer, nil when it is 0.
    Status,
    /// The time key.
    Time,
    /// Read by the caller, not written (the syslog input's `pri`).
    Dropped,
}

#[derive(Debug, Clone)]
struct Field {
    index: usize,
    name: String,
    role: Role,
}

/// One expression with what each capture becomes.
#[derive(Debug, Clone)]
struct Variant {
    re: Regex,
    fields: Vec<Field>,
    time: TimeSpec,
}

impl Variant {
    fn new(re: Regex, time: TimeSpec, roles: &dyn Fn(&str) -> Role) -> Self {
        let fields = re
            .capture_names()
            .enumerate()
            .filter_map(|(index, name)| {
                let name = name?;
                let role = if time.key.as_deref() == Some(name) {
                    Role::Time
                } else {
                    roles(name)
                };
                Some(Field {
                    index,
                    name: name.to_string(),
                    role,
                })
            })
            .collect();
        Self { re, fields, time }
    }

    fn parse(&self, line: &[u8], rec: &mut Record) -> Result<Option<EventTime>, ParseError> {
        let caps = self.re.captures(line).ok_or(ParseError::NoMatch)?;
        let mut time = None;
        for f in &self.fields {
            let Some(m) = caps.get(f.index) else {
                continue; // a group that did not take part is left out, as Fluentd does
            };
            let v = m.as_bytes();
            match f.role {
                Role::Time => {
                    time = Some(self.time.read(v)?);
                    if self.time.keep {
                        rec.str(&f.name, v);
                    }
                }
                Role::Value { dash_nil: true, .. } if v == b"-" => rec.nil(&f.name),
                Role::Value { ty, .. } => rec.typed(&f.name, v, ty),
                Role::Status => match leading_int(v) {
                    0 => rec.nil(&f.name),
                    n => rec.int(&f.name, n),
                },
                Role::Dropped => {}
            }
        }
        Ok(time)
    }
}

/// A regexp-family parser. For `syslog` with `message_format auto`, a second expression takes
/// the lines that look like RFC 5424 (`<pri>version `).
#[derive(Debug, Clone)]
pub struct RegexParser {
    main: Variant,
    rfc5424: Option<Box<Variant>>,
}

impl RegexParser {
    /// `@type regexp` (and multiline): captures are strings unless `types` says otherwise.
    pub fn new(re: Regex, time: TimeSpec, types: &[(String, FieldType)]) -> Self {
        let roles = |name: &str| Role::Value {
            ty: type_of(types, name),
            dash_nil: false,
        };
        Self {
            main: Variant::new(re, time, &roles),
            rfc5424: None,
        }
    }

    /// Whether the main expression captures `name` (`pri`: the parser reads the priority).
    pub fn has_capture(&self, name: &str) -> bool {
        self.main.fields.iter().any(|f| f.name == name)
    }

    /// Leaves the capture `name` out of the records (the syslog input reads the priority
    /// itself and does not keep `pri`, as Fluentd's in_syslog deletes it).
    pub fn drop_capture(&mut self, name: &str) {
        let variants = std::iter::once(&mut self.main).chain(self.rfc5424.as_deref_mut());
        for v in variants {
            for f in v.fields.iter_mut().filter(|f| f.name == name) {
                f.role = Role::Dropped;
            }
        }
    }

    pub fn parse(&self, line: &[u8], rec: &mut Record) -> Result<Option<EventTime>, ParseError> {
        match &self.rfc5424 {
            Some(alt) if looks_like_5424(line) => alt.parse(line, rec),
            _ => self.main.parse(line, rec),
        }
    }
}

fn type_of(types: &[(String, FieldType)], name: &str) -> FieldType {
    types
        .iter()
        .find(|(k, _)| k == name)
        .map_or(FieldType::String, |(_, t)| *t)
}

fn preset(expr: &str) -> Regex {
    Regex::new(expr).expect("the preset expressions are valid (covered by tests)")
}

const APACHE2: &str = r#"^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>(?:[^"]|\\.)*?)(?: +\S*)?)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>(?:[^"]|\\.)*)" "(?<agent>(?:[^"]|\\.)*)")?$"#;

const NGINX: &str = r#"^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^"]*?)(?: +\S*)?)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^"]*)" "(?<agent>[^"]*)"(?:\s+(?<http_x_forwarded_for>[^ ]+))?)?$"#;

const RFC3164: &str = r"^(?<time>[^ ]*\s*[^ ]* [^ ]*) (?<host>[^ ]*) (?<ident>[^ :\[]*)(?:\[(?<pid>[0-9]+)\])?(?:[^\:]*\:)? *(?<message>.*)$";

const RFC3164_PRI: &str = r"^<(?<pri>[0-9]+)>(?<time>[^ ]*\s*[^ ]* [^ ]*) (?<host>[^ ]*) (?<ident>[^ :\[]*)(?:\[(?<pid>[0-9]+)\])?(?:[^\:]*\:)? *(?<message>.*)$";

const RFC5424: &str = r"(?s)^<(?<pri>[0-9]{1,3})>[1-9][0-9]{0,2} (?<time>[^ ]+) (?<host>[!-~]{1,255}) (?<ident>[!-~]{1,48}) (?<pid>[!-~]{1,128}) (?<msgid>[!-~]{1,32}) (?<extradata>-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (?<message>.+))?$";

/// Fluentd's `apache2`: `-` becomes nil, `code` and `size` integers.
pub fn apache2(time: TimeSpec) -> RegexParser {
    let roles = |name: &str| match name {
        "code" => Role::Status,
        "size" => Role::Value {
            ty: FieldType::Integer,
            dash_nil: true,
        },
        "method" | "path" => Role::Value {
            ty: FieldType::String,
            dash_nil: false,
        },
        _ => Role::Value {
            ty: FieldType::String,
            dash_nil: true,
        },
    };
    RegexParser {
        main: Variant::new(preset(APACHE2), time, &roles),
        rfc5424: None,
    }
}

/// Fluentd's `nginx`: `code` and `size` integers.
pub fn nginx(time: TimeSpec) -> RegexParser {
    let roles = |name: &str| Role::Value {
        ty: if matches!(name, "code" | "size") {
            FieldType::Integer
        } else {
            FieldType::String
        },
        dash_nil: false,
    };
    RegexParser {
        main: Variant::new(preset(NGINX), time, &roles),
        rfc5424: None,
    }
}

fn looks_like_5424(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"<") else {
        return false;
    };
    let Some(close) = rest.iter().take(4).position(|b| *b == b'>') else {
        return false;
    };
    rest.get(close + 1).is_some_and(u8::is_ascii_digit)
        && rest
            .get(close + 2)
            .is_some_and(|b| *b == b' ' || b.is_ascii_digit())
}

/// Fluentd's `syslog`: `message_format rfc3164` (the default), `rfc5424` or `auto`;
/// `with_priority` for RFC 3164 lines that start with `<pri>` (default: true with `auto`, or
/// `priority_default`, as the syslog input sets it).
pub fn syslog(s: &Section<'_>, time: TimeSpec, priority_default: Option<bool>) -> RegexParser {
    let format = s.enum_or("message_format", &["rfc3164", "rfc5424", "auto"], "rfc3164");
    let with_priority = s.bool_or(
        "with_priority",
        priority_default.unwrap_or(format == "auto"),
    );
    let _ = s.opt_bool("support_colonless_ident");
    s.no_effect(
        "support_colonless_ident",
        "an ident without a colon is always read",
    );
    let roles = |name: &str| Role::Value {
        ty: if name == "pri" {
            FieldType::Integer
        } else {
            FieldType::String
        },
        dash_nil: false,
    };
    let mut t3164 = time.clone();
    t3164.key = Some("time".into());
    if !s.has("time_format") {
        t3164.parse = TimeParse::Format(TimeFormat::compile("%b %d %H:%M:%S").ok());
    }
    let mut t5424 = time;
    t5424.key = Some("time".into());
    if !s.has("rfc5424_time_format") {
        t5424.parse = TimeParse::Format(None);
    } else if let Some(f) = s.str("rfc5424_time_format") {
        t5424.parse = TimeParse::Format(TimeFormat::compile(&f).ok());
    }
    let v5424 = Variant::new(preset(RFC5424), t5424, &roles);
    let v3164 = Variant::new(
        preset(if with_priority { RFC3164_PRI } else { RFC3164 }),
        t3164,
        &roles,
    );
    match format {
        "rfc5424" => RegexParser {
            main: v5424,
            rfc5424: None,
        },
        "auto" => RegexParser {
            main: v3164,
            rfc5424: Some(Box::new(v5424)),
        },
        _ => RegexParser {
            main: v3164,
            rfc5424: None,
        },
    }
}

/// Strips Fluentd's `/.../flags` around an expression and turns Ruby flags into inline ones
/// (`i`, `x`; `m` is Ruby's dot-matches-newline, `(?s)` here).
pub fn strip_slashes(expr: &str) -> String {
    let t = expr.trim();
    if let Some(rest) = t.strip_prefix('/')
        && let Some(end) = rest.rfind('/')
    {
        let flags = &rest[end + 1..];
        if flags.chars().all(|c| matches!(c, 'i' | 'm' | 'x')) {
            let mut inline = String::new();
            for (c, f) in [('i', "i"), ('m', "s"), ('x', "x")] {
                if flags.contains(c) {
                    inline.push_str(f);
                }
            }
            let body = &rest[..end];
            return if inline.is_empty() {
                body.to_string()
            } else {
                format!("(?{inline}){body}")
            };
        }
    }
    t.to_string()
}

/// `expression` with `ignorecase` and `multiline` (Fluentd's regexp parser parameters) added as
/// inline flags.
pub(super) fn with_flags(s: &Section<'_>, expr: &str) -> String {
    let mut flags = String::new();
    if s.bool_or("ignorecase", false) {
        flags.push('i');
    }
    if s.bool_or("multiline", false) {
        flags.push('s');
    }
    let body = strip_slashes(expr);
    if flags.is_empty() {
        body
    } else {
        format!("(?{flags}){body}")
    }
}

/// Compiles a regular expression written in a config file, reporting errors at `key`.
pub fn compile_regex(section: &Section<'_>, key: &str, expr: &str) -> Option<regex::bytes::Regex> {
    match regex::bytes::RegexBuilder::new(&strip_slashes(expr))
        .size_limit(32 << 20)
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            section.error(Some(key), format!("invalid regular expression: {e}"));
            None
        }
    }
}
