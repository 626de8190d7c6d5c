//! What every plugin family shares in its configuration: the `@type` of a section, secrets.

use ferry_config::Section;
use std::fmt;

/// Fluentd's plugins that run programs (`in_exec`, `out_exec`, `out_exec_filter`): refused in
/// every family, with the reason.
pub const RUNS_PROGRAMS: &[&str] = &["exec", "exec_filter"];

/// The section's `@type` if it names a plugin of `known`. Reports a missing type, a type
/// ferry does not provide (with the list of what it has) and a misspelt one (with the closest
/// known name).
pub fn plugin_type<'k>(
    section: &Section<'_>,
    family: &str,
    known: &[&'k str],
    foreign: &[&str],
) -> Option<&'k str> {
    let Some(name) = section.plugin_type() else {
        section.error(
            None,
            format!(
                "<{}> needs '@type' ({family} plugins: {})",
                section.name(),
                known.join(", ")
            ),
        );
        return None;
    };
    if let Some(k) = known.iter().find(|k| **k == name) {
        return Some(k);
    }
    let message = if RUNS_PROGRAMS.contains(&name) {
        format!(
            "{family} plugin '{name}' is refused: it runs programs named in the configuration, and ferry runs none (a forwarder that starts commands runs code as its own user); run the program beside ferry and send what it prints to a forward or tail input"
        )
    } else if foreign.contains(&name) {
        format!(
            "{family} plugin '{name}' is not available in this ferry build ({family} plugins: {})",
            known.join(", ")
        )
    } else {
        match ferry_config::did_you_mean(name, known.iter().copied()) {
            Some(close) => format!("unknown {family} plugin '{name}' (did you mean '{close}'?)"),
            None => format!(
                "unknown {family} plugin '{name}' ({family} plugins: {})",
                known.join(", ")
            ),
        }
    };
    section.error(Some("@type"), message);
    None
}

/// The machine's host name (`${hostname}`, `hostname_key`): the kernel's, else `$HOSTNAME`,
/// else `localhost`.
pub fn hostname() -> String {
    // One reader of the kernel's host name: the one embedded code uses too.
    if let Some(name) = ferry_config::Lookup::Hostname.read_process() {
        return name;
    }
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Test support: runs `read` over the first section of `text` and finishes it; returns what
/// `read` built, or every configuration error as text.
#[cfg(test)]
pub fn read_section<T>(text: &str, read: impl FnOnce(&Section<'_>) -> T) -> Result<T, Vec<String>> {
    let root = ferry_config::parse_str(text, "test.conf")
        .map_err(|e| e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    let errors = ferry_config::Errors::new();
    let elem = root
        .children
        .first()
        .expect("the test text holds a section");
    let section = Section::new(elem, &errors);
    let value = read(&section);
    section.finish();
    errors
        .into_result(value)
        .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
}

/// A secret from the configuration: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<secret>\"")
    }
}

impl Secret {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// What identifies a plugin's configuration across a reload: its section's content wherever it
/// was written (a `<match>`'s pattern is the router's business, not the output's, so the top
/// element's argument is left out), `extra` (what else the plugin depends on, such as the root
/// directory), and the size and modification time of every file a parameter names, so that a
/// reload picks up renewed certificates and keys. Equal fingerprints: the running plugin is
/// kept as it is.
pub fn fingerprint(element: &ferry_config::Element, extra: &str) -> String {
    use std::fmt::Write;
    fn walk(e: &ferry_config::Element, with_arg: bool, out: &mut String) {
        let _ = write!(out, "<{:?}", e.name);
        if with_arg {
            let _ = write!(out, " {:?}", e.arg);
        }
        out.push('>');
        for p in &e.params {
            let _ = write!(out, "{:?}={:?}{:?};", p.key, p.value, p.unset);
            let path = std::path::Path::new(&p.value);
            if (path.is_absolute() || p.value.contains('/'))
                && let Ok(m) = std::fs::metadata(path)
                && m.is_file()
            {
                let modified = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .unwrap_or_default();
                let _ = write!(out, "[{} {}]", m.len(), modified.as_nanos());
            }
        }
        for c in &e.children {
            walk(c, true, out);
        }
        out.push_str("</>");
    }
    let mut out = format!("{extra:?}");
    walk(element, false, &mut out);
    out
}
