//! Typed settings, layered per SPEC §7: built-in defaults, `config/default.toml`,
//! `config/<env>.toml`, the file of `--config`/`SWITCHYARD_CONFIG`, then `SWITCHYARD__SECTION__KEY`
//! variables; a `.env-<env>` file in the working directory is read into the environment first.
//!
//! This module only reads and checks settings; it must not open sockets, files other than the
//! configuration, or stores. Secrets are `SecretString`s: no `Debug` or log line shows them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// `SWITCHYARD_ENV`: which deployment this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Test,
    Live,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Test => "test",
            Environment::Live => "live",
        }
    }

    pub fn parse(text: &str) -> Result<Environment, ConfigError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "test" => Ok(Environment::Test),
            "live" => Ok(Environment::Live),
            other => Err(ConfigError::Invalid(format!(
                "SWITCHYARD_ENV must be 'test' or 'live', not '{other}'"
            ))),
        }
    }
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Decide,
    Enroll,
    Report,
    Read,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Decide,
        Scope::Enroll,
        Scope::Report,
        Scope::Read,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Decide => "decide",
            Scope::Enroll => "enroll",
            Scope::Report => "report",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub store: StoreSettings,
    #[serde(default)]
    pub geoip: GeoipSettings,
    #[serde(default)]
    pub cookies: CookieSettings,
    #[serde(default)]
    pub tokens: Vec<TokenSettings>,
    #[serde(default)]
    pub metrics: MetricsSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub guards: GuardSettings,
    #[serde(default)]
    pub stytch: StytchSettings,
    #[serde(default)]
    pub legacy: LegacySettings,
    #[serde(default)]
    pub forward_auth: ForwardAuthSettings,
    /// Set from `SWITCHYARD_ENV`, not from files.
    #[serde(skip)]
    pub environment: Environment,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub bind: String,
    pub max_body_bytes: usize,
    /// HTTP worker threads; unset: one per core.
    pub workers: Option<usize>,
    /// The time a client has to send a whole request, head and body (else 408).
    pub request_timeout_seconds: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: "127.0.0.1:8080".into(),
            max_body_bytes: 65536,
            workers: None,
            request_timeout_seconds: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Embedded,
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    pub backend: Backend,
    pub path: PathBuf,
    pub url: SecretString,
    pub prefix: String,
    /// redis: `url` names a node of a Redis Cluster (or a comma-separated list of nodes).
    pub cluster: bool,
    /// redis: connect and command timeout.
    pub timeout_ms: u64,
    /// redis, with `rediss://`: a PEM file of the CA that signed the server's certificate
    /// (unset: the system's trusted roots).
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            backend: Backend::Embedded,
            path: PathBuf::from("data/switchyard.redb"),
            url: SecretString::from("redis://127.0.0.1:6379"),
            prefix: "switchyard".into(),
            cluster: false,
            timeout_ms: 1000,
            tls_ca_file: None,
        }
    }
}

