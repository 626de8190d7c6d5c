//! [`ParseOptions`]: where `#{ENV['NAME']}` reads from and whether `@include` may read files.

use crate::value::EnvLookup;

/// How to parse: where `#{ENV['NAME']}` reads from, and whether `@include` may read files.
pub struct ParseOptions {
    pub(crate) env: Box<EnvLookup>,
    pub(crate) includes: bool,
}

impl std::fmt::Debug for ParseOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParseOptions")
            .field("includes", &self.includes)
            .finish_non_exhaustive()
    }
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            env: Box::new(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())),
            includes: true,
        }
    }
}

impl ParseOptions {
    /// The process environment, includes allowed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `#{ENV['NAME']}` from `lookup` instead of the process environment.
    pub fn with_env(mut self, lookup: impl Fn(&str) -> Option<String> + 'static) -> Self {
        self.env = Box::new(lookup);
        self
    }

    /// Makes every `@include` an error (for untrusted text: nothing is read from disk).
    pub fn without_includes(mut self) -> Self {
        self.includes = false;
        self
    }
}
