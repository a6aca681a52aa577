//! The `switchyard` binary: parse arguments, load settings, start logging, run. Nothing else.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use switchyard::config::{LogFormat, Problem, Settings, Severity};
use switchyard::startup::Application;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Decides, per request, Stytch or legacy login"
)]
struct Cli {
    /// A configuration file layered over config/default.toml and config/<env>.toml
    /// (before or after the subcommand).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Print the effective configuration (secrets redacted) and every problem found, including
    /// a bind address that cannot be bound and a GeoIP file that cannot be opened.
    /// Exit code: 0 no errors, 1 errors found, 2 the configuration cannot be loaded.
    CheckConfig,
    /// Exit 0 when the service at URL answers its health check (for container HEALTHCHECKs).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
}

/// Where a health check goes: `host:port` to connect to, and the path to ask for.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    authority: String,
    path: String,
}

/// Reads an `http://host[:port][/path]` URL; without a port, port 80.
fn parse_target(url: &str) -> Result<Target, String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(if url.starts_with("https://") {
            "https:// is not supported (no TLS client is built in): check the plain-HTTP address the service binds, e.g. http://127.0.0.1:8080/healthz".into()
        } else {
            format!("'{url}' is not an http:// URL")
        });
    };
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    if host.is_empty() {
        return Err(format!("'{url}' names no host"));
    }
    // A port follows the last ':' — unless that ':' is inside an IPv6 literal `[…]`.
    let has_port = host.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']'));
    let authority = if has_port {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    Ok(Target { authority, path })
}

/// A plain HTTP/1.0 GET, so the container image needs no curl.
fn healthcheck(url: &str) -> ExitCode {
    use std::io::{Read, Write};
    let Target { authority, path } = match parse_target(url) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("switchyard healthcheck: {e}");
            return ExitCode::from(2);
        }
    };
    let attempt = || -> std::io::Result<String> {
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&authority)?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut stream =
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    };
    match attempt() {
        Ok(r) if r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200") => {
            ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!("unhealthy: {}", r.lines().next().unwrap_or(""));
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(settings: &Settings) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match settings.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck { url }) = &cli.command {
        return healthcheck(url);
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switchyard: {e}");
            return ExitCode::from(2);
        }
    };
    let mut problems = settings.problems();
    if let Some(Command::CheckConfig) = &cli.command {
        problems.extend(switchyard::startup::environment_problems(&settings));
        problems.sort_by_key(|p| p.severity);
        print!("{}", settings.redacted());
        if problems.is_empty() {
            println!("\n# no problems found");
        } else {
            println!("\n# problems");
            for p in &problems {
                println!("{p}");
            }
        }
        let errors = problems.iter().any(|p| p.severity == Severity::Error);
        return ExitCode::from(u8::from(errors));
    }
    let errors: Vec<&Problem> = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    if !errors.is_empty() {
        eprintln!(
            "switchyard: refusing to start (SWITCHYARD_ENV={}): {} problem(s) in the configuration",
            settings.environment.as_str(),
            errors.len()
        );
        for p in errors {
            eprintln!("  {p}");
        }
        return ExitCode::from(1);
    }
    init_logging(&settings);
    for p in problems.iter().filter(|p| p.severity == Severity::Warning) {
        tracing::warn!(setting = %p.setting, "{}", p.message);
    }
    let bind = settings.server.bind.clone();
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("switchyard: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let host = bind.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
    let base = format!("http://{host}:{}", app.port());
    println!(
        "Switchyard {} listening on {base} (store: {})",
        env!("CARGO_PKG_VERSION"),
        app.store_description
    );
    match &app.generated_admin_token {
        None => println!(
            "Admin page: {base}/admin (sign in with a token that has the read or admin scope)"
        ),
        Some(generated) => {
            let path = generated.path.display();
            println!("No admin token is configured: a generated one (all scopes) is in {path} (readable only by you).");
            println!("Admin page: {base}/admin (sign in with the token in {path})");
            println!("Try:");
            println!("  curl -s {base}/v1/rollouts -H \"Authorization: Bearer $(cat {path})\"");
            println!(
            "  curl -s -X POST {base}/v1/decide -H \"Authorization: Bearer $(cat {path})\" \\\n    -H 'Content-Type: application/json' -d '{{\"rollout\":\"stytch-login\",\"user_key\":\"alice@example.com\"}}'"
        );
        }
    }
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(authority: &str, path: &str) -> Result<Target, String> {
        Ok(Target {
            authority: authority.into(),
            path: path.into(),
        })
    }

    #[test]
    fn a_healthcheck_url_without_a_port_goes_to_port_80() {
        let cases = [
            (
                "http://localhost/healthz",
                target("localhost:80", "/healthz"),
            ),
            ("http://localhost", target("localhost:80", "/")),
            ("http://[::1]/healthz", target("[::1]:80", "/healthz")),
            (
                "http://127.0.0.1:8080/healthz",
                target("127.0.0.1:8080", "/healthz"),
            ),
            (
                "http://[::1]:8080/healthz",
                target("[::1]:8080", "/healthz"),
            ),
            ("http://switchyard:9000", target("switchyard:9000", "/")),
        ];
        for (url, expected) in cases {
            assert_eq!(parse_target(url), expected, "{url}");
        }
    }

    #[test]
    fn a_healthcheck_url_that_is_not_plain_http_is_refused_with_a_reason() {
        let e = parse_target("https://localhost/healthz").unwrap_err();
        assert!(e.contains("https:// is not supported"), "{e}");
        assert!(parse_target("localhost:8080/healthz").is_err());
        assert!(parse_target("http:///healthz").is_err());
    }
}
