//! Property tests of the pattern compiler against a reference matcher written a different way:
//! the compiler expands braces and compares dot-separated segments; the reference walks the
//! pattern and the type character by character, backtracking over brace alternatives and over
//! how much a `*` or a `**` consumes.
//!
//! `cargo test` runs `DEFAULT_CASES` cases per property; `HAPPEN_FUZZ_RUNS=100000 cargo test`
//! (what `npm run fuzz` does) runs more.

use proptest::prelude::*;

use super::{Pattern, PatternError, MAX_ALTERNATIVES};

const DEFAULT_CASES: u32 = 1500;

fn config() -> ProptestConfig {
    let cases = std::env::var("HAPPEN_FUZZ_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Reference: does `type` match `pattern`? `pattern` must be valid (see `reference_valid`).
fn reference_matches(pattern: &str, event_type: &str) -> bool {
    if pattern == "*" || pattern == "**" {
        return true;
    }
    let t: Vec<char> = event_type.chars().collect();
    // Whether a `*` is the start of a `**` shows only once braces are gone ("{*}{*}" is "**").
    if pattern.contains('{') && pattern.contains('*') {
        return expansions(pattern)
            .iter()
            .any(|alt| walk(&alt.chars().collect::<Vec<_>>(), &t));
    }
    let p: Vec<char> = pattern.chars().collect();
    walk(&p, &t)
}

fn walk(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('{') => {
            let close = p
                .iter()
                .position(|&c| c == '}')
                .expect("valid pattern: braces close");
            let rest = &p[close + 1..];
            p[1..close].split(|&c| c == ',').any(|option| {
                let mut candidate = option.to_vec();
                candidate.extend_from_slice(rest);
                walk(&candidate, t)
            })
        }
        // A whole-segment `**`: one or more whole, non-empty segments (SPEC §4).
        Some('*') if p.get(1) == Some(&'*') => (1..=t.len()).any(|k| {
            let taken = &t[..k];
            (k == t.len() || t[k] == '.')
                && taken.split(|&c| c == '.').all(|seg| !seg.is_empty())
                && walk(&p[2..], &t[k..])
        }),
        // A whole-segment `*`: a run of one or more characters up to the next dot (SPEC §4: one
        // segment; an empty segment, as in "a..b", is not one).
        Some('*') => {
            let segment_len = t.iter().position(|&c| c == '.').unwrap_or(t.len());
            (1..=segment_len).any(|k| walk(&p[1..], &t[k..]))
        }
        Some(&c) => t.first() == Some(&c) && walk(&p[1..], &t[1..]),
    }
}

/// Reference: is `pattern` one the compiler must accept?
fn reference_valid(pattern: &str) -> bool {
    if pattern.is_empty() {
        return false;
    }
    if pattern == "*" || pattern == "**" {
        return true;
    }
    // Braces: balanced, not nested, no empty alternative.
    let mut open: Option<usize> = None;
    for (i, c) in pattern.char_indices() {
        match (c, open) {
            ('{', Some(_)) => return false,
            ('{', None) => open = Some(i),
            ('}', None) => return false,
            ('}', Some(start)) => {
                if pattern[start + 1..i].split(',').any(str::is_empty) {
                    return false;
                }
                open = None;
            }
            _ => {}
        }
    }
    if open.is_some() {
        return false;
    }
    // Every expansion: no empty segment, `*` only as a whole segment.
    expansions(pattern).iter().all(|alt| {
        alt.split('.')
            .all(|seg| !seg.is_empty() && (seg == "*" || seg == "**" || !seg.contains('*')))
    })
}

/// Every string a (brace-valid) pattern stands for, recursively.
fn expansions(pattern: &str) -> Vec<String> {
    match pattern.find('{') {
        None => vec![pattern.to_string()],
        Some(open) => {
            let close = open + pattern[open..].find('}').expect("balanced");
            let rest = expansions(&pattern[close + 1..]);
            let mut out = Vec::new();
            for option in pattern[open + 1..close].split(',') {
                for tail in &rest {
                    out.push(format!("{}{}{}", &pattern[..open], option, tail));
                }
            }
            out
        }
    }
}

fn literal() -> impl Strategy<Value = String> {
    "[abc]{1,2}"
}

/// A piece of a valid pattern: a literal, `*`, or a brace group whose options may span dots.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => literal(),
        2 => Just("*".to_string()),
        1 => Just("**".to_string()),
        2 => prop::collection::vec(prop_oneof![literal(), Just("*".to_string()), Just("**".to_string()), (literal(), literal()).prop_map(|(a, b)| format!("{a}.{b}"))], 1..4)
            .prop_map(|options| format!("{{{}}}", options.join(","))),
    ]
}

