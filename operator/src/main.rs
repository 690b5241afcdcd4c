//! `shop-operator`: runs the controller (default), or `shop-operator render <file>` prints every
//! object the operator would create for a ShopPlatform manifest (used by `scripts/validate-k8s`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use shop_operator::controller::Settings;
use shop_operator::kafka::{SaslConfig, SaslMechanism, TlsConfig};
use shop_operator::lease::{LeaderElector, LeaseConfig};
use shop_operator::overrides::ConnectOverrides;
use shop_operator::provision::{KafkaTopicProvisioner, PgProvisioner};

#[derive(Debug, Parser)]
#[command(name = "shop-operator", version, about = "Kubernetes operator for ShopPlatform")]
struct Cli {
    /// Address of `/metrics` and `/healthz`.
    #[arg(long, env = "SHOP_OPERATOR_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// `text` or `json` logs.
    #[arg(long, env = contract::env::LOG_FORMAT, default_value = contract::env::LOG_FORMAT_JSON)]
    log_format: String,
    /// PEM bundle of the CA of the PostgreSQL servers (admin DSNs with `sslmode=verify-ca`,
    /// `verify-full` or `require`); without it the verifying modes use the Mozilla roots.
    #[arg(long, env = "SHOP_OPERATOR_POSTGRES_CA_FILE")]
    postgres_ca_file: Option<std::path::PathBuf>,
    /// TLS to the brokers of `kafka.mode: external` (server certificate and name verified).
    #[arg(long, env = "SHOP_OPERATOR_KAFKA_TLS")]
    kafka_tls: bool,
    /// PEM bundle of the brokers' CA (implies `--kafka-tls`); default: the Mozilla roots.
    #[arg(long, env = "SHOP_OPERATOR_KAFKA_CA_FILE")]
    kafka_ca_file: Option<std::path::PathBuf>,
    /// SASL mechanism for `kafka.mode: external`: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    #[arg(long, env = "SHOP_OPERATOR_KAFKA_SASL_MECHANISM", requires = "kafka_sasl_username")]
    kafka_sasl_mechanism: Option<String>,
    #[arg(long, env = "SHOP_OPERATOR_KAFKA_SASL_USERNAME", requires = "kafka_sasl_mechanism")]
    kafka_sasl_username: Option<String>,
    #[arg(long, env = "SHOP_OPERATOR_KAFKA_SASL_PASSWORD", hide_env_values = true, default_value = "")]
    kafka_sasl_password: String,
    /// Watch ShopPlatforms (and what they own) in this namespace only; default: every namespace.
    #[arg(long, env = "SHOP_OPERATOR_NAMESPACE")]
    namespace: Option<String>,
    /// Seconds between reconciles of a Ready platform (the drift check for what watches miss).
    #[arg(long, env = "SHOP_OPERATOR_RESYNC_INTERVAL", default_value_t = 300)]
    resync_interval: u64,
    /// Seconds between reconciles while something starts or rolls out.
    #[arg(long, env = "SHOP_OPERATOR_PROGRESS_INTERVAL", default_value_t = 15)]
    progress_interval: u64,
    /// Longest wait, in seconds, before retrying a failed reconcile (the wait doubles from 5 s).
    #[arg(long, env = "SHOP_OPERATOR_MAX_RETRY_INTERVAL", default_value_t = 300)]
    max_retry_interval: u64,
    /// Connect to another address than a database's or broker's `host:port`, for an operator
    /// running where the cluster's Service names do not resolve (development, tests):
    /// `host:port=addr:port`, comma-separated.
    #[arg(long, env = "SHOP_OPERATOR_CONNECT_OVERRIDES", default_value = "")]
    connect_overrides: String,
    /// Reconcile only while holding the Lease `--lease-name` (several replicas: one leads, the
    /// others stand by; ADR 0012).
    #[arg(long, env = "SHOP_OPERATOR_LEADER_ELECTION")]
    leader_election: bool,
    /// Namespace of the Lease (the operator's own; the chart passes the pod's namespace).
    #[arg(long, env = "SHOP_OPERATOR_LEASE_NAMESPACE", default_value = "")]
    lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, env = "SHOP_OPERATOR_LEASE_NAME", default_value = "shop-operator")]
    lease_name: String,
    /// This replica's identity in the Lease; default: `POD_NAME`, else the host name.
    #[arg(long, env = "POD_NAME", default_value = "")]
    lease_identity: String,
    /// Seconds a Lease not renewed keeps its holder.
    #[arg(long, env = "SHOP_OPERATOR_LEASE_DURATION", default_value_t = 15)]
    lease_duration: u64,
    /// Seconds the leader keeps trying to renew before it steps down (below the lease duration).
    #[arg(long, env = "SHOP_OPERATOR_LEASE_RENEW_DEADLINE", default_value_t = 10)]
    lease_renew_deadline: u64,
    /// Seconds between attempts to acquire or renew.
    #[arg(long, env = "SHOP_OPERATOR_LEASE_RETRY_PERIOD", default_value_t = 2)]
    lease_retry_period: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

