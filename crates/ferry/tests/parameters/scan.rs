//! The scanner: every parameter name ferry's configuration readers ask a [`Section`] for, read
//! from the sources with `syn`.
//!
//! A read is a call of a `Section` getter whose first argument is the key (`s.str_or("bind",
//! ..)`), a getter with a fixed key (`s.plugin_type()` reads `@type` and `type`), or a call of a
//! listed helper that forwards its key argument to a getter (`read_time_format(s, "time_format")`).
//! A key is a string literal, or resolves to literals: a `const` slice, a `for` loop over literals,
//! a local bound to literals (through `if`/`match`), `format!("format{n}")` (read as `formatN`).
//! Anything else is a problem the test reports, so a refactor cannot hide a key.
//!
//! Receivers: a getter name only a `Section` has (`str_or`, `no_effect`, ...) must be called on a
//! receiver the scanner knows to be a section, or it is a problem (the inference below has a
//! hole). Names other types share (`get`, `str`, `label`, ...) count only on such receivers.
//! Known sections: parameters whose type names `Section`; fields of that type; bindings and
//! closure parameters fed by a section, `.child(..)`, `.children(..)` or `Section::new(..)`.
//!
//! Only code that is compiled into ferry is read: the module tree from `lib.rs` and `main.rs`,
//! without `#[cfg(test)]` items and `#[test]` functions.
//!
//! | module | what it does |
//! |---|---|
//! | this one | what the scan is told and finds; the module tree; constants and fields every file sees |
//! | [`exprs`] | what an expression stands for: string literals, the names a pattern binds |
//! | [`visit`] | one file: sections, keys, helpers, families |

#[path = "scan_exprs.rs"]
mod exprs;
#[path = "scan_visit.rs"]
mod visit;

use exprs::{literals, tokens_name};
use quote::ToTokens;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use syn::Expr;
use syn::visit::Visit;
use visit::scan_file;

/// `Section` methods that read the parameter named by their first argument.
pub const KEY_GETTERS: &[&str] = &[
    "get",
    "has",
    "str",
    "required_str",
    "str_or",
    "opt_bool",
    "bool_or",
    "opt_u64",
    "u64_or",
    "port_or",
    "opt_i64",
    "i64_or",
    "opt_f64",
    "f64_or",
    "opt_size",
    "size_or",
    "opt_duration",
    "duration_or",
    "enum_or",
    "opt_enum",
    "array",
    "hash",
    "no_effect",
    "no_effect_unless",
    "warn",
];

/// `Section` methods that read fixed parameters.
pub const FIXED_GETTERS: &[(&str, &[&str])] = &[
    ("plugin_type", &["@type", "type"]),
    ("id", &["@id"]),
    ("label", &["@label"]),
    ("log_level", &["@log_level"]),
];

/// The `Section` method that accepts every parameter of a free-form section (`<record>`).
pub const ALL_GETTER: &str = "params";

/// `Section` methods that read no parameter.
pub const NOT_READING: &[&str] = &[
    "new",
    "name",
    "arg",
    "span",
    "element",
    "errors",
    "param_span",
    "error",
    "child",
    "children",
    "abandon",
    "finish",
];

/// Getter names other types also have: a read only on a receiver known to be a section.
pub(crate) const SHARED_NAMES: &[&str] = &[
    "get", "has", "str", "array", "hash", "id", "label", "params",
];

/// Methods that hand the sections they are called on to their closure.
pub(crate) const CLOSURE_PASS: &[&str] = &[
    "map",
    "and_then",
    "filter_map",
    "flat_map",
    "for_each",
    "map_or",
    "map_or_else",
    "filter",
    "find",
    "any",
    "all",
    "is_some_and",
    "is_none_or",
    "inspect",
];

/// Methods whose result is sections when their receiver is.
pub(crate) const SECTION_PASS: &[&str] = &[
    "child",
    "children",
    "as_ref",
    "as_deref",
    "into_iter",
    "iter",
    "unwrap",
    "expect",
    "clone",
    "flatten",
];

/// What the scanner is told: where each file's keys belong, and the helpers that forward a key.
#[derive(Debug, Clone, Copy)]
pub struct ScanConfig<'a> {
    /// `("path/under/src.rs", family)` or `("path.rs::function", family)`; the function wins.
    pub families: &'a [(&'a str, &'a str)],
    /// Functions (or closures bound by `let`) that pass their argument `index` to a getter as
    /// the key: a call of one is a read of the key at that argument.
    pub helpers: &'a [(&'a str, usize)],
}

/// How a key is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReadKind {
    /// A getter or a helper: the key is accepted.
    Read,
    /// `no_effect` / `no_effect_unless`: accepted with a warning.
    NoEffect,
}

/// One key read somewhere.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Read {
    pub family: String,
    pub key: String,
    pub kind: ReadKind,
    /// `path/under/src.rs:line`.
    pub at: String,
    /// The getter or helper that reads it.
    pub via: String,
}

