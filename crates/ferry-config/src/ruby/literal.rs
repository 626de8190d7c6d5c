//! Literals: numbers, `'single'` and `"double"` quoted strings with Ruby's escapes.

use super::Refusal;
use super::syntax::{Expr, Parser, Piece, is_word_byte};

impl Parser<'_> {
    /// Digits with single `_` between them; returns them without the `_`.
    fn digits(&mut self, out: &mut String) {
        while let Some(b) = self.peek() {
            if b.is_ascii_digit() {
                out.push(b as char);
                self.pos += 1;
            } else if b == b'_' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit()) {
                self.pos += 1;
            } else {
                return;
            }
        }
    }

    /// `-`? digits, then `.digits` and an exponent for a float. Leading zeros (octal, `0x`...)
    /// and suffixes (`1r`, `2i`) are refused.
    pub(super) fn number(&mut self) -> Result<Expr, Refusal> {
        let start = self.pos;
        let mut text = String::new();
        if self.eat(b'-') {
            text.push('-');
        }
        let int_start = text.len();
        self.digits(&mut text);
        let leading_zero = text[int_start..].len() > 1 && text[int_start..].starts_with('0');
        let mut float = false;
        if self.peek() == Some(b'.') && self.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
            float = true;
            self.pos += 1;
            text.push('.');
            self.digits(&mut text);
        }
        let sign = usize::from(matches!(self.peek_at(1), Some(b'+' | b'-')));
        if matches!(self.peek(), Some(b'e' | b'E'))
            && self.peek_at(1 + sign).is_some_and(|b| b.is_ascii_digit())
        {
            float = true;
            text.push('e');
            if sign == 1 {
                text.push(self.peek_at(1).map_or('+', char::from));
            }
            self.pos += 1 + sign;
            self.digits(&mut text);
        }
        if leading_zero || self.peek().is_some_and(is_word_byte) {
            while self.peek().is_some_and(is_word_byte) {
                self.pos += 1;
            }
            let raw = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
            return Err(Refusal::Number(raw));
        }
        if float {
            return match text.parse::<f64>() {
                Ok(f) => Ok(Expr::Float(f)),
                Err(_) => Err(Refusal::Number(text)),
            };
        }
        if text == "-0" {
            text = "0".to_string();
        }
        Ok(Expr::Int(text))
    }

    /// `'...'`: only `\'` and `\\` are escapes.
    pub(super) fn single_quoted(&mut self) -> Result<String, Refusal> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.expected("a closing '")),
                Some(b'\'') => break,
                Some(b'\\') if matches!(self.peek_at(1), Some(b'\'' | b'\\')) => {
                    out.extend(self.peek_at(1));
                    self.pos += 2;
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// `"..."`: Ruby's escapes and `#{...}`.
    pub(super) fn double_quoted(&mut self) -> Result<Vec<Piece>, Refusal> {
        self.pos += 1;
        let mut pieces = Vec::new();
        let mut text = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.expected("a closing \"")),
                Some(b'"') => break,
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut text)?;
                }
                Some(b'#') if self.peek_at(1) == Some(b'{') => {
                    self.pos += 2;
                    if !text.is_empty() {
                        let t = String::from_utf8_lossy(&std::mem::take(&mut text)).into_owned();
                        pieces.push(Piece::Text(t));
                    }
                    pieces.push(Piece::Code(self.interpolation()?));
                }
                Some(b'#') if matches!(self.peek_at(1), Some(b'@' | b'$')) => {
                    return Err(Refusal::VariableInterpolation);
                }
                Some(b) => {
                    text.push(b);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        if !text.is_empty() || pieces.is_empty() {
            pieces.push(Piece::Text(String::from_utf8_lossy(&text).into_owned()));
        }
        Ok(pieces)
    }

    /// After a backslash in a double-quoted literal. Escapes that would make a byte beyond
    /// ASCII (`\xff`, `\377`) or a control or meta character (`\cx`, `\C-x`, `\M-x`) are refused.
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), Refusal> {
        let Some(b) = self.peek() else {
            return Err(self.expected("an escaped character"));
        };
        self.pos += 1;
        let simple = match b {
            b'\n' => return Ok(()),
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'f' => 0x0c,
            b'v' => 0x0b,
            b'a' => 0x07,
            b'b' => 0x08,
            b'e' => 0x1b,
            b's' => b' ',
            b'0'..=b'7' => {
                let mut v = u32::from(b - b'0');
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                return push_ascii(out, v, "\\nnn");
            }
            b'x' => {
                let (v, n) = self.hex_digits(2);
                if n == 0 {
                    return Err(Refusal::Escape("\\x without hex digits".into()));
                }
                return push_ascii(out, v, "\\xnn");
            }
            b'u' => return self.unicode(out),
            b'c' | b'C' | b'M' => {
                return Err(Refusal::Escape(format!("\\{}", b as char)));
            }
            other => other,
        };
        out.push(simple);
        Ok(())
    }

    /// Up to `max` hex digits: their value and how many there were.
    fn hex_digits(&mut self, max: usize) -> (u32, usize) {
        let mut v = 0;
        let mut n = 0;
        while n < max {
            let Some(d) = self.peek().and_then(|d| char::from(d).to_digit(16)) else {
                break;
            };
            v = v * 16 + d;
            n += 1;
            self.pos += 1;
        }
        (v, n)
    }

    /// After `\u`: four hex digits, or `{` code points separated by blanks `}`.
    fn unicode(&mut self, out: &mut Vec<u8>) -> Result<(), Refusal> {
        let bad = || Refusal::Escape("\\u needs 4 hex digits or {code points}".into());
        let mut push = |v: u32| -> Result<(), Refusal> {
            let c = char::from_u32(v).ok_or_else(bad)?;
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            Ok(())
        };
        if !self.eat(b'{') {
            let (v, n) = self.hex_digits(4);
            return if n == 4 { push(v) } else { Err(bad()) };
        }
        let mut count = 0;
        loop {
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.pos += 1;
            }
            if self.eat(b'}') {
                return if count == 0 { Err(bad()) } else { Ok(()) };
            }
            let (v, n) = self.hex_digits(6);
            if n == 0 {
                return Err(bad());
            }
            push(v)?;
            count += 1;
        }
    }
}

fn push_ascii(out: &mut Vec<u8>, v: u32, what: &str) -> Result<(), Refusal> {
    match u8::try_from(v) {
        Ok(b) if b.is_ascii() => {
            out.push(b);
            Ok(())
        }
        _ => Err(Refusal::Escape(format!(
            "{what} beyond ASCII (write the character itself or \\u)"
        ))),
    }
}
