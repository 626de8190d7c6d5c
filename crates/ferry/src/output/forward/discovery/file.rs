//! `<service_discovery> @type file`: the servers listed in a file (Fluentd's `sd_file`).
//!
//! ```yaml
//! - host: 127.0.0.1
//!   port: 24224
//!   weight: 1
//!   name: server1
//! ```
//!
//! - **Format**, as Fluentd decides it: the part of the file's name after its first dot;
//!   `json` is JSON, anything else (`yaml`, `yml`, no dot, `sd.json`) is YAML.
//! - **Encoding**: `conf_encoding` (default `utf-8`; also `us-ascii`, `iso-8859-1`); the text
//!   is read in it and converted to UTF-8.
//! - **Entries**: a list of maps. `host` and `port` are required; `weight` (default 60),
//!   `name`, `standby`, `shared_key`, `username`, `password` are optional; a key ferry does not
//!   know is an error (Fluentd ignores it, and a misspelt `wieght` would silently be 60).
//! - **Limits**: at most 1 MiB, flow collections nested at most 32 deep (a hostile file cannot
//!   exhaust memory or the stack).
//!
//! Every error names the path ([`FileError`]). At start an error is a configuration error at
//! the section's line; later, the last good list stays ([`super::watch`]).

use super::super::server::ServerConfig;
use super::Service;
use crate::tls::client::TlsOptions;
use ferry_config::Section;
use std::path::{Path, PathBuf};

/// Largest list file read.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Deepest nesting of `[` and `{` accepted.
const MAX_NESTING: usize = 32;

/// How the file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Yaml,
    Json,
}

impl FileFormat {
    /// Fluentd's rule: `File.basename(path).split('.', 2).last`, `json` → JSON, else YAML.
    pub fn of(path: &Path) -> Self {
        let base = path
            .file_name()
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ext = base.split_once('.').map_or(base.as_str(), |(_, e)| e);
        if ext == "json" {
            Self::Json
        } else {
            Self::Yaml
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Yaml => "YAML",
            Self::Json => "JSON",
        }
    }
}

/// `conf_encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Ascii,
    Latin1,
}

impl Encoding {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(Self::Utf8),
            "us-ascii" | "ascii" => Some(Self::Ascii),
            "iso-8859-1" | "iso8859-1" | "latin1" => Some(Self::Latin1),
            _ => None,
        }
    }

    /// The text, or the offset of the first byte that is not of this encoding.
    fn decode(self, bytes: &[u8]) -> Result<String, usize> {
        match self {
            Self::Utf8 => std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|e| e.valid_up_to()),
            Self::Ascii => match bytes.iter().position(|b| !b.is_ascii()) {
                Some(at) => Err(at),
                None => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
            },
            Self::Latin1 => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Utf8 => "utf-8",
            Self::Ascii => "us-ascii",
            Self::Latin1 => "iso-8859-1",
        }
    }
}

/// Why a list file cannot be used. Each names the path.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("sd_file: path={} not found", path.display())]
    NotFound { path: PathBuf },
    #[error("sd_file: path={} couldn't open: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sd_file: path={} is larger than {MAX_FILE_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("sd_file: path={}: not {encoding} text (byte {offset})", path.display())]
    Encoding {
        path: PathBuf,
        encoding: &'static str,
        offset: usize,
    },
    #[error("sd_file: path={}: {format}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        format: &'static str,
        message: String,
    },
    #[error("sd_file: path={}: the file must hold a list of servers", path.display())]
    NotAList { path: PathBuf },
    #[error("sd_file: path={}: entry {index}: {message}", path.display())]
    Entry {
        path: PathBuf,
        /// 1-based.
        index: usize,
        message: String,
    },
}

/// A checked `<service_discovery> @type file`.
#[derive(Debug, Clone)]
pub struct FileSource {
    pub path: PathBuf,
    pub encoding: Encoding,
    pub format: FileFormat,
    /// The list read with the configuration.
    pub initial: Vec<ServerConfig>,
}

impl FileSource {
    /// Reads and parses the file now.
    pub fn load(&self) -> Result<Vec<Service>, FileError> {
        load(&self.path, self.encoding, self.format)
    }
}

