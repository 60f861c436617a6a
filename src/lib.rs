//! rollbackd guards a live trading system: it watches four health conditions, rolls the system
//! back to a known-good parameter profile when they degrade, proves the recovery, and keeps a
//! durable record of all of it.

pub mod alertmanager;
pub mod cli;
pub mod client;
pub mod config;
pub mod contacts;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod events;
pub mod exit;
pub mod http;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod output;
pub mod report;
pub mod rules;
pub mod simulator;
pub mod store;
pub mod target;
pub mod tls;
pub mod transport;
pub mod tune;
pub mod views;
