//! Arming the automatic paths at runtime. The watchdog and the Alertmanager path are armed or
//! disarmed separately (the config says whether each may act at all); every change names who
//! made it and why and is recorded durably before it takes effect. `disarm_all` is the
//! emergency switch: one record, every automatic path off; an operator can still roll back.

use super::{lock, Engine, EngineError};
use crate::domain::lifecycle::{Arming, AutomaticPath};
use crate::events::EngineEvent;
use crate::store::AuditRecord;
use chrono::Utc;
use serde_json::json;

impl Engine {
    /// Which automatic paths may act now.
    pub fn arming(&self) -> Arming {
        self.execution().guard.arming
    }

    /// Arms or disarms one automatic path.
    pub async fn arm(
        &self,
        path: AutomaticPath,
        armed: bool,
        actor: &str,
        reason: &str,
    ) -> Result<Arming, EngineError> {
        let kind = if armed { "arm" } else { "disarm" };
        self.change_arming(&[(path, armed)], kind, actor, reason)
            .await
    }

    /// Disarms every automatic path at once.
    pub async fn disarm_all(&self, actor: &str, reason: &str) -> Result<Arming, EngineError> {
        let all: Vec<_> = AutomaticPath::ALL.iter().map(|p| (*p, false)).collect();
        self.change_arming(&all, "disarm_all", actor, reason).await
    }

    /// Another replica armed or disarmed a path: the latest arming record in the shared
    /// history is this replica's too (the config still says whether a path may act at all).
    pub(super) async fn follow_arming(&self) -> Result<(), EngineError> {
        let Some(record) = self.latest_of(&["arm", "disarm", "disarm_all"]).await? else {
            return Ok(());
        };
        let armed = |path: AutomaticPath| record.to[path.as_str()]["armed"].as_bool();
        let (before, now) = {
            let mut x = self.execution();
            let before = x.guard.arming;
            for path in AutomaticPath::ALL {
                if let Some(a) = armed(path) {
                    x.guard.arming.path_mut(path).armed = a;
                }
            }
            (before, x.guard.arming)
        };
        if before == now {
            return Ok(());
        }
        if !before.watchdog.armed && now.watchdog.armed {
            lock(&self.0.watch).rearm();
        }
        tracing::warn!(
            actor = %record.actor,
            reason = %record.reason,
            watchdog = now.watchdog.acts(),
            alertmanager = now.alertmanager.acts(),
            "arming changed on another replica"
        );
        self.emit(EngineEvent::ArmingChanged(now));
        Ok(())
    }

    async fn change_arming(
        &self,
        changes: &[(AutomaticPath, bool)],
        kind: &str,
        actor: &str,
        reason: &str,
    ) -> Result<Arming, EngineError> {
        let before = self.arming();
        let mut after = before;
        for (path, armed) in changes {
            after.path_mut(*path).armed = *armed;
        }
        let record = AuditRecord {
            id: 0,
            at: Utc::now(),
            kind: kind.into(),
            actor: actor.into(),
            reason: reason.into(),
            from: json!(before),
            to: json!(after),
        };
        self.0.store.record_audit(record).await?;
        let now = {
            let mut x = self.execution();
            for (path, armed) in changes {
                x.guard.arming.path_mut(*path).armed = *armed;
            }
            x.guard.arming
        };
        if !before.watchdog.armed && now.watchdog.armed {
            // Conditions already critical count as a new episode once re-armed.
            lock(&self.0.watch).rearm();
        }
        tracing::warn!(
            actor,
            reason,
            kind,
            watchdog = now.watchdog.acts(),
            alertmanager = now.alertmanager.acts(),
            "arming changed"
        );
        self.emit(EngineEvent::ArmingChanged(now));
        Ok(now)
    }
}
