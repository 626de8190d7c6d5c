//! One file of a reader: which bindings are sections, the keys their getters and the listed
//! helpers read, and the family each belongs to.

use super::exprs::{calls_a_getter, literals, pat_idents, tokens_name};
use super::{
    ALL_GETTER, CLOSURE_PASS, FIXED_GETTERS, Globals, KEY_GETTERS, Read, ReadKind, SECTION_PASS,
    SHARED_NAMES, Scan, ScanConfig, is_test_only,
};
use quote::ToTokens;
use std::collections::HashMap;
use syn::visit::{self, Visit};
use syn::{Expr, Pat};

/// A function or a `let`-bound closure whose parameters a getter key may name.
#[derive(Debug, Clone)]
struct Frame {
    name: String,
    params: Vec<String>,
}

struct FileScan<'a> {
    rel: &'a str,
    globals: &'a Globals,
    config: ScanConfig<'a>,
    scan: &'a mut Scan,
    /// The function being read (for its family).
    function: String,
    /// Known sections in scope, with the child section name they came from.
    sections: HashMap<String, Option<String>>,
    /// Locals bound to string literals.
    locals: HashMap<String, Vec<String>>,
    frames: Vec<Frame>,
    /// The name a `let` is binding a closure to.
    binding: Option<String>,
}

pub fn scan_file(
    rel: &str,
    ast: &syn::File,
    globals: &Globals,
    config: ScanConfig<'_>,
    scan: &mut Scan,
) {
    let mut f = FileScan {
        rel,
        globals,
        config,
        scan,
        function: String::new(),
        sections: HashMap::new(),
        locals: HashMap::new(),
        frames: Vec::new(),
        binding: None,
    };
    f.visit_file(ast);
}