impl StoreSettings {
    /// The folder that holds the store file and the generated secrets.
    pub fn data_dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoipSettings {
    /// A MaxMind-format `.mmdb`; unset: geo conditions never hold.
    pub database: Option<PathBuf>,
    /// How often the file is checked for replacement.
    pub reload_interval_seconds: u64,
}

impl Default for GeoipSettings {
    fn default() -> Self {
        GeoipSettings {
            database: None,
            reload_interval_seconds: 5,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CookieSettings {
    /// HMAC key; unset outside `live`: generated once and kept in the data folder.
    pub secret: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    pub name: String,
    pub token: SecretString,
    pub scopes: Vec<Scope>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Require a token with the `read` scope on `/metrics`.
    pub require_token: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `switchyard=debug`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// The guards of SPEC §9.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardSettings {
    /// The longest guard window: login outcome and decision counts are kept this long (and a
    /// minute more), so a guard can look back this far — and never less than the hour the
    /// admin page charts (`GET /v1/rollouts/{key}/stats`).
    pub max_window_seconds: u64,
    /// How often every guard judges its window (SPEC §9), in seconds (1 to 3600).
    pub interval_seconds: u64,
    /// Where a trip is POSTed as JSON (a Slack incoming webhook shows its `text`); `None`:
    /// nowhere. An `http://` or `https://` URL.
    pub webhook_url: Option<String>,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            max_window_seconds: 3600,
            interval_seconds: 10,
            webhook_url: None,
        }
    }
}

impl GuardSettings {
    /// How long the counts guards and the admin page's charts read are kept.
    pub fn tally_retention(&self) -> crate::tally::Retention {
        crate::tally::Retention::for_windows_of(std::time::Duration::from_secs(
            self.max_window_seconds.max(crate::tally::STATS_SECONDS),
        ))
    }
}

/// The Stytch project whose sessions count as ours (SPEC §8).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StytchSettings {
    pub project_id: Option<String>,
    /// Extra JWT issuers (custom domains).
    pub issuers: Vec<String>,
    pub public_token: Option<SecretString>,
    pub secret: Option<SecretString>,
}

/// How legacy sessions look (SPEC §8).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LegacySettings {
    pub issuers: Vec<String>,
    /// Whether a token that is not a JWT is a legacy session.
    pub opaque_tokens: bool,
    /// Forward-auth (SPEC §11): the name of the legacy session cookie, whose value is the
    /// request's session token when no Stytch session cookie is sent; empty: none.
    pub session_cookie: String,
}

impl Default for LegacySettings {
    fn default() -> Self {
        LegacySettings {
            issuers: Vec::new(),
            opaque_tokens: true,
            session_cookie: String::new(),
        }
    }
}

/// Forward-auth (SPEC §11): where a proxy's forwarded request says who the client is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthSettings {
    /// The peers whose `X-Forwarded-For`, `X-Real-IP` and country header are believed: CIDRs
    /// or single addresses.
    pub trusted_proxies: Vec<ProxyRange>,
    /// A header with the client's country set by a trusted proxy (e.g. `CF-IPCountry`); empty:
    /// GeoIP only.
    pub country_header: OptionalHeaderName,
    /// A header with the user key (e.g. `X-User-Key`); empty: none.
    pub user_key_header: OptionalHeaderName,
    /// Whether the sticky cookie is set with `Secure` (served over HTTPS only).
    pub secure_cookies: bool,
}

impl Default for ForwardAuthSettings {
    fn default() -> Self {
        ForwardAuthSettings {
            trusted_proxies: ["127.0.0.0/8", "::1/128"]
                .into_iter()
                .map(|r| ProxyRange::parse(r).expect("the default ranges are valid"))
                .collect(),
            country_header: OptionalHeaderName::default(),
            user_key_header: OptionalHeaderName::default(),
            secure_cookies: true,
        }
    }
}

/// One element of `forward_auth.trusted_proxies`: an IP address or CIDR range, read as a
/// rule's `ip_ranges` element is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyRange(pub ipnet::IpNet);

impl ProxyRange {
    pub fn parse(text: &str) -> Result<ProxyRange, String> {
        crate::rules::compile::parse_network(text)
            .map(ProxyRange)
            .map_err(|_| format!("'{text}' is not an IP address or CIDR range"))
    }
}

impl std::fmt::Display for ProxyRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for ProxyRange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ProxyRange::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A header name, or none (the empty string).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionalHeaderName(pub Option<actix_web::http::header::HeaderName>);

impl OptionalHeaderName {
    pub fn parse(text: &str) -> Result<OptionalHeaderName, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(OptionalHeaderName(None));
        }
        actix_web::http::header::HeaderName::from_bytes(text.as_bytes())
            .map(|name| OptionalHeaderName(Some(name)))
            .map_err(|_| format!("'{text}' is not a header name"))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref().map_or("", |n| n.as_str())
    }
}

