//! Money in yuan, held as integer fen (cents) so amounts compare and add exactly.

use std::fmt;

use serde::{Serialize, Serializer};

/// An amount of money in fen (1/100 yuan).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(pub i64);

impl Money {
    /// Parses `"39.90"`, `"5"`, `"5.5"` (yuan, at most two decimals, not negative).
    ///
    /// # Errors
    /// Anything else, with a message saying what is expected.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("`{s}` is not an amount in yuan like 39.90");
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty()
            || !int.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 2
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let yuan: i64 = int.parse().map_err(|_| bad())?;
        let fen: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<2}").parse().map_err(|_| bad())? };
        yuan.checked_mul(100).and_then(|y| y.checked_add(fen)).map(Money).ok_or_else(bad)
    }

    /// `p` percent of this amount, rounded down to the fen.
    #[must_use]
    pub fn percent(self, p: u32) -> Self {
        Money(self.0.saturating_mul(i64::from(p)) / 100)
    }
}

impl fmt::Display for Money {
    /// `5`, `39.9`, `39.95`: no trailing zeros, as people write prices.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, c) = (self.0 / 100, self.0 % 100);
        match c {
            0 => write!(f, "{y}"),
            c if c % 10 == 0 => write!(f, "{y}.{}", c / 10),
            c => write!(f, "{y}.{c:02}"),
        }
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}
