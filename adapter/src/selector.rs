//! Kubernetes label selectors (`k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`),
//! parsed with the same grammar and validation as apimachinery's `labels.Parse`, and label
//! key/value validation shared with the publish API.
//!
//! The HPA sends `metric.selector` as `?labelSelector=`; splitting it on `,` naively breaks
//! `in (a,b)`, so this is a small tokenizer + parser.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Why a selector string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector at byte {pos}: {msg}")]
pub struct SelectorError {
    /// Byte offset in the selector string.
    pub pos: usize,
    /// What was wrong.
    pub msg: String,
}

/// One requirement of a selector; all must hold (AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `k=v`, `k==v`, `k in (v…)`.
    In(String, BTreeSet<String>),
    /// `k!=v`, `k notin (v…)`: true when the key is absent too.
    NotIn(String, BTreeSet<String>),
    /// `k`.
    Exists(String),
    /// `!k`.
    DoesNotExist(String),
}

/// A parsed selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Requirements, all of which must match.
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// Parses a selector string (empty or whitespace = everything).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        Parser::new(s).parse()
    }

    /// Whether `labels` satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    /// True for the selector that matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |vs: &BTreeSet<String>| vs.iter().cloned().collect::<Vec<_>>().join(",");
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match r {
                Requirement::In(k, vs) if vs.len() == 1 => write!(f, "{k}={}", set(vs))?,
                Requirement::In(k, vs) => write!(f, "{k} in ({})", set(vs))?,
                Requirement::NotIn(k, vs) if vs.len() == 1 => write!(f, "{k}!={}", set(vs))?,
                Requirement::NotIn(k, vs) => write!(f, "{k} notin ({})", set(vs))?,
                Requirement::Exists(k) => write!(f, "{k}")?,
                Requirement::DoesNotExist(k) => write!(f, "!{k}")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Eq,
    DoubleEq,
    NotEq,
    Bang,
    Comma,
    Open,
    Close,
    End,
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    peeked: Option<(usize, Tok)>,
}

fn is_ident_char(c: char) -> bool {
    !(c.is_whitespace() || matches!(c, '=' | '!' | ',' | '(' | ')'))
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            pos: 0,
            peeked: None,
        }
    }

    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> Result<T, SelectorError> {
        Err(SelectorError {
            pos,
            msg: msg.into(),
        })
    }

    fn lex(&mut self) -> (usize, Tok) {
        let rest = &self.src[self.pos..];
        let trimmed = rest.trim_start();
        self.pos += rest.len() - trimmed.len();
        let start = self.pos;
        let mut chars = trimmed.chars();
        let Some(c) = chars.next() else {
            return (start, Tok::End);
        };
        let (len, tok) = match c {
            '=' if trimmed.starts_with("==") => (2, Tok::DoubleEq),
            '=' => (1, Tok::Eq),
            '!' if trimmed.starts_with("!=") => (2, Tok::NotEq),
            '!' => (1, Tok::Bang),
            ',' => (1, Tok::Comma),
            '(' => (1, Tok::Open),
            ')' => (1, Tok::Close),
            _ => {
                let len: usize = trimmed
                    .chars()
                    .take_while(|&c| is_ident_char(c))
                    .map(char::len_utf8)
                    .sum();
                (len, Tok::Ident(trimmed[..len].to_string()))
            }
        };
        self.pos += len;
        (start, tok)
    }

    fn next(&mut self) -> (usize, Tok) {
        self.peeked.take().unwrap_or_else(|| self.lex())
    }

    fn peek(&mut self) -> &(usize, Tok) {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex());
        }
        self.peeked.as_ref().expect("just filled")
    }

    fn parse(mut self) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        if self.peek().1 == Tok::End {
            return Ok(Selector { requirements });
        }
        loop {
            requirements.push(self.requirement()?);
            match self.next() {
                (_, Tok::End) => break,
                (_, Tok::Comma) => continue,
                (p, t) => return self.err(p, format!("expected ',' or end, found {t:?}")),
            }
        }
        Ok(Selector { requirements })
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        match self.next() {
            (p, Tok::Ident(k)) => {
                validate_label_key(&k).map_err(|m| SelectorError { pos: p, msg: m })?;
                Ok(k)
            }
            (p, t) => self.err(p, format!("expected a label key, found {t:?}")),
        }
    }

    fn value(&mut self) -> Result<String, SelectorError> {
        // An empty value is legal (`k=`): the next token is then ',' ')' or the end.
        match self.peek().clone() {
            (_, Tok::Ident(_)) => {
                let (p, Tok::Ident(v)) = self.next() else {
                    unreachable!("peeked an identifier")
                };
                validate_label_value(&v).map_err(|m| SelectorError { pos: p, msg: m })?;
                Ok(v)
            }
            (_, Tok::Comma | Tok::Close | Tok::End) => Ok(String::new()),
            (p, t) => self.err(p, format!("expected a label value, found {t:?}")),
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        if self.peek().1 == Tok::Bang {
            self.next();
            let k = self.key()?;
            return Ok(Requirement::DoesNotExist(k));
        }
        let k = self.key()?;
        match self.peek().clone() {
            (_, Tok::Comma | Tok::End) => Ok(Requirement::Exists(k)),
            (_, Tok::Eq | Tok::DoubleEq) => {
                self.next();
                Ok(Requirement::In(k, BTreeSet::from([self.value()?])))
            }
            (_, Tok::NotEq) => {
                self.next();
                Ok(Requirement::NotIn(k, BTreeSet::from([self.value()?])))
            }
            (p, Tok::Ident(op)) if op == "in" || op == "notin" => {
                self.next();
                let set = self.set(p)?;
                Ok(if op == "in" {
                    Requirement::In(k, set)
                } else {
                    Requirement::NotIn(k, set)
                })
            }
            (p, t) => self.err(
                p,
                format!("expected an operator after key {k:?}, found {t:?}"),
            ),
        }
    }

    fn set(&mut self, op_pos: usize) -> Result<BTreeSet<String>, SelectorError> {
        match self.next() {
            (_, Tok::Open) => {}
            (p, t) => return self.err(p, format!("expected '(' after set operator, found {t:?}")),
        }
        let mut set = BTreeSet::new();
        loop {
            set.insert(self.value()?);
            match self.next() {
                (_, Tok::Comma) => continue,
                (_, Tok::Close) => break,
                (p, Tok::End) => {
                    return self.err(p, format!("unclosed '(' opened after byte {op_pos}"));
                }
                (p, t) => return self.err(p, format!("expected ',' or ')', found {t:?}")),
            }
        }
        Ok(set)
    }
}

