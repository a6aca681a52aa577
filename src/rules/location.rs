//! Where a request comes from, as the geo conditions of a rule see it.
//!
//! A plain value: filled in by `crate::geo` (or by the caller's own `country`), read by
//! `evaluate`. It must not know about databases or HTTP.

use std::fmt;

/// A short upper-case ASCII code such as `GB`, `EU` or `GB-ENG`, stored inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Code {
    bytes: [u8; Code::CAPACITY],
    len: u8,
}

impl Code {
    /// The longest code kept: ISO 3166-2 codes are at most `CC-XXX` (6 bytes).
    pub const CAPACITY: usize = 8;

    /// Upper-cases `text`; `None` when it is empty, too long or not ASCII letters, digits and `-`.
    pub fn new(text: &str) -> Option<Code> {
        let raw = text.as_bytes();
        if raw.is_empty() || raw.len() > Self::CAPACITY {
            return None;
        }
        let mut bytes = [0u8; Self::CAPACITY];
        for (slot, &b) in bytes.iter_mut().zip(raw) {
            if !(b.is_ascii_alphanumeric() || b == b'-') {
                return None;
            }
            *slot = b.to_ascii_uppercase();
        }
        Some(Code {
            bytes,
            len: raw.len() as u8,
        })
    }

    /// `<country>-<subdivision>`, e.g. `GB` + `ENG` → `GB-ENG`.
    pub fn joined(country: Code, part: &str) -> Option<Code> {
        let total = country.len as usize + 1 + part.len();
        if total > Self::CAPACITY {
            return None;
        }
        let mut text = [0u8; Self::CAPACITY];
        text[..country.len as usize].copy_from_slice(country.as_str().as_bytes());
        text[country.len as usize] = b'-';
        text[country.len as usize + 1..total].copy_from_slice(part.as_bytes());
        Code::new(std::str::from_utf8(&text[..total]).ok()?)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request's location. Every part may be unknown; an unknown part never satisfies a condition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Location {
    /// ISO 3166-1 alpha-2, e.g. `GB`.
    pub country: Option<Code>,
    /// One of `AF AN AS EU NA OC SA`.
    pub continent: Option<Code>,
    /// ISO 3166-2 codes, e.g. `GB-ENG`, most significant first.
    pub subdivisions: [Option<Code>; 3],
}

impl Location {
    pub const UNKNOWN: Location = Location {
        country: None,
        continent: None,
        subdivisions: [None; 3],
    };

    pub fn subdivisions(&self) -> impl Iterator<Item = Code> + '_ {
        self.subdivisions.iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_upper_cased_and_bounded() {
        assert_eq!(Code::new("gb").unwrap().as_str(), "GB");
        assert!(Code::new("").is_none());
        assert!(Code::new("TOO-LONG-X").is_none());
        assert!(Code::new("G B").is_none());
        let gb = Code::new("GB").unwrap();
        assert_eq!(Code::joined(gb, "ENG").unwrap().as_str(), "GB-ENG");
    }
}
