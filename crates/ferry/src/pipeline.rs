//! From a parsed configuration tree to the typed pipeline: every `<source>`, `<match>` and
//! `<label>` checked, every error collected with its file:line before anything binds.
//! `ferry --dry-run` is exactly this step.

use crate::admin::{ADMIN_TYPES, AdminConfig};
use crate::input::InputConfig;
use crate::output::OutputConfig;
use crate::router::pattern::MatchPattern;
use crate::router::{LabelConfig, MatchConfig, RoutesConfig};
use ferry_config::{ConfigErrors, Element, Errors, Section, Span};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The configuration ferry runs when started without `-c`: a forward input on 127.0.0.1:24224
/// printing every event to stdout as a JSON line.
pub const DEFAULT_CONFIG: &str = include_str!("default.conf");

/// `<system>`.
#[derive(Debug, Clone, Default)]
pub struct SystemConfig {
    pub log_level: Option<String>,
    pub root_dir: Option<PathBuf>,
    /// Where state dumps are written (SIGCONT, `/api/dump`); default `/tmp`, as sigdump.
    pub dump_dir: Option<PathBuf>,
}

/// One `<source>`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub id: String,
    pub input: InputConfig,
    pub span: Span,
}

/// The whole checked configuration.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub system: SystemConfig,
    pub sources: Vec<SourceConfig>,
    pub routes: RoutesConfig,
    /// `<source>`s that serve metrics and the monitor API.
    pub admin: Vec<AdminConfig>,
}

/// Fluentd filter types: refused until ferry provides them.
const FOREIGN_FILTER_TYPES: &[&str] = &[
    "grep",
    "record_transformer",
    "parser",
    "stdout",
    "prometheus",
    "geoip",
    "kubernetes_metadata",
];

/// Reads the file at `path`, or the embedded default configuration when `path` is `None`.
pub fn load(path: Option<&Path>) -> Result<PipelineConfig, ConfigErrors> {
    let root = match path {
        Some(p) => ferry_config::parse_file(p)?,
        None => ferry_config::parse_str(DEFAULT_CONFIG, "<embedded default configuration>")?,
    };
    build(&root)
}

/// Checks and types a parsed tree; reports every mistake at once.
pub fn build(root: &Element) -> Result<PipelineConfig, ConfigErrors> {
    let errors = Errors::new();
    let directives = ferry_config::directives(root, &errors);
    let mut ids = Ids::default();

    let system = directives
        .system
        .map(|s| read_system(s))
        .unwrap_or_default();

    let mut sources = Vec::new();
    let mut admin = Vec::new();
    for section in directives.sources {
        if let Some(kind) = section
            .plugin_type()
            .and_then(|t| ADMIN_TYPES.iter().find(|k| **k == t))
        {
            admin.extend(AdminConfig::from_section(&section, kind));
            section.finish();
            continue;
        }
        match InputConfig::from_section(&section) {
            Some(input) => {
                let id = ids.assign(&section, section.plugin_type().unwrap_or("input"));
                sources.push(SourceConfig {
                    id,
                    input,
                    span: section.span().clone(),
                });
                section.finish();
            }
            None => section.abandon(),
        }
    }

    for filter in directives
        .filters
        .iter()
        .chain(directives.labels.iter().flat_map(|l| &l.filters))
    {
        crate::plugin::plugin_type(filter, "filter", &[], FOREIGN_FILTER_TYPES);
    }

    let root_dir = system.root_dir.clone();
    let root_matches = read_matches(directives.matches, &mut ids, root_dir.as_ref());
    let mut labels = Vec::new();
    let mut label_names = HashSet::new();
    for label in directives.labels {
        if !label_names.insert(label.name.clone()) {
            errors.push(
                Some(label.span.clone()),
                format!("label {} is defined twice", label.name),
            );
        }
        labels.push(LabelConfig {
            name: label.name,
            matches: read_matches(label.matches, &mut ids, root_dir.as_ref()),
            span: label.span,
        });
    }
    for source in &sources {
        if let Some(label) = source.input.label()
            && label != "@ROOT"
            && !label_names.contains(label)
        {
            errors.push(
                Some(source.span.clone()),
                format!(
                    "@label {label} is used by source {} but no <label {label}> is defined",
                    source.id
                ),
            );
        }
    }
    errors.into_result(PipelineConfig {
        system,
        sources,
        routes: RoutesConfig {
            root: root_matches,
            labels,
        },
        admin,
    })
}

fn read_system(section: Section<'_>) -> SystemConfig {
    let log_level = section.str("log_level").map(|_| {
        section
            .enum_or("log_level", crate::LOG_LEVELS, "info")
            .to_string()
    });
    let root_dir = section.str("root_dir").map(PathBuf::from);
    let dump_dir = section.str("dump_dir").map(PathBuf::from);
    let workers = section.u64_or("workers", 1);
    if workers != 1 {
        section.error(
            Some("workers"),
            "ferry runs one process that uses every core; set workers 1 or remove it",
        );
    }
    section.finish();
    SystemConfig {
        log_level,
        root_dir,
        dump_dir,
    }
}

fn read_matches(
    sections: Vec<Section<'_>>,
    ids: &mut Ids,
    root_dir: Option<&PathBuf>,
) -> Vec<MatchConfig> {
    let mut out = Vec::new();
    for section in sections {
        let pattern = match MatchPattern::parse(section.arg()) {
            Ok(p) => Some(p),
            Err(e) => {
                section.error(None, e.to_string());
                None
            }
        };
        let id = ids.assign(&section, section.plugin_type().unwrap_or("output"));
        let Some(output) = OutputConfig::from_section(&section, &id, root_dir) else {
            section.abandon();
            continue;
        };
        if let Some(pattern) = pattern {
            out.push(MatchConfig {
                pattern,
                id,
                output,
                span: section.span().clone(),
            });
        }
        section.finish();
    }
    out
}

/// Plugin ids: `@id` when given (must be unique), else `<type>_<n>`.
#[derive(Default)]
struct Ids {
    seen: HashSet<String>,
    next: usize,
}

impl Ids {
    fn assign(&mut self, section: &Section<'_>, kind: &str) -> String {
        let id = match section.id() {
            Some(id) => id.to_string(),
            None => {
                self.next += 1;
                format!("{kind}_{}", self.next - 1)
            }
        };
        if !self.seen.insert(id.clone()) {
            section.error(Some("@id"), format!("@id {id} is used twice"));
        }
        id
    }
}
