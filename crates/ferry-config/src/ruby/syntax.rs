//! The accepted grammar (listed in the parent module), parsed into an [`Expr`] before anything
//! is evaluated: code that is refused anywhere is never partly evaluated.
//!
//! The parser works on the raw bytes after `#{`, as Fluentd hands them to Ruby. It recurses
//! at most [`MAX_DEPTH`] levels; an `||` chain is a loop, not a recursion.

use super::Refusal;

/// Deepest nesting of expressions (parentheses, arguments, `#{}` inside a string literal).
pub(crate) const MAX_DEPTH: usize = 16;

/// An accepted expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Nil,
    Bool(bool),
    /// Decimal digits, `-` first when negative, no leading zero.
    Int(String),
    Float(f64),
    Str(Vec<Piece>),
    /// `ENV['NAME']`.
    Env(String),
    /// `ENV.fetch('NAME')`, `ENV.fetch('NAME', default)`.
    Fetch {
        name: String,
        default: Option<Box<Expr>>,
    },
    /// `File.join(a, b, ...)`.
    Join(Vec<Expr>),
    /// `Socket.gethostname`, `hostname`.
    Hostname,
    /// `Dir.pwd`.
    Pwd,
    /// `Process.pid`.
    Pid,
    /// `worker_id`.
    WorkerId,
    /// `use_default`, `use_nil`.
    Unset(crate::tree::Unset),
    /// `a || b || ...`, two operands or more.
    Or(Vec<Expr>),
}

/// A part of a string literal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    Text(String),
    /// `#{...}` inside a double-quoted literal.
    Code(Expr),
}

/// Parses the code after `#{` through its closing `}`: the expression and the bytes used.
/// `truncated` says that `src` was cut short of the text's end (for the error message).
pub(crate) fn parse(src: &[u8], truncated: bool) -> Result<(Expr, usize), Refusal> {
    let mut p = Parser {
        src,
        pos: 0,
        depth: 0,
        truncated,
    };
    let e = p.interpolation()?;
    Ok((e, p.pos))
}

pub(super) struct Parser<'s> {
    pub(super) src: &'s [u8],
    pub(super) pos: usize,
    depth: usize,
    truncated: bool,
}

pub(super) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_env_name_byte(b: u8) -> bool {
    is_word_byte(b) || b == b'.' || b == b'-'
}

