//! Fuzzes the label-selector parser: it must never panic, and whatever it accepts must print
//! back to a string that parses to the same selector.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/selector.rs"]
mod selector;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(sel) = selector::Selector::parse(s)
    {
        let again =
            selector::Selector::parse(&sel.to_string()).expect("printed selector must parse");
        assert_eq!(again, sel);
        let _ = sel.matches(&Default::default());
    }
});
