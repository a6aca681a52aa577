//! Small text helpers of the decision path, where `str::split` costs more than the rest of the
//! work: nothing here allocates, and nothing knows what the text means.

/// `text` cut at every `separator` (an ASCII byte) into exactly `N` fields, or `None` when
/// there are more or fewer: the same fields as `text.split(separator as char)`, found with a
/// plain byte loop instead of a char searcher (fields of cookies and tokens are short).
pub fn split_exactly<const N: usize>(text: &str, separator: u8) -> Option<[&str; N]> {
    debug_assert!(separator.is_ascii());
    let mut fields = [""; N];
    let mut count = 0;
    let mut start = 0;
    for (at, &byte) in text.as_bytes().iter().enumerate() {
        if byte == separator {
            // Cutting at an ASCII byte keeps every field valid UTF-8 (the slice cannot fail).
            *fields.get_mut(count)? = &text[start..at];
            count += 1;
            start = at + 1;
        }
    }
    *fields.get_mut(count)? = &text[start..];
    (count + 1 == N).then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fields_are_cut_at_each_separator() {
        assert_eq!(split_exactly::<3>("a.b.c", b'.'), Some(["a", "b", "c"]));
        assert_eq!(split_exactly::<3>("..", b'.'), Some(["", "", ""]));
        assert_eq!(split_exactly::<3>("a.b", b'.'), None);
        assert_eq!(split_exactly::<3>("a.b.c.d", b'.'), None);
        assert_eq!(split_exactly::<1>("", b'.'), Some([""]));
        assert_eq!(split_exactly::<2>("é.✓", b'.'), Some(["é", "✓"]));
    }

    proptest! {
        #[test]
        fn the_same_fields_as_str_split(text in "[a.é✓]{0,12}") {
            let expected: Vec<&str> = text.split('.').collect();
            let three = split_exactly::<3>(&text, b'.');
            prop_assert_eq!(three.map(|f| f.to_vec()), (expected.len() == 3).then(|| expected.clone()));
            let five = split_exactly::<5>(&text, b'.');
            prop_assert_eq!(five.map(|f| f.to_vec()), (expected.len() == 5).then(|| expected.clone()));
        }
    }
}