fn valid_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("*".to_string()),
        1 => Just("**".to_string()),
        12 => prop::collection::vec(piece(), 1..5).prop_map(|pieces| pieces.join(".")),
    ]
}

/// Event types: mostly dotted words over the same letters, sometimes with empty segments.
fn event_type() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec("[abc]{1,2}", 1..6).prop_map(|segs| segs.join(".")),
        1 => "[abc.]{1,8}",
    ]
}

/// One concrete type a valid pattern matches, chosen by `picks`.
fn instance(pattern: &str, picks: &[usize]) -> String {
    let alts = expansions(pattern);
    let alt = &alts[picks[0] % alts.len()];
    alt.split('.')
        .enumerate()
        .map(|(i, seg)| {
            if seg == "**" {
                ["a", "bc.a", "cab.b.c"][picks[(i + 1) % picks.len()] % 3].to_string()
            } else if seg == "*" {
                ["a", "bc", "cab"][picks[(i + 1) % picks.len()] % 3].to_string()
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn valid_patterns_compile_and_match_like_the_reference(
        pattern in valid_pattern(),
        types in prop::collection::vec(event_type(), 1..8),
        picks in prop::collection::vec(0usize..64, 1..6),
    ) {
        prop_assert!(reference_valid(&pattern), "generator made an invalid pattern {pattern:?}");
        let compiled = Pattern::compile(&pattern);
        prop_assert!(compiled.is_ok(), "{pattern:?} refused: {compiled:?}");
        let compiled = compiled.unwrap();
        for t in &types {
            prop_assert_eq!(compiled.matches(t), reference_matches(&pattern, t), "pattern {:?} type {:?}", pattern, t);
        }
        let own = instance(&pattern, &picks);
        prop_assert!(compiled.matches(&own), "{pattern:?} does not match its own instance {own:?}");
        prop_assert!(reference_matches(&pattern, &own));
    }

    #[test]
    fn arbitrary_patterns_are_refused_exactly_when_invalid(
        pattern in "[ab.*{},]{0,12}",  // `**` arises often: '*' is one of seven characters
        types in prop::collection::vec(event_type(), 1..6),
    ) {
        let compiled = Pattern::compile(&pattern);
        prop_assert_eq!(compiled.is_ok(), reference_valid(&pattern), "pattern {:?}: {:?}", pattern, compiled);
        if let Ok(compiled) = compiled {
            for t in &types {
                prop_assert_eq!(compiled.matches(t), reference_matches(&pattern, t), "pattern {:?} type {:?}", pattern, t);
            }
        }
    }

    #[test]
    fn any_input_compiles_or_is_refused_without_panicking(pattern in any::<String>(), t in any::<String>()) {
        if let Ok(compiled) = Pattern::compile(&pattern) {
            let _ = compiled.matches(&t);
            let _ = compiled.matches("");
        }
    }

    #[test]
    fn brace_groups_never_expand_past_the_limit(groups in 1usize..40, width in 2usize..6) {
        let group = format!("{{{}}}", (0..width).map(|i| format!("x{i}")).collect::<Vec<_>>().join(","));
        let pattern = vec![group; groups].join(".");
        let total = (width as f64).powi(groups as i32);
        match Pattern::compile(&pattern) {
            Ok(_) => prop_assert!(total <= MAX_ALTERNATIVES as f64),
            Err(PatternError::TooManyAlternatives(_)) => prop_assert!(total > MAX_ALTERNATIVES as f64),
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
    }
}