impl FileScan<'_> {
    fn at(&self, span: proc_macro2::Span) -> String {
        format!("{}:{}", self.rel, span.start().line)
    }

    fn family(&self, child: Option<&str>) -> Option<String> {
        let with_fn = format!("{}::{}", self.rel, self.function);
        let base = self
            .config
            .families
            .iter()
            .find(|(k, _)| *k == with_fn)
            .or_else(|| self.config.families.iter().find(|(k, _)| *k == self.rel))
            .map(|(_, f)| (*f).to_string())?;
        Some(match child {
            Some(c) if !base.ends_with(&format!("<{c}>")) => format!("{base} <{c}>"),
            _ => base,
        })
    }

    /// `Some(child name)` when `e` is a section (or sections).
    fn derived(&self, e: &Expr) -> Option<Option<String>> {
        match e {
            Expr::Path(p) if p.path.segments.len() == 1 => self
                .sections
                .get(&p.path.segments[0].ident.to_string())
                .cloned(),
            Expr::Field(f) => match &f.member {
                syn::Member::Named(n) if self.globals.section_fields.contains(&n.to_string()) => {
                    Some(None)
                }
                _ => None,
            },
            Expr::MethodCall(m) => {
                let name = m.method.to_string();
                if !SECTION_PASS.contains(&name.as_str()) {
                    return None;
                }
                let base = self.derived(&m.receiver)?;
                if matches!(name.as_str(), "child" | "children") {
                    let lits = m
                        .args
                        .first()
                        .and_then(|a| literals(a, &self.locals, &self.globals.consts));
                    return Some(lits.and_then(|l| l.into_iter().next()));
                }
                Some(base)
            }
            Expr::Call(c) => {
                let s = c.func.to_token_stream().to_string().replace(' ', "");
                s.ends_with("Section::new").then_some(None)
            }
            Expr::Reference(r) => self.derived(&r.expr),
            Expr::Paren(p) => self.derived(&p.expr),
            Expr::Try(t) => self.derived(&t.expr),
            _ => None,
        }
    }

    /// Binds the names of `pat` to what `init` is.
    fn bind(&mut self, pat: &Pat, init: Option<&Expr>) {
        let mut names = Vec::new();
        pat_idents(pat, &mut names);
        let section = init.and_then(|e| self.derived(e));
        for n in &names {
            match &section {
                Some(child) => self.sections.insert(n.clone(), child.clone()),
                None => self.sections.remove(n),
            };
            self.locals.remove(n);
        }
        // Locals bound to literals, element by element for tuples.
        match (pat, init) {
            (Pat::Tuple(pt), Some(Expr::Tuple(et))) => {
                for (p, e) in pt.elems.iter().zip(et.elems.iter()) {
                    self.bind_literals(p, e);
                }
            }
            (p, Some(e)) => self.bind_literals(p, e),
            _ => {}
        }
    }

    fn bind_literals(&mut self, pat: &Pat, e: &Expr) {
        let mut names = Vec::new();
        pat_idents(pat, &mut names);
        if let ([name], Some(l)) = (&names[..], literals(e, &self.locals, &self.globals.consts)) {
            self.locals.insert(name.clone(), l);
        }
    }

    fn record(
        &mut self,
        key: String,
        kind: ReadKind,
        via: &str,
        child: Option<&str>,
        span: proc_macro2::Span,
    ) {
        let at = self.at(span);
        match self.family(child) {
            Some(family) => self.scan.reads.push(Read {
                family,
                key,
                kind,
                at,
                via: via.to_string(),
            }),
            None => self.scan.problems.push(format!(
                "{at}: '{key}' is read in a file with no family: add '{}' (or '{}::{}') to FAMILIES",
                self.rel, self.rel, self.function
            )),
        }
    }

    /// Records the key `arg` of a getter or helper `via`.
    fn key_arg(
        &mut self,
        arg: Option<&Expr>,
        kind: ReadKind,
        via: &str,
        child: Option<&str>,
        span: proc_macro2::Span,
    ) {
        let Some(arg) = arg else {
            let at = self.at(span);
            self.scan
                .problems
                .push(format!("{at}: {via} has no key argument"));
            return;
        };
        if let Some(keys) = literals(arg, &self.locals, &self.globals.consts) {
            for k in keys {
                self.record(k, kind, via, child, span);
            }
            return;
        }
        // A parameter of the enclosing function or closure: that one is a helper.
        let param = match arg {
            Expr::Path(p) if p.path.segments.len() == 1 => {
                Some(p.path.segments[0].ident.to_string())
            }
            Expr::Reference(r) => match &*r.expr {
                Expr::Path(p) if p.path.segments.len() == 1 => {
                    Some(p.path.segments[0].ident.to_string())
                }
                _ => None,
            },
            _ => None,
        };
        let at = self.at(span);
        let text = arg.to_token_stream().to_string();
        if let Some(param) = param {
            for frame in self.frames.iter().rev() {
                if let Some(index) = frame.params.iter().position(|p| *p == param) {
                    if self.helper_indices(&frame.name).contains(&index) {
                        self.scan.helpers_seen.insert(frame.name.clone());
                    } else {
                        self.scan.problems.push(format!(
                            "{at}: {via}({text}): the key is argument {index} of '{}': list (\"{}\", {index}) in KEY_HELPERS so the keys passed to it are read",
                            frame.name, frame.name
                        ));
                    }
                    return;
                }
            }
        }
        self.scan.problems.push(format!(
            "{at}: {via}({text}): the key does not resolve to string literals"
        ));
    }

    /// The key arguments of the helper `name` when it is listed (as `name`, or as
    /// `file.rs::name` for a helper local to this file); a helper may take several keys.
    fn helper_indices(&self, name: &str) -> Vec<usize> {
        let local = format!("{}::{name}", self.rel);
        self.config
            .helpers
            .iter()
            .filter(|(n, _)| *n == name || *n == local)
            .map(|(_, i)| *i)
            .collect()
    }

    fn visit_closure_with(
        &mut self,
        c: &syn::ExprClosure,
        first_is_section: Option<Option<String>>,
    ) {
        let saved = (self.sections.clone(), self.locals.clone());
        let mut params = Vec::new();
        for (i, p) in c.inputs.iter().enumerate() {
            let mut names = Vec::new();
            pat_idents(p, &mut names);
            let typed =
                matches!(p, Pat::Type(t) if tokens_name(&t.ty.to_token_stream(), "Section"));
            for n in names {
                self.locals.remove(&n);
                if typed {
                    self.sections.insert(n.clone(), None);
                } else if i == 0
                    && let Some(child) = &first_is_section
                {
                    self.sections.insert(n.clone(), child.clone());
                } else {
                    self.sections.remove(&n);
                }
                params.push(n);
            }
        }
        let framed = self.binding.take();
        if let Some(name) = &framed {
            self.frames.push(Frame {
                name: name.clone(),
                params,
            });
        }
        self.visit_expr(&c.body);
        if framed.is_some() {
            self.frames.pop();
        }
        (self.sections, self.locals) = saved;
    }

    fn visit_function(&mut self, name: &str, sig: &syn::Signature, body: &syn::Block) {
        let saved_fn = std::mem::replace(&mut self.function, name.to_string());
        let saved = (
            std::mem::take(&mut self.sections),
            std::mem::take(&mut self.locals),
        );
        let mut params = Vec::new();
        for input in &sig.inputs {
            if let syn::FnArg::Typed(t) = input {
                let mut names = Vec::new();
                pat_idents(&t.pat, &mut names);
                let section = tokens_name(&t.ty.to_token_stream(), "Section");
                for n in names {
                    if section {
                        self.sections.insert(n.clone(), None);
                    }
                    params.push(n);
                }
            }
        }
        self.frames.push(Frame {
            name: name.to_string(),
            params,
        });
        self.visit_block(body);
        self.frames.pop();
        (self.sections, self.locals) = saved;
        self.function = saved_fn;
    }
}

