//! Reloading the config while running (SIGHUP, `POST /-/reload`). The file is validated first;
//! a bad one is refused with the error and the running config is kept whole. What can change
//! at once: thresholds and environments, tokens, the cooldown, validation, the expected agents
//! and whether the watchdog may act. What needs a restart (the listen address, the history's
//! path, the target, the rollback profile, the poll interval) is kept as it runs, and named.

use super::watchdog::Watch;
use super::{lock, Engine};
use crate::config::{Config, ConfigError};
use crate::events::EngineEvent;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("this daemon runs on the embedded defaults; there is no config file to reload")]
    NoFile,
    #[error("{0}; the running config is kept")]
    Invalid(#[from] ConfigError),
}

/// What a reload did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Reloaded {
    pub source: String,
    /// Keys that changed in the file but need a restart; their running values are kept.
    pub needs_restart: Vec<&'static str>,
}

/// Carries what needs a restart over from `running` into `new`; names what differed.
fn keep_restart_only(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    if new.listen != running.listen {
        kept.push("listen");
    }
    if new.storage_path != running.storage_path {
        kept.push("storage.path");
    }
    if new.postgres != running.postgres {
        kept.push("storage.postgres");
    }
    if new.target.url != running.target.url
        || new.target.timeout != running.target.timeout
        || new.target.retries != running.target.retries
        || new.target.retry_backoff != running.target.retry_backoff
        || new.target.ca.as_ref().map(|c| (&c.path, &c.certs))
            != running.target.ca.as_ref().map(|c| (&c.path, &c.certs))
    {
        kept.push("target");
    }
    if new.profile != running.profile {
        kept.push("rollback_profile");
    }
    if new.monitoring.poll_interval != running.monitoring.poll_interval {
        kept.push("monitoring.poll_interval");
    }
    new.listen = running.listen;
    new.storage_path = running.storage_path.clone();
    new.postgres = running.postgres.clone();
    new.target = running.target.clone();
    new.profile = running.profile.clone();
    new.monitoring.poll_interval = running.monitoring.poll_interval;
    kept
}

impl Engine {
    /// Re-reads the config file the daemon started from, with the same environment.
    pub fn reload(&self) -> Result<Reloaded, ReloadError> {
        let running = self.config();
        let source = running.source.clone().ok_or(ReloadError::NoFile)?;
        let mut new = crate::config::load(&source, running.environment.as_deref())?;
        let needs_restart = keep_restart_only(&running, &mut new);
        let same_conditions = new
            .conditions
            .iter()
            .map(|c| &c.name)
            .eq(running.conditions.iter().map(|c| &c.name));
        if !same_conditions {
            // Another set of conditions: their samples and episodes start afresh.
            *lock(&self.0.watch) = Watch::new(new.conditions.len());
        }
        let new = Arc::new(new);
        self.0.base.store(new.clone());
        self.reschedule(&new);
        self.apply_holds();
        let arming = {
            let mut x = self.execution();
            x.guard.arming.watchdog.configured = new.monitoring.automatic_rollback;
            x.guard.arming.alertmanager.configured = new.monitoring.alertmanager_rollback;
            x.guard.arming
        };
        self.emit(EngineEvent::ArmingChanged(arming));
        let source = source.display().to_string();
        tracing::info!(%source, ?needs_restart, "config reloaded");
        Ok(Reloaded {
            source,
            needs_restart,
        })
    }
}
