//! The embedded code of `"#{...}"` values: a small expression language covering what Fluentd
//! configurations write there, evaluated without running anything.
//!
//! Fluentd hands the text between `#{` and its `}` to Ruby's `instance_eval`, so a configuration
//! can run any program. ferry parses the code against the grammar below and evaluates it itself;
//! code outside the grammar is an error at its line, quoting the code, and is never evaluated,
//! not even in part: the whole expression is parsed before anything is read. Evaluation reads
//! nothing but the [`Lookup`] given in [`ParseOptions`](crate::ParseOptions): environment
//! variables named in the code, the host name, the current directory, the process id.
//!
//! # Grammar
//!
//! ```text
//! code     = blank* [ expr blank* ] "}"                      # empty code is nil
//! expr     = operand { "||" operand }
//! operand  = string | number | "true" | "false" | "nil"
//!          | "ENV[" name "]"                                 # nil when unset
//!          | "ENV.fetch(" name [ "," expr ] [","] ")"        # error when unset and no default
//!          | "File.join" [ "(" [ expr { "," expr } [","] ] ")" ]
//!          | "Socket.gethostname" [ "()" ] | "hostname"      # the host name
//!          | "Dir.pwd" [ "()" ] | "Process.pid" [ "()" ]
//!          | "worker_id"                                     # "0": ferry is one worker
//!          | "use_default" [ "()" ] | "use_nil" [ "()" ]
//!          | "(" expr ")"
//! name     = "'" [A-Za-z0-9_.-]+ "'" | '"' [A-Za-z0-9_.-]+ '"'
//! string   = '...' with \' and \\ | "..." with Ruby's escapes and #{expr}
//! number   = -?digits [ "." digits ] [ e[+-]digits ]   # no leading zero; single `_` between digits
//! ```
//!
//! Blanks may stand between any two tokens, except before the `[` of `ENV[` and the `(` of a
//! call, where Ruby reads them differently. A line break may follow `||`, `(`, `[`, `,` and `.`,
//! precede `)`, `]` and `.`, and open or close the code; a backslash before a line break joins
//! the lines.
//!
//! # Semantics, as in Ruby
//!
//! - `nil` and `false` are false, every other value (the empty string included) is true; `a ||
//!   b` is `a` when `a` is true, else `b`; an unset variable is `nil`.
//! - The result is written as Ruby's `to_s` writes it: `nil` as nothing, `true`, `42`, `1.5`,
//!   `1.0e+16`.
//! - Arguments are evaluated before the call: `ENV.fetch('A', use_default)` gives the default
//!   even when `A` is set, as in Fluentd.
//! - `File.join` puts exactly one `/` between its parts unless one is there: `File.join('/a/',
//!   '', 'b')` is `/a/b`, `File.join('', 'b')` is `/b`; a part that is not a string (an unset
//!   `ENV['X']`) is an error, as Ruby raises `TypeError`.
//! - `use_default` and `use_nil` stop evaluation; the whole value is then
//!   [`Unset`] (`use_nil` wins when a value has both).
//! - The host name, directory and process id are read once per parse.
//!
//! # Refused
//!
//! Everything else: other constants, methods and names (`system`, `eval`, `require`, `Time`,
//! `File.read`, `ENV.keys`), methods called on values (`.upcase`, `[0]`), backticks, `%x()` and
//! other `%` literals, `#@var` and `#$var` interpolation, assignments, `;`, blocks (`ENV.fetch('X')
//! { 'd' }`: write `ENV.fetch('X', 'd')`), variable names built at run time, escapes beyond
//! ASCII bytes (`\xff`; `\u` is accepted), numbers with leading zeros (octal in Ruby), code
//! nested deeper than [`syntax::MAX_DEPTH`] or longer than [`MAX_CODE_BYTES`]. A refused
//! expression is reported as `file:line: embedded code "#{...}" is not evaluated: why; ferry
//! evaluates only: ...`.

mod eval;
mod literal;
mod syntax;

use std::cell::OnceCell;

use crate::options::{Lookup, LookupFn};
use crate::tree::Unset;

/// Longest code between `#{` and `}`, in bytes.
pub(crate) const MAX_CODE_BYTES: usize = 1024;

/// What ferry evaluates, for error messages.
const ACCEPTED: &str = "'string' and \"string\" literals, ENV['NAME'], ENV.fetch('NAME'[, \
                        default]), a || b, true, false, nil, numbers, File.join(...), \
                        Socket.gethostname, hostname, worker_id, Dir.pwd, Process.pid, \
                        use_default, use_nil";

/// Why code is outside the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("expected {what}, found {found}")]
    Expected { what: &'static str, found: String },
    #[error("'{0}' is not accepted")]
    Name(String),
    #[error("{} is only accepted as {}", .0, receiver_forms(.0))]
    Receiver(&'static str),
    #[error("'{receiver}.{method}' is not accepted")]
    Method {
        receiver: &'static str,
        method: String,
    },
    #[error("methods on values ('{0}') are not accepted")]
    ValueMethod(String),
    #[error("ENV.fetch takes no block (write ENV.fetch('NAME', default))")]
    FetchBlock,
    #[error("ENV.fetch takes a name and at most one default, not {0} arguments")]
    FetchArity(usize),
    #[error("a variable name is a quoted literal of letters, digits, '_', '.' and '-' (found {0})")]
    EnvName(String),
    #[error("backticks run shell commands; ferry runs none")]
    Backtick,
    #[error("%-literals (%x, %q, %w, ...) are not accepted")]
    Percent,
    #[error("'#@' and '#$' interpolation is not accepted (write \\# for a literal #)")]
    VariableInterpolation,
    #[error("'{0}' is not an accepted number (decimal digits, no leading zero)")]
    Number(String),
    #[error("the escape {0} is not accepted")]
    Escape(String),
    #[error("nested deeper than {} levels", syntax::MAX_DEPTH)]
    TooDeep,
}

impl Refusal {
    fn method(receiver: &'static str, method: &str) -> Self {
        Refusal::Method {
            receiver,
            method: method.to_string(),
        }
    }
}

fn receiver_forms(receiver: &str) -> &'static str {
    match receiver {
        "ENV" => "ENV['NAME'] or ENV.fetch(...)",
        "File" => "File.join(...)",
        "Socket" => "Socket.gethostname",
        "Dir" => "Dir.pwd",
        _ => "Process.pid",
    }
}