impl<'ast> Visit<'ast> for FileScan<'_> {
    /// Macro arguments are read as expressions (`vec![..]`, `format!(..)`, `assert!(..)`); a
    /// macro whose arguments are not expressions must not call a getter.
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        use syn::parse::Parser;
        let args = syn::punctuated::Punctuated::<Expr, syn::Token![,]>::parse_terminated;
        match args.parse2(m.tokens.clone()) {
            Ok(exprs) => exprs.iter().for_each(|e| self.visit_expr(e)),
            Err(_) if calls_a_getter(&m.tokens, self.config.helpers) => {
                let at = self.at(m.path.segments[0].ident.span());
                let name = m.path.to_token_stream().to_string();
                self.scan.problems.push(format!(
                    "{at}: {name}! calls a getter with arguments the scanner cannot read: take the value out of the macro"
                ));
            }
            Err(_) => {}
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_test_only(&m.attrs) {
            visit::visit_item_mod(self, m);
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_test_only(&f.attrs) {
            self.visit_function(&f.sig.ident.to_string(), &f.sig, &f.block);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test_only(&f.attrs) {
            self.visit_function(&f.sig.ident.to_string(), &f.sig, &f.block);
        }
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        if !is_test_only(&i.attrs) {
            visit::visit_item_impl(self, i);
        }
    }

    fn visit_local(&mut self, l: &'ast syn::Local) {
        let init = l.init.as_ref();
        if let Some(init) = init {
            if let (Pat::Ident(name), Expr::Closure(_)) = (&l.pat, &*init.expr) {
                self.binding = Some(name.ident.to_string());
            }
            self.visit_expr(&init.expr);
            self.binding = None;
            if let Some((_, diverge)) = &init.diverge {
                self.visit_expr(diverge);
            }
        }
        self.bind(&l.pat, init.map(|i| &*i.expr));
    }

    fn visit_expr_let(&mut self, l: &'ast syn::ExprLet) {
        self.visit_expr(&l.expr);
        self.bind(&l.pat, Some(&l.expr));
    }

    fn visit_expr_match(&mut self, m: &'ast syn::ExprMatch) {
        self.visit_expr(&m.expr);
        for arm in &m.arms {
            let saved = (self.sections.clone(), self.locals.clone());
            let mut names = Vec::new();
            pat_idents(&arm.pat, &mut names);
            let section = self.derived(&m.expr);
            for n in names {
                self.locals.remove(&n);
                match &section {
                    Some(c) => self.sections.insert(n, c.clone()),
                    None => self.sections.remove(&n),
                };
            }
            if let Some((_, guard)) = &arm.guard {
                self.visit_expr(guard);
            }
            self.visit_expr(&arm.body);
            (self.sections, self.locals) = saved;
        }
    }

    fn visit_expr_for_loop(&mut self, f: &'ast syn::ExprForLoop) {
        self.visit_expr(&f.expr);
        let saved = (self.sections.clone(), self.locals.clone());
        let mut names = Vec::new();
        pat_idents(&f.pat, &mut names);
        let section = self.derived(&f.expr);
        let lits = literals(&f.expr, &self.locals, &self.globals.consts);
        for n in &names {
            self.locals.remove(n);
            match &section {
                Some(c) => self.sections.insert(n.clone(), c.clone()),
                None => self.sections.remove(n),
            };
        }
        if let ([name], Some(l)) = (&names[..], lits) {
            self.locals.insert(name.clone(), l);
        }
        self.visit_block(&f.body);
        (self.sections, self.locals) = saved;
    }

    fn visit_expr_closure(&mut self, c: &'ast syn::ExprClosure) {
        self.visit_closure_with(c, None);
    }

    fn visit_expr_call(&mut self, c: &'ast syn::ExprCall) {
        if let Expr::Path(p) = &*c.func
            && let Some(last) = p.path.segments.last()
        {
            let name = last.ident.to_string();
            let span = last.ident.span();
            for index in self.helper_indices(&name) {
                self.key_arg(c.args.iter().nth(index), ReadKind::Read, &name, None, span);
            }
        }
        visit::visit_expr_call(self, c);
    }

    fn visit_expr_method_call(&mut self, m: &'ast syn::ExprMethodCall) {
        let name = m.method.to_string();
        let span = m.method.span();
        let receiver = self.derived(&m.receiver);
        let on_section = receiver.is_some();
        let child = receiver.clone().flatten();
        let shared = SHARED_NAMES.contains(&name.as_str());
        let getter = KEY_GETTERS.contains(&name.as_str());
        let fixed = FIXED_GETTERS.iter().find(|(n, _)| *n == name);
        if (getter || fixed.is_some() || name == ALL_GETTER) && !on_section && !shared {
            let at = self.at(span);
            let text = m.receiver.to_token_stream().to_string();
            self.scan.problems.push(format!(
                "{at}: .{name}() on '{text}', which the scanner does not know to be a Section"
            ));
        } else if on_section && getter {
            let kind = if name.starts_with("no_effect") {
                ReadKind::NoEffect
            } else {
                ReadKind::Read
            };
            self.key_arg(m.args.first(), kind, &name, child.as_deref(), span);
        } else if on_section && let Some((_, keys)) = fixed {
            for k in *keys {
                self.record(
                    (*k).to_string(),
                    ReadKind::Read,
                    &name,
                    child.as_deref(),
                    span,
                );
            }
        } else if on_section && name == ALL_GETTER {
            let at = self.at(span);
            let family = self.family(child.as_deref()).unwrap_or_default();
            self.scan.free_form.push(format!("{family} at {at}"));
        } else {
            for index in self.helper_indices(&name) {
                self.key_arg(m.args.iter().nth(index), ReadKind::Read, &name, None, span);
            }
        }
        self.visit_expr(&m.receiver);
        let pass = on_section && CLOSURE_PASS.contains(&name.as_str());
        for arg in &m.args {
            match arg {
                Expr::Closure(c) => {
                    self.visit_closure_with(c, if pass { receiver.clone() } else { None })
                }
                other => self.visit_expr(other),
            }
        }
    }
}
