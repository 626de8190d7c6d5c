//! A byte cursor over configuration text that counts lines.
//!
//! All syntax characters are ASCII, so the scanners work on bytes; text between syntax
//! characters is copied byte for byte, which keeps valid UTF-8 valid (a multi-byte sequence
//! never contains an ASCII byte). Every access is bounds-checked: no input can make it panic.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pos: usize,
    line: u32,
}

#[derive(Debug)]
pub(crate) struct Cursor<'t> {
    src: &'t [u8],
    pos: usize,
    line: u32,
}

impl<'t> Cursor<'t> {
    pub(crate) fn new(src: &'t str) -> Self {
        Cursor {
            src: src.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    pub(crate) fn line(&self) -> u32 {
        self.line
    }

    pub(crate) fn eof(&self) -> bool {
        self.pos >= self.src.len()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    pub(crate) fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.pos.saturating_add(ahead)).copied()
    }

    pub(crate) fn starts_with(&self, s: &[u8]) -> bool {
        self.src
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(s))
    }

    /// Consumes one byte, counting a line at `\n`.
    pub(crate) fn bump(&mut self) -> Option<u8> {
        let b = *self.src.get(self.pos)?;
        self.pos += 1;
        if b == b'\n' {
            self.line = self.line.saturating_add(1);
        }
        Some(b)
    }

    /// The text from the cursor to the end.
    pub(crate) fn rest(&self) -> &'t [u8] {
        self.src.get(self.pos..).unwrap_or_default()
    }

    /// Consumes `n` bytes (fewer at the end of the text), counting lines.
    pub(crate) fn advance(&mut self, n: usize) {
        for _ in 0..n {
            if self.bump().is_none() {
                return;
            }
        }
    }

    /// Consumes `s` when the text continues with it.
    pub(crate) fn eat(&mut self, s: &[u8]) -> bool {
        if self.starts_with(s) {
            for _ in 0..s.len() {
                self.bump();
            }
            true
        } else {
            false
        }
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark {
            pos: self.pos,
            line: self.line,
        }
    }

    pub(crate) fn reset(&mut self, mark: Mark) {
        self.pos = mark.pos;
        self.line = mark.line;
    }

    /// The text from `mark` to the cursor.
    pub(crate) fn since(&self, mark: Mark) -> String {
        let bytes = self.src.get(mark.pos..self.pos).unwrap_or_default();
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// Moves back to the start of the current line (the line number is unchanged).
    pub(crate) fn rewind_to_line_start(&mut self) {
        let before = self.src.get(..self.pos).unwrap_or_default();
        self.pos = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
    }

    /// Skips spaces and tabs.
    pub(crate) fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.bump();
        }
    }

    /// Skips to the next `\n` without consuming it.
    pub(crate) fn skip_to_eol(&mut self) {
        while !matches!(self.peek(), None | Some(b'\n')) {
            self.bump();
        }
    }

    /// Skips the rest of the line, including its `\n`.
    pub(crate) fn skip_line(&mut self) {
        self.skip_to_eol();
        self.bump();
    }

    /// Skips whitespace (newlines included) and `#` comments between statements.
    pub(crate) fn skip_space_and_comments(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump();
                }
                Some(b'#') => self.skip_to_eol(),
                _ => return,
            }
        }
    }

    /// Consumes a line end: blanks, an optional `#` comment, then `\n` or the end of the text.
    /// Returns false (consuming only the blanks) when something else follows.
    pub(crate) fn eat_line_end(&mut self) -> bool {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.bump();
        }
        match self.peek() {
            None => true,
            Some(b'\n') => {
                self.bump();
                true
            }
            Some(b'#') => {
                self.skip_line();
                true
            }
            Some(_) => false,
        }
    }

    /// The rest of the current line, for error messages (at most 40 characters).
    pub(crate) fn rest_of_line(&self) -> String {
        let rest = self.src.get(self.pos..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let text = String::from_utf8_lossy(rest.get(..end).unwrap_or_default());
        let text = text.trim();
        if text.chars().count() > 40 {
            let short: String = text.chars().take(40).collect();
            format!("{short}...")
        } else {
            text.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_and_reset_restores_them() {
        let mut c = Cursor::new("a\nb\n");
        let m = c.mark();
        c.skip_line();
        assert_eq!(c.line(), 2);
        assert_eq!(c.peek(), Some(b'b'));
        c.reset(m);
        assert_eq!((c.line(), c.peek()), (1, Some(b'a')));
    }

    #[test]
    fn line_end_accepts_comments_and_crlf() {
        let mut c = Cursor::new("  # note\nx");
        assert!(c.eat_line_end());
        assert_eq!(c.peek(), Some(b'x'));
        let mut c = Cursor::new(" \r\nx");
        assert!(c.eat_line_end());
        let mut c = Cursor::new(" y");
        assert!(!c.eat_line_end());
        assert_eq!(c.rest_of_line(), "y");
    }
}