/// Fluentd's default path (`DEFAULT_SD_FILE_PATH` in the environment overrides it, as there).
fn default_path() -> String {
    std::env::var("DEFAULT_SD_FILE_PATH").unwrap_or_else(|_| "/etc/fluent/sd.yaml".to_string())
}

/// Reads the section and the file (at start, as Fluentd does): a missing or bad file is an
/// error at the section's line.
pub fn read_config(s: &Section<'_>, tls_options: Option<&TlsOptions>) -> Option<FileSource> {
    let path = PathBuf::from(s.str("path").unwrap_or_else(default_path));
    let encoding_name = s.str_or("conf_encoding", "utf-8");
    let Some(encoding) = Encoding::parse(&encoding_name) else {
        s.error(
            Some("conf_encoding"),
            format!("conf_encoding {encoding_name} is not supported (utf-8, us-ascii, iso-8859-1)"),
        );
        return None;
    };
    let format = FileFormat::of(&path);
    let services = match load(&path, encoding, format) {
        Ok(s) => s,
        Err(e) => {
            s.error(Some("path"), e.to_string());
            return None;
        }
    };
    match super::server_configs(&services, tls_options) {
        Ok(initial) => Some(FileSource {
            path,
            encoding,
            format,
            initial,
        }),
        Err(e) => {
            s.error(
                Some("path"),
                format!("sd_file: path={}: {e}", path.display()),
            );
            None
        }
    }
}

/// Reads and parses `path`.
#[allow(clippy::disallowed_methods)] // bounded by `take`
pub fn load(
    path: &Path,
    encoding: Encoding,
    format: FileFormat,
) -> Result<Vec<Service>, FileError> {
    use std::io::Read;
    let opened = std::fs::File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => FileError::NotFound {
            path: path.to_path_buf(),
        },
        _ => FileError::Open {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let mut bytes = Vec::new();
    opened
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    parse(path, &bytes, encoding, format)
}

/// A scalar of an entry, whichever the format.
#[derive(Debug)]
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    /// A float, list or map: never a valid value here.
    Other(&'static str),
}

/// Parses the bytes of a list file (`path` only names it in errors).
pub fn parse(
    path: &Path,
    bytes: &[u8],
    encoding: Encoding,
    format: FileFormat,
) -> Result<Vec<Service>, FileError> {
    let text = encoding
        .decode(bytes)
        .map_err(|offset| FileError::Encoding {
            path: path.to_path_buf(),
            encoding: encoding.name(),
            offset,
        })?;
    let syntax = |message: String| FileError::Syntax {
        path: path.to_path_buf(),
        format: format.name(),
        message,
    };
    if nesting(&text) > MAX_NESTING {
        return Err(syntax(format!("nested deeper than {MAX_NESTING} levels")));
    }
    let entries = match format {
        FileFormat::Json => json_entries(&text).map_err(syntax)?,
        FileFormat::Yaml => yaml_entries(&text).map_err(syntax)?,
    };
    let Some(entries) = entries else {
        return Err(FileError::NotAList {
            path: path.to_path_buf(),
        });
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(i, fields)| {
            service(fields).map_err(|message| FileError::Entry {
                path: path.to_path_buf(),
                index: i + 1,
                message,
            })
        })
        .collect()
}

/// The deepest nesting of brackets and braces, counted without regard to quotes (so an
/// upper bound).
fn nesting(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in text.bytes() {
        match b {
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

type Fields = Vec<(String, Scalar)>;

/// `Ok(None)`: the document is not a list of maps.
fn json_entries(text: &str) -> Result<Option<Vec<Fields>>, String> {
    use serde_json::Value;
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let Value::Array(items) = value else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(map) = item else {
            return Ok(None);
        };
        let fields = map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::Null => Scalar::Null,
                    Value::Bool(b) => Scalar::Bool(b),
                    Value::Number(n) => n.as_i64().map_or(Scalar::Other("a float"), Scalar::Int),
                    Value::String(s) => Scalar::Str(s),
                    Value::Array(_) => Scalar::Other("a list"),
                    Value::Object(_) => Scalar::Other("a map"),
                };
                (k, v)
            })
            .collect();
        out.push(fields);
    }
    Ok(Some(out))
}

