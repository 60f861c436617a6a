//! The command line: parse, validate into typed config, hand off. One clear error per mistake.

use crate::domain::holds::AutomationMode;
use crate::domain::lifecycle::{EventStatus, TriggerType};
use crate::domain::review::Verdict;
use crate::exit::Exit;
use crate::logging::LogArgs;
use crate::rules::DEFAULT_RUNBOOK_BASE;
use crate::simulator::Scenario;
use clap::builder::PossibleValuesParser;
use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "rollbackd",
    version,
    about = "Guards a live trading system: watches its health, rolls it back to a known-good profile, proves the recovery.",
    after_help = Exit::table()
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
        global = true,
        value_name = "URL"
    )]
    pub url: String,
    /// Bearer token for write actions (and reads, where the daemon requires it).
    #[arg(
        long,
        env = "ROLLBACKD_TOKEN",
        hide_env_values = true,
        global = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Read the bearer token from this file (one line; surrounding whitespace is dropped).
    /// Wins over --token and ROLLBACKD_TOKEN; keeps the token out of `ps` and shell history.
    #[arg(long, global = true, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// The CA certificate (PEM) that signed an https:// daemon's certificate; without it the
    /// system's CAs are trusted.
    #[arg(long, env = "ROLLBACKD_CA_FILE", global = true, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// Print the daemon's JSON answer as received instead of a table (errors too, when JSON).
    #[arg(long, global = true)]
    pub json: bool,
}

/// Why, in the history: required, not blank, at most 500 characters.
fn reason(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("the reason must not be blank".into());
    }
    Ok(s.to_owned())
}

const REASON_HELP: &str =
    "Why, recorded in the history with your token's name (required, 1-500 characters)";

/// An RFC 3339 time, checked before anything is sent.
fn rfc3339(s: &str) -> Result<String, String> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|_| s.trim().to_owned())
        .map_err(|_| "expected an RFC 3339 time such as 2026-11-23T10:00:00Z".into())
}

/// The incident report's formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Markdown, to paste into a ticket.
    Md,
    /// JSON, the documented shape (docs/api.md).
    Json,
    /// CSV: the incidents, a blank line, then the success metrics.
    Csv,
}

impl ReportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Md => "md",
            ReportFormat::Json => "json",
            ReportFormat::Csv => "csv",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MonitoringAction {
    /// Arm the watchdog: critical conditions roll back (when automatic rollback is on).
    Start,
    /// Disarm it: conditions are still polled and exported, nothing rolls back on its own.
    Stop,
}

