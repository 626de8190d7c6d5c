//! Locations and the error sink.
//!
//! Every element and parameter carries a [`Span`] (file and 1-based line). Errors found while
//! parsing or while reading typed values are [`ConfigError`]s; a run collects all of them in an
//! [`Errors`] sink and reports them together as [`ConfigErrors`], so an operator fixes a file in
//! one pass instead of one error per restart.

use std::cell::RefCell;
use std::fmt;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

/// Where something was written: a file and a 1-based line. Displays as `file:line`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Span {
    /// The file as it was named (the top file as given, included files joined to the
    /// directory of the file that included them).
    pub file: Arc<PathBuf>,
    /// 1-based line number.
    pub line: u32,
}

impl Span {
    /// A span in `file` at `line`.
    pub fn new(file: Arc<PathBuf>, line: u32) -> Self {
        Span { file, line }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One problem in a configuration, at a place when one is known.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConfigError {
    /// Where the problem is; `None` when it concerns no line (an unreadable top file).
    pub span: Option<Span>,
    /// What is wrong, written for the operator.
    pub message: String,
}

impl ConfigError {
    /// An error at `span`.
    pub fn new(span: Option<Span>, message: impl Into<String>) -> Self {
        ConfigError {
            span,
            message: message.into(),
        }
    }

    /// Every configuration error stops start-up (and a reload): nothing binds with a config
    /// that has one.
    pub fn is_fatal(&self) -> bool {
        true
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.span {
            Some(span) => write!(f, "{span}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// All the errors of one run, in file order. Displays one error per line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The errors, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// A shared sink of errors: clones are handles to the same list, so every [`Section`] reader
/// of one configuration reports into one place.
///
/// [`Section`]: crate::Section
///
/// Beside errors it keeps notes: parameters ferry accepts so that Fluentd configurations load,
/// but that have no effect in ferry. A note does not fail the configuration; the daemon logs
/// each once at start, and `--dry-run` prints them.
#[derive(Debug, Clone, Default)]
pub struct Errors {
    inner: Rc<RefCell<Vec<ConfigError>>>,
    notes: Rc<RefCell<Vec<ConfigError>>>,
}

impl Errors {
    /// An empty sink.
    pub fn new() -> Self {
        Errors::default()
    }

    /// Records an error at `span`.
    pub fn push(&self, span: Option<Span>, msg: impl Into<String>) {
        self.inner.borrow_mut().push(ConfigError::new(span, msg));
    }

    /// Records a note at `span`: something accepted that has no effect.
    pub fn note(&self, span: Option<Span>, msg: impl Into<String>) {
        self.notes.borrow_mut().push(ConfigError::new(span, msg));
    }

    /// Every note recorded so far, in file order, each once; the list is emptied.
    pub fn take_notes(&self) -> Vec<ConfigError> {
        let notes = std::mem::take(&mut *self.notes.borrow_mut());
        file_order(notes)
    }

    /// Records errors found elsewhere (for example by the parser).
    pub fn extend(&self, errors: ConfigErrors) {
        self.inner.borrow_mut().extend(errors.0);
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.inner.borrow().is_empty()
    }

    /// Number of errors recorded.
    pub fn len(&self) -> usize {
        self.inner.borrow().len()
    }

    /// `Ok(value)` when nothing was recorded, otherwise every error recorded through any handle,
    /// in file order: files in the order they first appear, lines ascending within a file, errors
    /// without a line last. Errors on one line keep the order they were recorded in; an error
    /// recorded twice (a key read twice) is reported once.
    pub fn into_result<T>(self, value: T) -> Result<T, ConfigErrors> {
        let errors = std::mem::take(&mut *self.inner.borrow_mut());
        if errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(file_order(errors)))
        }
    }
}

fn file_order(mut errors: Vec<ConfigError>) -> Vec<ConfigError> {
    let mut files: Vec<Arc<PathBuf>> = Vec::new();
    for e in &errors {
        if let Some(span) = &e.span
            && !files.contains(&span.file)
        {
            files.push(span.file.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| seen.insert(e.clone()));
    errors.sort_by_key(|e| match &e.span {
        Some(span) => (
            files
                .iter()
                .position(|f| *f == span.file)
                .unwrap_or(usize::MAX),
            span.line,
        ),
        None => (usize::MAX, u32::MAX),
    });
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(file: &str, line: u32) -> Option<Span> {
        Some(Span::new(Arc::new(PathBuf::from(file)), line))
    }

    #[test]
    fn errors_from_all_handles_are_returned_in_file_order() {
        let errors = Errors::new();
        let other = errors.clone();
        other.push(span("a.conf", 9), "late");
        errors.push(None, "no line");
        errors.push(span("b.conf", 1), "second file");
        other.push(span("a.conf", 2), "early");
        assert_eq!(errors.len(), 4);
        let err = errors.into_result(()).unwrap_err();
        let text = err.to_string();
        assert_eq!(
            text,
            "a.conf:2: early\na.conf:9: late\nb.conf:1: second file\nno line"
        );
    }

    #[test]
    fn empty_sink_gives_the_value() {
        assert_eq!(Errors::new().into_result(7).unwrap(), 7);
    }
}
