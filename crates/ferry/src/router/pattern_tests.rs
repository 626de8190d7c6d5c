use super::*;
use proptest::prelude::*;

fn m(pattern: &str, tag: &str) -> bool {
    MatchPattern::parse(pattern).unwrap().matches(tag)
}

#[test]
fn literal_patterns_match_only_the_same_tag() {
    assert!(m("a.b", "a.b"));
    assert!(!m("a.b", "a.bc"));
    assert!(!m("a.b", "a"));
}

#[test]
fn single_star_matches_exactly_one_part() {
    assert!(m("a.*", "a.b"));
    assert!(!m("a.*", "a.b.c"));
    assert!(!m("a.*", "a"));
    assert!(m("*.b", "x.b"));
    assert!(!m("*.b", "x.y.b"));
}

#[test]
fn double_star_matches_zero_or_more_parts() {
    assert!(m("a.**", "a"));
    assert!(m("a.**", "a.b"));
    assert!(m("a.**", "a.b.c"));
    assert!(!m("a.**", "ab"));
    assert!(m("**", "anything.at.all"));
    assert!(m("**.b", "b"));
    assert!(m("**.b", "x.y.b"));
    assert!(!m("**.b", "xb"));
    assert!(m("a.**.c", "a.c"));
    assert!(m("a.**.c", "a.x.y.c"));
}

#[test]
fn a_dot_before_double_star_needs_a_dot_or_the_end_of_the_tag() {
    // Fluentd: `a.**b` is `a(?![^.]).*b`.
    assert!(!m("a.**b", "ab"));
    assert!(m("a.**b", "a.b"));
    assert!(m("a.**b", "a.xb"));
}

#[test]
fn double_star_dot_is_optional_only_at_the_start_of_the_tag() {
    // Fluentd: `x**.a` is `x(?:.*\.|\A)a`.
    assert!(!m("x**.a", "xa"));
    assert!(m("x**.a", "x.a"));
    assert!(m("x**.a", "xy.a"));
    assert!(!m("x.{**.a,b}", "x.a"));
    assert!(m("{**.a,b}", "a"));
}

#[test]
fn a_trailing_dot_is_dropped_and_backslash_escapes() {
    assert!(m("a.", "a"));
    assert!(!m("a.", "a."));
    assert!(m(r"a\*", "a*"));
    assert!(!m(r"a\*", "ab"));
    assert!(m(r"a\.**", "a."));
    assert!(m(r"a\.**", "a.x"));
}

#[test]
fn braces_and_several_patterns_are_alternatives() {
    assert!(m("{a,b}.c", "a.c"));
    assert!(m("{a,b}.c", "b.c"));
    assert!(!m("{a,b}.c", "c.c"));
    assert!(m("{a.*,b}.c", "a.x.c"));
    assert!(m("x.y app.**", "app.web"));
    assert!(m("x.y app.**", "x.y"));
    assert!(!m("x.y app.**", "x.z"));
    assert!(m("a,b", "a,b"));
}

#[test]
fn slash_delimited_patterns_are_regular_expressions_over_the_whole_tag() {
    assert!(m(r"/app\.(web|db)/", "app.web"));
    assert!(!m(r"/app\.(web|db)/", "app.webx"));
    assert!(m(r"other /a+/", "aaa"));
    assert!(MatchPattern::parse("/unterminated").is_err());
    assert!(MatchPattern::parse("/(/").is_err());
}

#[test]
fn empty_argument_matches_everything() {
    assert!(m("", "a.b"));
    assert!(m("", ""));
}