impl Parser<'_> {
    pub(super) fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    pub(super) fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.pos + ahead).copied()
    }

    pub(super) fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Skips blanks and backslash-newline continuations, and line breaks when `newlines` (where
    /// Ruby continues the expression on the next line: after `||`, `(`, `[`, `,`, `.`, and
    /// before a closing bracket).
    fn space(&mut self, newlines: bool) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r') => self.pos += 1,
                Some(b'\n') if newlines => self.pos += 1,
                Some(b'\\') if self.peek_at(1) == Some(b'\n') => self.pos += 2,
                Some(b'\\') if self.src.get(self.pos + 1..self.pos + 3) == Some(b"\r\n") => {
                    self.pos += 3
                }
                _ => return,
            }
        }
    }

    /// What is at the cursor, for an error message.
    fn found(&self) -> String {
        let rest = self.src.get(self.pos..).unwrap_or_default();
        match rest.first() {
            None if self.truncated => format!("more than {} bytes", super::MAX_CODE_BYTES),
            None => "the end of the text".to_string(),
            Some(b'\n') => "a line break".to_string(),
            Some(&b) if is_word_byte(b) => {
                let n = rest.iter().take_while(|&&b| is_word_byte(b)).count();
                format!("'{}'", String::from_utf8_lossy(&rest[..n.min(40)]))
            }
            Some(_) => {
                let text = String::from_utf8_lossy(&rest[..rest.len().min(4)]);
                format!("'{}'", text.chars().next().unwrap_or('?'))
            }
        }
    }

    pub(super) fn expected(&self, what: &'static str) -> Refusal {
        Refusal::Expected {
            what,
            found: self.found(),
        }
    }

    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), Refusal> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_word_byte) {
            self.pos += 1;
        }
        if matches!(self.peek(), Some(b'?' | b'!')) && self.peek_at(1) != Some(b'=') {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.src[start..self.pos]).into_owned()
    }

    /// After `#{`: nothing (nil) or one expression, then `}`.
    pub(super) fn interpolation(&mut self) -> Result<Expr, Refusal> {
        self.space(true);
        if self.eat(b'}') {
            return Ok(Expr::Nil);
        }
        let e = self.expr()?;
        self.space(true);
        self.expect(b'}', "'}' or '||'")?;
        Ok(e)
    }

    fn expr(&mut self) -> Result<Expr, Refusal> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Refusal::TooDeep);
        }
        let mut chain = vec![self.operand()?];
        loop {
            self.space(false);
            let or = self.src.get(self.pos..self.pos + 2) == Some(b"||");
            if !or || self.peek_at(2) == Some(b'=') {
                break;
            }
            self.pos += 2;
            self.space(true);
            chain.push(self.operand()?);
        }
        self.depth -= 1;
        Ok(match chain.pop() {
            Some(only) if chain.is_empty() => only,
            Some(last) => {
                chain.push(last);
                Expr::Or(chain)
            }
            None => Expr::Nil,
        })
    }

    /// A primary expression that no method is called on.
    fn operand(&mut self) -> Result<Expr, Refusal> {
        let e = self.primary()?;
        self.space(false);
        let method = match (self.peek(), self.peek_at(1)) {
            (Some(b'.'), _) => 1,
            (Some(b'&' | b':'), Some(b'.' | b':')) => 2,
            (Some(b'['), _) => return Err(Refusal::ValueMethod("[]".into())),
            _ => return Ok(e),
        };
        self.pos += method;
        self.space(true);
        Err(Refusal::ValueMethod(format!(".{}", self.word())))
    }

    fn primary(&mut self) -> Result<Expr, Refusal> {
        match self.peek() {
            Some(b'\'') => Ok(Expr::Str(vec![Piece::Text(self.single_quoted()?)])),
            Some(b'"') => Ok(Expr::Str(self.double_quoted()?)),
            Some(b'0'..=b'9') => self.number(),
            Some(b'-') if self.peek_at(1).is_some_and(|b| b.is_ascii_digit()) => self.number(),
            Some(b'(') => {
                self.pos += 1;
                self.space(true);
                let e = self.expr()?;
                self.space(true);
                self.expect(b')', "')'")?;
                Ok(e)
            }
            Some(b'`') => Err(Refusal::Backtick),
            Some(b'%') => Err(Refusal::Percent),
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => self.named(),
            _ => Err(self.expected("a value")),
        }
    }

    fn named(&mut self) -> Result<Expr, Refusal> {
        let word = self.word();
        let e = match word.as_str() {
            "nil" => Expr::Nil,
            "true" => Expr::Bool(true),
            "false" => Expr::Bool(false),
            "hostname" => Expr::Hostname,
            "worker_id" => Expr::WorkerId,
            "use_default" => self.no_args(Expr::Unset(crate::tree::Unset::Default))?,
            "use_nil" => self.no_args(Expr::Unset(crate::tree::Unset::Nil))?,
            "ENV" => self.env()?,
            "File" => match self.method("File")?.as_str() {
                "join" if self.peek() == Some(b'(') => Expr::Join(self.args()?),
                "join" => Expr::Join(Vec::new()),
                other => return Err(Refusal::method("File", other)),
            },
            "Socket" => self.only_method("Socket", "gethostname", Expr::Hostname)?,
            "Dir" => self.only_method("Dir", "pwd", Expr::Pwd)?,
            "Process" => self.only_method("Process", "pid", Expr::Pid)?,
            _ => return Err(Refusal::Name(word)),
        };
        Ok(e)
    }

    /// An optional `()` right after a method name.
    fn no_args(&mut self, e: Expr) -> Result<Expr, Refusal> {
        if self.eat(b'(') {
            self.space(true);
            self.expect(b')', "')' (no arguments)")?;
        }
        Ok(e)
    }

    /// `.name` after a receiver: the name.
    fn method(&mut self, receiver: &'static str) -> Result<String, Refusal> {
        self.space(true);
        if !self.eat(b'.') {
            return Err(Refusal::Receiver(receiver));
        }
        self.space(true);
        Ok(self.word())
    }

    fn only_method(
        &mut self,
        receiver: &'static str,
        name: &str,
        e: Expr,
    ) -> Result<Expr, Refusal> {
        let method = self.method(receiver)?;
        if method != name {
            return Err(Refusal::method(receiver, &method));
        }
        self.no_args(e)
    }

    /// `ENV['NAME']` or `ENV.fetch('NAME'[, default])`, after `ENV`.
    fn env(&mut self) -> Result<Expr, Refusal> {
        if self.eat(b'[') {
            self.space(true);
            let name = self.env_name()?;
            self.space(true);
            self.expect(b']', "']'")?;
            return Ok(Expr::Env(name));
        }
        let method = self.method("ENV")?;
        if method != "fetch" {
            return Err(Refusal::method("ENV", &method));
        }
        self.expect(b'(', "'(' right after fetch")?;
        self.space(true);
        let name = self.env_name()?;
        self.space(true);
        let mut args = Vec::new();
        while self.eat(b',') {
            self.space(true);
            if self.peek() == Some(b')') {
                break;
            }
            args.push(self.expr()?);
            self.space(true);
        }
        self.expect(b')', "',' or ')'")?;
        let after = self.pos;
        self.space(false);
        let block = self.peek() == Some(b'{')
            || (self.src.get(self.pos..self.pos + 2) == Some(b"do")
                && !self.peek_at(2).is_some_and(is_word_byte));
        self.pos = after;
        if block {
            return Err(Refusal::FetchBlock);
        }
        if args.len() > 1 {
            return Err(Refusal::FetchArity(args.len() + 1));
        }
        Ok(Expr::Fetch {
            name,
            default: args.pop().map(Box::new),
        })
    }

    /// A variable name: a quoted literal without escapes or interpolation, so that the name
    /// read is the name written.
    fn env_name(&mut self) -> Result<String, Refusal> {
        let refuse = |p: &Self| Refusal::EnvName(p.found());
        let Some(q @ (b'\'' | b'"')) = self.peek() else {
            return Err(refuse(self));
        };
        let start = self.pos + 1;
        let len = self.src[start..]
            .iter()
            .take_while(|&&b| is_env_name_byte(b))
            .count();
        if len == 0 || self.src.get(start + len) != Some(&q) {
            self.pos = start + len;
            return Err(refuse(self));
        }
        self.pos = start + len + 1;
        Ok(String::from_utf8_lossy(&self.src[start..start + len]).into_owned())
    }

    /// `(` arguments `)`, a trailing comma allowed.
    fn args(&mut self) -> Result<Vec<Expr>, Refusal> {
        self.expect(b'(', "'('")?;
        self.space(true);
        let mut args = Vec::new();
        while self.peek() != Some(b')') {
            args.push(self.expr()?);
            self.space(true);
            if !self.eat(b',') {
                break;
            }
            self.space(true);
        }
        self.expect(b')', "',' or ')'")?;
        Ok(args)
    }
}
