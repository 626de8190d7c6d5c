//! Checks shared by every plugin family: the `@type` of a section.

use ferry_config::Section;

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
    let message = if foreign.contains(&name) {
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
