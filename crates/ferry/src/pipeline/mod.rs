//! From a parsed configuration tree to the typed pipeline: every `<source>`, `<match>` and
//! `<label>` checked, every error collected with its file:line before anything binds.
//! `ferry --dry-run` is exactly this step.

mod compat;
mod system;

use crate::admin::{ADMIN_TYPES, AdminConfig};
use crate::filter::Filter;
use crate::input::InputConfig;
use crate::root_dir::RootDir;
use crate::router::config::read_match;
use crate::router::pattern::MatchPattern;
use crate::router::{FilterRule, Ids, LabelConfig, MatchConfig, RoutesConfig};
use ferry_config::{ConfigErrors, Element, Errors, Section, Span};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
pub use system::{LogFormat, SystemConfig};

/// The configuration ferry runs when started without `-c`: a forward input on 127.0.0.1:24224
/// printing every event to stdout as a JSON line.
pub const DEFAULT_CONFIG: &str = include_str!("../default.conf");

/// One `<source>`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub id: String,
    pub input: InputConfig,
    pub span: Span,
    /// [`crate::plugin::fingerprint`] of the `<source>`: a reload keeps an input whose
    /// fingerprint did not change running as it is.
    pub fingerprint: String,
}

/// The whole checked configuration.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub system: SystemConfig,
    /// The resolved root directory (`--root-dir`, `<system> root_dir`, or ferry's default).
    pub root: RootDir,
    pub sources: Vec<SourceConfig>,
    pub routes: RoutesConfig,
    /// `<source>`s that serve metrics and the monitor API.
    pub admin: Vec<AdminConfig>,
    /// Parameters accepted for Fluentd's sake that have no effect in ferry, each as
    /// `file:line: 'key' has no effect in ferry: what ferry does instead`.
    pub notes: Vec<String>,
    /// The configuration in Fluentd's syntax with secrets masked ([`system::dump`]), printed
    /// at start unless `<system> suppress_config_dump`.
    pub dump: String,
    /// Each plugin's `@log_level`, by plugin id.
    pub log_levels: BTreeMap<String, &'static str>,
}

/// What the command line adds to a configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// `--root-dir`: wins over `<system> root_dir`.
    pub root_dir: Option<PathBuf>,
}

/// Reads the file at `path`, or the embedded default configuration when `path` is `None`.
pub fn load(path: Option<&Path>, options: &LoadOptions) -> Result<PipelineConfig, ConfigErrors> {
    let root = match path {
        Some(p) => ferry_config::parse_file(p)?,
        None => ferry_config::parse_str(DEFAULT_CONFIG, "<embedded default configuration>")?,
    };
    build_with(&root, options)
}

/// Checks and types a parsed tree; reports every mistake at once.
pub fn build(root: &Element) -> Result<PipelineConfig, ConfigErrors> {
    build_with(root, &LoadOptions::default())
}

/// [`build`] with the command line's options.
pub fn build_with(root: &Element, options: &LoadOptions) -> Result<PipelineConfig, ConfigErrors> {
    let errors = Errors::new();
    let written = root;
    // v0.12 parameters become the v1 sections Fluentd derives from them.
    let mut converted = root.clone();
    flatten_workers(&mut converted, &errors);
    for e in compat::convert(&mut converted) {
        errors.push(Some(e.span), e.message);
    }
    let root = &converted;
    let directives = ferry_config::directives(root, &errors);
    let mut ids = Ids::default();

    let system = directives
        .system
        .map(|s| {
            let system = system::read(&s);
            s.finish();
            system
        })
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
                    fingerprint: crate::plugin::fingerprint(section.element(), ""),
                });
                section.finish();
            }
            None => section.abandon(),
        }
    }

    refuse_shared_addresses(&sources, &errors);
    let root_dir = RootDir::resolve(options.root_dir.as_deref(), system.root_dir.as_deref());
    let root_matches = read_matches(directives.matches, &mut ids, &root_dir);
    let root_filters = read_filters(directives.filters, &root.children, &mut ids);
    let mut labels = Vec::new();
    let mut label_names = HashSet::new();
    for label in directives.labels {
        if !label_names.insert(label.name.clone()) {
            errors.push(
                Some(label.span.clone()),
                format!("label {} is defined twice", label.name),
            );
        }
        if label.name == "@ROOT" {
            errors.push(
                Some(label.span.clone()),
                "@ROOT is the top level: it cannot be defined as a <label>",
            );
        }
        let siblings = label_element(root, &label.span).map_or(&[][..], |e| &e.children);
        let matches = read_matches(label.matches, &mut ids, &root_dir);
        labels.push(LabelConfig {
            filters: read_filters(label.filters, siblings, &mut ids),
            matches,
            name: label.name,
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
    let routes = RoutesConfig {
        root: root_matches,
        root_filters,
        labels,
    };
    let filters = routes
        .root_filters
        .iter()
        .chain(routes.labels.iter().flat_map(|l| l.filters.iter()));
    for rule in filters {
        if let crate::filter::Filter::Concat(c) = &*rule.filter
            && let Some(label) = &c.timeout_label
            && label != "@ROOT"
            && !label_names.contains(label.as_str())
        {
            errors.push(
                Some(rule.span.clone()),
                format!("timeout_label {label}, but no <label {label}> is defined"),
            );
        }
    }
    for (label, span) in routes.relabels() {
        if label != "@ROOT" && !label_names.contains(label) {
            errors.push(
                Some(span.clone()),
                format!("relabel to {label}, but no <label {label}> is defined"),
            );
        }
    }
    let notes = errors
        .take_notes()
        .into_iter()
        .map(|n| n.to_string())
        .collect();
    errors.into_result(PipelineConfig {
        dump: system::dump(written),
        system,
        root: root_dir,
        sources,
        routes,
        admin,
        notes,
        log_levels: ids.into_log_levels(),
    })
}

fn read_matches(sections: Vec<Section<'_>>, ids: &mut Ids, root: &RootDir) -> Vec<MatchConfig> {
    sections
        .into_iter()
        .filter_map(|section| read_match(section, ids, root))
        .collect()
}

/// The `<label>` element opened at `span`.
fn label_element<'a>(root: &'a Element, span: &Span) -> Option<&'a Element> {
    root.children
        .iter()
        .find(|e| e.name == "label" && &e.span == span)
}