#[test]
fn malformed_braces_and_trailing_backslash_are_errors() {
    assert!(MatchPattern::parse("{a,b.c").is_err());
    assert!(MatchPattern::parse("a}").is_err());
    assert!(MatchPattern::parse(r"a\").is_err());
}

/// Fluentd's `GlobMatchPattern` (lib/fluent/match.rb), rule for rule, written out as a regex
/// for the `regex` crate. Fluentd's look-ahead `(?![^\.])` ("the next character is `.` or the
/// end") is `\b{end-half}` here: the generated tags use only word characters and `.`, so "not
/// followed by a word character" means exactly that.
fn fluentd_regex(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut stack: Vec<Vec<String>> = Vec::new();
    let mut regex: Vec<String> = vec![String::new()];
    let (mut escape, mut dot) = (false, false);
    let push = |regex: &mut Vec<String>, s: &str| regex.last_mut().unwrap().push_str(s);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if escape {
            push(&mut regex, &regex::escape(&c.to_string()));
            escape = false;
            i += 1;
            continue;
        } else if c == '*' && chars.get(i + 1) == Some(&'*') {
            if dot {
                push(&mut regex, r"\b{end-half}");
                dot = false;
            }
            if chars.get(i + 2) == Some(&'.') {
                push(&mut regex, r"(?:.*\.|\A)");
                i += 3;
            } else {
                push(&mut regex, ".*");
                i += 2;
            }
            continue;
        } else if dot {
            push(&mut regex, r"\.");
            dot = false;
        }
        if c == '\\' {
            escape = true;
        } else if c == '.' {
            dot = true;
        } else if c == '*' {
            push(&mut regex, r"[^.]*");
        } else if c == '{' {
            stack.push(Vec::new());
            regex.push(String::new());
        } else if c == '}' && !stack.is_empty() {
            let r = regex.pop().unwrap();
            let mut alts = stack.pop().unwrap();
            alts.push(r);
            let union: Vec<String> = alts.iter().map(|a| format!("(?:{a})")).collect();
            push(&mut regex, &format!("(?:{})", union.join("|")));
        } else if c == ',' && !stack.is_empty() {
            let r = regex.pop().unwrap();
            stack.last_mut().unwrap().push(r);
            regex.push(String::new());
        } else if c.is_ascii_alphanumeric() || c == '_' {
            push(&mut regex, &c.to_string());
        } else {
            push(&mut regex, &regex::escape(&c.to_string()));
        }
        i += 1;
    }
    format!(r"\A(?:{})\z", regex.last().unwrap())
}

/// Well-formed glob patterns over a small alphabet, so that tags often match.
fn glob() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "c", "_"]).prop_map(str::to_string),
        4 => Just(".".to_string()),
        2 => Just("*".to_string()),
        2 => Just("**".to_string()),
        1 => Just(r"\.".to_string()),
        1 => Just(r"\a".to_string()),
    ];
    let seq = prop::collection::vec(atom, 0..7).prop_map(|v| v.concat());
    seq.prop_recursive(2, 24, 4, |inner| {
        (
            prop::collection::vec(inner.clone(), 0..4),
            prop::collection::vec(inner, 1..4),
            prop::collection::vec(prop::sample::select(vec!["a", ".", "**", "*"]), 0..3),
        )
            .prop_map(|(before, alts, after)| {
                format!(
                    "{}{{{}}}{}",
                    before.concat(),
                    alts.join(","),
                    after.concat()
                )
            })
    })
}

fn tag() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!['a', 'b', 'c', '_', '.']), 0..9)
        .prop_map(|c| c.into_iter().collect())
}

/// A tag made from the pattern's own characters: matches far more often than a random tag.
fn tag_like(pattern: &str) -> String {
    pattern
        .chars()
        .filter(|c| !matches!(c, '*' | '{' | '}' | ',' | '\\'))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn glob_matching_agrees_with_fluentds_regex_rules(
        pattern in glob(),
        tags in prop::collection::vec(tag(), 1..16),
    ) {
        // An empty argument is `**` (a separate rule, tested above).
        let pattern = if pattern.is_empty() { "**".to_string() } else { pattern };
        let ours = MatchPattern::parse(&pattern).unwrap();
        let reference = regex::Regex::new(&fluentd_regex(&pattern)).unwrap();
        for tag in tags.iter().map(String::as_str).chain([tag_like(&pattern).as_str()]) {
            prop_assert_eq!(
                ours.matches(tag),
                reference.is_match(tag),
                "pattern {:?} tag {:?} regex {}", pattern, tag, reference.as_str()
            );
        }
    }

    #[test]
    fn several_patterns_match_when_any_of_them_matches(
        patterns in prop::collection::vec(glob(), 1..4),
        tag in tag(),
    ) {
        let arg = patterns.iter().map(|p| if p.is_empty() { "_" } else { p.as_str() })
            .collect::<Vec<_>>().join(" ");
        let any = arg.split(' ').any(|p| {
            regex::Regex::new(&fluentd_regex(p)).unwrap().is_match(&tag)
        });
        prop_assert_eq!(MatchPattern::parse(&arg).unwrap().matches(&tag), any);
    }
}

#[test]
fn a_long_tag_against_many_double_stars_is_matched_in_linear_time() {
    let p = MatchPattern::parse("**a**a**a**a**a**a**b").unwrap();
    let tag = "a".repeat(200_000);
    let started = std::time::Instant::now();
    assert!(!p.matches(&tag));
    assert!(p.matches(&format!("{tag}b")));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
