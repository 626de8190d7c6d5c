//! The tests of the workspace, each with the words it uses: the words of its string literals
//! (configuration text) and its identifiers (a field set in a struct), its own and those of the
//! items of its file its body names (a `const` configuration, a helper that writes one).
//! Tests written inside `proptest! { .. }` are included.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use syn::visit::{self, Visit};

/// One `#[test]` / `#[tokio::test]` function.
#[derive(Debug)]
pub struct TestFn {
    /// `ferry/tests/tail.rs`: the file under `crates/`.
    pub file: String,
    pub name: String,
    /// Words of its string literals, and of those of the items of its file it names.
    pub text: BTreeSet<String>,
    /// Identifiers of its body, and of the items of its file it names.
    pub idents: BTreeSet<String>,
}

impl TestFn {
    /// Whether `reference` (`tests/tail::name`, `tail/config::name`) names this test: its name,
    /// and a path that ends the test's file path (a `mod.rs` file is named by its directory).
    pub fn is(&self, reference: &str) -> bool {
        let Some((path, name)) = reference.rsplit_once("::") else {
            return false;
        };
        let file = self.file.trim_end_matches(".rs");
        let file = file.strip_suffix("/mod").unwrap_or(file);
        name == self.name && (file == path || file.ends_with(&format!("/{path}")))
    }

    /// Whether the test writes `key` in configuration text (a pattern key `formatN` as
    /// `format1`).
    pub fn writes(&self, key: &str) -> bool {
        self.text.contains(&concrete(key))
    }

    /// Whether the test names `key` as an identifier (the field it is read into).
    pub fn names(&self, key: &str) -> bool {
        self.idents.contains(&concrete(key))
    }
}

fn concrete(key: &str) -> String {
    key.strip_suffix('N')
        .map_or(key.to_string(), |k| format!("{k}1"))
}

/// Every test function of the `.rs` files under `crates/*/src` and `crates/*/tests`, except
/// those of the files `skip` (paths under `crates/`).
pub fn index(crates: &Path, skip: &[&str]) -> Vec<TestFn> {
    let mut files = Vec::new();
    for krate in read_dir(crates) {
        for sub in ["src", "tests"] {
            rust_files(&krate.join(sub), &mut files);
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(crates).unwrap_or(&f).display().to_string();
        if skip.iter().any(|s| rel.starts_with(s)) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        index_file(&rel, &ast, &mut out);
    }
    out
}

/// The test functions of one source text.
pub fn index_file(rel: &str, ast: &syn::File, out: &mut Vec<TestFn>) {
    let mut items = Items::default();
    items.visit_file(ast);
    for (name, body) in &items.tests {
        let mut own = Words::default();
        own.collect(body);
        let mut all = Words::default();
        all.collect(body);
        for w in &own.idents {
            if w != name
                && let Some(item) = items.named.get(w)
            {
                all.collect(item);
            }
        }
        out.push(TestFn {
            file: rel.to_string(),
            name: name.clone(),
            text: all.text,
            idents: all.idents,
        });
    }
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for p in read_dir(dir) {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Test bodies and the named items of a file.
#[derive(Default)]
struct Items {
    tests: Vec<(String, TokenStream)>,
    named: HashMap<String, TokenStream>,
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .any(|a| a.path().segments.last().is_some_and(|s| s.ident == "test"))
}

impl<'ast> Visit<'ast> for Items {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        let name = f.sig.ident.to_string();
        if is_test(&f.attrs) {
            self.tests.push((name, f.block.to_token_stream()));
        } else {
            self.named.insert(name, f.block.to_token_stream());
        }
        visit::visit_item_fn(self, f);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.named
            .insert(f.sig.ident.to_string(), f.block.to_token_stream());
    }

    fn visit_item_const(&mut self, c: &'ast syn::ItemConst) {
        self.named
            .insert(c.ident.to_string(), c.expr.to_token_stream());
    }

    fn visit_item_static(&mut self, s: &'ast syn::ItemStatic) {
        self.named
            .insert(s.ident.to_string(), s.expr.to_token_stream());
    }

    /// `proptest! { #[test] fn name(x in strategy) { .. } }`: each `fn` is a test.
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        if m.path.segments.last().is_none_or(|s| s.ident != "proptest") {
            return;
        }
        let trees: Vec<TokenTree> = m.tokens.clone().into_iter().collect();
        for (i, t) in trees.iter().enumerate() {
            if let (TokenTree::Ident(f), Some(TokenTree::Ident(name))) = (t, trees.get(i + 1))
                && f == "fn"
                && let Some(TokenTree::Group(body)) = trees[i + 2..].iter().find(|t| {
                    matches!(t, TokenTree::Group(g) if g.delimiter() == proc_macro2::Delimiter::Brace)
                })
            {
                self.tests.push((name.to_string(), body.stream()));
            }
        }
    }
}

/// The words of string literals and the identifiers of some tokens, recursively (macro bodies
/// included).
#[derive(Default)]
struct Words {
    text: BTreeSet<String>,
    idents: BTreeSet<String>,
}

impl Words {
    fn collect(&mut self, tokens: &TokenStream) {
        for t in tokens.clone() {
            match t {
                TokenTree::Ident(i) => {
                    self.idents.insert(i.to_string());
                }
                TokenTree::Group(g) => self.collect(&g.stream()),
                TokenTree::Literal(l) => {
                    let tokens = TokenTree::Literal(l).into_token_stream();
                    let text = match syn::parse2::<syn::Lit>(tokens) {
                        Ok(syn::Lit::Str(s)) => s.value(),
                        Ok(syn::Lit::ByteStr(b)) => {
                            String::from_utf8_lossy(&b.value()).into_owned()
                        }
                        _ => continue,
                    };
                    self.text.extend(
                        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '@'))
                            .filter(|w| !w.is_empty())
                            .map(str::to_string),
                    );
                }
                TokenTree::Punct(_) => {}
            }
        }
    }
}
