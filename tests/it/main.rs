//! The integration tests, one binary: the daemon end to end through its API, stream, metrics,
//! CLI and console; the daemon as a process; the real alerting loop; the shipped files.

mod harness;

mod alert_loop;
mod alerting_kit;
mod auth;
mod automation;
mod cli_client;
mod console;
mod console_holds;
mod contacts;
mod daemon;
mod engine_faults;
mod ha;
mod hardening;
mod history;
mod holds;
mod metrics;
mod monitoring;
mod operations;
mod operations_stack;
mod operator_cli;
mod restore;
mod reviews;
mod rollback;
mod routing;
mod stack_files;
mod status_triggers;
mod store_suite;
mod stream;
mod tuning;
mod watchdog;
mod webhook;
