//! Property tests: any input is handled without panicking, and any tree printed in Fluentd
//! syntax (with randomly chosen quoting, comments and layout) parses back to the same tree.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use ferry_config::{Element, Param, Span, fuzzing, parse_size, parse_str};
use proptest::prelude::*;

fn span() -> Span {
    Span::new(Arc::new(PathBuf::from("gen.conf")), 1)
}

/// How a value is written; styles that cannot represent a value fall back to double quotes.
#[derive(Debug, Clone, Copy)]
enum Style {
    Bare,
    Double {
        raw_newlines: bool,
        escape_all_hashes: bool,
        continuation: bool,
    },
    Single,
}

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![
        Just(Style::Bare),
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(raw_newlines, escape_all_hashes, continuation)| {
                Style::Double {
                    raw_newlines,
                    escape_all_hashes,
                    continuation,
                }
            }
        ),
        Just(Style::Single),
    ]
}

/// Layout choices for one line: indentation, a trailing comment.
#[derive(Debug, Clone)]
struct Layout {
    indent: String,
    comment: Option<String>,
    blank_lines_before: usize,
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        "[ \t]{0,4}",
        proptest::option::of("[^\n\r]{0,12}"),
        0usize..2,
    )
        .prop_map(|(indent, comment, blank_lines_before)| Layout {
            indent,
            comment,
            blank_lines_before,
        })
}

fn bare_value_ok(v: &str) -> bool {
    !v.is_empty()
        && !v.contains(['\n', '\r'])
        && !v.starts_with([' ', '\t', '"', '\'', '[', '{'])
        && !v.ends_with([' ', '\t'])
        && !v.contains(" #")
        && !v.contains("\t#")
}

fn double(v: &str, raw_newlines: bool, escape_all_hashes: bool, continuation: bool) -> String {
    let mut out = String::from("\"");
    let chars: Vec<char> = v.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '#' if escape_all_hashes || chars.get(i + 1) == Some(&'{') => out.push_str("\\#"),
            '\n' if raw_newlines => out.push('\n'),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
        if continuation && i % 7 == 3 {
            out.push_str("\\\n");
        }
    }
    out.push('"');
    out
}

fn single(v: &str) -> Option<String> {
    if v.contains('\n') {
        return None;
    }
    Some(format!(
        "'{}'",
        v.replace('\\', "\\\\").replace('\'', "\\'")
    ))
}

fn quote(v: &str, style: Style, bare_ok: bool) -> String {
    match style {
        Style::Bare if bare_ok => v.to_string(),
        Style::Single => single(v).unwrap_or_else(|| double(v, true, false, false)),
        Style::Double {
            raw_newlines,
            escape_all_hashes,
            continuation,
        } => double(v, raw_newlines, escape_all_hashes, continuation),
        Style::Bare => double(v, false, true, false),
    }
}

fn key_text(k: &str, style: Style) -> String {
    let bare = !k.is_empty()
        && !k.contains([' ', '\t', '\r', '\n'])
        && !k.starts_with(['"', '\'', '<', '#']);
    quote(k, style, bare)
}

fn arg_text(a: &str, style: Style) -> String {
    let bare = !a.contains(['\n', '\r', '>'])
        && !a.starts_with([' ', '\t', '"', '\''])
        && !a.ends_with([' ', '\t']);
    quote(a, style, bare)
}

/// A JSON array value: the items, and how each is written.
#[derive(Debug, Clone)]
struct JsonArray {
    items: Vec<String>,
    newlines: Vec<bool>,
    comment: bool,
}

fn json_string(s: &str, escape_unicode: bool) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if escape_unicode && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04X}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl JsonArray {
    fn compact(&self) -> String {
        let items: Vec<String> = self.items.iter().map(|s| json_string(s, false)).collect();
        format!("[{}]", items.join(","))
    }

    fn written(&self) -> String {
        let mut out = String::from("[");
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if self.newlines.get(i).copied().unwrap_or(false) {
                if self.comment {
                    out.push_str(" # note");
                }
                out.push_str("\n    ");
            }
            out.push_str(&json_string(item, i % 2 == 1));
        }
        out.push_str(" ]");
        out
    }
}

