//! Countries: the assigned ISO 3166-1 alpha-2 codes, the continent of each, and the one
//! parser of a country code that an admin writes (a rule's `countries`, a subdivision's
//! country part).
//!
//! Pure data and lookups; it must not know where a code comes from (HTTP, GeoIP).

use super::location::Code;

/// The continent code (`AF AN AS EU NA OC SA`) MaxMind assigns to an ISO 3166-1 alpha-2
/// country code (case-insensitive); `None` for anything else.
pub fn continent_of(country: &str) -> Option<&'static str> {
    let &[a, b] = country.as_bytes() else {
        return None;
    };
    let key = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
    let key = std::str::from_utf8(&key).ok()?;
    CONTINENTS
        .binary_search_by(|&(code, _)| code.cmp(key))
        .ok()
        .map(|index| CONTINENTS[index].1)
}

/// Country → continent as in MaxMind's GeoIP2/GeoLite2 location data (itself from GeoNames):
/// every ISO 3166-1 alpha-2 code plus `XK` (Kosovo). Sorted by country code (a test checks).
#[rustfmt::skip]
pub static CONTINENTS: &[(&str, &str)] = &[
    ("AD", "EU"), ("AE", "AS"), ("AF", "AS"), ("AG", "NA"), ("AI", "NA"), ("AL", "EU"),
    ("AM", "AS"), ("AO", "AF"), ("AQ", "AN"), ("AR", "SA"), ("AS", "OC"), ("AT", "EU"),
    ("AU", "OC"), ("AW", "NA"), ("AX", "EU"), ("AZ", "AS"),
    ("BA", "EU"), ("BB", "NA"), ("BD", "AS"), ("BE", "EU"), ("BF", "AF"), ("BG", "EU"),
    ("BH", "AS"), ("BI", "AF"), ("BJ", "AF"), ("BL", "NA"), ("BM", "NA"), ("BN", "AS"),
    ("BO", "SA"), ("BQ", "NA"), ("BR", "SA"), ("BS", "NA"), ("BT", "AS"), ("BV", "AN"),
    ("BW", "AF"), ("BY", "EU"), ("BZ", "NA"),
    ("CA", "NA"), ("CC", "AS"), ("CD", "AF"), ("CF", "AF"), ("CG", "AF"), ("CH", "EU"),
    ("CI", "AF"), ("CK", "OC"), ("CL", "SA"), ("CM", "AF"), ("CN", "AS"), ("CO", "SA"),
    ("CR", "NA"), ("CU", "NA"), ("CV", "AF"), ("CW", "NA"), ("CX", "OC"), ("CY", "EU"),
    ("CZ", "EU"),
    ("DE", "EU"), ("DJ", "AF"), ("DK", "EU"), ("DM", "NA"), ("DO", "NA"), ("DZ", "AF"),
    ("EC", "SA"), ("EE", "EU"), ("EG", "AF"), ("EH", "AF"), ("ER", "AF"), ("ES", "EU"),
    ("ET", "AF"),
    ("FI", "EU"), ("FJ", "OC"), ("FK", "SA"), ("FM", "OC"), ("FO", "EU"), ("FR", "EU"),
    ("GA", "AF"), ("GB", "EU"), ("GD", "NA"), ("GE", "AS"), ("GF", "SA"), ("GG", "EU"),
    ("GH", "AF"), ("GI", "EU"), ("GL", "NA"), ("GM", "AF"), ("GN", "AF"), ("GP", "NA"),
    ("GQ", "AF"), ("GR", "EU"), ("GS", "AN"), ("GT", "NA"), ("GU", "OC"), ("GW", "AF"),
    ("GY", "SA"),
    ("HK", "AS"), ("HM", "AN"), ("HN", "NA"), ("HR", "EU"), ("HT", "NA"), ("HU", "EU"),
    ("ID", "AS"), ("IE", "EU"), ("IL", "AS"), ("IM", "EU"), ("IN", "AS"), ("IO", "AS"),
    ("IQ", "AS"), ("IR", "AS"), ("IS", "EU"), ("IT", "EU"),
    ("JE", "EU"), ("JM", "NA"), ("JO", "AS"), ("JP", "AS"),
    ("KE", "AF"), ("KG", "AS"), ("KH", "AS"), ("KI", "OC"), ("KM", "AF"), ("KN", "NA"),
    ("KP", "AS"), ("KR", "AS"), ("KW", "AS"), ("KY", "NA"), ("KZ", "AS"),
    ("LA", "AS"), ("LB", "AS"), ("LC", "NA"), ("LI", "EU"), ("LK", "AS"), ("LR", "AF"),
    ("LS", "AF"), ("LT", "EU"), ("LU", "EU"), ("LV", "EU"), ("LY", "AF"),
    ("MA", "AF"), ("MC", "EU"), ("MD", "EU"), ("ME", "EU"), ("MF", "NA"), ("MG", "AF"),
    ("MH", "OC"), ("MK", "EU"), ("ML", "AF"), ("MM", "AS"), ("MN", "AS"), ("MO", "AS"),
    ("MP", "OC"), ("MQ", "NA"), ("MR", "AF"), ("MS", "NA"), ("MT", "EU"), ("MU", "AF"),
    ("MV", "AS"), ("MW", "AF"), ("MX", "NA"), ("MY", "AS"), ("MZ", "AF"),
    ("NA", "AF"), ("NC", "OC"), ("NE", "AF"), ("NF", "OC"), ("NG", "AF"), ("NI", "NA"),
    ("NL", "EU"), ("NO", "EU"), ("NP", "AS"), ("NR", "OC"), ("NU", "OC"), ("NZ", "OC"),
    ("OM", "AS"),
    ("PA", "NA"), ("PE", "SA"), ("PF", "OC"), ("PG", "OC"), ("PH", "AS"), ("PK", "AS"),
    ("PL", "EU"), ("PM", "NA"), ("PN", "OC"), ("PR", "NA"), ("PS", "AS"), ("PT", "EU"),
    ("PW", "OC"), ("PY", "SA"),
    ("QA", "AS"),
    ("RE", "AF"), ("RO", "EU"), ("RS", "EU"), ("RU", "EU"), ("RW", "AF"),
    ("SA", "AS"), ("SB", "OC"), ("SC", "AF"), ("SD", "AF"), ("SE", "EU"), ("SG", "AS"),
    ("SH", "AF"), ("SI", "EU"), ("SJ", "EU"), ("SK", "EU"), ("SL", "AF"), ("SM", "EU"),
    ("SN", "AF"), ("SO", "AF"), ("SR", "SA"), ("SS", "AF"), ("ST", "AF"), ("SV", "NA"),
    ("SX", "NA"), ("SY", "AS"), ("SZ", "AF"),
    ("TC", "NA"), ("TD", "AF"), ("TF", "AN"), ("TG", "AF"), ("TH", "AS"), ("TJ", "AS"),
    ("TK", "OC"), ("TL", "OC"), ("TM", "AS"), ("TN", "AF"), ("TO", "OC"), ("TR", "AS"),
    ("TT", "NA"), ("TV", "OC"), ("TW", "AS"), ("TZ", "AF"),
    ("UA", "EU"), ("UG", "AF"), ("UM", "OC"), ("US", "NA"), ("UY", "SA"), ("UZ", "AS"),
    ("VA", "EU"), ("VC", "NA"), ("VE", "SA"), ("VG", "NA"), ("VI", "NA"), ("VN", "AS"),
    ("VU", "OC"),
    ("WF", "OC"), ("WS", "OC"),
    ("XK", "EU"),
    ("YE", "AS"), ("YT", "AF"),
    ("ZA", "AF"), ("ZM", "AF"), ("ZW", "AF"),
];

