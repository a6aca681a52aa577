//! Builds the application from settings: its own listener (port 0 works, so tests run on
//! random ports), GeoIP, store, catalog, cookie secret, tokens, and the HTTP server. Everything
//! that can fail is checked before anything is written, so a failed start leaves nothing behind.
//!
//! This is the only place that wires components together; it holds no request logic.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use crate::admin::{Admin, AdminError};
use crate::background::Stoppable;
use crate::catalog::Catalog;
use crate::config::{
    cookie_secret_problem, token_problem, Backend, Problem, Scope, Settings, TokenSettings,
};
use crate::cookies::CookieSigner;
use crate::decider::Decider;
use crate::geo::{GeoError, GeoIp};
use crate::guard::evaluator::GuardEvaluator;
use crate::guard::webhook::{Webhook, WebhookUrl};
use crate::guard::GuardViews;
use crate::http::auth::Tokens;
use crate::http::body::BodyRules;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::rules::ValidationErrors;
use crate::schedule_runner;
use crate::sessions::Classifier;
use crate::store::embedded::EmbeddedStore;
use crate::store::redis::{RedisOptions, RedisStore};
use crate::store::{RolloutStore, StoreError};
use crate::tally::{Flusher, MemoryTallies, TallyStore};

/// The name of the token generated when no configured token has the `admin` scope.
pub const GENERATED_TOKEN_NAME: &str = "local-admin";

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Geo(#[from] GeoError),
    #[error("stored rollout '{key}' is invalid ({store}): {errors}")]
    InvalidStoredRollout {
        key: String,
        /// The store it was read from (for the embedded store, the file), so it can be found.
        store: String,
        errors: ValidationErrors,
    },
    #[error("cannot create the default rollout: {0}")]
    DefaultRollout(#[from] AdminError),
    #[error("{path}: {reason}; remove the file to have a new one generated")]
    UnusableSecretFile { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    SecretFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("guards.webhook_url: {0}")]
    WebhookUrl(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where a generated secret was written, for the console.
#[derive(Debug, Clone)]
pub struct GeneratedToken {
    pub path: PathBuf,
    pub token: SecretString,
}

pub struct Application {
    port: u16,
    server: Server,
    pub state: web::Data<AppState>,
    pub generated_admin_token: Option<GeneratedToken>,
    pub store_description: String,
    /// GeoIP reloader, store follower or probe: stopped with the server.
    background: Vec<tokio::task::JoinHandle<()>>,
    /// The schedule runner: stopped with the server, between two writes.
    schedules: Stoppable,
    /// The guard evaluator: stopped with the server, between two rollouts.
    guards: Stoppable,
    /// Delivers outcome and decision counts; flushed once more when the server stops.
    flusher: Arc<Flusher>,
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The rule a secret of one kind obeys: why a value cannot be one, if it cannot.
type SecretCheck = fn(&str) -> Option<String>;

/// Reads a generated secret back from `path`: `None` when there is none yet (no file, or an
/// empty one); refused when it fails `check`, the rule a configured secret of its kind obeys.
fn read_secret_file(path: &Path, check: SecretCheck) -> Result<Option<SecretString>, StartupError> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => match check(text.trim()) {
            Some(reason) => Err(StartupError::UnusableSecretFile {
                path: path.to_path_buf(),
                reason,
            }),
            None => Ok(Some(SecretString::from(text.trim().to_string()))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StartupError::SecretFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Generates a secret and writes it to `path`, readable only by its owner.
fn write_secret_file(path: &Path) -> Result<SecretString, StartupError> {
    let err = |source| StartupError::SecretFile {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let secret = random_secret();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(err)?;
    file.write_all(secret.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    Ok(SecretString::from(secret))
}

/// Where the generated secrets live, and which of them this start needs.
struct SecretFiles {
    /// `data/cookie-secret`, when no cookie secret is configured.
    cookie: Option<PathBuf>,
    /// `data/admin-token`, when no admin token is configured (never in live).
    admin_token: Option<PathBuf>,
}

impl SecretFiles {
    fn of(settings: &Settings) -> SecretFiles {
        let data_dir = settings.store.data_dir();
        SecretFiles {
            cookie: settings
                .cookies
                .secret
                .is_none()
                .then(|| data_dir.join("cookie-secret")),
            admin_token: (!settings.has_admin_token()
                && settings.environment != crate::config::Environment::Live)
                .then(|| data_dir.join("admin-token")),
        }
    }
}

/// Binds the configured address (before anything else, so a taken port fails a start early).
fn bind(settings: &Settings) -> Result<TcpListener, StartupError> {
    TcpListener::bind(&settings.server.bind).map_err(|source| StartupError::Bind {
        addr: settings.server.bind.clone(),
        source,
    })
}

fn open_geoip(settings: &Settings) -> Result<GeoIp, StartupError> {
    Ok(match &settings.geoip.database {
        Some(path) => GeoIp::open(path)?,
        None => GeoIp::disabled(),
    })
}

/// What `check-config` checks beyond the settings themselves, as a start would find it: the
/// bind address can be bound, the GeoIP database opens, and generated secrets already on
/// disk pass the checks of configured ones. Writes nothing and keeps nothing open.
pub fn environment_problems(settings: &Settings) -> Vec<Problem> {
    let mut found = Vec::new();
    if settings.server.bind.parse::<SocketAddr>().is_ok() {
        match bind(settings) {
            Ok(_) => {}
            Err(StartupError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                found.push(Problem::error(
                    "server.bind",
                    format!(
                        "cannot listen on {}: {source} (is something, perhaps Switchyard itself, already listening there?)",
                        settings.server.bind
                    ),
                ));
            }
            Err(e) => found.push(Problem::error("server.bind", e.to_string())),
        }
    }
    if let Err(e) = open_geoip(settings) {
        found.push(Problem::error("geoip.database", e.to_string()));
    }
    let files = SecretFiles::of(settings);
    let checks: [(Option<PathBuf>, SecretCheck); 2] = [
        (files.cookie, cookie_secret_problem),
        (files.admin_token, token_problem),
    ];
    for (path, check) in checks {
        if let Some(Err(e)) = path.map(|p| read_secret_file(&p, check)) {
            found.push(Problem::error("generated secret", e.to_string()));
        }
    }
    found
}

/// Keeps `switchyard_store_up` and `switchyard_last_sync_timestamp_seconds` true for the
/// embedded store: every few seconds, checks that it can still save.
async fn probe_forever(store: Arc<EmbeddedStore>, metrics: Arc<Metrics>) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        every.tick().await;
        match store.probe().await {
            Err(e) => tracing::warn!(error = %e, "the embedded store cannot save"),
            Ok(()) => metrics.last_sync.set(chrono::Utc::now().timestamp() as f64),
        }
    }
}

impl Application {
    /// Builds the application. Everything that can fail — the listener, the GeoIP database,
    /// the store and its rollouts, generated secrets already on disk — is checked before
    /// anything is written, so a start that fails leaves no `data/` folder, secret or default
    /// rollout behind.
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        let listener = bind(&settings)?;
        let geo = Arc::new(open_geoip(&settings)?);

        let metrics = Arc::new(Metrics::new());
        let mut background = Vec::new();
        let mut embedded = None;
        let tally_retention = settings.guards.tally_retention();
        // Where every replica's outcome and decision counts add up: Redis when it is shared.
        let mut shared_tallies: Option<Arc<dyn TallyStore>> = None;
        let (store, store_description): (Arc<dyn RolloutStore>, String) =
            match settings.store.backend {
                Backend::Embedded => {
                    let store = Arc::new(
                        EmbeddedStore::open(&settings.store.path)?.with_metrics(metrics.clone()),
                    );
                    let description = format!("embedded, {}", store.path().display());
                    embedded = Some(store.clone());
                    (store, description)
                }
                Backend::Redis => {
                    let tls_ca = match &settings.store.tls_ca_file {
                        Some(path) => Some(std::fs::read(path).map_err(|source| {
                            StartupError::SecretFile {
                                path: path.clone(),
                                source,
                            }
                        })?),
                        None => None,
                    };
                    let store = RedisStore::new(
                        RedisOptions {
                            url: settings.store.url.expose_secret().to_string(),
                            cluster: settings.store.cluster,
                            prefix: settings.store.prefix.clone(),
                            path: settings.store.path.clone(),
                            timeout: Duration::from_millis(settings.store.timeout_ms.max(50)),
                            tls_ca,
                            tally_retention,
                        },
                        metrics.clone(),
                    )?;
                    let description = store.description();
                    let store = Arc::new(store);
                    shared_tallies = Some(store.clone());
                    (store, description)
                }
            };

        // One replica on the embedded store: its own counts are all there are, in memory.
        let tallies =
            shared_tallies.unwrap_or_else(|| Arc::new(MemoryTallies::new(tally_retention)));
        let catalog = Arc::new(Catalog::new(metrics.clone()));
        // Whether the store held rollouts already; `None`: it could not be asked.
        let held_rollouts = match store.load().await {
            // (`switchyard_store_up` is the store's to set: a Redis replica serving its
            // last-known copy loaded fine without reaching Redis.)
            Ok(loaded) => {
                let held = !loaded.rollouts.is_empty();
                for rollout in loaded.rollouts {
                    let key = rollout.key.clone();
                    catalog.install(rollout).map_err(|errors| {
                        StartupError::InvalidStoredRollout {
                            key,
                            store: store_description.clone(),
                            errors,
                        }
                    })?;
                }
                for (key, hashes) in &loaded.enrollments {
                    catalog.load_enrollments(key, hashes);
                }
                catalog.mark_ready();
                metrics.last_sync.set(chrono::Utc::now().timestamp() as f64);
                Some(held)
            }
            // A shared store that is down, with no last-known copy: start unready and let the
            // follower load the rules when the store is back.
            Err(e) if e.is_outage() && settings.store.backend == Backend::Redis => {
                tracing::warn!(error = %e, "store unavailable and no last-known copy: not ready until it is reachable");
                None
            }
            Err(e) => return Err(e.into()),
        };

        let files = SecretFiles::of(&settings);
        let cookie_secret = match (&settings.cookies.secret, &files.cookie) {
            (Some(secret), _) => Some(secret.clone()),
            (None, Some(path)) => read_secret_file(path, cookie_secret_problem)?,
            (None, None) => None,
        };
        let admin_token = match &files.admin_token {
            Some(path) => read_secret_file(path, token_problem)?,
            None => None,
        };

        // Nothing can fail from here on but writing: now the data folder may be created.
        let cookie_secret = match (cookie_secret, &files.cookie) {
            (Some(secret), _) => secret,
            (None, path) => {
                let path = path
                    .as_deref()
                    .expect("a cookie secret is configured or a file");
                let secret = write_secret_file(path)?;
                if held_rollouts != Some(false) {
                    tracing::warn!(
                        path = %path.display(),
                        "no cookie secret is configured and its file was missing: generated a new one, so every existing sticky and override cookie is now void"
                    );
                }
                secret
            }
        };
        let signer = CookieSigner::new(cookie_secret.expose_secret().as_bytes());
        let mut token_settings = settings.tokens.clone();
        let generated_admin_token = match &files.admin_token {
            Some(path) => {
                let token = match admin_token {
                    Some(token) => token,
                    None => write_secret_file(path)?,
                };
                token_settings.push(TokenSettings {
                    name: GENERATED_TOKEN_NAME.into(),
                    token: token.clone(),
                    scopes: Scope::ALL.to_vec(),
                });
                Some(GeneratedToken {
                    path: path.clone(),
                    token,
                })
            }
            None => None,
        };

        if let Some(embedded) = embedded {
            background.push(tokio::spawn(probe_forever(embedded, metrics.clone())));
        }
        background.extend(store.follow(catalog.clone()));
        let flusher = Arc::new(Flusher::new(
            catalog.clone(),
            tallies.clone(),
            tally_retention,
        ));
        background.push(flusher.clone().spawn());
        let admin = Arc::new(
            Admin::new(store, catalog.clone(), signer.clone())
                .with_max_guard_window(settings.guards.max_window_seconds),
        );
        if catalog.is_ready() {
            if let Some(created) = admin.ensure_default_rollout().await? {
                tracing::info!(rollout = %created.key, "created the default rollout at 0 %");
            }
        }
        if geo.is_enabled() {
            background.push(geo.clone().spawn_reloader(Duration::from_secs(
                settings.geoip.reload_interval_seconds.max(1),
            )));
        }

        let classifier = Classifier::new(
            settings.stytch.project_id.as_deref(),
            &settings.stytch.issuers,
            &settings.legacy.issuers,
            settings.legacy.opaque_tokens,
        );
        let state = web::Data::new(AppState {
            decider: Decider::new(catalog.clone(), geo, signer, classifier, metrics.clone()),
            admin,
            metrics,
            tokens: Tokens::new(&token_settings),
            catalog: catalog.clone(),
            tallies,
            guards: Arc::new(GuardViews::new()),
            metrics_require_token: settings.metrics.require_token,
            forward_auth: http::forward_auth::ForwardAuth::new(
                &settings.forward_auth,
                &settings.legacy,
            ),
        });

        if !catalog.is_ready() {
            // Started with the store away and nothing to go on: once the rules arrive, make sure
            // there is something to ramp, as a fresh installation would have.
            let state = state.clone();
            background.push(tokio::spawn(async move {
                while !state.catalog.is_ready() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                match state.admin.ensure_default_rollout().await {
                    Ok(Some(created)) => {
                        tracing::info!(rollout = %created.key, "created the default rollout at 0 %")
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot create the default rollout"),
                }
            }));
        }

        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        // actix bounds the head (408, closed); `http::body` bounds the body.
        let body_rules = BodyRules::of(&settings.server);
        let request_timeout = body_rules.timeout;
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(body_rules)
                .wrap(http::observe::ObserveRequests)
                .configure(http::configure)
        })
        .client_request_timeout(request_timeout)
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: settings.server.bind.clone(),
            source,
        })?;
        if let Some(workers) = settings.server.workers {
            server = server.workers(workers.max(1));
        }
        // Nothing can fail any more: start applying schedules.
        let schedules =
            schedule_runner::spawn(state.admin.clone(), catalog.clone(), state.metrics.clone());
        let webhook = match &settings.guards.webhook_url {
            Some(url) => Some(Webhook::new(
                WebhookUrl::parse(url).map_err(StartupError::WebhookUrl)?,
            )),
            None => None,
        };
        let guards = GuardEvaluator {
            admin: state.admin.clone(),
            catalog: catalog.clone(),
            tallies: state.tallies.clone(),
            metrics: state.metrics.clone(),
            views: state.guards.clone(),
            interval: Duration::from_secs(settings.guards.interval_seconds.max(1)),
            webhook,
        }
        .spawn();
        Ok(Application {
            port,
            server: server.run(),
            state,
            generated_admin_token,
            store_description,
            background,
            schedules,
            guards,
            flusher,
        })
    }

    /// A handle to stop the server (tests use it to restart).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the process is told to stop (SIGINT/SIGTERM: graceful shutdown), then
    /// delivers the last counts (for at most a few seconds).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.schedules.stop().await;
        self.guards.stop().await;
        for task in &self.background {
            task.abort();
        }
        let last_flush = self.flusher.flush_and_log(std::time::SystemTime::now());
        if tokio::time::timeout(Duration::from_secs(3), last_flush)
            .await
            .is_err()
        {
            tracing::warn!(
                "stopped without delivering the last second of outcome and decision counts"
            );
        }
        result
    }
}
