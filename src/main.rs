use anyhow::Context;
use clap::Parser;
use rollbackd::cli::{Cli, Command, ContactsCommand};
use rollbackd::{client, config, demo, engine, http, simulator};
use std::process::ExitCode;

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rollbackd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            config: path,
            listen,
            environment,
        } => {
            init_logging("info");
            let mut cfg = match &path {
                Some(p) => config::load(p, environment.as_deref())?,
                None => config::defaults(environment.as_deref())?,
            };
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if cfg.auth.tokens.is_empty() {
                tracing::warn!(
                    "no auth tokens configured: write routes are open to anyone who can reach {}",
                    cfg.listen
                );
            }
            let listener = tokio::net::TcpListener::bind(cfg.listen)
                .await
                .with_context(|| format!("binding {}", cfg.listen))?;
            let engine = engine::Engine::start(cfg).await?;
            tracing::info!(addr = %listener.local_addr()?, target = %engine.config().target.url, history = %engine.config().storage_path.display(), "rollbackd serving");
            http::serve(listener, engine, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate { listen, scenario } => {
            init_logging("info");
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            tracing::info!(addr = %listener.local_addr()?, ?scenario, "simulator serving");
            simulator::run(listener, scenario, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            listen,
            keep_running,
        } => {
            init_logging("error");
            demo::run(listen, keep_running, shutdown_signal()).await
        }
        Command::CheckConfig { file, environment } => {
            match config::load(&file, environment.as_deref()) {
                Ok(cfg) => {
                    print!("{}", cfg.describe());
                    println!("ok");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("rollbackd: config error: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Contacts {
            command: ContactsCommand::Render { file, production },
        } => match rollbackd::contacts::render_file(&file, production) {
            Ok(yaml) => {
                print!("{yaml}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("rollbackd: {e}");
                Ok(ExitCode::from(2))
            }
        },
        other => client::run(other).await,
    }
}