/// Codes that GeoIP databases use but ISO 3166-1 has not assigned (`XK`, Kosovo): located
/// requests may carry them, rules may not name them.
const NOT_ISO: [&str; 1] = ["XK"];

/// Codes people write that ISO 3166-1 does not assign, with what they meant.
const HINTS: [(&str, &str); 6] = [
    ("UK", "the United Kingdom is GB"),
    ("EL", "Greece is GR"),
    ("FX", "France is FR"),
    ("EU", "EU is a continent: use continents [\"EU\"]"),
    ("XK", "XK (Kosovo) is not an ISO 3166-1 code"),
    ("UN", "UN is not a country"),
];

/// Any two ASCII letters, upper-cased: a country as a GeoIP record or a caller states it
/// (`XK`, or a CDN's `XX`, included). Such a code that is not assigned matches no rule, since
/// rules hold only assigned ones ([`parse_country`]).
pub fn two_letter_code(text: &str) -> Option<Code> {
    if text.len() == 2 && text.bytes().all(|b| b.is_ascii_alphabetic()) {
        Code::new(text)
    } else {
        None
    }
}

/// Whether `code` (upper case) is an assigned ISO 3166-1 alpha-2 code.
pub fn is_assigned(code: &str) -> bool {
    !NOT_ISO.contains(&code) && continent_of(code).is_some()
}

/// An assigned ISO 3166-1 alpha-2 code, in any case (`gb` is `GB`), or a message that says
/// what is wrong and, for the usual mistakes, what was meant (`UK` → `GB`).
pub fn parse_country(text: &str) -> Result<Code, String> {
    let upper = text.to_ascii_uppercase();
    match Code::new(&upper) {
        Some(code) if upper.len() == 2 && is_assigned(&upper) => Ok(code),
        _ => {
            let hint = HINTS
                .iter()
                .find(|(code, _)| *code == upper)
                .map_or(String::new(), |(_, hint)| format!(" ({hint})"));
            Err(format!(
                "invalid country '{text}': expected an assigned ISO 3166-1 alpha-2 code{hint}"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_iso_3166_1_as_a_well_kept_crate_has_it() {
        let ours: Vec<&str> = CONTINENTS
            .iter()
            .map(|(code, _)| *code)
            .filter(|code| is_assigned(code))
            .collect();
        let mut theirs: Vec<&str> = celes::Country::get_countries()
            .iter()
            .map(|c| c.alpha2)
            .filter(|code| !NOT_ISO.contains(code))
            .collect();
        theirs.sort_unstable();
        assert_eq!(ours, theirs);
        assert_eq!(ours.len(), 249);
        assert!(is_assigned("SS") && is_assigned("GB") && !is_assigned("XK"));
    }

    #[test]
    fn mistakes_are_refused_with_what_was_meant() {
        assert_eq!(parse_country("gb").unwrap().as_str(), "GB");
        let uk = parse_country("UK").unwrap_err();
        assert!(uk.contains("'UK'") && uk.contains("GB"), "{uk}");
        for bad in ["XX", "XK", "G", "GBR", "G1", ""] {
            assert!(parse_country(bad).is_err(), "{bad}");
        }
    }
}
