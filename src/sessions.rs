//! SPEC §8: tell a Stytch session from a legacy one, and say what the middleware should do.
//!
//! Tokens are read, never verified (the chosen validator verifies), never logged and never
//! stored. Any malformed token is classified (`unknown`), never an error. Pure: no I/O.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use crate::rules::{Flow, LegacySessions};

/// Where the session a request carries comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSource {
    None,
    Stytch,
    Legacy,
    Foreign,
    Unknown,
}

impl SessionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionSource::None => "none",
            SessionSource::Stytch => "stytch",
            SessionSource::Legacy => "legacy",
            SessionSource::Foreign => "foreign",
            SessionSource::Unknown => "unknown",
        }
    }
}

/// What the middleware does with the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAction {
    ValidateStytch,
    ValidateLegacy,
    MigrateToStytch,
    LoginStytch,
    LoginLegacy,
}

impl SessionAction {
    pub const ALL: [SessionAction; 5] = [
        SessionAction::ValidateStytch,
        SessionAction::ValidateLegacy,
        SessionAction::MigrateToStytch,
        SessionAction::LoginStytch,
        SessionAction::LoginLegacy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionAction::ValidateStytch => "validate_stytch",
            SessionAction::ValidateLegacy => "validate_legacy",
            SessionAction::MigrateToStytch => "migrate_to_stytch",
            SessionAction::LoginStytch => "login_stytch",
            SessionAction::LoginLegacy => "login_legacy",
        }
    }
}

/// The table of SPEC §8.
pub fn action_for(flow: Flow, source: SessionSource, policy: LegacySessions) -> SessionAction {
    use SessionAction::*;
    match (flow, source) {
        (_, SessionSource::Stytch) => ValidateStytch,
        (Flow::Stytch, SessionSource::Legacy) => match policy {
            LegacySessions::Reject => LoginStytch,
            LegacySessions::Honor => ValidateLegacy,
            LegacySessions::Migrate => MigrateToStytch,
        },
        (Flow::Stytch, _) => LoginStytch,
        (Flow::Legacy, SessionSource::Legacy) => ValidateLegacy,
        (Flow::Legacy, _) => LoginLegacy,
    }
}

/// How tokens are told apart, from the `stytch` and `legacy` settings.
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    /// Issuers whose JWTs are ours: `stytch.com/<project_id>` and `stytch.issuers`.
    pub stytch_issuers: Vec<String>,
    /// Issuers of the legacy system's JWTs.
    pub legacy_issuers: Vec<String>,
    /// Whether a token that is not a JWT is a legacy session.
    pub opaque_tokens_are_legacy: bool,
}

const STYTCH_ISSUER_PREFIX: &str = "stytch.com/";

#[derive(Deserialize)]
struct Claims<'a> {
    #[serde(borrow, default)]
    iss: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    #[allow(dead_code)]
    alg: std::borrow::Cow<'a, str>,
}

impl Classifier {
    pub fn new(
        project_id: Option<&str>,
        extra_stytch: &[String],
        legacy: &[String],
        opaque: bool,
    ) -> Self {
        let mut stytch_issuers: Vec<String> = extra_stytch.to_vec();
        if let Some(p) = project_id.filter(|p| !p.is_empty()) {
            stytch_issuers.push(format!("{STYTCH_ISSUER_PREFIX}{p}"));
        }
        Classifier {
            stytch_issuers,
            legacy_issuers: legacy.to_vec(),
            opaque_tokens_are_legacy: opaque,
        }
    }

    pub fn classify(&self, token: Option<&str>) -> SessionSource {
        let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            return SessionSource::None;
        };
        let Some([header, payload, _signature]) = crate::text::split_exactly::<3>(token, b'.')
        else {
            return self.opaque();
        };
        // Looks like a JWT only when the header decodes to a JSON object with `alg`.
        let Some(header) = decode_segment(header) else {
            return self.opaque();
        };
        if serde_json::from_slice::<Header>(&header).is_err() {
            return self.opaque();
        }
        let Some(payload) = decode_segment(payload) else {
            return SessionSource::Unknown;
        };
        let Ok(claims) = serde_json::from_slice::<Claims>(&payload) else {
            return SessionSource::Unknown;
        };
        let Some(iss) = claims.iss else {
            return SessionSource::Unknown;
        };
        let iss = iss.trim_end_matches('/');
        if self
            .stytch_issuers
            .iter()
            .any(|i| i.trim_end_matches('/') == iss)
        {
            SessionSource::Stytch
        } else if self
            .legacy_issuers
            .iter()
            .any(|i| i.trim_end_matches('/') == iss)
        {
            SessionSource::Legacy
        } else if iss
            .strip_prefix("https://")
            .unwrap_or(iss)
            .starts_with(STYTCH_ISSUER_PREFIX)
        {
            SessionSource::Foreign
        } else {
            SessionSource::Unknown
        }
    }

    fn opaque(&self) -> SessionSource {
        if self.opaque_tokens_are_legacy {
            SessionSource::Legacy
        } else {
            SessionSource::Unknown
        }
    }
}

