//! The statement parser: tags, parameters and `@include`, into an [`Element`] tree.
//!
//! The parser keeps a stack of open sections instead of recursing, so nesting costs no stack;
//! sections deeper than [`MAX_DEPTH`] are reported and dropped from the tree. Each included
//! file parses into the section that includes it and must close what it opens. After an error
//! the parser resumes at the next line (for a string or JSON value that never closed, at the
//! line after the one it started on), so one run reports every independent mistake, in the
//! order the text is read (an included file's errors where its `@include` is); it stops after
//! [`MAX_ERRORS`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cursor::{Cursor, Mark};
use crate::error::{ConfigError, ConfigErrors, Span};
use crate::include::{self, IncludeError};
use crate::json;
use crate::options::ParseOptions;
use crate::ruby::Inputs;
use crate::tree::{Element, Param, ROOT, Unset};
use crate::value::{self, ValueError};

/// Deepest section nesting kept (the root not counted).
pub const MAX_DEPTH: usize = 32;
/// Deepest chain of files including files.
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// Most files one configuration may include in total.
pub const MAX_INCLUDED_FILES: usize = 1024;
/// Errors reported before parsing stops.
pub const MAX_ERRORS: usize = 500;

/// Why a line was rejected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SyntaxError {
    #[error("section <{name}> is not closed: expected </{name}> before {before}")]
    Unclosed { name: String, before: String },
    #[error("close tag </{found}> does not match <{open}> opened at line {line}")]
    Mismatched {
        found: String,
        open: String,
        line: u32,
    },
    #[error("close tag </{0}> has no open section")]
    UnexpectedClose(String),
    #[error("expected a section name after '<'")]
    MissingName,
    #[error("expected '>' to end the tag, found '{0}'")]
    ExpectedTagEnd(String),
    #[error("unexpected '{text}' after {what}")]
    Trailing { what: String, text: String },
    #[error("sections nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("{0}")]
    Value(#[from] ValueError),
    #[error("invalid JSON value for '{key}': {reason} (quote the value if it is not JSON)")]
    Json { key: String, reason: String },
    #[error("{0}")]
    Include(#[from] IncludeError),
    #[error("{0} leaves {1} without a value; use_default and use_nil apply to parameter values")]
    UnsetHere(Unset, &'static str),
    #[error("too many errors ({MAX_ERRORS}); stopped parsing")]
    TooManyErrors,
}

struct Frame {
    elem: Element,
    /// Deeper than [`MAX_DEPTH`]: parsed for matching tags, then dropped.
    discard: bool,
}

pub(crate) struct Parser<'o> {
    opts: &'o ParseOptions,
    /// What `"#{...}"` reads, asked through `opts` once per parse.
    inputs: Inputs<'o>,
    stack: Vec<Frame>,
    errors: Vec<ConfigError>,
    /// Files being parsed, outermost first: canonical path (for cycles) and shown path.
    chain: Vec<(PathBuf, Arc<PathBuf>)>,
    included: usize,
    stopped: bool,
}

impl<'o> Parser<'o> {
    pub(crate) fn new(opts: &'o ParseOptions, file: Arc<PathBuf>) -> Self {
        let root = Element::new(ROOT, "", Span::new(file, 1));
        Parser {
            opts,
            inputs: Inputs::new(&*opts.lookup),
            stack: vec![Frame {
                elem: root,
                discard: false,
            }],
            errors: Vec::new(),
            chain: Vec::new(),
            included: 0,
            stopped: false,
        }
    }

    /// Records the top file for include-cycle detection.
    pub(crate) fn enter_file(&mut self, canonical: PathBuf, shown: Arc<PathBuf>) {
        self.chain.push((canonical, shown));
    }

    pub(crate) fn finish(mut self) -> Result<Element, ConfigErrors> {
        let root = self.stack.swap_remove(0).elem;
        if self.errors.is_empty() {
            Ok(root)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    fn error(&mut self, span: Span, err: SyntaxError) {
        if self.stopped {
            return;
        }
        if self.errors.len() >= MAX_ERRORS {
            self.stopped = true;
            self.errors.push(ConfigError::new(
                Some(span),
                SyntaxError::TooManyErrors.to_string(),
            ));
            return;
        }
        self.errors
            .push(ConfigError::new(Some(span), err.to_string()));
    }

    fn top(&mut self) -> &mut Frame {
        self.stack
            .last_mut()
            .expect("the root frame is never popped")
    }

    /// Pops the innermost section and attaches it to its parent.
    fn close_top(&mut self) {
        if self.stack.len() > 1
            && let Some(frame) = self.stack.pop()
            && !frame.discard
        {
            self.top().elem.children.push(frame.elem);
        }
    }

    /// Parses one file's text into the innermost open section.
    pub(crate) fn parse_text(&mut self, text: &str, file: &Arc<PathBuf>, dir: &Path) {
        let mut cur = Cursor::new(text);
        let ctx = FileCtx { file, dir };
        let base = self.stack.len();
        while !self.stopped {
            cur.skip_space_and_comments();
            if cur.eof() {
                break;
            }
            if cur.starts_with(b"</") {
                self.close_tag(&mut cur, &ctx, base);
            } else if cur.peek() == Some(b'<') {
                self.open_tag(&mut cur, &ctx);
            } else {
                self.statement(&mut cur, &ctx);
            }
        }
        let unclosed: Vec<(String, Span)> = self.stack[base.min(self.stack.len())..]
            .iter()
            .map(|f| (f.elem.name.clone(), f.elem.span.clone()))
            .collect();
        for (name, span) in unclosed {
            let before = "the end of the file".to_string();
            self.error(span, SyntaxError::Unclosed { name, before });
        }
        while self.stack.len() > base {
            self.close_top();
        }
    }

    /// After a tag or value: a line end, or an error and a skip to the next line.
    fn expect_line_end(&mut self, cur: &mut Cursor<'_>, ctx: &FileCtx<'_>, what: &str) -> bool {
        if cur.eat_line_end() {
            return true;
        }
        let text = cur.rest_of_line();
        let what = what.to_string();
        self.error(ctx.span(cur.line()), SyntaxError::Trailing { what, text });
        cur.skip_line();
        false
    }

    /// Reports a value scanner failure and moves the cursor where parsing resumes.
    fn value_failure(
        &mut self,
        cur: &mut Cursor<'_>,
        ctx: &FileCtx<'_>,
        line_start: Mark,
        (line, err): value::Failure,
    ) {
        let unterminated = err.is_unterminated();
        self.error(ctx.span(line), err.into());
        if unterminated {
            cur.reset(line_start);
        }
        cur.skip_line();
    }

    fn close_tag(&mut self, cur: &mut Cursor<'_>, ctx: &FileCtx<'_>, base: usize) {
        let span = ctx.span(cur.line());
        cur.eat(b"</");
        let name = section_name(cur);
        cur.skip_blanks();
        if cur.eat(b">") {
            self.expect_line_end(cur, ctx, &format!("</{name}>"));
        } else {
            let found = cur.rest_of_line();
            self.error(span.clone(), SyntaxError::ExpectedTagEnd(found));
            cur.skip_line();
        }
        if self.stack.len() <= base {
            self.error(span, SyntaxError::UnexpectedClose(name));
            return;
        }
        let Some(open) = self.stack.last().map(|f| &f.elem) else {
            return;
        };
        if open.name == name {
            self.close_top();
            return;
        }
        let matching = (base..self.stack.len())
            .rev()
            .find(|&i| self.stack[i].elem.name == name);
        match matching {
            Some(idx) => {
                let unclosed: Vec<(String, Span)> = self.stack[idx + 1..]
                    .iter()
                    .map(|f| (f.elem.name.clone(), f.elem.span.clone()))
                    .collect();
                for (open_name, open_span) in unclosed {
                    let before = format!("</{name}> at line {}", span.line);
                    let err = SyntaxError::Unclosed {
                        name: open_name,
                        before,
                    };
                    self.error(open_span, err);
                }
                while self.stack.len() > idx {
                    self.close_top();
                }
            }
            None => {
                let err = SyntaxError::Mismatched {
                    found: name,
                    open: open.name.clone(),
                    line: open.span.line,
                };
                self.error(span, err);
                self.close_top();
            }
        }
    }

    fn open_tag(&mut self, cur: &mut Cursor<'_>, ctx: &FileCtx<'_>) {
        let line_start = cur.mark();
        let span = ctx.span(cur.line());
        cur.eat(b"<");
        let name = section_name(cur);
        if name.is_empty() {
            self.error(span, SyntaxError::MissingName);
            cur.skip_line();
            return;
        }
        cur.skip_blanks();
        // use_default and use_nil leave the argument empty: as if none were written.
        let arg = match value::quoted(cur, &self.inputs) {
            Some(Ok(arg)) => arg.text,
            Some(Err(failure)) => {
                self.value_failure(cur, ctx, line_start, failure);
                self.push_section(name, String::new(), span);
                return;
            }
            None => value::unquoted_arg(cur),
        };
        cur.skip_blanks();
        if cur.eat(b">") {
            self.expect_line_end(cur, ctx, &format!("<{name}>"));
        } else {
            self.error(
                span.clone(),
                SyntaxError::ExpectedTagEnd(cur.rest_of_line()),
            );
            cur.skip_line();
        }
        self.push_section(name, arg, span);
    }

    fn push_section(&mut self, name: String, arg: String, span: Span) {
        let parent_discarded = self.top().discard;
        let too_deep = self.stack.len() > MAX_DEPTH;
        if too_deep && !parent_discarded {
            self.error(span.clone(), SyntaxError::TooDeep);
        }
        self.stack.push(Frame {
            elem: Element::new(name, arg, span),
            discard: too_deep,
        });
    }

    fn statement(&mut self, cur: &mut Cursor<'_>, ctx: &FileCtx<'_>) {
        let line_start = cur.mark();
        let span = ctx.span(cur.line());
        let key = match value::quoted(cur, &self.inputs) {
            Some(Ok(key)) => match key.unset {
                None => key.text,
                Some(unset) => {
                    self.error(span, SyntaxError::UnsetHere(unset, "a key"));
                    return cur.skip_line();
                }
            },
            Some(Err(failure)) => return self.value_failure(cur, ctx, line_start, failure),
            None => value::unquoted_key(cur),
        };
        cur.skip_blanks();
        let mut unset = None;
        let value = if matches!(cur.peek(), None | Some(b'\n' | b'\r')) {
            String::new()
        } else if cur.peek() == Some(b'[') || cur.peek() == Some(b'{') {
            let start_line = cur.line();
            match json::parse_value(cur) {
                Ok(v) => v.to_compact(),
                Err(e) => {
                    let reason = e.reason;
                    self.error(ctx.span(e.line), SyntaxError::Json { key, reason });
                    // Resume at the line that broke the value: it is likely the next statement.
                    cur.rewind_to_line_start();
                    if e.line == start_line {
                        cur.skip_line();
                    }
                    return;
                }
            }
        } else {
            match value::quoted(cur, &self.inputs) {
                Some(Ok(v)) => {
                    unset = v.unset;
                    v.text
                }
                Some(Err(failure)) => return self.value_failure(cur, ctx, line_start, failure),
                None => value::unquoted_value(cur),
            }
        };
        if !self.expect_line_end(cur, ctx, &format!("the value of '{key}'")) {
            return;
        }
        if key == "@include" {
            if let Some(unset) = unset {
                return self.error(span, SyntaxError::UnsetHere(unset, "@include"));
            }
            return self.include(&value, span, ctx);
        }
        let frame = self.top();
        if !frame.discard {
            let param = Param {
                key,
                value,
                unset,
                span,
            };
            frame.elem.params.push(param);
        }
    }

    fn include(&mut self, target: &str, span: Span, ctx: &FileCtx<'_>) {
        if !self.opts.includes {
            return self.error(span, IncludeError::Disabled.into());
        }
        let files = match include::resolve(target, ctx.dir) {
            Ok(files) => files,
            Err(e) => return self.error(span, e.into()),
        };
        for path in files {
            if let Err(e) = self.include_file(path) {
                self.error(span.clone(), e.into());
            }
            if self.stopped {
                return;
            }
        }
    }

    fn include_file(&mut self, path: PathBuf) -> Result<(), IncludeError> {
        if self.included >= MAX_INCLUDED_FILES {
            return Err(IncludeError::TooMany(MAX_INCLUDED_FILES));
        }
        let canonical = std::fs::canonicalize(&path).map_err(|source| IncludeError::Io {
            path: path.clone(),
            source,
        })?;
        if self.chain.iter().any(|(c, _)| *c == canonical) {
            let mut names: Vec<String> = self
                .chain
                .iter()
                .map(|(_, shown)| shown.display().to_string())
                .collect();
            names.push(path.display().to_string());
            return Err(IncludeError::Cycle(names.join(" -> ")));
        }
        if self.chain.len() >= MAX_INCLUDE_DEPTH {
            return Err(IncludeError::TooDeep(MAX_INCLUDE_DEPTH));
        }
        let text = include::read_config(&path)?;
        self.included += 1;
        let shown = Arc::new(path);
        let dir = shown.parent().map(Path::to_path_buf).unwrap_or_default();
        self.chain.push((canonical, shown.clone()));
        self.parse_text(&text, &shown, &dir);
        self.chain.pop();
        Ok(())
    }
}

/// The file being parsed.
struct FileCtx<'f> {
    file: &'f Arc<PathBuf>,
    dir: &'f Path,
}

impl FileCtx<'_> {
    fn span(&self, line: u32) -> Span {
        Span::new(self.file.clone(), line)
    }
}

fn section_name(cur: &mut Cursor<'_>) -> String {
    let start = cur.mark();
    while matches!(cur.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_') {
        cur.bump();
    }
    cur.since(start)
}
