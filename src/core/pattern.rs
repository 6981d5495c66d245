//! Event-type patterns: exact types, `*` (exactly one dot-separated segment), `**` (one or
//! more segments), `{a,b}` alternatives; `*` or `**` alone matches every type.
//!
//! A pattern is compiled once at `on()` time into a list of alternatives, each a list of
//! segment matchers, so matching a type is a walk over its dot-separated segments with no
//! allocation (an alternative with `**` collects the type's segments once to backtrack over).

use std::fmt;

/// The most alternatives one pattern may expand to. Brace groups multiply out, so a short
/// pattern like `{a,b}` repeated 30 times would otherwise ask for 2^30 of them (a hang and an
/// out-of-memory abort at `on()` time).
pub const MAX_ALTERNATIVES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    Empty,
    UnbalancedBraces,
    NestedBraces,
    EmptyAlternative,
    EmptySegment,
    PartialWildcard(String),
    TooManyAlternatives(usize),
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::Empty => write!(f, "must be a non-empty string"),
            PatternError::UnbalancedBraces => write!(f, "has unbalanced braces"),
            PatternError::NestedBraces => write!(f, "nests braces, which is not supported"),
            PatternError::EmptyAlternative => write!(f, "has an empty alternative inside braces"),
            PatternError::EmptySegment => write!(f, "has an empty segment (two dots, or a leading or trailing dot)"),
            PatternError::PartialWildcard(seg) => write!(
                f,
                "has '*' inside the segment '{seg}': '*' and '**' must stand for a whole segment"
            ),
            PatternError::TooManyAlternatives(n) => write!(
                f,
                "expands to more than {MAX_ALTERNATIVES} alternatives (brace groups multiply: {n} so far)"
            ),
        }
    }
}

impl std::error::Error for PatternError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    AnyOne,
    /// `**`: one or more segments.
    AnyMany,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    /// `'*'` or `'**'` alone: every type.
    Everything,
    /// Any of the alternatives, each a sequence of segments.
    Alternatives(Vec<Vec<Segment>>),
}

/// A compiled string pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: Box<str>,
    matcher: Matcher,
}

impl Pattern {
    pub fn compile(source: &str) -> Result<Pattern, PatternError> {
        if source.is_empty() {
            return Err(PatternError::Empty);
        }
        let matcher = if source == "*" || source == "**" {
            Matcher::Everything
        } else {
            let alternatives = expand_braces(source)?
                .iter()
                .map(|alt| compile_segments(alt))
                .collect::<Result<Vec<_>, _>>()?;
            Matcher::Alternatives(alternatives)
        };
        Ok(Pattern {
            source: source.into(),
            matcher,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match &self.matcher {
            Matcher::Everything => true,
            Matcher::Alternatives(alts) => alts.iter().any(|segs| segments_match(segs, event_type)),
        }
    }
}

fn segments_match(segments: &[Segment], event_type: &str) -> bool {
    if segments.contains(&Segment::AnyMany) {
        return segments_match_many(segments, event_type);
    }
    let mut parts = event_type.split('.');
    for segment in segments {
        match (segment, parts.next()) {
            (_, None) => return false,
            (Segment::AnyOne | Segment::AnyMany, Some(part)) => {
                if part.is_empty() {
                    return false;
                }
            }
            (Segment::Literal(lit), Some(part)) => {
                if **lit != *part {
                    return false;
                }
            }
        }
    }
    parts.next().is_none()
}

/// Matching with `**`: the wildcard walk that remembers the last `**` and lets it take one
/// more segment when the rest fails (the last one suffices: a later `**` subsumes an earlier
/// one's choices). A `**` takes at least one segment; no segment matches an empty one.
fn segments_match_many(segments: &[Segment], event_type: &str) -> bool {
    let parts: Vec<&str> = event_type.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return false;
    }
    let (n, m) = (parts.len(), segments.len());
    let (mut p, mut t) = (0, 0);
    // The last `**` seen: its index, and where the text after what it has taken starts.
    let mut star: Option<(usize, usize)> = None;
    while t < n {
        let step = match segments.get(p) {
            Some(Segment::AnyMany) => {
                star = Some((p, t + 1));
                true
            }
            Some(Segment::AnyOne) => true,
            Some(Segment::Literal(lit)) => **lit == *parts[t],
            None => false,
        };
        if step {
            p += 1;
            t += 1;
            continue;
        }
        match star {
            Some((at, end)) if end < n => {
                star = Some((at, end + 1));
                p = at + 1;
                t = end + 1;
            }
            _ => return false,
        }
    }
    p == m
}

/// `{order,payment}.created` -> [`order.created`, `payment.created`]; several brace groups
/// multiply out.
fn expand_braces(source: &str) -> Result<Vec<String>, PatternError> {
    let mut results = vec![String::new()];
    let mut rest = source;
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            None => {
                results.iter_mut().for_each(|r| r.push_str(rest));
                break;
            }
            Some(i) if rest.as_bytes()[i] == b'}' => return Err(PatternError::UnbalancedBraces),
            Some(open) => {
                let prefix = &rest[..open];
                let after = &rest[open + 1..];
                let close = after.find('}').ok_or(PatternError::UnbalancedBraces)?;
                let group = &after[..close];
                if group.contains('{') {
                    return Err(PatternError::NestedBraces);
                }
                let options: Vec<&str> = group.split(',').collect();
                if options.iter().any(|o| o.is_empty()) {
                    return Err(PatternError::EmptyAlternative);
                }
                let total = results.len().saturating_mul(options.len());
                if total > MAX_ALTERNATIVES {
                    return Err(PatternError::TooManyAlternatives(total));
                }
                results = results
                    .iter()
                    .flat_map(|r| options.iter().map(move |o| format!("{r}{prefix}{o}")))
                    .collect();
                rest = &after[close + 1..];
            }
        }
    }
    Ok(results)
}