#[derive(Debug, Clone)]
enum GenValue {
    Text(String, Style),
    Array(JsonArray),
}

#[derive(Debug, Clone)]
struct GenParam {
    key: String,
    key_style: Style,
    value: GenValue,
    layout: Layout,
}

#[derive(Debug, Clone)]
struct GenElem {
    name: String,
    arg: String,
    arg_style: Style,
    params: Vec<GenParam>,
    children: Vec<GenElem>,
    layout: Layout,
}

fn text_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_./:*-]{0,12}",
        "[ -~]{0,16}",
        any::<String>().prop_map(|s| s.chars().take(16).collect()),
        Just("#{ENV['X']} \\ \" ' # [x] {y}".to_string()),
    ]
}

fn param_strategy() -> impl Strategy<Value = GenParam> {
    let key = prop_oneof!["@?[a-z_][a-z0-9_]{0,10}", text_strategy()]
        .prop_filter("@include is a directive", |k| k != "@include");
    let value = prop_oneof![
        3 => (text_strategy(), style()).prop_map(|(v, s)| GenValue::Text(v, s)),
        1 => (
            proptest::collection::vec(text_strategy(), 0..4),
            proptest::collection::vec(any::<bool>(), 0..4),
            any::<bool>()
        )
            .prop_map(|(items, newlines, comment)| GenValue::Array(JsonArray { items, newlines, comment })),
    ];
    (key, style(), value, layout()).prop_map(|(key, key_style, value, layout)| GenParam {
        key,
        key_style,
        value,
        layout,
    })
}

fn elem_strategy() -> impl Strategy<Value = GenElem> {
    let leaf = (
        "[a-z_][a-z0-9_]{0,8}",
        text_strategy(),
        style(),
        proptest::collection::vec(param_strategy(), 0..4),
        layout(),
    )
        .prop_map(|(name, arg, arg_style, params, layout)| GenElem {
            name,
            arg,
            arg_style,
            params,
            children: Vec::new(),
            layout,
        });
    leaf.prop_recursive(4, 24, 3, |inner| {
        (
            "[a-z_][a-z0-9_]{0,8}",
            text_strategy(),
            style(),
            proptest::collection::vec(param_strategy(), 0..4),
            proptest::collection::vec(inner, 0..3),
            layout(),
        )
            .prop_map(|(name, arg, arg_style, params, children, layout)| GenElem {
                name,
                arg,
                arg_style,
                params,
                children,
                layout,
            })
    })
}

fn push_line(out: &mut String, layout: &Layout, text: &str, comment_ok: bool) {
    for _ in 0..layout.blank_lines_before {
        out.push_str("\n  # a comment line\n");
    }
    out.push_str(&layout.indent);
    out.push_str(text);
    if let (Some(c), true) = (&layout.comment, comment_ok) {
        out.push_str(" #");
        out.push_str(c);
    }
    out.push('\n');
}

fn print_params(params: &[GenParam], out: &mut String) {
    for p in params {
        let key = key_text(&p.key, p.key_style);
        let (value, comment_ok) = match &p.value {
            GenValue::Text(v, _) if v.is_empty() && matches!(p.key_style, Style::Bare) => {
                (String::new(), false)
            }
            GenValue::Text(v, s) => {
                let bare = bare_value_ok(v);
                (quote(v, *s, bare), true)
            }
            GenValue::Array(a) => (a.written(), true),
        };
        let line = if value.is_empty() {
            key
        } else {
            format!("{key} {value}")
        };
        push_line(out, &p.layout, &line, comment_ok);
    }
}

