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
            "listen: {}\ntarget: {} (timeout {}, {} retries{})\n",
            self.listen,
            self.target.url,
            humantime::format_duration(self.target.timeout),
            self.target.retries,
            self.target
                .ca
                .as_ref()
                .map(|c| format!(", CA {}", c.path.display()))
                .unwrap_or_default()
        ));
        out.push_str(&self.describe_edge());
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

    /// The listener: TLS, basic auth and the limits.
    fn describe_edge(&self) -> String {
        let web = match &self.web {
            None => "web: plain HTTP, no basic auth\n".to_string(),
            Some(w) => format!(
                "web: {}: {}, {} basic-auth user(s)\n",
                w.file.display(),
                match &w.tls {
                    Some(t) => format!("TLS (client certificates: {:?})", t.client_auth),
                    None => "plain HTTP".into(),
                },
                w.basic_auth_users.len()
            ),
        };
        let l = &self.limits;
        format!(
            "{web}limits: header_read_timeout={} idle_timeout={} max_connections={} max_stream_subscribers={} write_requests_per_minute={} write_burst={}\n",
            humantime::format_duration(l.header_read_timeout),
            humantime::format_duration(l.idle_timeout),
            l.max_connections,
            l.max_stream_subscribers,
            l.write_requests_per_minute,
            l.write_burst
        )
    }
}