/// Reads `<filter>` sections; `siblings` are the elements of their table in file order, to
/// count the `<match>` directives before each filter.
fn read_filters(
    sections: Vec<Section<'_>>,
    siblings: &[Element],
    ids: &mut Ids,
) -> Vec<FilterRule> {
    let mut out = Vec::new();
    for section in sections {
        let pattern = MatchPattern::parse(section.arg())
            .map_err(|e| section.error(None, e.to_string()))
            .ok();
        let id = ids.assign(&section, section.plugin_type().unwrap_or("filter"));
        let position = siblings
            .iter()
            .position(|e| std::ptr::eq(e, section.element()))
            .unwrap_or(siblings.len());
        let before_match = siblings[..position]
            .iter()
            .filter(|e| e.name == "match")
            .count();
        let Some(filter) = Filter::from_section(&section) else {
            section.abandon();
            continue;
        };
        let span = section.span().clone();
        section.finish();
        if let Some(pattern) = pattern {
            out.push(FilterRule {
                pattern,
                id,
                filter: Arc::new(filter),
                before_match,
                span,
            });
        }
    }
    out
}

impl PipelineConfig {
    /// What `--dry-run` prints: every input, output and route, with where it was written.
    pub fn summary(&self) -> String {
        use crate::router::{StoreTarget, TargetConfig};
        use std::fmt::Write;
        let mut out = String::from("inputs:\n");
        for s in &self.sources {
            let label = s
                .input
                .label()
                .map(|l| format!(" -> {l}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {} ({}){label}  at {}",
                s.id,
                s.input.type_name(),
                s.span
            );
        }
        let mut tables = vec![("@ROOT", &self.routes.root_filters, &self.routes.root)];
        for l in &self.routes.labels {
            tables.push((l.name.as_str(), &l.filters, &l.matches));
        }
        out.push_str("routes:\n");
        for (name, filters, matches) in tables {
            let _ = writeln!(out, "  {name}:");
            for f in filters {
                let _ = writeln!(
                    out,
                    "    filter {}  {} ({})  at {}",
                    f.pattern,
                    f.id,
                    f.filter.type_name(),
                    f.span
                );
            }
            for m in matches {
                let target = match &m.target {
                    TargetConfig::Output(o) => format!("{} ({})", m.id, o.sink.type_name()),
                    TargetConfig::Relabel(l) => format!("relabel -> {l}"),
                    TargetConfig::Copy(c) => {
                        let stores: Vec<String> = c
                            .stores
                            .iter()
                            .map(|s| match &s.target {
                                StoreTarget::Output(o) => {
                                    format!("{} ({})", s.id, o.sink.type_name())
                                }
                                StoreTarget::Relabel(l) => format!("relabel -> {l}"),
                            })
                            .collect();
                        let kind = if c.round_robin { "roundrobin" } else { "copy" };
                        format!("{} ({kind}: {})", m.id, stores.join(", "))
                    }
                };
                let _ = writeln!(out, "    match {}  {target}  at {}", m.pattern, m.span);
            }
        }
        out
    }

    /// What ferry says at start (and after a reload) about where acknowledged events may be
    /// lost: outputs with a memory buffer, when an input that acknowledges (forward: the
    /// connection and acks; tail: the position file) may feed them.
    pub fn durability_warnings(&self) -> Vec<String> {
        let acking: Vec<&str> = self
            .sources
            .iter()
            .filter(|s| s.input.acknowledges())
            .map(|s| s.id.as_str())
            .collect();
        if acking.is_empty() {
            return Vec::new();
        }
        self.routes
            .outputs()
            .into_iter()
            .filter(|(_, o)| o.buffer.as_ref().is_some_and(|b| !b.is_file()))
            .map(|(id, _)| {
                format!(
                    "output {id} has a memory buffer: events that inputs {} acknowledge are lost if ferry crashes before they are flushed (a planned stop writes them to {}); remove '@type memory' for a file buffer",
                    acking.join(", "),
                    self.root.spill_dir(id).display()
                )
            })
            .collect()
    }
}

/// `<worker N>` and `<worker N-M>`: ferry is one process that uses every core, so the
/// directives inside run once, as if written at the top level (with one warning each).
fn flatten_workers(root: &mut Element, errors: &Errors) {
    let mut children = Vec::with_capacity(root.children.len());
    for e in std::mem::take(&mut root.children) {
        if e.name != "worker" {
            children.push(e);
            continue;
        }
        let arg = e.arg.trim();
        let range = match arg.split_once('-') {
            Some((a, b)) => a
                .trim()
                .parse::<u32>()
                .ok()
                .zip(b.trim().parse::<u32>().ok()),
            None => arg.parse::<u32>().ok().map(|n| (n, n)),
        };
        match range {
            Some((a, b)) if a <= b => errors.note(
                Some(e.span.clone()),
                format!("<worker {arg}>: ferry is one process that uses every core; the directives inside run once"),
            ),
            _ => {
                errors.push(
                    Some(e.span.clone()),
                    format!("<worker {arg}>: a worker is a number or a range N-M"),
                );
                continue;
            }
        }
        for p in &e.params {
            errors.push(
                Some(p.span.clone()),
                format!(
                    "parameter '{}' is not allowed in <worker>: only directives are",
                    p.key
                ),
            );
        }
        children.extend(e.children);
    }
    root.children = children;
}

/// Two inputs on one address (as `<worker>` sections written for several processes can give):
/// refused with both lines, before anything binds.
fn refuse_shared_addresses(sources: &[SourceConfig], errors: &Errors) {
    let mut seen: std::collections::HashMap<(String, u16), &Span> =
        std::collections::HashMap::new();
    for s in sources {
        let InputConfig::Forward(c) = &s.input else {
            continue;
        };
        if !c.listen_tcp || c.port == 0 {
            continue;
        }
        let key = (c.bind.clone(), c.port);
        match seen.get(&key) {
            Some(first) => errors.push(
                Some(s.span.clone()),
                format!(
                    "source {} listens on {}:{} as the source at {first} does",
                    s.id, c.bind, c.port
                ),
            ),
            None => {
                seen.insert(key, &s.span);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_buffer::BufferType;

    fn load(text: &str, root_dir: Option<&str>) -> PipelineConfig {
        let root = ferry_config::parse_str(text, "test.conf").unwrap();
        let options = LoadOptions {
            root_dir: root_dir.map(PathBuf::from),
        };
        build_with(&root, &options).unwrap_or_else(|e| panic!("{:?}", e.0))
    }

    fn buffer_of(c: &PipelineConfig) -> BufferType {
        let (_, o) = c.routes.outputs()[0];
        o.buffer.as_ref().unwrap().config.buffer_type.clone()
    }

    const FORWARD: &str = "<source>\n  @type forward\n</source>\n<match **>\n  @type forward\n  @id out\n  <server>\n    host 127.0.0.1\n  </server>\n  BUFFER</match>\n";

    #[test]
    fn a_buffer_that_names_no_type_is_a_file_buffer_under_the_root_directory() {
        let none = load(&FORWARD.replace("BUFFER", ""), Some("/r"));
        assert_eq!(
            buffer_of(&none),
            BufferType::File {
                path: PathBuf::from("/r/buffer/out")
            }
        );
        let untyped = FORWARD.replace("BUFFER", "<buffer>\n    flush_interval 1s\n  </buffer>\n");
        assert_eq!(buffer_of(&load(&untyped, Some("/r"))), buffer_of(&none));
        let system = format!(
            "<system>\n  root_dir /s\n</system>\n{}",
            FORWARD.replace("BUFFER", "")
        );
        assert_eq!(
            buffer_of(&load(&system, None)),
            BufferType::File {
                path: PathBuf::from("/s/buffer/out")
            }
        );
        // The command line wins over <system>.
        assert_eq!(buffer_of(&load(&system, Some("/r"))), buffer_of(&none));
        assert!(none.durability_warnings().is_empty());
    }

    #[test]
    fn a_memory_buffer_behind_an_acknowledging_input_is_said_at_start() {
        let memory = FORWARD.replace("BUFFER", "<buffer>\n    @type memory\n  </buffer>\n");
        let c = load(&memory, Some("/r"));
        assert_eq!(buffer_of(&c), BufferType::Memory);
        let w = c.durability_warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("output out has a memory buffer"), "{}", w[0]);
        assert!(w[0].contains("/r/spill/out"), "{}", w[0]);
    }
}