fn compile_segments(alternative: &str) -> Result<Vec<Segment>, PatternError> {
    alternative
        .split('.')
        .map(|seg| match seg {
            "" => Err(PatternError::EmptySegment),
            "*" => Ok(Segment::AnyOne),
            "**" => Ok(Segment::AnyMany),
            s if s.contains('*') => Err(PatternError::PartialWildcard(s.to_string())),
            s => Ok(Segment::Literal(s.into())),
        })
        .collect()
}

#[cfg(test)]
#[path = "pattern_proptests.rs"]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Pattern::compile(p).unwrap().matches(t)
    }

    #[test]
    fn exact_types_match_only_themselves() {
        assert!(m("order.created", "order.created"));
        assert!(!m("order.created", "order.created.v2"));
        assert!(!m("order.created", "order"));
        assert!(m("update", "update"));
    }

    #[test]
    fn star_segment_matches_exactly_one_segment() {
        assert!(m("order.*", "order.created"));
        assert!(!m("order.*", "order"));
        assert!(!m("order.*", "order.created.v2"));
        assert!(m("*.created", "payment.created"));
        assert!(!m("order.*", "order."), "a segment is never empty");
    }

    #[test]
    fn lone_star_matches_everything() {
        assert!(m("*", "a"));
        assert!(m("*", "a.b.c"));
    }

    #[test]
    fn double_star_matches_one_or_more_segments() {
        assert!(m("order.**", "order.created"));
        assert!(m("order.**", "order.created.v2"));
        assert!(!m("order.**", "order"));
        assert!(!m("order.**", "payment.created"));
        assert!(m("**.created", "a.b.created"));
        assert!(!m("**.created", "created"));
        assert!(m("a.**.z", "a.b.c.z"));
        assert!(!m("a.**.z", "a.z"));
        assert!(m("a.**.*", "a.b.c"));
        assert!(!m("a.**.*", "a.b"));
        assert!(m("**.b.**", "a.b.b.c"));
        assert!(!m("order.**", "order..x"), "a segment is never empty");
        assert!(m("{order,user}.**", "user.x.y"));
    }

    #[test]
    fn lone_double_star_matches_everything() {
        assert!(m("**", "a"));
        assert!(m("**", "a.b.c"));
        assert!(Pattern::compile("a.***").is_err());
        assert!(Pattern::compile("a**").is_err());
    }

    #[test]
    fn alternatives_expand() {
        assert!(m("{order,payment}.created", "order.created"));
        assert!(m("{order,payment}.created", "payment.created"));
        assert!(!m("{order,payment}.created", "user.created"));
        assert!(m("{a,b}.{c,d}", "b.c"));
        assert!(m("x{a,b}", "xb"));
    }

    #[test]
    fn invalid_patterns_are_refused_with_a_reason() {
        assert_eq!(Pattern::compile(""), Err(PatternError::Empty));
        assert_eq!(
            Pattern::compile("{a,b"),
            Err(PatternError::UnbalancedBraces)
        );
        assert_eq!(Pattern::compile("a}"), Err(PatternError::UnbalancedBraces));
        assert_eq!(Pattern::compile("{a,{b}}"), Err(PatternError::NestedBraces));
        assert_eq!(
            Pattern::compile("{a,}"),
            Err(PatternError::EmptyAlternative)
        );
        assert_eq!(Pattern::compile("a..b"), Err(PatternError::EmptySegment));
        assert!(matches!(
            Pattern::compile("ord*"),
            Err(PatternError::PartialWildcard(_))
        ));
    }

    #[test]
    fn brace_groups_cannot_multiply_out_without_bound() {
        assert!(
            Pattern::compile("{a,b}.".repeat(10).trim_end_matches('.')).is_ok(),
            "2^10 is allowed"
        );
        let huge = "{a,b}".repeat(40);
        assert!(matches!(
            Pattern::compile(&huge),
            Err(PatternError::TooManyAlternatives(2048))
        ));
    }
}