#[derive(Subcommand, Debug)]
pub enum MaintenanceCommand {
    /// Start one now.
    Start {
        /// How long (e.g. 2h); at most `maintenance.max_duration` (12h unless configured).
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        /// Healthy agents to expect while it holds.
        #[arg(long, value_name = "N")]
        agents: u32,
        #[arg(long, value_parser = reason, help = REASON_HELP)]
        reason: String,
        /// The window's name (default: maintenance).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// End the ad hoc one now.
    End {
        #[arg(long, value_parser = reason, help = REASON_HELP)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum RegimeCommand {
    /// Lay the preset NAME over the thresholds.
    Set {
        /// A regime defined under `regimes:` in the config.
        name: String,
        /// Until when (e.g. 8h); without it, until cleared.
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        #[arg(long, value_parser = reason, help = REASON_HELP)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Back to the environment's thresholds.
    Clear {
        #[arg(long, value_parser = reason, help = REASON_HELP)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProposalCommand {
    /// Execute it now, as a person's decision.
    Approve {
        /// The proposal id, as `rollbackd holds` prints it.
        id: String,
        /// Why (optional; recorded).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Do not execute; recorded as suppressed (rejected).
    Reject {
        /// The proposal id, as `rollbackd holds` prints it.
        id: String,
        #[arg(long, value_parser = reason, help = REASON_HELP)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon.
    #[command(
        after_help = "Logs go to stderr. RUST_LOG, when set, wins over --log.level \
                      (e.g. RUST_LOG=rollbackd=debug,tower_http=warn)."
    )]
    Serve {
        /// rollbackd.yaml; without one, the seed's defaults apply.
        #[arg(long, short, env = "ROLLBACKD_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Address to listen on (e.g. 0.0.0.0:9100); overrides `listen` from the config.
        #[arg(long, env = "ROLLBACKD_LISTEN", value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Selects the `environments` overrides (e.g. production, staging); overrides
        /// `environment` from the config.
        #[arg(long, env = "ROLLBACKD_ENVIRONMENT", value_name = "NAME")]
        environment: Option<String>,
        /// The Prometheus exporter-toolkit web config file (TLS, client certificates,
        /// basic-auth users); overrides `web_config_file` from the config.
        #[arg(
            long = "web.config.file",
            env = "ROLLBACKD_WEB_CONFIG_FILE",
            value_name = "FILE"
        )]
        web_config_file: Option<PathBuf>,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Run a trading-system simulator that speaks the target contract.
    #[command(after_help = "RUST_LOG, when set, wins over --log.level.")]
    Simulate {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9101", value_name = "ADDR")]
        listen: SocketAddr,
        /// How the simulated trading system behaves.
        #[arg(long, value_enum, default_value = "steady", value_name = "NAME")]
        scenario: Scenario,
        /// Serve TLS as this exporter-toolkit web config file says (its basic-auth users
        /// are ignored).
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Daemon and simulator in one process: a degradation, a real automatic rollback, printed.
    #[command(after_help = "RUST_LOG, when set, wins over --log.level.")]
    Demo {
        /// Also serve the daemon's HTTP API and console here (default: a free loopback port).
        #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
        listen: SocketAddr,
        /// Keep serving after the demo finished, until Ctrl-C.
        #[arg(long)]
        keep_running: bool,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Check a config file and print the effective thresholds; exits 2 on any mistake.
    CheckConfig {
        /// The rollbackd.yaml to check.
        file: PathBuf,
        /// Apply this environment's overrides (e.g. production, staging).
        #[arg(long, env = "ROLLBACKD_ENVIRONMENT", value_name = "NAME")]
        environment: Option<String>,
        /// Also check this web config file, as `serve --web.config.file` would use it.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
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
    /// Roll the trading system back to the known-good profile (operator token).
    #[command(after_help = Exit::table())]
    Rollback {
        #[arg(long, value_parser = reason, help = REASON_HELP)]
        reason: String,
        /// Record what would happen without touching the trading system; exits 0 once recorded.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Return the trading system to session_targeted (admin token).
    #[command(after_help = Exit::table())]
    Restore {
        #[arg(long, value_parser = reason, help = REASON_HELP)]
        reason: String,
        /// Ask the daemon what a restore would do (its plan) without touching the trading system.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show the rollback history, newest first.
    History {
        /// How many events to show (1-500).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        /// Only events of this trigger type.
        #[arg(long, value_name = "TYPE", value_parser = PossibleValuesParser::new(TriggerType::ALL.map(TriggerType::as_str)))]
        trigger_type: Option<String>,
        /// Only events in this life-cycle state.
        #[arg(long, value_name = "STATE", value_parser = PossibleValuesParser::new(EventStatus::ALL.map(EventStatus::as_str)))]
        status: Option<String>,
        /// Only events older than this event id (the next page; the table prints it).
        #[arg(long, value_name = "ID")]
        before: Option<String>,
        /// Only finished trigger episodes nobody has reviewed yet (see `rollbackd review`).
        #[arg(long)]
        unreviewed: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Hold automatic triggers for a news event (operator token): watchdog and Alertmanager
    /// rollbacks are recorded as suppressed (reason freeze) until it ends; a manual rollback
    /// still executes.
    #[command(after_help = Exit::table())]
    Freeze {
        /// How long (e.g. 45m); at most `freezes.max_duration` (4h unless configured).
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        #[arg(long, value_parser = reason, help = REASON_HELP)]
        reason: String,
        /// The window's name (default: freeze).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// End the ad hoc freeze now (operator token).
    #[command(after_help = Exit::table())]
    Unfreeze {
        #[arg(long, value_parser = reason, help = REASON_HELP)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Start or end a maintenance window: validation and the agent alert expect fewer healthy
    /// agents while it holds (operator token).
    #[command(after_help = Exit::table())]
    Maintenance {
        #[command(subcommand)]
        command: MaintenanceCommand,
    },
    /// Lay a named threshold preset (`regimes:` in the config) over the environment's, or
    /// clear it (operator token).
    #[command(after_help = Exit::table())]
    Regime {
        #[command(subcommand)]
        command: RegimeCommand,
    },
    /// How automatic triggers are carried out: auto (execute), confirm (an operator approves
    /// each) or observe (record what would be done, never act) (operator token).
    #[command(after_help = Exit::table())]
    Mode {
        /// auto, confirm or observe.
        #[arg(value_parser = PossibleValuesParser::new(AutomationMode::ALL.map(AutomationMode::as_str)))]
        mode: String,
        #[arg(long, value_parser = reason, help = REASON_HELP)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show freezes, maintenance, the regime, the mode and what awaits an answer.
    Holds {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Answer a proposed automatic rollback (confirm mode; operator token).
    #[command(after_help = Exit::table())]
    Proposal {
        #[command(subcommand)]
        command: ProposalCommand,
    },
    /// Approve another admin's restore request (two-person restore; admin token).
    #[command(after_help = Exit::table())]
    ApproveRestore {
        /// The request id, as `rollbackd holds` prints it.
        id: String,
        /// Why (optional; recorded).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a drill: read the target, evaluate, plan, have the target check the switch without
    /// applying it, score the validation on the plan, tell Alertmanager it was a drill
    /// (operator token). Exits 0 when every step that ran passed.
    #[command(after_help = Exit::table())]
    Drill {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Post a test alert to Alertmanager and confirm from its own counters that each channel
    /// delivered (operator token). Exits 0 when every channel did.
    #[command(after_help = Exit::table())]
    NotifyTest {
        /// Only these channels (email, slack, sns, webhook, ...); default: notification_tests.channels.
        #[arg(long = "channel", value_name = "CHANNEL")]
        channels: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Say whether a trigger was right: review a finished rollback, suppressed trigger or dry
    /// run (operator token). A later review supersedes an earlier one; both are kept.
    #[command(after_help = Exit::table())]
    Review {
        /// The event id, as `rollbackd history` prints it.
        id: String,
        /// true_positive: a real degradation, acting was right; false_positive: no real
        /// degradation; drill: a planned test, left out of the rates.
        #[arg(long, value_name = "VERDICT", value_parser = PossibleValuesParser::new(Verdict::ALL.map(Verdict::as_str)))]
        verdict: String,
        /// What was found, recorded with your token's name (required for false_positive; at
        /// most 2000 characters).
        #[arg(long)]
        note: Option<String>,
        /// The ticket or incident page (http:// or https://).
        #[arg(long, value_name = "URL")]
        ticket: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Record a degradation no trigger caught (operator token); it counts against the true
    /// positive rate.
    #[command(after_help = Exit::table())]
    Missed {
        /// When the degradation began (RFC 3339, e.g. 2026-11-23T10:00:00Z).
        #[arg(long, value_name = "TIME", value_parser = rfc3339)]
        from: String,
        /// When it ended (RFC 3339; not in the future).
        #[arg(long, value_name = "TIME", value_parser = rfc3339)]
        to: String,
        /// A condition that degraded (repeat for several), e.g. max_drawdown.
        #[arg(long = "condition", value_name = "CONDITION", required = true)]
        conditions: Vec<String>,
        /// What degraded and how it was noticed (required, at most 2000 characters).
        #[arg(long, value_parser = reason)]
        note: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The incident report for the monthly and quarterly reviews: every trigger episode with its
    /// timeline, then the success metrics against the seed's limits and targets.
    Report {
        /// How far back: a duration such as 30d or 90d, or an RFC 3339 time.
        #[arg(long, default_value = "30d", value_name = "SINCE")]
        since: String,
        /// The end of the period (RFC 3339); now when left out.
        #[arg(long, value_name = "TIME", value_parser = rfc3339)]
        until: Option<String>,
        /// md to paste into a ticket, json (the documented shape), or csv for a spreadsheet.
        #[arg(long, value_enum, default_value = "md", value_name = "FORMAT")]
        format: ReportFormat,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Quarterly threshold tuning: replay each condition's recorded values from Prometheus at
    /// the current critical threshold and at +/-10, 20, 30 %, match the would-be triggers to the
    /// daemon's reviewed episodes and missed degradations, and recommend a move of at most one
    /// 10 % step with the config lines to paste (docs/tuning.md).
    #[command(after_help = Exit::table())]
    Tune {
        /// Prometheus's base URL; it must scrape rollbackd's trigger_condition_value.
        #[arg(long, env = "ROLLBACKD_PROMETHEUS_URL", value_name = "URL")]
        prometheus: String,
        /// How far back: a duration such as 14d or 90d, or an RFC 3339 time.
        #[arg(long, default_value = "14d", value_name = "SINCE")]
        since: String,
        /// The end of the period (RFC 3339); now when left out.
        #[arg(long, value_name = "TIME", value_parser = rfc3339)]
        until: Option<String>,
        /// The replay's resolution (e.g. 1s, 15s); the config's poll interval (at least 1s)
        /// when left out.
        #[arg(long, value_name = "DURATION")]
        step: Option<String>,
        /// How far a would-be trigger may be from a reviewed episode and still be that episode.
        #[arg(long, default_value = "5m", value_name = "DURATION")]
        tolerance: String,
        /// Extra PromQL label matchers for the series, e.g. job="rollbackd",instance="guard-1:9100".
        #[arg(long, value_name = "MATCHERS")]
        selector: Option<String>,
        /// rollbackd.yaml: the thresholds, operators, cooldown and profile replayed; without one,
        /// the seed's defaults.
        #[arg(long, short, env = "ROLLBACKD_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Apply this environment's overrides (e.g. production, staging).
        #[arg(long, env = "ROLLBACKD_ENVIRONMENT", value_name = "NAME")]
        environment: Option<String>,
        /// Do not ask the daemon (--url) for reviews: trigger counts only.
        #[arg(long)]
        no_reviews: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Arm or disarm the watchdog (operator token).
    Monitoring {
        /// start or stop.
        #[arg(value_enum)]
        action: MonitoringAction,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Turn the contact directory into Alertmanager receivers and routes.
    Contacts {
        #[command(subcommand)]
        command: ContactsCommand,
    },
    /// Write the shipped Prometheus alert rules with runbook links under your own base URL.
    #[command(
        after_help = "With --out DIR: DIR/rules/*.yml and DIR/templates/rollbackd.tmpl, the \
                      layout of alerting/. Without: one rule file on stdout."
    )]
    RenderRules {
        /// The runbook page every alert links to; each alert appends `#<its name in lower case>`
        /// (e.g. https://wiki.example.org/ops/rollbackd-runbook).
        #[arg(long, default_value = DEFAULT_RUNBOOK_BASE, value_name = "URL")]
        runbook_base_url: String,
        /// Write the files under this directory instead of the rules to stdout.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print a shell completion script to stdout (e.g. `rollbackd completions bash > /etc/bash_completion.d/rollbackd`).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout (e.g. `rollbackd man > rollbackd.1`).
    Man,
}

#[derive(Subcommand, Debug)]
pub enum ContactsCommand {
    /// Render contacts.json as an Alertmanager config fragment (YAML) on stdout.
    Render {
        /// The contact directory (JSON; see alerting/contacts.example.json).
        file: PathBuf,
        /// Refuse placeholders such as "[TO BE CONFIGURED]" (for production).
        #[arg(long)]
        production: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every argument of every command says what it is for.
    #[test]
    fn every_flag_has_help() {
        fn walk(cmd: &clap::Command, path: &str) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(a.get_help().is_some(), "{path} {id} has no help text");
            }
            for sub in cmd.get_subcommands() {
                assert!(
                    sub.get_about().is_some(),
                    "{path} {} has no about",
                    sub.get_name()
                );
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        walk(&Cli::command(), "rollbackd");
    }

    #[test]
    fn a_blank_reason_is_a_usage_error() {
        let err = Cli::try_parse_from(["rollbackd", "rollback", "--reason", "  "]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("must not be blank"), "{err}");
    }
}
