//! Fluentd's configuration syntax, parsed into a tree that remembers `file:line`, and a typed
//! reader that collects every mistake before anything starts.
//!
//! # Modules
//!
//! | module | job |
//! |---|---|
//! | `cursor` | byte cursor with line counting; never panics on any input |
//! | `value` | keys, section arguments, unquoted / double-quoted / single-quoted values |
//! | `ruby` | the embedded code of `"#{...}"`: a small grammar, parsed whole, then evaluated |
//! | `json` | multi-line JSON array and hash values, stored as compact JSON |
//! | `parse` | tags, parameters, `@include`, error recovery |
//! | `options` | [`ParseOptions`]: what embedded code reads ([`Lookup`]), includes on or off |
//! | `include` | include path and glob resolution, bounded file reading |
//! | `tree` | [`Element`], [`Param`], [`Unset`]; printing back to Fluentd syntax |
//! | `error` | [`Span`], [`ConfigError`], [`ConfigErrors`], the shared [`Errors`] sink |
//! | `units` | [`ByteSize`], [`parse_size`], [`parse_duration`], [`parse_bool`], arrays, hashes |
//! | `section` | [`Section`]: typed accessors, unknown-key detection with suggestions |
//! | `directives` | [`directives`]: `<system>`, `<source>`, `<filter>`, `<match>`, `<label>` |
//! | `suggest` | "did you mean" |
//! | [`fuzzing`] | entry point for the fuzz target and the no-panic property tests |
//!
//! # Accepted syntax (Fluentd v1)
//!
//! ```text
//! # a comment
//! @include conf.d/*.conf            # files and globs, relative to this file
//! <source>
//!   @type forward
//!   port 24224                      # the value is the rest of the line, trailing blanks dropped
//!   <security>
//!     self_hostname "#{ENV['HOSTNAME'] || Socket.gethostname}"
//!     shared_key 'secret'
//!   </security>
//! </source>
//! <match app.** system.*>
//!   @type forward
//!   tags ["a", "b",                 # JSON arrays and hashes may span lines
//!         "c"]
//!   note "first line
//! second line"                      # double quotes may span lines
//!   flag                            # a key alone has the empty value (true for booleans)
//! </match>
//! ```
//!
//! - Sections `<name arg>` ... `</name>` nest to any depth (32 levels are kept); the name is
//!   `[A-Za-z0-9_]+`, the argument is everything up to `>` (or a quoted string).
//! - `key value` lines; `@type`, `@id`, `@label`, `@log_level` are ordinary keys with an `@`.
//! - `#` starts a comment at the start of a line, after a tag, after a quoted or JSON value,
//!   and after a blank inside an unquoted value; `a#b` and a value that starts with `#` keep
//!   their `#`, as in Fluentd.
//! - Double quotes: `\"` `\'` `\\` `\n` `\t` `\r` `\f` `\b`; a backslash before another symbol
//!   gives the symbol (`\#{` is a literal `#{`); before a letter or digit it is an error; at the
//!   end of a line it joins the next line; a newline inside the quotes is kept.
//! - Single quotes: only `\'` and `\\` are escapes; they close on the same line.
//! - A value starting with `[` or `{` is JSON until the matching bracket, with `#` comments
//!   outside strings; it is stored as compact JSON.
//! - `@include path`: a file or a glob (sorted), relative to the including file's directory,
//!   inserted where it is written, at top level or inside a section. A missing file, a cycle
//!   (reported with the chain of files) or an unreadable file is an error at the include line.
//!
//! Errors are collected, not stopped at: after a bad line the parser resumes on the next line,
//! and [`Section`] readers report into one [`Errors`] sink, so one run lists every mistake with
//! its `file:line`.
//!
//! # Where ferry differs from Fluentd
//!
//! - **No Ruby.** Fluentd evaluates `"#{...}"` in double-quoted strings as Ruby code. ferry runs
//!   no code: it parses the expression against a small grammar and evaluates it itself, with
//!   Ruby's meaning. Accepted: `'...'` and `"..."` literals (Ruby's escapes, nested `#{}`),
//!   `ENV['NAME']` (nil when unset), `ENV.fetch('NAME')` (an error when unset),
//!   `ENV.fetch('NAME', default)`, `a || b` (only `nil` and `false` are false: a variable set to
//!   the empty string gives the empty string), `true`, `false`, `nil`, integers and floats
//!   (written as Ruby's `to_s`: `nil` as nothing), `File.join(a, b, ...)`,
//!   `Socket.gethostname` and `hostname`, `Dir.pwd`, `Process.pid`, `worker_id` (`0`: ferry is
//!   one worker), parentheses, and `use_default` / `use_nil`, which leave the parameter written
//!   but without a value ([`Unset`]): every [`Section`] reader sees it absent and uses its
//!   default. Everything else (other methods and constants, backticks, `%x`, `eval`,
//!   `require`, `system`, assignments, `;`, blocks) is an error at its line quoting the code;
//!   nothing of a refused expression is evaluated. Evaluation reads only the [`Lookup`] of
//!   [`ParseOptions`]: the variables named in the code, the host name, the current directory
//!   and the process id. The grammar is in the `ruby` module.
//! - **Unknown is an error.** A misspelt directive, parameter or section is reported with a
//!   suggestion instead of being ignored or warned about; so is a key written twice.
//! - **Units are read whole.** `1.5m` as a size is an error (Fluentd reads 5 MiB), `500ms` is
//!   half a second (Fluentd reads 500 minutes), fractional durations with units (`1.5h`) work.
//! - **Local includes only.** `@include http://...` is refused; a glob that matches nothing
//!   includes nothing, a plain path that does not exist is an error.
//! - The deprecated `include` without `@`, `<worker>` sections and the YAML format are not
//!   accepted.

