//! The command line: parse, validate into typed config, hand off. One clear error per mistake.

use crate::simulator::Scenario;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "rollbackd",
    version,
    about = "Guards a live trading system: watches its health, rolls it back to a known-good profile, proves the recovery."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// The daemon's base URL.
    #[arg(
        long,
        env = "ROLLBACKD_URL",
        default_value = "http://127.0.0.1:9100",
        global = true
    )]
    pub url: String,
    /// Bearer token for write actions (and reads, where the daemon requires it).
    #[arg(long, env = "ROLLBACKD_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon.
    Serve {
        /// rollbackd.yaml; without one, the seed's defaults apply.
        #[arg(long, short, env = "ROLLBACKD_CONFIG")]
        config: Option<PathBuf>,
        /// Overrides `listen` from the config.
        #[arg(long, env = "ROLLBACKD_LISTEN")]
        listen: Option<SocketAddr>,
        /// Selects the `environments` overrides; overrides `environment` from the config.
        #[arg(long, env = "ROLLBACKD_ENVIRONMENT")]
        environment: Option<String>,
    },
    /// Run a trading-system simulator that speaks the target contract.
    Simulate {
        #[arg(long, default_value = "127.0.0.1:9101")]
        listen: SocketAddr,
        #[arg(long, value_enum, default_value = "steady")]
        scenario: Scenario,
    },
    /// Daemon and simulator in one process: a degradation, a real automatic rollback, printed.
    Demo {
        /// Also serve the daemon's HTTP API and console here (default: a free loopback port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Keep serving after the demo finished, until Ctrl-C.
        #[arg(long)]
        keep_running: bool,
    },
    /// Check a config file and print the effective thresholds; non-zero on any mistake.
    CheckConfig {
        file: PathBuf,
        #[arg(long, env = "ROLLBACKD_ENVIRONMENT")]
        environment: Option<String>,
    },
    /// Show the daemon's status.
    Status {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show every trigger condition.
    Triggers {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Roll the trading system back to the known-good profile.
    Rollback {
        #[arg(long)]
        reason: String,
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Return the trading system to session_targeted (admin).
    Restore {
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show the rollback history, newest first.
    History {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        trigger_type: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Arm or disarm the watchdog.
    Monitoring {
        #[arg(value_parser = ["start", "stop"])]
        action: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Turn the contact directory into Alertmanager receivers and routes.
    Contacts {
        #[command(subcommand)]
        command: ContactsCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum ContactsCommand {
    /// Render contacts.json as an Alertmanager config fragment (YAML) on stdout.
    Render {
        file: PathBuf,
        /// Refuse placeholders such as "[TO BE CONFIGURED]" (for production).
        #[arg(long)]
        production: bool,
    },
}
