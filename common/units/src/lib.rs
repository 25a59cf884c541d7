//! The one duration grammar of every KIS command line: a bare number is seconds; otherwise one or
//! more `NUMBER UNIT` parts with units `ms`, `s`, `m` (or `min`), `h`, `d`, added together
//! (`1m30s`), each number possibly fractional (`1.5s`). This is Go's `time.ParseDuration` (which
//! k6 uses) minus the sub-millisecond units, plus days and bare seconds.
//!
//! ```
//! use std::time::Duration;
//! assert_eq!(kis_units::parse_duration("1m30s").unwrap(), Duration::from_secs(90));
//! assert_eq!(kis_units::parse_duration("1.5").unwrap(), Duration::from_millis(1500));
//! assert_eq!(kis_units::HumanDuration(Duration::from_secs(5400)).to_string(), "1h30m");
//! ```

// Every public item documented, and `pub` only where reachable from outside the crate.
#![warn(missing_docs, unreachable_pub)]

use std::fmt;
use std::time::Duration;

/// The units and their length in nanoseconds. `min` is accepted for minutes too, as `kis-agent`
/// did before this grammar.
const UNITS: [(&str, u128); 6] = [
    ("ms", 1_000_000),
    ("min", 60_000_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];
const SECOND_NS: u128 = 1_000_000_000;

/// What the grammar accepts, for error messages.
const EXAMPLES: &str = "e.g. 90, 500ms, 10s, 1.5m, 1m30s, 2h, 1d";

/// Why a string is not a duration. Each message is one line that names the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Nothing (or only spaces) was given.
    #[error("empty duration ({EXAMPLES})")]
    Empty,
    /// A part does not start with a number.
    #[error("{input:?} is not a duration: expected a number at {at:?} ({EXAMPLES})")]
    Number {
        /// The whole input.
        input: String,
        /// The rest of the input where a number was expected.
        at: String,
    },
    /// A number is followed by something that is not a unit.
    #[error(
        "{input:?} is not a duration: unknown unit {unit:?} (use ms, s, m, h or d; {EXAMPLES})"
    )]
    Unit {
        /// The whole input.
        input: String,
        /// What stood where the unit should be.
        unit: String,
    },
    /// The value does not fit in a `Duration`.
    #[error("{0:?} is too long a duration")]
    Overflow(String),
    /// Zero where a flag needs a positive duration.
    #[error("{0:?}: the duration must be greater than 0")]
    Zero(String),
}

/// Parses a duration (see the crate docs for the grammar); zero is allowed. Exact to the
/// nanosecond (no floating point): `0.1s` is 100 000 000 ns.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let input = s.trim();
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    let overflow = || DurationError::Overflow(input.to_string());
    let mut rest = input;
    let mut nanos: u128 = 0;
    let mut first = true;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(n);
        let number = Number::parse(num).ok_or_else(|| DurationError::Number {
            input: input.to_string(),
            at: rest.to_string(),
        })?;
        let (scale, next) = if tail.is_empty() && first {
            // A bare number: seconds.
            (SECOND_NS, "")
        } else {
            let u = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, next) = tail.split_at(u);
            let scale = UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, scale)| *scale)
                .ok_or_else(|| DurationError::Unit {
                    input: input.to_string(),
                    unit: unit.to_string(),
                })?;
            (scale, next)
        };
        let part = number.times(scale).ok_or_else(overflow)?;
        nanos = nanos.checked_add(part).ok_or_else(overflow)?;
        rest = next;
        first = false;
    }
    let secs = u64::try_from(nanos / SECOND_NS).map_err(|_| overflow())?;
    Ok(Duration::new(secs, (nanos % SECOND_NS) as u32))
}

/// A non-negative decimal number without exponent: its integer part and its fraction's digits.
struct Number {
    int: u128,
    frac: u128,
    frac_digits: u32,
}

impl Number {
    /// `12`, `1.5`, `.5`, `5.`; `None` without any digit or with two dots.
    fn parse(s: &str) -> Option<Number> {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
            return None;
        }
        // Digits past the nanosecond (18 is enough for any unit here) do not change the value.
        let frac = &frac[..frac.len().min(18)];
        Some(Number {
            // Only digits are left, so a failed parse is a number too large: saturate, and
            // `times` reports the overflow.
            int: if int.is_empty() {
                0
            } else {
                int.parse().unwrap_or(u128::MAX)
            },
            frac: if frac.is_empty() {
                0
            } else {
                frac.parse().ok()?
            },
            frac_digits: frac.len() as u32,
        })
    }

    /// The number times `scale` nanoseconds, rounded down to a whole nanosecond.
    fn times(&self, scale: u128) -> Option<u128> {
        let whole = self.int.checked_mul(scale)?;
        let part = self.frac.checked_mul(scale)? / 10u128.pow(self.frac_digits);
        whole.checked_add(part)
    }
}

/// [`parse_duration`] as seconds, for the flags and configs that keep `f64` seconds.
pub fn parse_secs(s: &str) -> Result<f64, DurationError> {
    parse_duration(s).map(|d| d.as_secs_f64())
}