/// What is wrong with one embedded code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Problem {
    #[error("is not evaluated: {0}; ferry evaluates only: {ACCEPTED}")]
    Refused(Refusal),
    #[error("failed: environment variable {0} is not set (ENV.fetch without a default)")]
    FetchUnset(String),
    #[error("failed: argument {index} of File.join is {found}, not a string")]
    JoinArgument { index: usize, found: &'static str },
    #[error("failed: argument {0} of File.join holds a NUL byte")]
    JoinNul(usize),
    #[error("failed: cannot read {0}")]
    Unavailable(&'static str),
}

/// An embedded code that was refused or failed, quoted as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("embedded code \"#{{{code}}}\" {problem}")]
pub(crate) struct RubyError {
    /// The code between `#{` and `}`, line breaks shown as `\n`, cut after 120 characters.
    pub(crate) code: String,
    pub(crate) problem: Problem,
}

/// What one `#{...}` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Interpolated {
    Text(String),
    Unset(Unset),
}

/// The answers of one parse's [`Lookup`]; the host name, directory and process id are asked
/// once.
pub(crate) struct Inputs<'o> {
    lookup: &'o LookupFn,
    hostname: OnceCell<Option<String>>,
    pwd: OnceCell<Option<String>>,
    pid: OnceCell<Option<String>>,
}

impl<'o> Inputs<'o> {
    pub(crate) fn new(lookup: &'o LookupFn) -> Self {
        Inputs {
            lookup,
            hostname: OnceCell::new(),
            pwd: OnceCell::new(),
            pid: OnceCell::new(),
        }
    }

    fn env(&self, name: &str) -> Option<String> {
        (self.lookup)(Lookup::Env(name))
    }

    fn once(
        &self,
        cell: &OnceCell<Option<String>>,
        q: Lookup<'static>,
        what: &'static str,
    ) -> Result<String, Problem> {
        cell.get_or_init(|| (self.lookup)(q))
            .clone()
            .ok_or(Problem::Unavailable(what))
    }

    fn hostname(&self) -> Result<String, Problem> {
        self.once(&self.hostname, Lookup::Hostname, "the host name")
    }

    fn pwd(&self) -> Result<String, Problem> {
        self.once(&self.pwd, Lookup::Pwd, "the current directory")
    }

    fn pid(&self) -> Result<String, Problem> {
        let pid = self.once(&self.pid, Lookup::Pid, "the process id")?;
        let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
        if digits {
            Ok(pid)
        } else {
            Err(Problem::Unavailable("the process id"))
        }
    }
}

/// Evaluates the code at the start of `src` (the text after `#{`). Returns how many bytes of
/// `src` it spans, through its `}` (for refused code: through the `}` that matches by counting
/// braces outside quotes, or to the end of the line when none does), and what it gave.
pub(crate) fn interpolate(
    src: &[u8],
    inputs: &Inputs<'_>,
) -> (usize, Result<Interpolated, RubyError>) {
    let truncated = src.len() > MAX_CODE_BYTES;
    let window = &src[..src.len().min(MAX_CODE_BYTES)];
    let (expr, used) = match syntax::parse(window, truncated) {
        Ok(parsed) => parsed,
        Err(refusal) => {
            let (used, code_len) = skip_code(src);
            let code = quote(&src[..code_len]);
            let problem = Problem::Refused(refusal);
            return (used, Err(RubyError { code, problem }));
        }
    };
    let result = match eval::eval(&expr, inputs) {
        Ok(v) => Ok(Interpolated::Text(v.into_text())),
        Err(eval::Stop::Unset(u)) => Ok(Interpolated::Unset(u)),
        Err(eval::Stop::Fail(problem)) => {
            let code = quote(&src[..used.saturating_sub(1)]);
            Err(RubyError { code, problem })
        }
    };
    (used, result)
}

/// The code as it is quoted in errors.
fn quote(code: &[u8]) -> String {
    let text = String::from_utf8_lossy(code);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == 120 {
            out.push_str("...");
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// The extent of code that is not parsed: up to the `}` that closes it, counting braces outside
/// quotes, or to the end of the line. Returns the bytes spanned and the length of the code
/// (without its `}`).
fn skip_code(src: &[u8]) -> (usize, usize) {
    let mut depth = 1usize;
    let mut i = 0;
    while let Some(&b) = src.get(i) {
        match b {
            b'\n' => break,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return (i + 1, i);
                }
            }
            b'\'' | b'"' => {
                i += 1;
                while let Some(&c) = src.get(i) {
                    if c == b'\n' {
                        break;
                    }
                    i += 1;
                    if c == b'\\' {
                        i += 1;
                    } else if c == b {
                        break;
                    }
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let end = i.min(src.len());
    (end, end)
}

#[cfg(test)]
mod tests;
