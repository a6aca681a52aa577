//! The text formats of a rollout's conditions and of decide's `ip`, as regular expressions:
//! the very patterns `openapi.json` documents (a test there checks they are the same text), so
//! that the document says exactly what the service accepts.
//!
//! Where a parser of our own or of a crate reads a format more leniently than we want to
//! promise (the `ipnet` parser, the semver crate's requirements), the service checks the
//! pattern first ([`is_ip_range`], [`is_version_req`]); where the standard library's parser is
//! the reference (an IP address in decide), the pattern is written after its grammar and a
//! property test checks both ways. Pure: no I/O, nothing of HTTP.

use std::sync::LazyLock;

use regex::Regex;

use super::country;

/// One group of an IPv6 address: 1 to 4 hex digits (the standard library takes leading zeros).
const H16: &str = "[0-9A-Fa-f]{1,4}";
/// A decimal octet without leading zeros, 0 to 255 (as the standard library reads it).
const OCTET: &str = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";

fn ipv4() -> String {
    format!("{OCTET}(\\.{OCTET}){{3}}")
}

/// IPv6 as `core::net`'s parser reads it: eight groups, or fewer around one `::` that stands for
/// at least one group; the last two groups may be written as an IPv4 address.
fn ipv6() -> String {
    let v4 = ipv4();
    let mut forms = vec![format!("({H16}:){{7}}{H16}"), format!("({H16}:){{6}}{v4}")];
    for head in 0..=7usize {
        let room = 7 - head;
        let head_part = match head {
            0 => String::new(),
            1 => H16.to_string(),
            n => format!("({H16}:){{{}}}{H16}", n - 1),
        };
        let mut tails = Vec::new();
        if room >= 1 {
            tails.push(match room {
                1 => H16.to_string(),
                n => format!("{H16}(:{H16}){{0,{}}}", n - 1),
            });
        }
        if room >= 2 {
            tails.push(match room {
                2 => v4.clone(),
                n => format!("({H16}:){{0,{}}}{v4}", n - 2),
            });
        }
        let tail = if tails.is_empty() {
            String::new()
        } else {
            format!("({})?", tails.join("|"))
        };
        forms.push(format!("{head_part}::{tail}"));
    }
    format!("({})", forms.join("|"))
}

/// decide's `ip`: an IPv4 or IPv6 address, or the empty string (no address).
pub static IP_ADDRESS: LazyLock<String> = LazyLock::new(|| format!("^(|{}|{})$", ipv4(), ipv6()));

/// An element of a rule's `ip_ranges`: an address, or an address with a prefix length
/// (0–32 for IPv4, 0–128 for IPv6), without spaces.
pub static IP_RANGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "^({}(/([0-9]|[12][0-9]|3[0-2]))?|{}(/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))?)$",
        ipv4(),
        ipv6()
    )
});

/// A number of a version in a requirement: no leading zero, at most 9 digits.
const NUMBER: &str = "(0|[1-9][0-9]{0,8})";
/// A pre-release identifier: a number without leading zero, or alphanumerics and `-` with at
/// least one non-digit.
const PRE_ID: &str = "(0|[1-9][0-9]{0,8}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)";

/// A rule's `app_version`: `*` alone, or one or more comparators joined by commas. A
/// comparator is an optional operator (`=` `>` `>=` `<` `<=` `~` `^`) and a version of one to
/// three numbers (a pre-release only after three), or a wildcard (`5.*`, `5.2.*`; `x` or `X`
/// for `*`). At most 32 comparators, as the semver crate allows.
pub static VERSION_REQ: LazyLock<String> = LazyLock::new(|| {
    let version = format!("{NUMBER}(\\.{NUMBER}(\\.{NUMBER}(-{PRE_ID}(\\.{PRE_ID})*)?)?)?");
    let comparator =
        format!("((=|>|>=|<|<=|~|\\^)?{version}|{NUMBER}\\.[*xX]|{NUMBER}\\.{NUMBER}\\.[*xX])");
    format!("^(\\*|{comparator}( *, *{comparator}){{0,31}})$")
});

