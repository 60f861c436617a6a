//! The typed harness: the simulator and daemon a test runs against, the daemon's API route by
//! route, its metrics and stream, the real binary, the real alerting programs and browser,
//! and the repository's shipped files.

pub mod api;
pub mod app;
pub mod binary;
pub mod browser;
pub mod dashboards;
pub mod files;
pub mod fixtures;
pub mod history;
pub mod library;
pub mod mail;
pub mod metric_docs;
pub mod metrics;
pub mod postgres;
pub mod promql;
pub mod stack;
pub mod stream;
pub mod tools;
pub mod wait;

pub use api::{condition, pluck, Body};
pub use app::TestApp;
pub use fixtures::*;
pub use library::Scenario;
pub use wait::wait_until;
