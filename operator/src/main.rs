//! `shop-operator`: runs the controller (default), or `shop-operator render <file>` prints every
//! object the operator would create for a ShopPlatform manifest (used by `scripts/validate-k8s`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use shop_operator::provision::{KafkaTopicProvisioner, PgProvisioner};

#[derive(Debug, Parser)]
#[command(name = "shop-operator", version, about = "Kubernetes operator for ShopPlatform")]
struct Cli {
    /// Address of `/metrics` and `/healthz`.
    #[arg(long, env = "SHOP_OPERATOR_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// `text` or `json` logs.
    #[arg(long, env = "SHOP_LOG_FORMAT", default_value = "json")]
    log_format: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller (the default).
    Run,
    /// Print, as YAML, every object the operator would create for a ShopPlatform manifest.
    #[command(hide = true)]
    Render {
        /// A ShopPlatform manifest (YAML).
        file: std::path::PathBuf,
    },
    /// Print the CRD (same as the `crdgen` binary).
    #[command(hide = true)]
    Crd,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Render { file } => {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: reading {}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            match shop_operator::load_sample(&text) {
                Ok(sp) => {
                    print!("{}", shop_operator::builders::render_yaml(&sp));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", file.display());
                    ExitCode::from(2)
                }
            }
        }
        Command::Crd => {
            print!("{}", shop_operator::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Run => {
            let format = if cli.log_format == "text" {
                kit::config::LogFormat::Text
            } else {
                kit::config::LogFormat::Json
            };
            kit::telemetry::init(format);
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
            match rt.block_on(run(cli.metrics_addr)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "operator stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn run(addr: SocketAddr) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics and health listening");
    let server = tokio::spawn(async move { axum::serve(listener, shop_operator::metrics::router()).await });
    shop_operator::controller::run(
        client,
        Arc::new(PgProvisioner),
        Arc::new(KafkaTopicProvisioner::default()),
    )
    .await;
    server.abort();
    Ok(())
}
