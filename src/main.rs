use anyhow::Context;
use clap::{CommandFactory, Parser};
use rollbackd::cli::{Cli, Command, ContactsCommand};
use rollbackd::exit::Exit;
use rollbackd::logging::{self, LogArgs, LogLevel};
use rollbackd::output;
use rollbackd::{client, config, demo, engine, http, rules, simulator};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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

/// SIGHUP (systemd's ExecReload) must not end the daemon, its default action, even while it
/// starts: from here on it is caught, and once serving, `http::serve` reloads the config on it.
fn catch_hangups() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Err(e) = signal(SignalKind::hangup()) {
            tracing::warn!(error = %e, "cannot catch SIGHUP");
        }
    }
}

/// glibc's malloc gives each thread that allocates under contention an arena of its own (up
/// to 8 per core), and memory freed into one arena is not reused by the others: under load the
/// runtime's worker and blocking threads each grew one and kept its peak. Two arenas serve
/// this daemon's few threads; set before any thread starts. `MALLOC_ARENA_MAX` in the
/// environment still wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    const M_ARENA_MAX: std::ffi::c_int = -8;
    extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a malloc parameter; it is called before other threads exist.
        unsafe {
            mallopt(M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            output::eprint_line(&format!("rollbackd: cannot start the runtime: {e}"));
            return Exit::Failed.into();
        }
    };
    let cli = Cli::parse();
    runtime.block_on(async {
        match run(cli).await {
            Ok(code) => code,
            Err(e) => {
                output::eprint_line(&format!("rollbackd: {e:#}"));
                Exit::Failed.into()
            }
        }
    })
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(outcome) = client::run(&cli.command).await {
        return outcome.map(ExitCode::from);
    }
    let exit = match cli.command {
        Command::Serve {
            config: path,
            listen,
            environment,
            web_config_file,
            log,
        } => {
            let start = Start {
                path,
                listen,
                environment,
                web_config_file,
            };
            serve(start, &log).await?
        }
        Command::Simulate {
            listen,
            scenario,
            web_config_file,
            log,
        } => {
            logging::init(&log, LogLevel::Info);
            simulate(listen, scenario, web_config_file.as_deref()).await?
        }
        Command::Demo {
            listen,
            keep_running,
            log,
        } => {
            logging::init(&log, LogLevel::Error);
            return demo::run(listen, keep_running, shutdown_signal()).await;
        }
        Command::CheckConfig {
            file,
            environment,
            web_config_file,
        } => match load_config(
            Some(&file),
            environment.as_deref(),
            web_config_file.as_deref(),
        ) {
            Ok(cfg) => print(&format!("{}ok\n", cfg.describe()))?,
            Err(e) => refuse(&format!("config error: {e}")),
        },
        Command::Contacts {
            command: ContactsCommand::Render { file, production },
        } => match rollbackd::contacts::render_file(&file, production) {
            Ok(yaml) => print(&yaml)?,
            Err(e) => refuse(&e.to_string()),
        },
        Command::Tune {
            prometheus,
            since,
            until,
            step,
            tolerance,
            selector,
            config,
            environment,
            no_reviews,
            client,
        } => {
            rollbackd::tune::run(rollbackd::tune::TuneArgs {
                prometheus,
                since,
                until,
                step,
                tolerance,
                selector,
                config,
                environment,
                no_reviews,
                client,
            })
            .await?
        }
        Command::RenderRules {
            runbook_base_url,
            out,
        } => render_rules(&runbook_base_url, out)?,
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "rollbackd", &mut buf);
            print(&String::from_utf8(buf)?)?
        }
        Command::Man => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut buf)?;
            print(&String::from_utf8(buf)?)?
        }
        Command::Status { .. }
        | Command::Triggers { .. }
        | Command::Rollback { .. }
        | Command::Restore { .. }
        | Command::History { .. }
        | Command::Monitoring { .. }
        | Command::Review { .. }
        | Command::Missed { .. }
        | Command::Report { .. }
        | Command::Freeze { .. }
        | Command::Unfreeze { .. }
        | Command::Maintenance { .. }
        | Command::Regime { .. }
        | Command::Mode { .. }
        | Command::Holds { .. }
        | Command::Proposal { .. }
        | Command::ApproveRestore { .. }
        | Command::Drill { .. }
        | Command::NotifyTest { .. } => unreachable!("client commands are run above"),
    };
    Ok(exit.into())
}

/// The config file (or the defaults), with a web config file from the command line winning
/// over `web_config_file`.
fn load_config(
    path: Option<&Path>,
    environment: Option<&str>,
    web_config_file: Option<&Path>,
) -> Result<config::Config, config::ConfigError> {
    let mut cfg = match path {
        Some(p) => config::load(p, environment)?,
        None => config::defaults(environment)?,
    };
    if let Some(w) = web_config_file {
        cfg.web = Some(config::load_web_config(w)?);
    }
    Ok(cfg)
}

/// What `serve` was started with.
struct Start {
    path: Option<PathBuf>,
    listen: Option<SocketAddr>,
    environment: Option<String>,
    web_config_file: Option<PathBuf>,
}

async fn serve(start: Start, log: &LogArgs) -> anyhow::Result<Exit> {
    logging::init(log, LogLevel::Info);
    catch_hangups();
    let mut cfg = load_config(
        start.path.as_deref(),
        start.environment.as_deref(),
        start.web_config_file.as_deref(),
    )?;
    if let Some(l) = start.listen {
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
    let tls = engine
        .config()
        .web
        .as_ref()
        .is_some_and(|w| w.tls.is_some());
    tracing::info!(addr = %listener.local_addr()?, tls, target = %engine.config().target.url, history = %engine.config().storage_path.display(), "rollbackd serving");
    http::serve_with(listener, engine, start.web_config_file, shutdown_signal()).await?;
    Ok(Exit::Ok)
}

/// The simulator, over TLS when a web config file says so.
async fn simulate(
    listen: SocketAddr,
    scenario: simulator::Scenario,
    web_config_file: Option<&Path>,
) -> anyhow::Result<Exit> {
    let web = web_config_file.map(config::load_web_config).transpose()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let tls = web.as_ref().is_some_and(|w| w.tls.is_some());
    tracing::info!(addr = %listener.local_addr()?, ?scenario, tls, "simulator serving");
    simulator::run(listener, scenario, web, shutdown_signal()).await?;
    Ok(Exit::Ok)
}

fn render_rules(base: &str, out: Option<PathBuf>) -> anyhow::Result<Exit> {
    let result = match out {
        None => rules::merged(base).map(|text| print(&text)),
        Some(dir) => rules::write_dir(&dir, base).map(|paths| {
            let list: String = paths.iter().map(|p| format!("{}\n", p.display())).collect();
            print(&list)
        }),
    };
    match result {
        Ok(printed) => printed,
        Err(e @ rules::RulesError::BadBase(..)) => Ok(refuse(&e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Prints `text` on stdout; the command did what was asked.
fn print(text: &str) -> anyhow::Result<Exit> {
    output::print(text)?;
    Ok(Exit::Ok)
}

/// Says what was wrong with the input on stderr.
fn refuse(message: &str) -> Exit {
    output::eprint_line(&format!("rollbackd: {message}"));
    Exit::Usage
}