/// Everything the scan found.
#[derive(Debug, Default)]
pub struct Scan {
    pub reads: Vec<Read>,
    /// `params()` calls: sections whose every key is accepted, as `family at`.
    pub free_form: Vec<String>,
    /// Calls the scanner cannot resolve, files without a family, helpers not listed.
    pub problems: Vec<String>,
    /// Helpers of [`ScanConfig::helpers`] seen forwarding their key.
    pub helpers_seen: BTreeSet<String>,
}

/// Scans the module tree of the crate whose sources are in `src`, from `roots` (`lib.rs`, ...).
/// `field_files` are read for struct fields of type `Section` (ferry-config's `Directives`).
pub fn scan_crate(
    src: &Path,
    roots: &[&str],
    field_files: &[PathBuf],
    config: ScanConfig<'_>,
) -> Scan {
    let mut files = Vec::new();
    for root in roots {
        collect_modules(&src.join(root), &mut files);
    }
    let parsed: Vec<(String, syn::File)> = files
        .iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let rel = f.strip_prefix(src).unwrap_or(f).display().to_string();
            let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
            (rel, ast)
        })
        .collect();
    let mut globals = Globals::default();
    for (_, ast) in &parsed {
        globals.collect(ast);
    }
    for f in field_files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        globals.collect(&syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display())));
    }
    let mut scan = Scan::default();
    for (rel, ast) in &parsed {
        scan_file(rel, ast, &globals, config, &mut scan);
    }
    scan.reads.sort();
    scan.reads.dedup();
    scan
}

/// Scans one source text (for the scanner's own test).
pub fn scan_source(rel: &str, text: &str, config: ScanConfig<'_>) -> Scan {
    let ast = syn::parse_file(text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let mut globals = Globals::default();
    globals.collect(&ast);
    let mut scan = Scan::default();
    scan_file(rel, &ast, &globals, config, &mut scan);
    scan.reads.sort();
    scan
}

/// The public methods of `impl Section` in `section.rs`.
pub fn section_methods(section_rs: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(section_rs).expect("section.rs");
    let ast = syn::parse_file(&text).expect("section.rs parses");
    let mut out = BTreeSet::new();
    for item in &ast.items {
        if let syn::Item::Impl(imp) = item
            && imp.trait_.is_none()
            && tokens_name(&imp.self_ty.to_token_stream(), "Section")
        {
            for it in &imp.items {
                if let syn::ImplItem::Fn(f) = it
                    && matches!(f.vis, syn::Visibility::Public(_))
                {
                    out.insert(f.sig.ident.to_string());
                }
            }
        }
    }
    out
}

pub(crate) fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        let path = a.path();
        let tokens = a.meta.to_token_stream().to_string();
        (path.is_ident("cfg") && tokens.contains("test") && !tokens.contains("not"))
            || path.segments.last().is_some_and(|s| s.ident == "test")
    })
}

fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            Expr::Lit(l) => match &l.lit {
                syn::Lit::Str(s) => Some(s.value()),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    })
}

/// `file` and the files of the modules it declares (`mod x;`), skipping test-only ones.
fn collect_modules(file: &Path, out: &mut Vec<PathBuf>) {
    if out.iter().any(|f| f == file) {
        return;
    }
    out.push(file.to_path_buf());
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let parent = file.parent().expect("a file has a directory");
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let dir = if matches!(stem, "lib" | "main" | "mod") {
        parent.to_path_buf()
    } else {
        parent.join(stem)
    };
    for item in &ast.items {
        let syn::Item::Mod(m) = item else { continue };
        if is_test_only(&m.attrs) || m.content.is_some() {
            continue;
        }
        let name = m.ident.to_string();
        let next = match path_attr(&m.attrs) {
            Some(p) => parent.join(p),
            None if dir.join(format!("{name}.rs")).exists() => dir.join(format!("{name}.rs")),
            None => dir.join(&name).join("mod.rs"),
        };
        collect_modules(&next, out);
    }
}

/// What every file can see: constants of string literals, and struct fields of section type.
#[derive(Debug, Default)]
struct Globals {
    pub(crate) consts: HashMap<String, Vec<String>>,
    pub(crate) section_fields: HashSet<String>,
}

impl Globals {
    fn collect(&mut self, ast: &syn::File) {
        struct V<'g>(&'g mut Globals);
        impl<'ast> Visit<'ast> for V<'_> {
            fn visit_item_const(&mut self, c: &'ast syn::ItemConst) {
                if let Some(lits) = literals(&c.expr, &HashMap::new(), &HashMap::new()) {
                    self.0.consts.insert(c.ident.to_string(), lits);
                }
            }
            fn visit_field(&mut self, f: &'ast syn::Field) {
                if let Some(name) = &f.ident
                    && tokens_name(&f.ty.to_token_stream(), "Section")
                {
                    self.0.section_fields.insert(name.to_string());
                }
            }
        }
        V(self).visit_file(ast);
    }
}