/// The assigned ISO 3166-1 alpha-2 codes in any case, without anchors: for each first letter,
/// the second letters that follow it (`[Aa][DdEe…]|[Bb][Aa…]|…`).
fn country_alternatives() -> String {
    let mut groups: Vec<(u8, Vec<u8>)> = Vec::new();
    for (code, _) in country::CONTINENTS {
        if !country::is_assigned(code) {
            continue;
        }
        let [first, second] = <[u8; 2]>::try_from(code.as_bytes()).expect("two letters");
        match groups.last_mut() {
            Some((f, seconds)) if *f == first => seconds.push(second),
            _ => groups.push((first, vec![second])),
        }
    }
    let both = |c: u8| format!("{}{}", c as char, c.to_ascii_lowercase() as char);
    groups
        .iter()
        .map(|(first, seconds)| {
            let seconds: String = seconds.iter().map(|&c| both(c)).collect();
            format!("[{}][{seconds}]", both(*first))
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// An element of a rule's `countries`: an assigned ISO 3166-1 alpha-2 code, any case.
pub static COUNTRY: LazyLock<String> = LazyLock::new(|| format!("^({})$", country_alternatives()));

/// An element of a rule's `subdivisions`: an assigned country code, `-`, and 1 to 3 letters or
/// digits (ISO 3166-2), any case.
pub static SUBDIVISION: LazyLock<String> =
    LazyLock::new(|| format!("^({})-[A-Za-z0-9]{{1,3}}$", country_alternatives()));

static IP_RANGE_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&IP_RANGE).expect("IP_RANGE is a valid pattern"));
static VERSION_REQ_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&VERSION_REQ).expect("VERSION_REQ is a valid pattern"));

/// Whether `text` has the documented form of an `ip_ranges` element ([`IP_RANGE`]).
pub fn is_ip_range(text: &str) -> bool {
    IP_RANGE_RE.is_match(text)
}