fn decode_segment(segment: &str) -> Option<Vec<u8>> {
    if segment.is_empty() || segment.len() > 8192 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(segment.trim_end_matches('=')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    fn classifier() -> Classifier {
        Classifier::new(
            Some("project-live-abc"),
            &[],
            &["https://auth.example.com".to_string()],
            true,
        )
    }

    #[test]
    fn tokens_are_classified_by_issuer() {
        let c = classifier();
        assert_eq!(c.classify(None), SessionSource::None);
        assert_eq!(c.classify(Some("")), SessionSource::None);
        assert_eq!(
            c.classify(Some(&jwt(r#"{"iss":"stytch.com/project-live-abc"}"#))),
            SessionSource::Stytch
        );
        assert_eq!(
            c.classify(Some(&jwt(r#"{"iss":"stytch.com/project-test-abc"}"#))),
            SessionSource::Foreign
        );
        assert_eq!(
            c.classify(Some(&jwt(r#"{"iss":"https://auth.example.com"}"#))),
            SessionSource::Legacy
        );
        assert_eq!(
            c.classify(Some(&jwt(r#"{"iss":"https://evil.example"}"#))),
            SessionSource::Unknown
        );
        assert_eq!(c.classify(Some("opaque-session-id")), SessionSource::Legacy);
        assert_eq!(c.classify(Some("eyJhbGciOi.%%%.x")), SessionSource::Legacy);
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        assert_eq!(
            c.classify(Some(&format!("{header}.!!!.x"))),
            SessionSource::Unknown
        );
    }

    #[test]
    fn the_action_table_of_spec_section_8() {
        use LegacySessions::*;
        use SessionAction::*;
        use SessionSource as S;
        let cases = [
            (Flow::Stytch, S::Stytch, Reject, ValidateStytch),
            (Flow::Stytch, S::Legacy, Reject, LoginStytch),
            (Flow::Stytch, S::Legacy, Honor, ValidateLegacy),
            (Flow::Stytch, S::Legacy, Migrate, MigrateToStytch),
            (Flow::Stytch, S::None, Migrate, LoginStytch),
            (Flow::Stytch, S::Unknown, Honor, LoginStytch),
            (Flow::Stytch, S::Foreign, Reject, LoginStytch),
            (Flow::Legacy, S::Stytch, Reject, ValidateStytch),
            (Flow::Legacy, S::Legacy, Reject, ValidateLegacy),
            (Flow::Legacy, S::None, Migrate, LoginLegacy),
            (Flow::Legacy, S::Unknown, Reject, LoginLegacy),
            (Flow::Legacy, S::Foreign, Honor, LoginLegacy),
        ];
        for (flow, source, policy, want) in cases {
            assert_eq!(
                action_for(flow, source, policy),
                want,
                "{flow:?} {source:?} {policy:?}"
            );
        }
    }

    mod properties {
        //! Property tests: no token makes classification panic; it is a function of the token
        //! alone (same answer twice, with surrounding spaces, or another signature); only the
        //! configured issuers classify as `stytch` or `legacy`.
        use proptest::prelude::*;

        use super::*;

        fn classifiers() -> [Classifier; 2] {
            let mut opaque_unknown = classifier();
            opaque_unknown.opaque_tokens_are_legacy = false;
            [classifier(), opaque_unknown]
        }

        /// A token shaped like a JWT: three segments, each base64url of arbitrary bytes or of
        /// a JSON object, or arbitrary text.
        fn jwt_like() -> impl Strategy<Value = String> {
            let segment = prop_oneof![
                any::<Vec<u8>>().prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
                "\\{\"(alg|iss|typ)\":(\"[a-z./:-]{0,30}\"|[0-9]+|null|\\{\\})\\}"
                    .prop_map(|j| URL_SAFE_NO_PAD.encode(j)),
                "[A-Za-z0-9_=%!-]{0,40}",
            ];
            (segment.clone(), segment.clone(), segment).prop_map(|(h, p, s)| format!("{h}.{p}.{s}"))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn any_token_is_classified_the_same_every_time(
                token in prop_oneof![any::<String>(), jwt_like()],
            ) {
                for c in classifiers() {
                    let source = c.classify(Some(&token));
                    prop_assert_eq!(c.classify(Some(&token)), source);
                    prop_assert_eq!(c.clone().classify(Some(&format!(" {token}\t"))), source);
                    if token.trim().is_empty() {
                        prop_assert_eq!(source, SessionSource::None);
                    }
                }
            }

            #[test]
            fn a_token_that_is_not_a_jwt_is_opaque(token in "[^.\\s][^.]{0,200}") {
                let [legacy, unknown] = classifiers();
                prop_assert_eq!(legacy.classify(Some(&token)), SessionSource::Legacy);
                prop_assert_eq!(unknown.classify(Some(&token)), SessionSource::Unknown);
            }

            #[test]
            fn the_signature_does_not_change_the_class(
                claims in "\\{\"iss\":\"(stytch\\.com/project-(live|test)-abc|https://auth\\.example\\.com|[a-z./:]{0,30})/?\"\\}",
                sig in "[A-Za-z0-9_-]{1,80}",
            ) {
                let c = classifier();
                let token = jwt(&claims);
                let resigned = format!("{}.{sig}", token.rsplit_once('.').unwrap().0);
                prop_assert_eq!(c.classify(Some(&resigned)), c.classify(Some(&token)));
            }

            #[test]
            fn only_the_configured_issuers_are_stytch_or_legacy(
                iss in prop_oneof![
                    "[ -~]{0,40}",
                    "(https://)?(stytch\\.com/project-live-abc|auth\\.example\\.com|stytch\\.com/)[ -~]{0,4}",
                ],
            ) {
                let c = classifier();
                let claims = serde_json::json!({ "iss": iss }).to_string();
                let source = c.classify(Some(&jwt(&claims)));
                let bare = iss.trim_end_matches('/');
                let expected = match bare {
                    "stytch.com/project-live-abc" => SessionSource::Stytch,
                    "https://auth.example.com" => SessionSource::Legacy,
                    _ if bare.strip_prefix("https://").unwrap_or(bare).starts_with("stytch.com/") => {
                        SessionSource::Foreign
                    }
                    _ => SessionSource::Unknown,
                };
                prop_assert_eq!(source, expected, "{}", iss);
            }
        }
    }
}