fn yaml_entries(text: &str) -> Result<Option<Vec<Fields>>, String> {
    use yaml_rust2::Yaml;
    let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    let Some(Yaml::Array(items)) = docs.into_iter().next() else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Yaml::Hash(map) = item else {
            return Ok(None);
        };
        let mut fields = Vec::with_capacity(map.len());
        for (k, v) in map {
            let key = match k {
                Yaml::String(s) => s,
                Yaml::Integer(i) => i.to_string(),
                Yaml::Boolean(b) => b.to_string(),
                _ => return Err("a key that is not a string".to_string()),
            };
            let v = match v {
                Yaml::Null => Scalar::Null,
                Yaml::Boolean(b) => Scalar::Bool(b),
                Yaml::Integer(i) => Scalar::Int(i),
                Yaml::String(s) => Scalar::Str(s),
                Yaml::Real(_) => Scalar::Other("a float"),
                Yaml::Array(_) => Scalar::Other("a list"),
                Yaml::Hash(_) => Scalar::Other("a map"),
                Yaml::Alias(_) => Scalar::Other("an alias"),
                Yaml::BadValue => Scalar::Other("a bad value"),
            };
            fields.push((key, v));
        }
        out.push(fields);
    }
    Ok(Some(out))
}

const KEYS: &[&str] = &[
    "host",
    "port",
    "weight",
    "name",
    "standby",
    "shared_key",
    "username",
    "password",
];

/// One entry, with Fluentd's message for a missing `host` or `port`.
fn service(fields: Fields) -> Result<Service, String> {
    for (k, _) in &fields {
        if !KEYS.contains(&k.as_str()) {
            return Err(match ferry_config::did_you_mean(k, KEYS.iter().copied()) {
                Some(close) => format!("unknown key '{k}' (did you mean '{close}'?)"),
                None => format!("unknown key '{k}' (keys: {})", KEYS.join(", ")),
            });
        }
    }
    let get = |key: &str| {
        fields
            .iter()
            .rev()
            .find(|(k, v)| k == key && !matches!(v, Scalar::Null))
            .map(|(_, v)| v)
    };
    let missing =
        |key: &str| format!("key not found: \"{key}\". Service must have `host` and `port`");
    let text = |key: &str| -> Result<Option<String>, String> {
        match get(key) {
            None => Ok(None),
            Some(Scalar::Str(s)) => Ok(Some(s.clone())),
            Some(Scalar::Int(i)) => Ok(Some(i.to_string())),
            Some(other) => Err(format!("{key} must be a string, not {}", kind(other))),
        }
    };
    let number = |key: &str, max: i64| -> Result<Option<i64>, String> {
        let n = match get(key) {
            None => return Ok(None),
            Some(Scalar::Int(i)) => *i,
            Some(Scalar::Str(s)) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("{key} must be a number, not '{s}'"))?,
            Some(other) => return Err(format!("{key} must be a number, not {}", kind(other))),
        };
        if !(0..=max).contains(&n) {
            return Err(format!("{key} {n} is out of range (0-{max})"));
        }
        Ok(Some(n))
    };
    let host = text("host")?.ok_or_else(|| missing("host"))?;
    if host.is_empty() {
        return Err("host is empty".to_string());
    }
    let port = number("port", 65535)?.ok_or_else(|| missing("port"))?;
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("port {port} is out of range (1-65535)"))?;
    let weight = number("weight", i64::from(u32::MAX))?.unwrap_or(60);
    let standby = match get("standby") {
        None => false,
        Some(Scalar::Bool(b)) => *b,
        Some(other) => {
            return Err(format!(
                "standby must be true or false, not {}",
                kind(other)
            ));
        }
    };
    Ok(Service {
        host,
        port,
        name: text("name")?,
        weight: u32::try_from(weight).unwrap_or(u32::MAX),
        standby,
        shared_key: text("shared_key")?,
        username: text("username")?.unwrap_or_default(),
        password: text("password")?.unwrap_or_default(),
    })
}

fn kind(v: &Scalar) -> String {
    match v {
        Scalar::Null => "null".to_string(),
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Str(s) => format!("'{s}'"),
        Scalar::Other(what) => (*what).to_string(),
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
