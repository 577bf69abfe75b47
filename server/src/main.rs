//! `walletd [--db PATH] [--config FILE] [--listen ADDR]`: serves one ledger file over HTTP.
//!
//! Prints `walletd listening on ADDR` on standard output once it accepts connections (with the
//! port the system chose for `--listen 127.0.0.1:0`); logs go to standard error. Exits 0 after
//! SIGTERM or SIGINT once in-flight requests are answered, 2 on a usage or start-up error.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use wallet_ledger_server::config::{Args, Config, USAGE};
use wallet_ledger_server::{app, ledger, metrics, serve};

fn fatal(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("walletd: {msg}");
    ExitCode::from(2)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("WALLETD_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = term => tracing::info!("SIGTERM received"),
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => tracing::info!("SIGINT received"),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGINT");
                std::future::pending::<()>().await;
            }
        },
    }
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => return fatal(format!("{e}\n\n{USAGE}")),
    };
    if args.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    init_logging();
    let mut config = match &args.config {
        None => Config::default(),
        Some(path) => {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => return fatal(format!("{}: {e}", path.display())),
            };
            match Config::parse(&text, &|name| std::env::var(name).ok()) {
                Ok(c) => c,
                Err(e) => return fatal(format!("{}: {e}", path.display())),
            }
        }
    };
    if let Some(db) = args.db {
        config.db = db;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let addr = match config.listen_addr() {
        Ok(a) => a,
        Err(e) => return fatal(e),
    };
    if config.api_tokens.is_empty() {
        tracing::warn!("no [api] tokens configured: every /v1 request will be refused");
    }
    for v in ledger::Vendor::ALL {
        let vc = config.vendor(v);
        tracing::info!(
            vendor = v.name(),
            base_path = %vc.base_path,
            credentials = vc.credentials.len(),
            "vendor endpoint"
        );
    }
    let store = match ledger::Store::open(&config.db) {
        Ok(s) => s,
        Err(e) => return fatal(e),
    };
    let metrics = match metrics::Metrics::new() {
        Ok(m) => m,
        Err(e) => return fatal(format!("metrics: {e}")),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fatal(format!("cannot start the runtime: {e}")),
    };
    let limits = config.limits;
    let router = app::router(app::App::new(store, config, metrics));
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => return fatal(format!("cannot listen on {addr}: {e}")),
        };
        let local = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => return fatal(format!("cannot read the listening address: {e}")),
        };
        // The one line on standard output: scripts and tests read the port from it.
        println!("walletd listening on {local}");
        let _ = std::io::stdout().flush();
        tracing::info!(%local, "listening");
        serve::serve(listener, router, limits, shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}
