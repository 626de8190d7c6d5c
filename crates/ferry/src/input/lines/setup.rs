//! What the configurations and start-ups of the message-oriented inputs share: the `<parse>`
//! `<parse>` section, the port, the reverse resolver.

use super::LineMetrics;
use crate::input::Start;
use crate::parse::{ParseDefaults, ParseSetup};
use ferry_config::Section;
use std::sync::Arc;
use std::time::Duration;

/// The input's `<parse>` with its `defaults`. Without one, `absent` gives the input's default
/// parser, or (when it has none) the section is required, as Fluentd requires it. `multiline`
/// is refused: it assembles lines of a file, and these inputs parse each message alone.
pub fn read_parse(
    s: &Section<'_>,
    kind: &str,
    defaults: &ParseDefaults,
    absent: Option<fn() -> ParseSetup>,
) -> ParseSetup {
    match (s.child("parse"), absent) {
        (Some(p), _) => {
            let setup = ParseSetup::from_section_with(&p, defaults);
            if setup.multiline.is_some() {
                p.error(
                    Some("@type"),
                    format!(
                        "multiline assembles lines of a file; the {kind} input parses each message alone"
                    ),
                );
            }
            p.finish();
            setup
        }
        (None, Some(default)) => default(),
        (None, None) => {
            s.error(None, "<parse> section is required.");
            ParseSetup::plain(crate::parse::Parser::None {
                key: "message".into(),
            })
        }
    }
}

/// How long a reverse lookup for `source_hostname_key` may hold a batch.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The reverse resolver of an input that writes its peers' names (`source_hostname_key`).
pub fn resolver(
    start: &Start<'_>,
    name: &str,
    needed: bool,
    metrics: &LineMetrics,
) -> Option<Arc<crate::input::net::resolve::Resolver>> {
    needed.then(|| {
        Arc::new(crate::input::net::resolve::Resolver::new(
            RESOLVE_TIMEOUT,
            Arc::clone(&metrics.lookups),
            start.tasks.work.clone(),
            name.to_string(),
        ))
    })
}
