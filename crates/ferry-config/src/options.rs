//! [`ParseOptions`]: what `"#{...}"` may read ([`Lookup`]) and whether `@include` may read
//! files.
//!
//! The lookup is the only input of embedded-code evaluation: the evaluator (`ruby`) asks it for
//! environment variables named in the code, the host name, the current directory and the process
//! id, and reads nothing else. Tests and the fuzz targets give a fixed lookup.

use std::io::Read;

/// One question embedded code may ask; [`ParseOptions::with_lookup`] answers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lookup<'a> {
    /// `ENV['NAME']`, `ENV.fetch('NAME')`: the variable's value, `None` when it is unset.
    Env(&'a str),
    /// `Socket.gethostname` and `hostname`: the host name. Asked at most once per parse.
    Hostname,
    /// `Dir.pwd`: the current directory. Asked at most once per parse.
    Pwd,
    /// `Process.pid`: the process id in decimal digits. Asked at most once per parse.
    Pid,
}

impl Lookup<'_> {
    /// The answer of this process: its environment, the kernel's host name
    /// (`/proc/sys/kernel/hostname`, what `gethostname(2)` returns), its current directory and
    /// its id. `None` when it cannot be read.
    pub fn read_process(self) -> Option<String> {
        match self {
            Lookup::Env(name) => std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()),
            Lookup::Hostname => {
                let mut name = String::new();
                let file = std::fs::File::open("/proc/sys/kernel/hostname").ok()?;
                file.take(256).read_to_string(&mut name).ok()?;
                let name = name.trim();
                (!name.is_empty()).then(|| name.to_string())
            }
            Lookup::Pwd => std::env::current_dir()
                .ok()
                .map(|d| d.to_string_lossy().into_owned()),
            Lookup::Pid => Some(std::process::id().to_string()),
        }
    }
}

/// Answers [`Lookup`] questions.
pub(crate) type LookupFn = dyn Fn(Lookup<'_>) -> Option<String>;

/// How to parse: what `"#{...}"` reads, and whether `@include` may read files.
pub struct ParseOptions {
    pub(crate) lookup: Box<LookupFn>,
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
            lookup: Box::new(|q: Lookup<'_>| q.read_process()),
            includes: true,
        }
    }
}

impl ParseOptions {
    /// This process's environment and facts, includes allowed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers every [`Lookup`] with `lookup`: embedded code then reads nothing else.
    pub fn with_lookup(mut self, lookup: impl Fn(Lookup<'_>) -> Option<String> + 'static) -> Self {
        self.lookup = Box::new(lookup);
        self
    }

    /// Reads environment variables from `env` instead of the process environment; the host
    /// name, directory and process id are this process's (see [`Lookup::read_process`]).
    pub fn with_env(self, env: impl Fn(&str) -> Option<String> + 'static) -> Self {
        self.with_lookup(move |q| match q {
            Lookup::Env(name) => env(name),
            other => other.read_process(),
        })
    }

    /// Makes every `@include` an error (for untrusted text: nothing is read from disk).
    pub fn without_includes(mut self) -> Self {
        self.includes = false;
        self
    }
}