mod cursor;
mod directives;
mod error;
pub mod fuzzing;
mod include;
mod json;
mod options;
mod parse;
mod ruby;
mod section;
mod suggest;
pub use suggest::closest as did_you_mean;
mod tree;
mod units;
mod value;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use directives::{Directives, IN_LABEL, Label, TOP_LEVEL, directives};
pub use error::{ConfigError, ConfigErrors, Errors, Span};
pub use include::MAX_FILE_BYTES;
pub use options::{Lookup, ParseOptions};
pub use parse::{MAX_DEPTH, MAX_ERRORS, MAX_INCLUDE_DEPTH, MAX_INCLUDED_FILES};
pub use section::Section;
pub use tree::{Element, Param, ROOT, Unset, double_quote};
pub use units::{ByteSize, parse_array, parse_bool, parse_duration, parse_hash, parse_size};

/// Parses a configuration file (and the files it includes). The root element is named
/// `ROOT`.
pub fn parse_file(path: &Path) -> Result<Element, ConfigErrors> {
    parse_file_with(path, &ParseOptions::default())
}

/// [`parse_file`] with options.
pub fn parse_file_with(path: &Path, opts: &ParseOptions) -> Result<Element, ConfigErrors> {
    let unreadable = |e: &dyn std::fmt::Display| {
        ConfigErrors(vec![ConfigError::new(
            None,
            format!("cannot load configuration: {e}"),
        )])
    };
    let text = include::read_config(path).map_err(|e| unreadable(&e))?;
    let canonical = std::fs::canonicalize(path).map_err(|e| unreadable(&e))?;
    let file = Arc::new(path.to_path_buf());
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut parser = parse::Parser::new(opts, file.clone());
    parser.enter_file(canonical, file.clone());
    parser.parse_text(&text, &file, &dir);
    parser.finish()
}

/// Parses configuration text; `name` is shown as the file in spans. `@include` paths are
/// relative to the current directory.
pub fn parse_str(text: &str, name: &str) -> Result<Element, ConfigErrors> {
    parse_str_with(text, name, &ParseOptions::default())
}

/// [`parse_str`] with options.
pub fn parse_str_with(
    text: &str,
    name: &str,
    opts: &ParseOptions,
) -> Result<Element, ConfigErrors> {
    let file = Arc::new(PathBuf::from(name));
    let mut parser = parse::Parser::new(opts, file.clone());
    parser.parse_text(text, &file, Path::new(""));
    parser.finish()
}