impl Cli {
    fn provisioners(&self) -> anyhow::Result<(PgProvisioner, KafkaTopicProvisioner)> {
        use anyhow::Context as _;
        let read =
            |p: &std::path::PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        let overrides = ConnectOverrides::parse(&self.connect_overrides).map_err(anyhow::Error::msg)?;
        let pg = PgProvisioner {
            ca_pem: self.postgres_ca_file.as_ref().map(read).transpose()?,
            overrides: overrides.clone(),
        };
        let mut kafka = KafkaTopicProvisioner::default();
        kafka.connection.overrides = overrides;
        if self.kafka_tls || self.kafka_ca_file.is_some() {
            let ca_pem = self.kafka_ca_file.as_ref().map(read).transpose()?;
            kafka.connection.tls = Some(TlsConfig { ca_pem, server_name: None });
        }
        if let (Some(mechanism), Some(username)) = (&self.kafka_sasl_mechanism, &self.kafka_sasl_username) {
            kafka.connection.sasl = Some(SaslConfig {
                mechanism: SaslMechanism::parse(mechanism).map_err(anyhow::Error::msg)?,
                username: username.clone(),
                password: self.kafka_sasl_password.clone(),
            });
        }
        Ok((pg, kafka))
    }

    /// The leader election's settings, with `--leader-election`.
    fn lease(&self) -> anyhow::Result<Option<LeaseConfig>> {
        if !self.leader_election {
            return Ok(None);
        }
        let identity = if self.lease_identity.is_empty() {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default()
        } else {
            self.lease_identity.clone()
        };
        let secs = std::time::Duration::from_secs;
        let config = LeaseConfig {
            namespace: self.lease_namespace.clone(),
            name: self.lease_name.clone(),
            identity: format!("{identity}_{}", std::process::id()),
            lease_duration: secs(self.lease_duration),
            renew_deadline: secs(self.lease_renew_deadline),
            retry_period: secs(self.lease_retry_period),
        };
        config.validate().map_err(|e| anyhow::anyhow!("leader election: {e} (--lease-namespace, --lease-duration, --lease-renew-deadline, --lease-retry-period)"))?;
        Ok(Some(config))
    }
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
    let mut cli = Cli::parse();
    match cli.command.take().unwrap_or(Command::Run) {
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
            init_tracing(cli.log_format == contract::env::LOG_FORMAT_TEXT);
            let provisioners = match cli.provisioners() {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "invalid configuration");
                    return ExitCode::from(2);
                }
            };
            let settings = Settings {
                steady_requeue: std::time::Duration::from_secs(cli.resync_interval.max(1)),
                progress_requeue: std::time::Duration::from_secs(cli.progress_interval.max(1)),
                max_backoff: std::time::Duration::from_secs(cli.max_retry_interval.max(1)),
            };
            let lease = match cli.lease() {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "invalid configuration");
                    return ExitCode::from(2);
                }
            };
            let namespace = cli.namespace.clone().filter(|n| !n.is_empty());
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
            match rt.block_on(run(cli.metrics_addr, namespace, settings, provisioners, lease)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "operator stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Default log filter when neither `SHOP_LOG` nor `RUST_LOG` is set.
const DEFAULT_FILTER: &str = "info,hyper=warn,kube=info";

/// The global `tracing` subscriber: human-readable (`text`) or JSON lines, filtered by `SHOP_LOG`
/// (or `RUST_LOG`) directives.
fn init_tracing(text: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = std::env::var(contract::env::LOG)
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| DEFAULT_FILTER.to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let _ = if text {
        registry.with(fmt::layer().with_target(false).with_ansi(ansi)).try_init()
    } else {
        registry
            .with(fmt::layer().json().flatten_event(true).with_current_span(true).with_span_list(false))
            .try_init()
    };
}

async fn run(
    addr: SocketAddr,
    namespace: Option<String>,
    settings: Settings,
    (pg, kafka): (PgProvisioner, KafkaTopicProvisioner),
    lease: Option<LeaseConfig>,
) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, namespace = namespace.as_deref().unwrap_or("(all)"), "metrics and health listening");
    let server = tokio::spawn(shop_operator::metrics::serve(listener));
    let controller =
        shop_operator::controller::run(client.clone(), namespace, settings, Arc::new(pg), Arc::new(kafka));
    let Some(lease) = lease else {
        shop_operator::metrics::set_leader(true);
        controller.await;
        server.abort();
        return Ok(());
    };
    let mut elector = LeaderElector::new(client, lease);
    // A standby stops at SIGTERM without ever leading.
    tokio::select! {
        _ = elector.acquire() => {}
        _ = shutdown_signal() => {
            server.abort();
            return Ok(());
        }
    }
    shop_operator::metrics::set_leader(true);
    let mut controller = tokio::spawn(controller);
    let result = tokio::select! {
        // Stopped by a signal (the controller's graceful shutdown): hand the Lease over.
        _ = &mut controller => {
            elector.release().await;
            Ok(())
        }
        lost = elector.hold() => {
            // Step down at once: another replica may lead after the lease duration.
            controller.abort();
            shop_operator::metrics::set_leader(false);
            Err(anyhow::anyhow!("leadership lost ({lost}): stopping"))
        }
    };
    server.abort();
    result
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