impl<'de> Deserialize<'de> for OptionalHeaderName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        OptionalHeaderName::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// How bad a problem is: errors stop startup, warnings are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem with one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub setting: String,
    pub message: String,
}

impl Problem {
    pub fn error(setting: &str, message: String) -> Problem {
        Problem {
            severity: Severity::Error,
            setting: setting.to_string(),
            message,
        }
    }

    pub fn warning(setting: &str, message: String) -> Problem {
        Problem {
            severity: Severity::Warning,
            setting: setting.to_string(),
            message,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.setting, self.message)
    }
}

/// The longest `guards.max_window_seconds`: a week of 10-second buckets per rollout.
const MAX_GUARD_WINDOW_SECONDS: u64 = 7 * 24 * 3600;

/// Values from our own documentation and the usual placeholders: never a real secret.
const PLACEHOLDERS: [&str; 8] = [
    "changeme",
    "change-me",
    "secret",
    "password",
    "at least 32 random bytes",
    "the same secret on every replica, at least 32 bytes",
    "a long random string",
    "another long random string",
];

fn is_placeholder(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    PLACEHOLDERS.contains(&v.as_str())
        || v.chars().all(|c| c == v.chars().next().unwrap_or('x'))
        || v.contains("changeme")
        || v.contains("change-me")
}

/// Why `token` cannot be an API token (configured or generated), if it cannot.
pub fn token_problem(token: &str) -> Option<String> {
    if token.len() < 16 {
        Some("must be at least 16 characters".into())
    } else if is_placeholder(token) {
        Some("a placeholder from the documentation".into())
    } else {
        None
    }
}

/// Why `secret` cannot be the cookie key (configured or generated), if it cannot.
pub fn cookie_secret_problem(secret: &str) -> Option<String> {
    if secret.len() < 32 {
        Some("must be at least 32 bytes".into())
    } else if is_placeholder(secret) {
        Some(
            "a known default (from the documentation); generate one, e.g. `openssl rand -hex 32`"
                .into(),
        )
    } else {
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("cannot read {path}: {message}")]
    EnvFile { path: PathBuf, message: String },
    #[error("configuration: {0}")]
    Invalid(String),
    #[error(
        "configuration: {variable} is {reason}; it takes a JSON array, e.g. {variable}='{example}'"
    )]
    ListVariable {
        variable: &'static str,
        reason: String,
        example: &'static str,
    },
}

/// The settings that are lists, and the variable that sets each one as a JSON array (SPEC §7
/// names `SWITCHYARD__SECTION__KEY` variables; a list has no other sensible text form).
const LIST_VARIABLES: [(&str, &[&str], &str); 4] = [
    (
        "SWITCHYARD__TOKENS",
        &["tokens"],
        r#"[{"name":"middleware","token":"…","scopes":["decide"]}]"#,
    ),
    (
        "SWITCHYARD__STYTCH__ISSUERS",
        &["stytch", "issuers"],
        r#"["https://login.example.com"]"#,
    ),
    (
        "SWITCHYARD__LEGACY__ISSUERS",
        &["legacy", "issuers"],
        r#"["https://legacy.example.com"]"#,
    ),
    (
        "SWITCHYARD__FORWARD_AUTH__TRUSTED_PROXIES",
        &["forward_auth", "trusted_proxies"],
        r#"["10.0.0.0/8", "127.0.0.1"]"#,
    ),
];

/// The entry of [`LIST_VARIABLES`] for a variable name (any case, as the `config` crate reads
/// variable names).
fn list_variable(
    name: &str,
) -> Option<&'static (&'static str, &'static [&'static str], &'static str)> {
    LIST_VARIABLES
        .iter()
        .find(|(variable, _, _)| variable.eq_ignore_ascii_case(name))
}

