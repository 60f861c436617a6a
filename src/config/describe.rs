//! The effective configuration as `check-config` prints it.

use super::Config;

impl Config {
    /// The effective settings, then the effective thresholds as a table.
    pub fn describe(&self) -> String {
        let mut out = self.describe_settings();
        out.push_str("thresholds:\n");
        out.push_str(&format!(
            "  {:<24} {:>3} {:>10} {:>10}\n",
            "condition", "op", "warning", "critical"
        ));
        for c in &self.conditions {
            out.push_str(&format!(
                "  {:<24} {:>3} {:>10} {:>10}\n",
                c.name,
                c.operator.as_str(),
                c.warning,
                c.critical
            ));
        }
        out
    }

    fn describe_settings(&self) -> String {
        let mut out = String::new();
        let source = self
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "embedded defaults".into());
        out.push_str(&format!("config: {source}\n"));
        out.push_str(&format!(
            "environment: {}\n",
            self.environment
                .as_deref()
                .unwrap_or("(none: base thresholds)")
        ));
        out.push_str(&format!(
            "listen: {}\ntarget: {} (timeout {}, {} retries)\n",
            self.listen,
            self.target.url,
            humantime::format_duration(self.target.timeout),
            self.target.retries
        ));
        out.push_str(&format!("storage: {}\n", self.storage_path.display()));
        out.push_str(&format!(
            "monitoring: active_on_start={} poll_interval={} automatic_rollback={} alertmanager_rollback={}\n",
            self.monitoring.active_on_start,
            humantime::format_duration(self.monitoring.poll_interval),
            self.monitoring.automatic_rollback,
            self.monitoring.alertmanager_rollback
        ));
        let params: Vec<String> = self
            .profile
            .parameters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!(
            "rollback profile: {} {}\n",
            self.profile.mode,
            params.join(" ")
        ));
        out.push_str(&format!(
            "cooldown: {}  validation: pass_score={} stability_window={}\n",
            humantime::format_duration(self.cooldown),
            self.validation.pass_score,
            humantime::format_duration(self.validation.stability_window)
        ));
        out.push_str(&format!(
            "auth: {} token(s), reads {}\n",
            self.auth.tokens.len(),
            if self.auth.read_requires_token {
                "need a token"
            } else {
                "open"
            }
        ));
        out
    }
}
