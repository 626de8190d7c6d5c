//! `multiline_rules`: how Java, Python and Go print a stack trace. Only a line that can start a
//! trace is held; the lines that continue one are recognised by their shape.

use regex::bytes::Regex;
use std::sync::OnceLock;

/// Languages whose stack traces `multiline_rules` knows.
pub const RULES: &[&str] = &["java", "python", "go"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Java,
    Python,
    Go,
}

/// Whether a line continues a trace of `lang` in `phase`.
pub(super) enum Continue {
    Yes(u8),
    /// It does, and it is the trace's last line.
    Last,
    No,
}

fn re(cell: &'static OnceLock<Regex>, e: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(e).expect("built-in expression"))
}

/// Whether `line` can start a trace of `lang`.
pub(super) fn starts(lang: Lang, line: &[u8]) -> bool {
    static JAVA: OnceLock<Regex> = OnceLock::new();
    static PYTHON: OnceLock<Regex> = OnceLock::new();
    static GO: OnceLock<Regex> = OnceLock::new();
    match lang {
        // `java.lang.IllegalStateException: boom`, `Exception in thread "main" ...`,
        // `java.lang.OutOfMemoryError`.
        Lang::Java => re(&JAVA, r"^\S.*(?:Exception|Error|Throwable)(?::|$)").is_match(line),
        Lang::Python => re(&PYTHON, r"^Traceback \(most recent call last\):$").is_match(line),
        Lang::Go => re(&GO, r"^(?:panic: |fatal error: )").is_match(line),
    }
}

/// Whether `line` continues a trace of `lang` whose lines so far left it in `phase`.
pub(super) fn continues(lang: Lang, phase: u8, line: &[u8]) -> Continue {
    static JAVA: OnceLock<Regex> = OnceLock::new();
    static GO: OnceLock<Regex> = OnceLock::new();
    static PY_CHAIN: OnceLock<Regex> = OnceLock::new();
    let yes_if = |matched: bool| {
        if matched {
            Continue::Yes(0)
        } else {
            Continue::No
        }
    };
    match lang {
        Lang::Java => yes_if(
            re(
                &JAVA,
                r"^(?:\s+at\s|\s*\.\.\. \d+ (?:more|common frames omitted)$|\s*Caused by: |\s*Suppressed: )",
            )
            .is_match(line),
        ),
        Lang::Python => {
            // Phase 0: frames (indented) until the exception line, which ends the trace;
            // phase 1: after "During handling ...", a blank line and a new Traceback follow.
            let chain = re(
                &PY_CHAIN,
                r"^(?:During handling of the above exception, another exception occurred:|The above exception was the direct cause of the following exception:|Traceback \(most recent call last\):)$",
            );
            if line.first().is_some_and(|b| b.is_ascii_whitespace()) {
                Continue::Yes(0)
            } else if line.is_empty() || chain.is_match(line) {
                Continue::Yes(1)
            } else if phase == 1 {
                Continue::No
            } else {
                Continue::Last
            }
        }
        Lang::Go => yes_if(
            re(
                &GO,
                r"^(?:$|\s|goroutine \d+ \[|\[signal |created by |exit status \d+$|[\w./*()\[\]{}-]+\(.*\)$)",
            )
            .is_match(line),
        ),
    }
}