fn print_elem(e: &GenElem, out: &mut String) {
    let open = if e.arg.is_empty() && matches!(e.arg_style, Style::Bare) {
        format!("<{}>", e.name)
    } else {
        format!("<{} {}>", e.name, arg_text(&e.arg, e.arg_style))
    };
    push_line(out, &e.layout, &open, true);
    print_params(&e.params, out);
    for c in &e.children {
        print_elem(c, out);
    }
    push_line(out, &e.layout, &format!("</{}>", e.name), true);
}

fn expected(e: &GenElem) -> Element {
    let mut elem = Element::new(e.name.clone(), e.arg.clone(), span());
    elem.params = e
        .params
        .iter()
        .map(|p| Param {
            key: p.key.clone(),
            value: match &p.value {
                GenValue::Text(v, _) => v.clone(),
                GenValue::Array(a) => a.compact(),
            },
            unset: None,
            span: span(),
        })
        .collect();
    elem.children = e.children.iter().map(expected).collect();
    elem
}

/// Fragments of configuration syntax, glued at random: more likely than random bytes to reach
/// deep states of the parser.
fn syntax_soup() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("<"),
        Just("</"),
        Just(">"),
        Just("\n"),
        Just("\r\n"),
        Just(" "),
        Just("\t"),
        Just("\""),
        Just("'"),
        Just("\\"),
        Just("#"),
        Just("#{"),
        Just("}"),
        Just("["),
        Just("]"),
        Just("{"),
        Just(","),
        Just(":"),
        Just("ENV['FERRY_FUZZ']"),
        Just("ENV.fetch('FERRY_FUZZ', "),
        Just(" || "),
        Just("use_default"),
        Just("use_nil"),
        Just("File.join('/a/', "),
        Just("Socket.gethostname"),
        Just("@include"),
        Just("@type"),
        Just("source"),
        Just("match"),
        Just("label"),
        Just("buffer"),
        Just("@ERROR"),
        Just("8m"),
        Just("10s"),
        Just("true"),
        Just("a.**"),
        Just("\\u00e9"),
        Just("é"),
        Just("\u{0}"),
    ];
    proptest::collection::vec(fragment, 0..80).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        fuzzing::parse(&data);
    }

    #[test]
    fn syntax_fragments_never_panic(text in syntax_soup()) {
        fuzzing::parse(text.as_bytes());
    }

    #[test]
    fn printed_trees_parse_back_to_the_same_tree(
        elems in proptest::collection::vec(elem_strategy(), 0..4),
        root_params in proptest::collection::vec(param_strategy(), 0..3),
    ) {
        let mut text = String::new();
        print_params(&root_params, &mut text);
        for e in &elems {
            print_elem(e, &mut text);
        }
        let parsed = match parse_str(&text, "gen.conf") {
            Ok(root) => root,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n---\n{text}"))),
        };
        let gen_root = GenElem {
            name: "ROOT".into(),
            arg: String::new(),
            arg_style: Style::Bare,
            params: root_params,
            children: elems,
            layout: Layout { indent: String::new(), comment: None, blank_lines_before: 0 },
        };
        let want = expected(&gen_root);
        prop_assert!(parsed.same_content(&want), "parsed:\n{parsed:#?}\nwanted:\n{want:#?}\ntext:\n{text}");
        // The crate's own printer round-trips too.
        let reprinted = parse_str(&parsed.to_string(), "again.conf").map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(reprinted.same_content(&want));
    }

    #[test]
    fn size_text_reads_back_as_its_value(n in 0u64..(1 << 24), unit in 0usize..5, upper in any::<bool>(), b in any::<bool>()) {
        let units = ["", "k", "m", "g", "t"];
        let mut text = format!("{n}{}", units[unit]);
        if unit > 0 && b {
            text.push('b');
        }
        if upper {
            text = text.to_uppercase();
        }
        prop_assert_eq!(parse_size(&text).map(|s| s.0), Ok(n << (10 * unit as u32)));
    }
}
