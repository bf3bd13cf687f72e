//! What a schema version is: whole numbers joined by dots, compared number by number.
//!
//! A missing number counts as 0, so `1` and `1.0` are the same version and `1.10` is newer
//! than `1.9`. A version keeps the spelling it was written with, for display.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// A parsed schema version such as `1.2`.
///
/// ```
/// use aifp_migrate::version::Version;
///
/// let v = |s: &str| s.parse::<Version>().unwrap();
/// assert!(v("1.10") > v("1.9"));
/// assert_eq!(v("1"), v("1.0"));
/// assert_eq!(v("1.0").to_string(), "1.0");
/// assert!("v1.0".parse::<Version>().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Version {
    parts: Box<[u64]>,
    text: Box<str>,
}

/// Why a string is not a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a version (expected whole numbers joined by dots, like 1.2)")]
pub struct BadVersion(pub String);

impl Version {
    /// The numbers without trailing zeros: the form that equality and order use.
    fn significant(&self) -> &[u64] {
        let end = self
            .parts
            .iter()
            .rposition(|&n| n != 0)
            .map_or(0, |i| i + 1);
        &self.parts[..end]
    }
}

impl FromStr for Version {
    type Err = BadVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadVersion(s.to_string());
        if s.is_empty() {
            return Err(bad());
        }
        let parts = s
            .split('.')
            .map(|p| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                p.parse::<u64>().map_err(|_| bad())
            })
            .collect::<Result<Box<[u64]>, _>>()?;
        Ok(Version {
            parts,
            text: s.into(),
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.significant() == other.significant()
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.significant().hash(state);
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        // Slices compare element by element and a shorter prefix sorts first, which is exactly
        // "a missing number counts as 0" once trailing zeros are gone.
        self.significant().cmp(other.significant())
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn numbers_compare_as_numbers_not_text() {
        assert!(v("1.10") > v("1.9"));
        assert!(v("2") > v("1.99.99"));
        assert!(v("1.0.1") > v("1"));
    }

    #[test]
    fn a_missing_number_counts_as_zero() {
        assert_eq!(v("1"), v("1.0"));
        assert_eq!(v("1.0.0"), v("1"));
        assert_eq!(v("0"), v("0.0"));
        assert!(v("1.0") < v("1.0.1"));
    }

    #[test]
    fn equal_versions_hash_alike() {
        use std::collections::HashSet;
        let set: HashSet<Version> = [v("1"), v("1.0"), v("1.0.0")].into_iter().collect();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn display_keeps_the_written_spelling() {
        assert_eq!(v("1.0").to_string(), "1.0");
        assert_eq!(v("01.2").to_string(), "01.2");
    }

    #[test]
    fn malformed_strings_are_refused() {
        for s in [
            "",
            ".",
            "1.",
            ".1",
            "1..2",
            "v1.0",
            "1.a",
            "1,0",
            " 1.0",
            "1.0 ",
            "-1",
            "+1",
            "1.-2",
            "１",
            "99999999999999999999999",
        ] {
            assert!(s.parse::<Version>().is_err(), "{s:?} parsed");
        }
    }
}
