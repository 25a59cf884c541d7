//! Property tests of the label-selector parser; the same checks as `adapter/fuzz` but on
//! stable Rust so CI runs them.

use std::collections::{BTreeMap, BTreeSet};

use kis_adapter::selector::{Requirement, Selector};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9]{0,5}",
        "[a-z]{1,4}\\.[a-z]{2,3}/[a-z][a-z0-9_.-]{0,4}[a-z0-9]",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9]",
        "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,6}[a-zA-Z0-9]"
    ]
}

fn requirement() -> impl Strategy<Value = Requirement> {
    prop_oneof![
        (key(), value()).prop_map(|(k, v)| Requirement::In(k, BTreeSet::from([v]))),
        (key(), value()).prop_map(|(k, v)| Requirement::NotIn(k, BTreeSet::from([v]))),
        (key(), prop::collection::btree_set(value(), 1..4))
            .prop_map(|(k, v)| Requirement::In(k, v)),
        (key(), prop::collection::btree_set(value(), 1..4))
            .prop_map(|(k, v)| Requirement::NotIn(k, v)),
        key().prop_map(Requirement::Exists),
        key().prop_map(Requirement::DoesNotExist),
    ]
}

/// Renders a requirement with a chosen operator spelling and spacing.
fn render(r: &Requirement, spell: u8, sp: &str) -> String {
    let set = |v: &BTreeSet<String>| {
        v.iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(&format!("{sp},{sp}"))
    };
    match r {
        Requirement::In(k, v) if v.len() == 1 && spell.is_multiple_of(3) => {
            format!("{k}{sp}={sp}{}", set(v))
        }
        Requirement::In(k, v) if v.len() == 1 && spell % 3 == 1 => {
            format!("{k}{sp}=={sp}{}", set(v))
        }
        Requirement::In(k, v) => format!("{k} in {sp}({sp}{}{sp})", set(v)),
        Requirement::NotIn(k, v) if v.len() == 1 && spell.is_multiple_of(2) => {
            format!("{k}{sp}!={sp}{}", set(v))
        }
        Requirement::NotIn(k, v) => format!("{k} notin{sp}({}{sp})", set(v)),
        Requirement::Exists(k) => format!("{sp}{k}"),
        Requirement::DoesNotExist(k) => format!("!{sp}{k}"),
    }
}

/// Reference semantics, written independently of the parser's `matches`.
fn reference(reqs: &[Requirement], labels: &BTreeMap<String, String>) -> bool {
    reqs.iter().all(|r| match r {
        Requirement::In(k, v) => matches!(labels.get(k), Some(x) if v.contains(x)),
        Requirement::NotIn(k, v) => !matches!(labels.get(k), Some(x) if v.contains(x)),
        Requirement::Exists(k) => labels.contains_key(k),
        Requirement::DoesNotExist(k) => !labels.contains_key(k),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rendered_selectors_parse_back(reqs in prop::collection::vec(requirement(), 0..5), spell in 0u8..6, sp in prop_oneof![Just(""), Just(" "), Just("  ")]) {
        let text = reqs.iter().map(|r| render(r, spell, sp)).collect::<Vec<_>>().join(&format!("{sp},{sp}"));
        let parsed = Selector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(&parsed.requirements, &reqs, "{:?}", text);
        prop_assert_eq!(Selector::parse(&parsed.to_string()).unwrap(), parsed);
    }

    #[test]
    fn matching_agrees_with_the_reference(reqs in prop::collection::vec(requirement(), 0..4),
                                          labels in prop::collection::btree_map(key(), value(), 0..4)) {
        let sel = Selector { requirements: reqs.clone() };
        prop_assert_eq!(sel.matches(&labels), reference(&reqs, &labels));
    }

    #[test]
    fn arbitrary_input_never_panics_and_round_trips(s in "\\PC{0,40}") {
        if let Ok(sel) = Selector::parse(&s) {
            prop_assert_eq!(Selector::parse(&sel.to_string()).unwrap(), sel);
        }
    }

    #[test]
    fn grammar_shaped_noise_never_panics(parts in prop::collection::vec(prop_oneof![
        Just("a"), Just("b.c/d"), Just("="), Just("=="), Just("!="), Just("!"), Just(","), Just("("),
        Just(")"), Just(" in "), Just(" notin "), Just(" "), Just("x"), Just("-"), Just("é")], 0..16)) {
        let s: String = parts.concat();
        if let Ok(sel) = Selector::parse(&s) {
            prop_assert_eq!(Selector::parse(&sel.to_string()).unwrap(), sel);
        }
    }
}
