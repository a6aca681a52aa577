//! The `switchyard` binary: parse arguments, load settings, start logging, run. Nothing else.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use switchyard::config::{LogFormat, Settings};
use switchyard::startup::Application;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Decides, per request, Stytch or legacy login"
)]
struct Cli {
    /// A configuration file layered over config/default.toml and config/<env>.toml.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
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
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switchyard: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings);
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
    if let Some(generated) = &app.generated_admin_token {
        let path = generated.path.display();
        println!("No admin token is configured: a generated one (all scopes) is in {path} (readable only by you).");
        println!("Try:");
        println!("  curl -s {base}/v1/rollouts -H \"Authorization: Bearer $(cat {path})\"");
        println!(
            "  curl -s -X POST {base}/v1/decide -H \"Authorization: Bearer $(cat {path})\" \\\n    -H 'Content-Type: application/json' -d '{{\"rollout\":\"stytch-login\",\"user_key\":\"alice@example.com\"}}'"
        );
    }
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e}");
            ExitCode::from(1)
        }
    }
}
