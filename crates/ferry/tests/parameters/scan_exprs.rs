//! What an expression of a reader stands for: the string literals it resolves to, the names a
//! pattern binds, and whether tokens name an identifier or call a getter.

use super::{ALL_GETTER, FIXED_GETTERS, KEY_GETTERS};
use proc_macro2::TokenTree;
use quote::ToTokens;
use std::collections::HashMap;
use syn::{Expr, Pat};

/// The string literals `e` stands for, when it stands for nothing else.
pub fn literals(
    e: &Expr,
    locals: &HashMap<String, Vec<String>>,
    consts: &HashMap<String, Vec<String>>,
) -> Option<Vec<String>> {
    let all = |es: &mut dyn Iterator<Item = &Expr>| -> Option<Vec<String>> {
        let mut out = Vec::new();
        for e in es {
            out.extend(literals(e, locals, consts)?);
        }
        Some(out)
    };
    match e {
        Expr::Lit(l) => match &l.lit {
            syn::Lit::Str(s) => Some(vec![s.value()]),
            _ => None,
        },
        Expr::Reference(r) => literals(&r.expr, locals, consts),
        Expr::Paren(p) => literals(&p.expr, locals, consts),
        Expr::Group(g) => literals(&g.expr, locals, consts),
        Expr::Array(a) => all(&mut a.elems.iter()),
        Expr::Block(b) => block_tail(&b.block).and_then(|t| literals(t, locals, consts)),
        Expr::If(i) => {
            let mut out = block_tail(&i.then_branch).and_then(|t| literals(t, locals, consts))?;
            out.extend(literals(&i.else_branch.as_ref()?.1, locals, consts)?);
            Some(out)
        }
        Expr::Match(m) => all(&mut m.arms.iter().map(|a| &*a.body)),
        Expr::MethodCall(m) if matches!(m.method.to_string().as_str(), "as_str" | "as_ref") => {
            literals(&m.receiver, locals, consts)
        }
        Expr::Macro(m) if m.mac.path.is_ident("format") => {
            let first = m.mac.tokens.clone().into_iter().next()?;
            let lit: syn::LitStr = syn::parse2(first.into_token_stream()).ok()?;
            Some(vec![placeholders_as_n(&lit.value())])
        }
        Expr::Path(p) => {
            let name = p.path.segments.last()?.ident.to_string();
            if p.path.segments.len() == 1
                && let Some(l) = locals.get(&name)
            {
                return Some(l.clone());
            }
            consts.get(&name).cloned()
        }
        _ => None,
    }
}

/// `format{n}` → `formatN`.
fn placeholders_as_n(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                out.push('N');
                rest = &rest[open + close + 1..];
            }
            None => {
                rest = &rest[open..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

fn block_tail(b: &syn::Block) -> Option<&Expr> {
    match b.stmts.last()? {
        syn::Stmt::Expr(e, None) => Some(e),
        _ => None,
    }
}

pub fn pat_idents(p: &Pat, out: &mut Vec<String>) {
    match p {
        Pat::Ident(i) => {
            out.push(i.ident.to_string());
            if let Some((_, sub)) = &i.subpat {
                pat_idents(sub, out);
            }
        }
        Pat::Reference(r) => pat_idents(&r.pat, out),
        Pat::Type(t) => pat_idents(&t.pat, out),
        Pat::Paren(p) => pat_idents(&p.pat, out),
        Pat::Tuple(t) => t.elems.iter().for_each(|e| pat_idents(e, out)),
        Pat::TupleStruct(t) => t.elems.iter().for_each(|e| pat_idents(e, out)),
        Pat::Slice(s) => s.elems.iter().for_each(|e| pat_idents(e, out)),
        Pat::Or(o) => o.cases.iter().for_each(|e| pat_idents(e, out)),
        Pat::Struct(s) => s.fields.iter().for_each(|f| pat_idents(&f.pat, out)),
        _ => {}
    }
}

pub fn tokens_name(tokens: &proc_macro2::TokenStream, ident: &str) -> bool {
    tokens.clone().into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == ident,
        TokenTree::Group(g) => tokens_name(&g.stream(), ident),
        _ => false,
    })
}

/// Whether `tokens` call a getter method (`.str(`, `.bool_or(`, ...) or a helper anywhere.
pub fn calls_a_getter(tokens: &proc_macro2::TokenStream, helpers: &[(&str, usize)]) -> bool {
    let trees: Vec<TokenTree> = tokens.clone().into_iter().collect();
    trees.iter().enumerate().any(|(i, t)| match t {
        TokenTree::Group(g) => calls_a_getter(&g.stream(), helpers),
        TokenTree::Ident(name) => {
            let name = name.to_string();
            let method = i > 0 && matches!(&trees[i - 1], TokenTree::Punct(p) if p.as_char() == '.');
            let getter = KEY_GETTERS.contains(&name.as_str())
                || FIXED_GETTERS.iter().any(|(n, _)| *n == name)
                || name == ALL_GETTER;
            let helper = helpers.iter().any(|(h, _)| h.rsplit("::").next() == Some(name.as_str()));
            ((getter && method) || helper)
                && matches!(trees.get(i + 1), Some(TokenTree::Group(g)) if g.delimiter() == proc_macro2::Delimiter::Parenthesis)
        }
        _ => false,
    })
}
