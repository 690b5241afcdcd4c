//! The command line: `shop up`, `shop serve <service|all>`, `shop migrate`, `shop seed`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kit::contract::ServiceName;

use crate::compose;
use crate::settings::{DbScope, Settings};

const ABOUT: &str = "ShopPlatform: an e-commerce backend (auth, catalog, …) behind one API gateway.";

const LONG_ABOUT: &str = "\
ShopPlatform: an e-commerce backend (auth, catalog, …) behind one API gateway.

One binary, two modes:
  shop up                  every service in one process on embedded defaults (SQLite files in
                           ./.shop-data, seeded on first start) — nothing else to install
  shop serve <service>     one service in its own process, configured from the environment
                           (SHOP_DATABASE_URL=postgres://…, SHOP_HTTP_ADDR=0.0.0.0:8080, …)

Configuration comes from SHOP_* environment variables and an optional TOML file named by
SHOP_CONFIG; see docs/configuration.md.";

#[derive(Debug, Parser)]
#[command(name = "shop", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole shop in one process on embedded defaults (= `serve all`, plus seed data).
    Up(UpArgs),
    /// Run one service (or `all`) with the backends configured in the environment.
    Serve {
        /// The service to run, or `all`.
        target: Target,
    },
    /// Apply database migrations for a service, or `all`.
    Migrate {
        /// The service to migrate, or `all`.
        target: Target,
    },
    /// Load the sample catalog: 600 products, 50 categories, 40 brands and their stock
    /// (idempotent). With `--demo`, also the demo accounts with their published passwords.
    Seed(SeedArgs),
}

#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// Also create the demo accounts (`admin@example.com` / `Admin123!` and 127 more, all with
    /// published passwords): only for a demo or a development database, never production.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Directory of the embedded SQLite databases.
    #[arg(long, env = "SHOP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Listen address of the gateway.
    #[arg(long, env = "SHOP_HTTP_ADDR")]
    pub addr: Option<std::net::SocketAddr>,
    /// Do not load seed data on start.
    #[arg(long)]
    pub no_seed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    All,
    Auth,
    Catalog,
    Cart,
    Inventory,
    Order,
    Payment,
    Notification,
    Gateway,
}

impl Target {
    fn services(self) -> Vec<ServiceName> {
        match self {
            Target::All => ServiceName::ALL.to_vec(),
            Target::Auth => vec![ServiceName::Auth],
            Target::Catalog => vec![ServiceName::Catalog],
            Target::Cart => vec![ServiceName::Cart],
            Target::Inventory => vec![ServiceName::Inventory],
            Target::Order => vec![ServiceName::Order],
            Target::Payment => vec![ServiceName::Payment],
            Target::Notification => vec![ServiceName::Notification],
            Target::Gateway => vec![ServiceName::Gateway],
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut settings = match kit::config::load::<Settings>() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    kit::telemetry::init(settings.log_format);
    kit::http::configure(kit::http::HttpOptions { hsts_max_age_secs: settings.hsts_max_age_secs });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => {
                if let Some(d) = args.data_dir {
                    settings.data_dir = d;
                }
                if let Some(a) = args.addr {
                    settings.http_addr = Some(a);
                }
                // The local demo: simulated payments unless told otherwise, demo accounts.
                kit::info::set_demo(true);
                if settings.payment.provider.is_none() {
                    settings.payment.provider = Some(shop_payment::ProviderKind::Simulated);
                }
                let running = compose::embedded(&settings, !args.no_seed).await?;
                serve(running, &settings, ServiceName::Gateway, true).await
            }
            Command::Serve { target: Target::All } => {
                let running = compose::embedded(&settings, false).await?;
                serve(running, &settings, ServiceName::Gateway, false).await
            }
            Command::Serve { target } => {
                let service = target.services()[0];
                let running = compose::single(&settings, service).await?;
                serve(running, &settings, service, false).await
            }
            Command::Migrate { target } => {
                let scope = if target == Target::All { DbScope::Shared } else { DbScope::Single };
                for service in target.services().into_iter().filter(|s| s.has_database()) {
                    let s = Settings { migrate_on_start: false, ..settings.clone() };
                    let db = compose::open_db(&s, service, scope).await?;
                    compose::migrate(&db, service).await?;
                    println!("{service}: migrations applied");
                    db.close().await;
                }
                Ok(())
            }
            Command::Seed(args) => {
                let auth = compose::open_db(&settings, ServiceName::Auth, DbScope::Shared).await?;
                let catalog = compose::open_db(&settings, ServiceName::Catalog, DbScope::Shared).await?;
                let inventory = compose::open_db(&settings, ServiceName::Inventory, DbScope::Shared).await?;
                crate::seed::all(&settings, &auth, &catalog, &inventory, args.demo).await?;
                if args.demo {
                    println!("sample catalog, stock and demo accounts in place (published passwords: demo only)");
                } else {
                    println!("sample catalog and stock in place (no accounts: `shop seed --demo` adds the demo accounts)");
                }
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Serves a composed app until SIGINT/SIGTERM: the API on `SHOP_HTTP_ADDR` (default: the
/// service's local port) and, with `SHOP_OPS_ADDR`, the operations endpoints on their own
/// listener. At the signal `/readyz` answers `draining` for `SHOP_SHUTDOWN_DELAY_SECS`, then the
/// listeners drain in-flight requests and the background work stops.
async fn serve(
    running: compose::Running,
    settings: &Settings,
    service: ServiceName,
    banner: bool,
) -> anyhow::Result<()> {
    let addr = settings.addr(service);
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let ops = match settings.ops_addr {
        Some(ops) => Some(
            tokio::net::TcpListener::bind(ops)
                .await
                .map_err(|e| anyhow::anyhow!("binding SHOP_OPS_ADDR {ops}: {e}"))?,
        ),
        None => None,
    };
    if banner {
        println!(
            "\nShopPlatform {} is up (embedded mode: SQLite in {}, in-process services)\n\
             \n  Console   http://{bound}/admin\
             \n  API       http://{bound}/api/v1/products?pageSize=5\
             \n  Docs      http://{bound}/docs   (OpenAPI: http://{bound}/api/v1/openapi.json)\
             \n  Health    http://{bound}/healthz  http://{bound}/readyz  http://{bound}/metrics\
             \n  Admin     admin@example.com / Admin123!\
             \n  Customer  customer@example.com / Customer123!\
             \n  Payments  simulated: test cards such as pm_card_visa, nobody is charged\
             \n\nPress Ctrl-C to stop.\n",
            env!("CARGO_PKG_VERSION"),
            settings.data_dir.display(),
        );
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let drain = tokio::spawn({
        let (readiness, stop) = (running.readiness.clone(), stop.clone());
        let delay = std::time::Duration::from_secs(settings.shutdown_delay_secs);
        async move {
            kit::http::drain_then_stop(readiness, delay).await;
            stop.cancel();
        }
    });
    let served = match ops {
        Some(ops_listener) => {
            let ops_bound = ops_listener.local_addr()?;
            tracing::info!(%service, addr = %bound, ops = %ops_bound, "listening (API and operations endpoints apart)");
            let (a, b) = tokio::join!(
                kit::http::serve_on(listener, running.apps.public.clone(), stop.clone().cancelled_owned()),
                kit::http::serve_on(ops_listener, running.apps.ops.clone(), stop.clone().cancelled_owned()),
            );
            a.and(b)
        }
        None => {
            tracing::info!(%service, addr = %bound, "listening");
            kit::http::serve_on(listener, running.app.clone(), stop.clone().cancelled_owned()).await
        }
    };
    drain.abort();
    running.stop().await;
    Ok(served?)
}
