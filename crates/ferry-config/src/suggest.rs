//! "Did you mean ...?" suggestions for misspelt names.

/// The candidate closest to `word`, when it is close enough to be a likely misspelling:
/// at most one edit for short words, two for words up to eight characters, a quarter of the
/// length beyond that; or a word of four characters or more that is a prefix of the candidate
/// (or the reverse). Comparison ignores ASCII case; a transposition counts as one edit.
pub fn closest<'c, I>(word: &str, candidates: I) -> Option<&'c str>
where
    I: IntoIterator<Item = &'c str>,
{
    let word_lc = word.to_ascii_lowercase();
    let limit = match word.chars().count() {
        0..=4 => 1,
        5..=8 => 2,
        n => n / 4,
    };
    let mut best: Option<(usize, &'c str)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
        let candidate_lc = candidate.to_ascii_lowercase();
        let mut d = strsim::damerau_levenshtein(&word_lc, &candidate_lc);
        let prefix = word_lc.len().min(candidate_lc.len()) >= 4
            && (candidate_lc.starts_with(&word_lc) || word_lc.starts_with(&candidate_lc));
        if d > limit && prefix {
            d = limit;
        }
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// `"; did you mean 'x'?"` or an empty string.
pub(crate) fn hint<'c, I>(word: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'c str>,
{
    match closest(word, candidates) {
        Some(c) => format!("; did you mean '{c}'?"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_letters_are_one_edit() {
        assert_eq!(closest("prot", ["bind", "port"]), Some("port"));
    }

    #[test]
    fn missing_letter_is_found() {
        assert_eq!(
            closest("souce", ["system", "source", "filter", "match", "label"]),
            Some("source")
        );
    }

    #[test]
    fn distant_words_get_no_suggestion() {
        assert_eq!(closest("compression", ["port", "bind"]), None);
        assert_eq!(hint("xyz", ["port"]), "");
    }

    #[test]
    fn case_differences_are_suggested() {
        assert_eq!(hint("Port", ["port"]), "; did you mean 'port'?");
    }

    #[test]
    fn truncated_words_are_suggested() {
        assert_eq!(
            closest("drop_oldest", ["block", "drop_oldest_chunk"]),
            Some("drop_oldest_chunk")
        );
        assert_eq!(closest("tls", ["tls_version"]), None);
    }

    #[test]
    fn closest_of_several_wins() {
        assert_eq!(
            closest("flush_intervl", ["flush_interval", "flush_thread_interval"]),
            Some("flush_interval")
        );
    }
}