/// [`parse_secs`] that also refuses zero (a run length, a window).
pub fn parse_positive_secs(s: &str) -> Result<f64, DurationError> {
    let v = parse_secs(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(DurationError::Zero(s.trim().to_string()))
    }
}

/// Displays a `Duration` in the grammar, shortest form first: `0s`, `250ms`, `1.5s`, `1m30s`,
/// `1h30m`, `2d`. Whole days, hours and minutes become parts; the remaining seconds are printed
/// with up to nine decimals (or as milliseconds below one second). It parses back to the same
/// value to the nanosecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if total == 0 && nanos == 0 {
            return f.write_str("0s");
        }
        let mut left = total;
        for (unit, secs) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if left >= secs {
                write!(f, "{}{unit}", left / secs)?;
                left %= secs;
            }
        }
        match (left, nanos) {
            (0, 0) => Ok(()),
            (0, n) => write!(f, "{}ms", trim_decimals(u64::from(n), 6)),
            (s, n) => {
                let whole = s * 1_000_000_000 + u64::from(n);
                write!(f, "{}s", trim_decimals(whole, 9))
            }
        }
    }
}

/// `value / 10^decimals`, written without trailing zeros.
fn trim_decimals(value: u64, decimals: u32) -> String {
    let scale = 10u64.pow(decimals);
    let (int, frac) = (value / scale, value % scale);
    if frac == 0 {
        return int.to_string();
    }
    let digits = format!("{frac:0width$}", width = decimals as usize);
    format!("{int}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn bare_numbers_are_seconds() {
        assert_eq!(parse_duration("90"), Ok(ms(90_000)));
        assert_eq!(parse_duration(" 1.5 "), Ok(ms(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration(".5"), Ok(ms(500)));
        assert_eq!(parse_duration("0.1"), Ok(ms(100)));
        assert_eq!(parse_duration("0.000000001"), Ok(Duration::from_nanos(1)));
    }

    #[test]
    fn units_fractions_and_parts() {
        for (s, want) in [
            ("250ms", 250),
            ("10s", 10_000),
            ("1.5s", 1500),
            ("2m", 120_000),
            ("2.5m", 150_000),
            ("2min", 120_000),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
            ("1m30s", 90_000),
            ("1h30m", 5_400_000),
            ("1s500ms", 1500),
            ("2d12h", 216_000_000),
        ] {
            assert_eq!(parse_duration(s), Ok(ms(want)), "{s}");
        }
    }

    #[test]
    fn bad_input_names_itself() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("  "), Err(DurationError::Empty));
        for bad in [
            "soon", "-1", "-1s", "5x", "1e3", "s", "ms", "1m 30s", "1mins", "10sec", "1..2s",
            "90 30s", "1h-5m", ".s",
        ] {
            let e = parse_duration(bad).expect_err(bad);
            let msg = e.to_string();
            assert!(msg.contains(&format!("{:?}", bad.trim())), "{bad}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
        assert!(matches!(
            parse_duration("5x"),
            Err(DurationError::Unit { unit, .. }) if unit == "x"
        ));
        assert!(matches!(
            parse_duration("1e999999d"),
            Err(DurationError::Unit { .. })
        ));
        for huge in [
            "99999999999999999999999d",
            "9999999999999999999999999999999999999999",
        ] {
            assert!(
                matches!(parse_duration(huge), Err(DurationError::Overflow(_))),
                "{huge}"
            );
        }
    }

    #[test]
    fn seconds_and_positive_seconds() {
        assert_eq!(parse_secs("250ms"), Ok(0.25));
        assert_eq!(parse_secs("0s"), Ok(0.0));
        assert_eq!(parse_positive_secs("1h"), Ok(3600.0));
        assert_eq!(
            parse_positive_secs("0ms"),
            Err(DurationError::Zero("0ms".into()))
        );
    }

    #[test]
    fn display_is_short_and_parses_back() {
        for (d, s) in [
            (Duration::ZERO, "0s"),
            (ms(250), "250ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (ms(1500), "1.5s"),
            (ms(90_000), "1m30s"),
            (ms(90_250), "1m30.25s"),
            (ms(5_400_000), "1h30m"),
            (ms(172_800_000), "2d"),
            (Duration::from_nanos(1), "0.000001ms"),
        ] {
            assert_eq!(HumanDuration(d).to_string(), s);
            assert_eq!(parse_duration(s), Ok(d), "{s}");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(secs in 0u64..10_000_000, millis in 0u32..1000) {
            let d = Duration::from_secs(secs) + Duration::from_millis(u64::from(millis));
            let text = HumanDuration(d).to_string();
            prop_assert_eq!(parse_duration(&text), Ok(d), "{}", text);
        }

        #[test]
        fn parts_add_up(h in 0u32..1000, m in 0u32..60, s in 0u32..60) {
            let text = format!("{h}h{m}m{s}s");
            let want = Duration::from_secs(u64::from(h) * 3600 + u64::from(m) * 60 + u64::from(s));
            prop_assert_eq!(parse_duration(&text), Ok(want));
        }

        #[test]
        fn never_panics(text in "\\PC{0,12}") {
            let _ = parse_duration(&text);
        }
    }
}