/// The list variables among `variables`, parsed as JSON arrays, as one nested table.
fn list_overrides(variables: &[(String, String)]) -> Result<serde_json::Value, ConfigError> {
    let mut root = serde_json::Map::new();
    for (name, text) in variables {
        let Some((variable, path, example)) = list_variable(name) else {
            continue;
        };
        let invalid = |reason: String| ConfigError::ListVariable {
            variable,
            reason,
            example,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not JSON ({e})")))?;
        if !value.is_array() {
            return Err(invalid("not a JSON array".into()));
        }
        let (last, sections) = path.split_last().expect("a setting has a name");
        let mut table = &mut root;
        for section in sections {
            table = table
                .entry(section.to_string())
                .or_insert_with(|| serde_json::json!({}))
                .as_object_mut()
                .expect("sections are tables");
        }
        table.insert(last.to_string(), value);
    }
    Ok(serde_json::Value::Object(root))
}

impl Settings {
    /// Loads the layered configuration from the process environment and working directory.
    pub fn load(explicit_file: Option<&Path>) -> Result<Settings, ConfigError> {
        let environment = Environment::parse(&std::env::var("SWITCHYARD_ENV").unwrap_or_default())?;
        let env_file = PathBuf::from(format!(".env-{}", environment.as_str()));
        if env_file.exists() {
            dotenvy::from_path(&env_file).map_err(|e| ConfigError::EnvFile {
                path: env_file.clone(),
                message: e.to_string(),
            })?;
        }
        let explicit = explicit_file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("SWITCHYARD_CONFIG").map(PathBuf::from));
        if let Some(file) = &explicit {
            if !file.exists() {
                return Err(ConfigError::MissingFile(file.clone()));
            }
        }
        let mut builder = config::Config::builder()
            .add_source(config::File::with_name("config/default").required(false))
            .add_source(
                config::File::with_name(&format!("config/{}", environment.as_str()))
                    .required(false),
            );
        if let Some(file) = &explicit {
            builder = builder.add_source(config::File::from(file.as_path()).required(true));
        }
        // List settings come from their variables as JSON; the other variables are read as
        // text by the `config` crate.
        let (lists, variables): (Vec<_>, Vec<_>) = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .partition(|(k, _)| list_variable(k).is_some());
        builder = builder
            .add_source(
                config::Environment::with_prefix("SWITCHYARD")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(variables.into_iter().collect())),
            )
            .add_source(config::Config::try_from(&list_overrides(&lists)?)?);
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.environment = environment;
        Ok(settings)
    }

    /// Every problem with these settings, errors first. Errors stop startup in any
    /// environment; the `live` checks of SPEC §7 are errors only when `SWITCHYARD_ENV=live`.
    pub fn problems(&self) -> Vec<Problem> {
        let mut found = Vec::new();
        let mut error =
            |setting: &str, message: String| found.push(Problem::error(setting, message));
        if let Err(e) = self.server.bind.parse::<SocketAddr>() {
            error(
                "server.bind",
                format!("'{}' is not an address: {e}", self.server.bind),
            );
        }
        if self.server.max_body_bytes < 256 {
            error("server.max_body_bytes", "must be at least 256".into());
        }
        if self.server.request_timeout_seconds == 0 {
            error(
                "server.request_timeout_seconds",
                "must be at least 1".into(),
            );
        }
        if !(10..=MAX_GUARD_WINDOW_SECONDS).contains(&self.guards.max_window_seconds) {
            error(
                "guards.max_window_seconds",
                format!(
                    "must be from 10 (one count bucket) to {MAX_GUARD_WINDOW_SECONDS} (a week), not {}",
                    self.guards.max_window_seconds
                ),
            );
        }
        if !(1..=3600).contains(&self.guards.interval_seconds) {
            error(
                "guards.interval_seconds",
                format!(
                    "must be from 1 to 3600 seconds, not {}",
                    self.guards.interval_seconds
                ),
            );
        }
        if let Some(url) = &self.guards.webhook_url {
            if let Err(problem) = crate::guard::webhook::WebhookUrl::parse(url) {
                error("guards.webhook_url", problem);
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let at = format!("tokens[{i}]");
            if t.name.trim().is_empty() {
                error(&format!("{at}.name"), "empty".into());
            } else if !names.insert(t.name.as_str()) {
                error(&format!("{at}.name"), format!("'{}' is used twice", t.name));
            }
            if let Some(problem) = token_problem(t.token.expose_secret()) {
                error(&format!("{at}.token"), format!("('{}') {problem}", t.name));
            }
            if t.scopes.is_empty() {
                error(&format!("{at}.scopes"), format!("('{}') empty", t.name));
            }
        }
        if let Some(problem) = self
            .cookies
            .secret
            .as_ref()
            .and_then(|s| cookie_secret_problem(s.expose_secret()))
        {
            error("cookies.secret", problem);
        }
        let session_cookie = self.legacy.session_cookie.trim();
        if !session_cookie.is_empty()
            && !crate::rules::compile::is_valid_cookie_name(session_cookie)
        {
            error(
                "legacy.session_cookie",
                format!("'{session_cookie}' is not a cookie name"),
            );
        }
        let trusts_everyone = self
            .forward_auth
            .trusted_proxies
            .iter()
            .any(|r| r.0.prefix_len() == 0);
        if self.environment == Environment::Live {
            if self.cookies.secret.is_none() {
                error(
                    "cookies.secret",
                    "missing: in live every replica needs the same configured secret (at least 32 bytes)".into(),
                );
            }
            if !self.has_admin_token() {
                error(
                    "tokens",
                    "no token has the admin scope: in live no admin token is generated".into(),
                );
            }
            let test_values = [
                (
                    "stytch.project_id",
                    self.stytch.project_id.clone(),
                    "project-test-",
                ),
                (
                    "stytch.public_token",
                    self.stytch
                        .public_token
                        .as_ref()
                        .map(|s| s.expose_secret().to_string()),
                    "public-token-test-",
                ),
                (
                    "stytch.secret",
                    self.stytch
                        .secret
                        .as_ref()
                        .map(|s| s.expose_secret().to_string()),
                    "secret-test-",
                ),
            ];
            for (setting, value, prefix) in test_values {
                if value.is_some_and(|v| v.trim().starts_with(prefix)) {
                    error(
                        setting,
                        format!(
                            "a Stytch test-environment value ('{prefix}…') but SWITCHYARD_ENV=live"
                        ),
                    );
                }
            }
            for (i, issuer) in self.stytch.issuers.iter().enumerate() {
                if issuer.contains("project-test-") {
                    error(
                        &format!("stytch.issuers[{i}]"),
                        "a Stytch test project but SWITCHYARD_ENV=live".into(),
                    );
                }
            }
        } else if self
            .stytch
            .project_id
            .as_deref()
            .is_some_and(|p| p.starts_with("project-live-"))
        {
            found.push(Problem::warning(
                "stytch.project_id",
                "a live project but SWITCHYARD_ENV is test".into(),
            ));
        }
        if trusts_everyone {
            found.push(Problem::warning(
                "forward_auth.trusted_proxies",
                "trusts every address: any client can name its own address and country in \
                 X-Forwarded-For"
                    .into(),
            ));
        }
        found.sort_by_key(|p| p.severity);
        found
    }

    /// The settings as a reader may see them: every secret redacted.
    pub fn redacted(&self) -> String {
        use std::fmt::Write;
        let secret = |s: &Option<SecretString>| match s {
            Some(s) => format!("\"[REDACTED, {} bytes]\"", s.expose_secret().len()),
            None => "(unset)".to_string(),
        };
        let mut out = String::new();
        let _ = writeln!(out, "# SWITCHYARD_ENV = {}", self.environment.as_str());
        let _ = writeln!(
            out,
            "[server]\nbind = {:?}\nmax_body_bytes = {}\nworkers = {}\nrequest_timeout_seconds = {}",
            self.server.bind,
            self.server.max_body_bytes,
            self.server
                .workers
                .map_or("(one per core)".into(), |w| w.to_string()),
            self.server.request_timeout_seconds
        );
        let _ = writeln!(
            out,
            "\n[store]\nbackend = {:?}\npath = {:?}\nurl = {:?}\nprefix = {:?}\ncluster = {}\ntimeout_ms = {}\ntls_ca_file = {}",
            match self.store.backend { Backend::Embedded => "embedded", Backend::Redis => "redis" },
            self.store.path.display().to_string(),
            crate::store::redis::redact_url(self.store.url.expose_secret()),
            self.store.prefix,
            self.store.cluster,
            self.store.timeout_ms,
            self.store.tls_ca_file.as_ref().map_or("(unset)".into(), |p| format!("{:?}", p.display().to_string())),
        );
        let _ = writeln!(
            out,
            "\n[geoip]\ndatabase = {}\nreload_interval_seconds = {}",
            self.geoip
                .database
                .as_ref()
                .map_or("(unset)".into(), |p| format!(
                    "{:?}",
                    p.display().to_string()
                )),
            self.geoip.reload_interval_seconds
        );
        let _ = writeln!(
            out,
            "\n[cookies]\nsecret = {}",
            secret(&self.cookies.secret)
        );
        let _ = writeln!(
            out,
            "\n[metrics]\nrequire_token = {}",
            self.metrics.require_token
        );
        let _ = writeln!(
            out,
            "\n[guards]\nmax_window_seconds = {}\ninterval_seconds = {}\nwebhook_url = {}",
            self.guards.max_window_seconds,
            self.guards.interval_seconds,
            // A webhook URL often holds a secret (Slack's does): show only where it goes.
            self.guards
                .webhook_url
                .as_deref()
                .map_or(
                    "(unset)".into(),
                    |url| match crate::guard::webhook::WebhookUrl::parse(url) {
                        Ok(parsed) => format!("{:?} (path hidden)", parsed.origin()),
                        Err(_) => "(invalid)".into(),
                    }
                )
        );
        let _ = writeln!(
            out,
            "\n[log]\nformat = {:?}\nlevel = {:?}",
            match self.log.format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            },
            self.log.level
        );
        let _ = writeln!(
            out,
            "\n[stytch]\nproject_id = {}\nissuers = {:?}\npublic_token = {}\nsecret = {}",
            self.stytch
                .project_id
                .as_ref()
                .map_or("(unset)".into(), |p| format!("{p:?}")),
            self.stytch.issuers,
            secret(&self.stytch.public_token),
            secret(&self.stytch.secret),
        );
        let _ = writeln!(
            out,
            "\n[legacy]\nissuers = {:?}\nopaque_tokens = {}\nsession_cookie = {:?}",
            self.legacy.issuers, self.legacy.opaque_tokens, self.legacy.session_cookie
        );
        let proxies: Vec<String> = self
            .forward_auth
            .trusted_proxies
            .iter()
            .map(ProxyRange::to_string)
            .collect();
        let _ = writeln!(
            out,
            "\n[forward_auth]\ntrusted_proxies = {:?}\ncountry_header = {:?}\nuser_key_header = {:?}\nsecure_cookies = {}",
            proxies,
            self.forward_auth.country_header.as_str(),
            self.forward_auth.user_key_header.as_str(),
            self.forward_auth.secure_cookies
        );
        for t in &self.tokens {
            let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
            let _ = writeln!(
                out,
                "\n[[tokens]]\nname = {:?}\ntoken = \"[REDACTED, {} bytes]\"\nscopes = {:?}",
                t.name,
                t.token.expose_secret().len(),
                scopes
            );
        }
        out
    }

    pub fn has_admin_token(&self) -> bool {
        self.tokens.iter().any(|t| t.scopes.contains(&Scope::Admin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn list_variables_are_json_arrays_placed_under_their_setting() {
        let found = list_overrides(&vars(&[
            ("SWITCHYARD__LEGACY__ISSUERS", r#"["https://a"]"#),
            (
                "switchyard__stytch__issuers",
                r#"["https://b", "https://c"]"#,
            ),
            (
                "SWITCHYARD__TOKENS",
                r#"[{"name":"m","token":"t","scopes":["decide"]}]"#,
            ),
            ("SWITCHYARD__SERVER__BIND", "[not a list variable"),
        ]))
        .unwrap();
        assert_eq!(
            found,
            serde_json::json!({
                "legacy": {"issuers": ["https://a"]},
                "stytch": {"issuers": ["https://b", "https://c"]},
                "tokens": [{"name": "m", "token": "t", "scopes": ["decide"]}],
            })
        );
    }

    #[test]
    fn a_list_variable_that_is_not_a_json_array_is_refused_by_name_without_its_value() {
        for text in ["https://a", r#"{"name":"m"}"#, r#"[{"token":"sekrit-value"#] {
            let e = list_overrides(&vars(&[("SWITCHYARD__TOKENS", text)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains("SWITCHYARD__TOKENS is not"), "{e}");
            assert!(e.contains("JSON array"), "{e}");
            assert!(!e.contains("sekrit"), "the value is never shown: {e}");
        }
    }

    #[test]
    fn a_request_has_ten_seconds_by_default_and_zero_is_refused() {
        let mut settings = Settings::default();
        assert_eq!(settings.server.request_timeout_seconds, 10);
        assert!(settings.problems().is_empty(), "{:?}", settings.problems());
        settings.server.request_timeout_seconds = 0;
        assert!(settings
            .problems()
            .iter()
            .any(|p| p.setting == "server.request_timeout_seconds"));
    }

    #[test]
    fn guard_counts_are_kept_an_hour_and_a_minute_by_default_and_the_window_limit_is_checked() {
        let mut settings = Settings::default();
        assert_eq!(settings.guards.max_window_seconds, 3600);
        assert_eq!(
            settings.guards.tally_retention().duration(),
            std::time::Duration::from_secs(3660)
        );
        for wrong in [0, 9, 7 * 24 * 3600 + 1] {
            settings.guards.max_window_seconds = wrong;
            let problems = settings.problems();
            let problem = problems
                .iter()
                .find(|p| p.setting == "guards.max_window_seconds")
                .unwrap_or_else(|| panic!("{wrong} accepted"));
            assert!(problem.message.contains(&wrong.to_string()), "{problem}");
        }
        for right in [10, 600, 7 * 24 * 3600] {
            settings.guards.max_window_seconds = right;
            assert!(
                settings.problems().is_empty(),
                "{right}: {:?}",
                settings.problems()
            );
        }
    }

    #[test]
    fn guards_look_every_10_s_by_default_and_a_wrong_interval_or_webhook_url_is_named() {
        let mut settings = Settings::default();
        assert_eq!(settings.guards.interval_seconds, 10);
        assert_eq!(settings.guards.webhook_url, None);
        let named = |settings: &Settings, setting: &str| {
            settings
                .problems()
                .into_iter()
                .find(|p| p.setting == setting)
                .map(|p| p.message)
        };
        for wrong in [0, 3601] {
            settings.guards.interval_seconds = wrong;
            let message = named(&settings, "guards.interval_seconds").expect("refused");
            assert!(message.contains(&wrong.to_string()), "{message}");
        }
        settings.guards.interval_seconds = 1;
        for wrong in ["hooks.slack.com/services/x", "ftp://example.com/hook"] {
            settings.guards.webhook_url = Some(wrong.into());
            let message = named(&settings, "guards.webhook_url").expect("refused");
            assert!(message.contains(wrong), "{message}");
        }
        settings.guards.webhook_url = Some("https://hooks.slack.com/services/T0/B0/secret".into());
        assert!(settings.problems().is_empty(), "{:?}", settings.problems());
        // The effective configuration shows where the webhook goes, never its secret path.
        let shown = settings.redacted();
        assert!(shown.contains("https://hooks.slack.com:443"), "{shown}");
        assert!(!shown.contains("T0/B0"), "{shown}");
    }
}
