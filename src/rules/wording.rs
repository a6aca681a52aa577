//! The API's words for a member of the wrong shape: `percentage must be a number from 0 to
//! 100`, not serde's `invalid type: string "x", expected f64`.
//!
//! Used wherever a request is read into the rule model (bodies, merge patches, queries), so a
//! message names the field in the terms of the SPEC. It must not know about HTTP; it only turns
//! a deserialization error about one field into a sentence.

/// What a member must be, by its name (the last segment of its path, indices dropped).
fn expectation(name: &str) -> Option<&'static str> {
    Some(match name {
        "percentage" => "percentage must be a number from 0 to 100",
        "enabled" => "enabled must be true or false",
        "epoch" => "epoch must be a whole number, at least 1",
        "max_age_seconds" => "max_age_seconds must be a whole number of seconds from 1 to 34560000",
        "ttl_seconds" => "ttl_seconds must be a whole number of seconds from 1 to 2592000",
        "version" => "version must be a whole number, at least 1",
        "limit" => "limit must be a whole number",
        "legacy_sessions" => "legacy_sessions must be one of \"reject\", \"honor\", \"migrate\"",
        "flow" => "flow must be \"stytch\" or \"legacy\"",
        "outcome" => "outcome must be \"success\" or \"failure\"",
        "rules" => "rules must be a list of rules",
        "sticky" => "sticky must be an object (enabled, cookie_name, max_age_seconds)",
        "when" => "when must be an object of conditions",
        "cookies" => "cookies must be an object of cookie names to values",
        "schedule" => "schedule must be an object (state, steps)",
        "steps" => "steps must be a list of steps such as {\"at\": \"2026-12-01T09:00:00Z\", \"percentage\": 5}",
        "at" => "at must be an RFC 3339 date and time such as 2026-12-01T09:00:00Z",
        "state" => "state must be \"active\" or \"paused\" (\"done\" is set by the service)",
        "guard" => "guard must be an object (enabled, window_seconds, min_attempts, max_failure_rate_increase, confidence, action)",
        "window_seconds" => "window_seconds must be a whole number of seconds from 10 to 604800",
        "min_attempts" => "min_attempts must be a whole number, at least 1",
        "max_failure_rate_increase" => {
            "max_failure_rate_increase must be a number of percentage points, more than 0 and at most 100"
        }
        "confidence" => "confidence must be a number from 0.8 to 0.999",
        "action" => "action must be \"kill\" or \"pause\"",
        "ip_ranges" | "countries" | "continents" | "subdivisions" | "platforms" | "user_keys" => {
            "must be a list of strings"
        }
        "key" | "description" | "salt" | "cookie_name" | "id" | "app_version" | "rollout"
        | "user_key" | "device_id" | "ip" | "country" | "platform" | "session_token" | "cursor" => {
            "must be a string"
        }
        _ => return None,
    })
}

/// The name of the member at `path` (`rules[0].then.percentage` → `percentage`).
fn member_name(path: &str) -> &str {
    let last = path.rsplit('.').next().unwrap_or(path);
    last.split('[').next().unwrap_or(last)
}

/// serde's names for what it expected, in the API's words.
fn plain(expected: &str) -> String {
    let expected = expected.trim();
    let words = match expected {
        "f64" | "f32" => "a number",
        "u64" | "u32" | "u16" | "u8" | "usize" | "i64" | "i32" => "a whole number",
        "a boolean" => "true or false",
        "a sequence" => "a list",
        "a map" => "an object",
        "a string" | "a borrowed string" => "a string",
        other if other.starts_with("struct ") => "an object",
        other => other,
    };
    words.replace('`', "'")
}

/// The field a deserialization error at `path` is about: serde reports a missing member at
/// its parent (`.` for the whole document), so the member's own name is added; `whole` names
/// the whole document (`body`, `query`).
pub fn field_of(path: &str, error: &impl std::fmt::Display, whole: &str) -> String {
    let message = error.to_string();
    match message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        Some(name) if path == "." => name.to_string(),
        Some(name) => format!("{path}.{name}"),
        None if path == "." => whole.to_string(),
        None => path.to_string(),
    }
}

/// The sentence for `error`, a deserialization error about the member at `path` (`body` for
/// the whole document).
pub fn explain(path: &str, error: &impl std::fmt::Display) -> String {
    let raw = error.to_string();
    // serde_json appends " at line 1 column 42"; the field path says more.
    let raw = match raw.rfind(" at line ") {
        Some(i) => &raw[..i],
        None => &raw[..],
    };
    if let Some(rest) = raw.strip_prefix("unknown field ") {
        return format!("unknown member {}", rest.replace('`', "'"));
    }
    if raw == super::model::SERVER_KEPT_NULL {
        return raw.to_string();
    }
    if raw.starts_with("missing field ") {
        return "required".to_string();
    }
    if let Some(expected) = expectation(member_name(path)) {
        return expected.to_string();
    }
    if let Some(rest) = raw.strip_prefix("unknown variant ") {
        return format!("unknown value {}", rest.replace('`', "'"));
    }
    match raw.rsplit_once(", expected ") {
        Some((_, expected))
            if raw.starts_with("invalid type") || raw.starts_with("invalid value") =>
        {
            format!("must be {}", plain(expected))
        }
        _ => raw.replace('`', "'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_error<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str) -> String {
        serde_json::from_str::<T>(json).unwrap_err().to_string()
    }

    #[test]
    fn shapes_are_said_in_the_apis_words() {
        let e = serde_error::<f64>("\"x\"");
        assert!(e.contains("f64"), "{e}");
        assert_eq!(
            explain("percentage", &e),
            "percentage must be a number from 0 to 100"
        );
        assert_eq!(
            explain("rules[2].then.percentage", &e),
            "percentage must be a number from 0 to 100"
        );
        assert_eq!(explain("something", &e), "must be a number");
        let e = serde_error::<bool>("1");
        assert_eq!(explain("enabled", &e), "enabled must be true or false");
        assert_eq!(explain("other", &e), "must be true or false");
        let e = serde_error::<Vec<String>>("1");
        assert_eq!(
            explain("rules[0].when.countries", &e),
            "must be a list of strings"
        );
    }

    #[test]
    fn unknown_and_missing_members_are_named_plainly() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            a: u8,
        }
        assert_eq!(
            explain("body", &serde_error::<S>(r#"{"a":1,"b":2}"#)),
            "unknown member 'b', expected 'a'"
        );
        assert_eq!(explain("a", &serde_error::<S>("{}")), "required");
    }
}