fn validate_name_part(s: &str, what: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err(format!("{what} {s:?} must be 1-63 characters"));
    }
    let ok_edge = |c: char| c.is_ascii_alphanumeric();
    let ok_mid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let first = s.chars().next().is_some_and(ok_edge);
    let last = s.chars().last().is_some_and(ok_edge);
    if !first || !last || !s.chars().all(ok_mid) {
        return Err(format!(
            "{what} {s:?} must be alphanumeric, '-', '_' or '.', starting and ending alphanumeric"
        ));
    }
    Ok(())
}

/// Validates a label key: optional DNS-subdomain prefix and `/`, then a name part.
pub fn validate_label_key(k: &str) -> Result<(), String> {
    let name = match k.split_once('/') {
        Some((prefix, name)) => {
            validate_dns_subdomain(prefix).map_err(|m| format!("label key prefix: {m}"))?;
            name
        }
        None => k,
    };
    validate_name_part(name, "label key")
}

/// Validates a label value: empty, or a name part.
pub fn validate_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    validate_name_part(v, "label value")
}

/// Validates a DNS-1123 subdomain (lower case, `.`-separated labels, ≤ 253 characters).
pub fn validate_dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 {
        return Err(format!("{s:?} must be 1-253 characters"));
    }
    for part in s.split('.') {
        validate_dns_label(part)?;
    }
    Ok(())
}

/// Validates a DNS-1123 label (namespaces): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, ≤ 63 characters.
pub fn validate_dns_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} must be a DNS-1123 label (lower-case alphanumeric and '-', max 63)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_operator() {
        let s = Selector::parse("a=1,b==2,c!=3,d in (x, y),e notin (z),f,!g").unwrap();
        assert_eq!(s.requirements.len(), 7);
        let l = labels(&[
            ("a", "1"),
            ("b", "2"),
            ("c", "4"),
            ("d", "y"),
            ("e", "w"),
            ("f", ""),
        ]);
        assert!(s.matches(&l));
        let mut bad = l.clone();
        bad.insert("g".into(), "1".into());
        assert!(!s.matches(&bad));
        let mut bad = l.clone();
        bad.insert("d".into(), "q".into());
        assert!(!s.matches(&bad));
    }

    #[test]
    fn empty_matches_everything_and_notin_matches_absent() {
        assert!(Selector::parse("").unwrap().matches(&labels(&[("x", "1")])));
        assert!(Selector::parse("   ").unwrap().is_empty());
        assert!(Selector::parse("k!=v").unwrap().matches(&labels(&[])));
        assert!(
            Selector::parse("k notin (v)")
                .unwrap()
                .matches(&labels(&[]))
        );
        assert!(!Selector::parse("k in (v)").unwrap().matches(&labels(&[])));
    }

    #[test]
    fn empty_values_are_legal() {
        let s = Selector::parse("k=,j in (,a)").unwrap();
        assert!(s.matches(&labels(&[("k", ""), ("j", "")])));
    }

    #[test]
    fn prefixed_keys() {
        let s = Selector::parse("scaledobject.keda.sh/name=web").unwrap();
        assert!(s.matches(&labels(&[("scaledobject.keda.sh/name", "web")])));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "=",
            "a=(",
            "a in",
            "a in (b",
            "a in b",
            "a notin ()x",
            ",",
            "a,",
            "a=b=c",
            "!",
            "!a=b",
            "a b",
            "a in (b c)",
            "-a=b",
            "a=-b",
            "a/b/c=d",
            "Upper.Case/x=y",
            "a=b)",
            "(a)",
            "a===b",
            "a=!b",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn display_round_trips() {
        let s = Selector::parse("a in (y,x), b!=c,!d,e").unwrap();
        assert_eq!(s.to_string(), "a in (x,y),b!=c,!d,e");
        assert_eq!(Selector::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn validates_dns_label() {
        assert!(validate_dns_label("kube-system").is_ok());
        for bad in ["", "-a", "a-", "A", "a.b", &"a".repeat(64)] {
            assert!(validate_dns_label(bad).is_err(), "{bad}");
        }
    }
}
