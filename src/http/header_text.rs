//! A request header's value as text: the one check every handler uses before reading a header
//! (tokens, cookies, forwarded addresses, platforms). Accepts exactly what
//! `HeaderValue::to_str` accepts — visible ASCII, space and tab — but checks eight bytes at a
//! time: session tokens and cookies are long, and they are read on every decision. Knows
//! nothing of what a header means.

use actix_web::http::header::HeaderValue;

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
const SPACE: u64 = u64::from_ne_bytes([0x20; 8]);

/// `value` as text when every byte is visible ASCII, a space or a tab; else `None`.
pub fn header_text(value: &HeaderValue) -> Option<&str> {
    let bytes = value.as_bytes();
    let mut words = bytes.chunks_exact(8);
    let mut suspicious = false;
    for word in &mut words {
        let w = u64::from_ne_bytes(word.try_into().expect("chunks of eight"));
        // A byte below 0x20 (control, or a tab), or at/above 0x7f (DEL, not ASCII): flagged
        // (the borrow or carry of one byte may flag its neighbour too, only when one is).
        let below_space = w.wrapping_sub(SPACE) & !w & HIGH;
        let del_or_above = (w.wrapping_add(ONES) | w) & HIGH;
        if below_space | del_or_above != 0 {
            suspicious = true;
            break;
        }
    }
    if suspicious || !words.remainder().iter().copied().all(is_text_byte) {
        // A tab somewhere, or a byte that is not text: the exact byte-by-byte check.
        return value.to_str().ok();
    }
    // SAFETY: every byte was checked above to be below 0x80 (ASCII), and ASCII is UTF-8.
    Some(unsafe { std::str::from_utf8_unchecked(bytes) })
}

fn is_text_byte(b: u8) -> bool {
    (b >= 0x20 && b != 0x7f && b < 0x80) || b == b'\t'
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn visible_ascii_spaces_and_tabs_are_text() {
        for text in [
            "",
            "a",
            "Bearer abc.def-ghi_jkl",
            "sy_flow=s1.login.1.42.0.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG; other=1",
            "with\ttab inside a long value of more than eight bytes",
            "~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./ 0123456789",
        ] {
            let value = HeaderValue::from_str(text).unwrap();
            assert_eq!(header_text(&value), Some(text), "{text:?}");
        }
    }

    #[test]
    fn bytes_beyond_ascii_are_not_text() {
        // A header value cannot hold control bytes or DEL (neither `HeaderValue` nor the
        // request parser lets them in); bytes above 0x7f it can hold.
        for bytes in [
            &b"caf\xc3\xa9 au lait, long enough"[..],
            b"\xff",
            b"01234567\x80",
            b"0123456789abcdef\xfe",
        ] {
            let value = HeaderValue::from_bytes(bytes).unwrap();
            assert_eq!(header_text(&value), None, "{bytes:?}");
        }
    }

    proptest! {
        /// Exactly what `HeaderValue::to_str` accepts, for any bytes a header value can hold.
        #[test]
        fn agrees_with_to_str(bytes in proptest::collection::vec(
            prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'\t'), 1 => 0x80u8..=0xff, 1 => any::<u8>()],
            0..80,
        )) {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                prop_assert_eq!(header_text(&value), value.to_str().ok());
            }
        }
    }
}