/// Whether `text` has the documented form of an `app_version` requirement ([`VERSION_REQ`]).
pub fn is_version_req(text: &str) -> bool {
    VERSION_REQ_RE.is_match(text)
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::rules::compile::parse_version_req;

    fn re(pattern: &str) -> Regex {
        Regex::new(pattern).unwrap()
    }

    static IP_ADDRESS_RE: LazyLock<Regex> = LazyLock::new(|| re(&IP_ADDRESS));

    /// The regex crate's generator and `proptest::string::string_regex` understand the same
    /// syntax; the anchors are implied there.
    fn strings_of(pattern: &str) -> impl Strategy<Value = String> {
        let inner = pattern.trim_start_matches('^').trim_end_matches('$');
        proptest::string::string_regex(inner).unwrap()
    }

    /// Addresses written every way the standard library reads them: its own display, every
    /// group in full, and the last 32 bits as IPv4.
    fn spellings(ip: IpAddr) -> Vec<String> {
        match ip {
            IpAddr::V4(v4) => vec![v4.to_string()],
            IpAddr::V6(v6) => {
                let s = v6.segments();
                let full = s.map(|g| format!("{g:x}")).join(":");
                let padded = s.map(|g| format!("{g:04X}")).join(":");
                let o = v6.octets();
                let mixed = format!(
                    "{}:{}",
                    s[..6]
                        .iter()
                        .map(|g| format!("{g:x}"))
                        .collect::<Vec<_>>()
                        .join(":"),
                    Ipv4Addr::new(o[12], o[13], o[14], o[15])
                );
                vec![v6.to_string(), full, padded, mixed]
            }
        }
    }

    fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
            any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
            // Few groups set, so that `::` compresses runs of zeros in many places.
            (any::<[u16; 8]>(), any::<u8>()).prop_map(|(mut g, mask)| {
                for (i, group) in g.iter_mut().enumerate() {
                    if mask & (1 << i) == 0 {
                        *group = 0;
                    }
                }
                IpAddr::V6(Ipv6Addr::from(g))
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_address_the_pattern_admits_is_one(text in strings_of(&IP_ADDRESS)) {
            prop_assert!(text.is_empty() || text.parse::<IpAddr>().is_ok(), "{text:?}");
        }

        #[test]
        fn every_address_the_standard_library_reads_matches_the_pattern(ip in any_ip()) {
            for text in spellings(ip) {
                prop_assert_eq!(text.parse::<IpAddr>().ok(), Some(ip));
                prop_assert!(IP_ADDRESS_RE.is_match(&text), "{text:?} parses but does not match");
            }
        }

        #[test]
        fn near_addresses_match_the_pattern_exactly_when_they_parse(
            text in "[0-9a-fA-F:.]{0,45}"
        ) {
            let parses = text.is_empty() || text.parse::<IpAddr>().is_ok();
            prop_assert_eq!(IP_ADDRESS_RE.is_match(&text), parses, "{:?}", text);
        }

        #[test]
        fn every_range_the_pattern_admits_is_one(text in strings_of(&IP_RANGE)) {
            let parses = text.parse::<ipnet::IpNet>().is_ok() || text.parse::<IpAddr>().is_ok();
            prop_assert!(parses, "{text:?}");
        }

        #[test]
        fn every_requirement_the_pattern_admits_is_one(text in strings_of(&VERSION_REQ)) {
            prop_assert!(parse_version_req(&text).is_ok(), "{text:?}");
        }

        #[test]
        fn every_subdivision_the_pattern_admits_has_an_assigned_country(
            text in strings_of(&SUBDIVISION)
        ) {
            let country = text[..2].to_ascii_uppercase();
            prop_assert!(country::is_assigned(&country), "{text:?}");
        }
    }

    #[test]
    fn the_country_pattern_is_the_table_of_assigned_codes() {
        let pattern = re(&COUNTRY);
        for a in b'A'..=b'Z' {
            for b in b'A'..=b'Z' {
                let upper = String::from_utf8(vec![a, b]).unwrap();
                let mixed = String::from_utf8(vec![a, b.to_ascii_lowercase()]).unwrap();
                let assigned = country::is_assigned(&upper);
                assert_eq!(pattern.is_match(&upper), assigned, "{upper}");
                assert_eq!(pattern.is_match(&mixed), assigned, "{mixed}");
                assert_eq!(
                    pattern.is_match(&upper.to_ascii_lowercase()),
                    assigned,
                    "{upper}"
                );
            }
        }
        assert!(!pattern.is_match("XK") && !pattern.is_match("UK") && pattern.is_match("gb"));
    }

    #[test]
    fn the_documented_examples_have_the_documented_forms() {
        for ok in [
            "203.0.113.0/24",
            "2001:db8::/32",
            "198.51.100.7",
            "::ffff:10.0.0.0/104",
        ] {
            assert!(is_ip_range(ok), "{ok}");
        }
        for bad in [
            "10.0.0.0/33",
            " 10.0.0.0/8",
            "10.0.0.0/08",
            "010.0.0.0/8",
            "::/129",
            "10/8",
        ] {
            assert!(!is_ip_range(bad), "{bad}");
        }
        for ok in [
            "<5.2.0",
            ">=5.0.0, <6.0.0",
            "5",
            "5.2",
            "5.2.*",
            "5.*",
            "~5.2.0",
            "^5.2.0",
            "=5.2.0",
            "<5.2.0-beta.1",
            "*",
            "5.x",
        ] {
            assert!(is_version_req(ok), "{ok}");
        }
        for bad in [
            "",
            "<<5",
            "banana",
            "5.2.0+build",
            "05.1",
            ">= 5",
            "5.2-beta",
        ] {
            assert!(!is_version_req(bad), "{bad}");
        }
    }
}
