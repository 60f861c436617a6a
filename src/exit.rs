//! The process exit codes, in one place: scripts branch on them, so each kind of refusal has its
//! own, and `--help`, the README and docs/api.md list this table.

use serde_json::Value;
use std::process::ExitCode;

/// What a command achieved, as the process reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok,
    Failed,
    Usage,
    Unauthorized,
    Unreachable,
    InProgress,
    AlreadyRolledBack,
    Cooldown,
    Frozen,
    NotRolledBack,
    Suppressed,
}

impl Exit {
    pub const ALL: [Exit; 11] = [
        Exit::Ok,
        Exit::Failed,
        Exit::Usage,
        Exit::Unauthorized,
        Exit::Unreachable,
        Exit::InProgress,
        Exit::AlreadyRolledBack,
        Exit::Cooldown,
        Exit::Frozen,
        Exit::NotRolledBack,
        Exit::Suppressed,
    ];

    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Unauthorized => 3,
            Exit::Unreachable => 4,
            Exit::InProgress => 5,
            Exit::AlreadyRolledBack => 6,
            Exit::Cooldown => 7,
            Exit::Frozen => 8,
            Exit::NotRolledBack => 9,
            Exit::Suppressed => 10,
        }
    }

    /// One line for the table in `--help` and the docs.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "done: what was asked happened (a dry run counts once recorded)",
            Exit::Failed => "failed: the rollback/restore ended `failed`, the target refused (502 target_error), or another server error",
            Exit::Usage => "usage: bad command line, unreadable token file, a config or contacts file with a mistake, or a request the daemon refused as invalid (any other 4xx: 400, 404, 413, 415)",
            Exit::Unauthorized => "unauthorised: no token, an unknown token or a role too weak (401, 403)",
            Exit::Unreachable => "unreachable or not ready: connection refused, timeout, or 503 (not_ready, storage_unavailable)",
            Exit::InProgress => "in progress: another rollback is executing (409 rollback_in_progress, or suppressed in_progress)",
            Exit::AlreadyRolledBack => "already rolled back: the system is in universal_cycle_4 (409 already_rolled_back, or suppressed)",
            Exit::Cooldown => "cooldown: the cooldown after the last rollback is running (409 cooldown, or suppressed cooldown)",
            Exit::Frozen => "frozen: a freeze holds automatic rollbacks (an event suppressed by freeze; a manual rollback is never held)",
            Exit::NotRolledBack => "not rolled back: restore with nothing to restore (409 not_rolled_back)",
            Exit::Suppressed => "suppressed for another reason, or another 409 conflict",
        }
    }

    /// The table as plain text, one code a line.
    pub fn table() -> String {
        let mut out = String::from("Exit codes:\n");
        for e in Exit::ALL {
            out.push_str(&format!("  {:>2}  {}\n", e.code(), e.meaning()));
        }
        out
    }

    /// The exit code for a refusal the daemon answered with `status` and error `code`.
    pub fn from_http(status: u16, code: &str) -> Exit {
        match (status, code) {
            (401 | 403, _) => Exit::Unauthorized,
            (503, _) => Exit::Unreachable,
            (409, "rollback_in_progress" | "in_progress") => Exit::InProgress,
            (409, "already_rolled_back") => Exit::AlreadyRolledBack,
            (409, "cooldown") => Exit::Cooldown,
            (409, "freeze" | "frozen") => Exit::Frozen,
            (409, "not_rolled_back") => Exit::NotRolledBack,
            (409, _) => Exit::Suppressed,
            (400..=499, _) => Exit::Usage,
            _ => Exit::Failed,
        }
    }

    /// The exit code for a suppression reason as events record it.
    pub fn from_suppression(reason: &str) -> Exit {
        match reason {
            "in_progress" | "rollback_in_progress" => Exit::InProgress,
            "already_rolled_back" => Exit::AlreadyRolledBack,
            "cooldown" => Exit::Cooldown,
            "freeze" | "frozen" => Exit::Frozen,
            _ => Exit::Suppressed,
        }
    }

    /// What a returned rollback or restore event says about the request: only `completed` (or
    /// a recorded `dry_run`) means it happened.
    pub fn from_event(event: &Value) -> Exit {
        match event.get("status").and_then(Value::as_str) {
            Some("completed" | "dry_run") => Exit::Ok,
            Some("suppressed") => Exit::from_suppression(
                event
                    .get("suppressed_reason")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            ),
            _ => Exit::Failed,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codes_are_distinct_and_in_order() {
        for (i, e) in Exit::ALL.iter().enumerate() {
            assert_eq!(e.code() as usize, i, "{e:?}");
        }
    }

    #[test]
    fn the_table_lists_every_code() {
        let t = Exit::table();
        for e in Exit::ALL {
            assert!(
                t.contains(&format!("{:>2}  {}", e.code(), e.meaning())),
                "{t}"
            );
        }
    }

    #[test]
    fn http_refusals_map_to_their_own_codes() {
        let cases = [
            (401, "unauthorized", Exit::Unauthorized),
            (403, "forbidden", Exit::Unauthorized),
            (503, "not_ready", Exit::Unreachable),
            (503, "storage_unavailable", Exit::Unreachable),
            (409, "rollback_in_progress", Exit::InProgress),
            (409, "already_rolled_back", Exit::AlreadyRolledBack),
            (409, "cooldown", Exit::Cooldown),
            (409, "freeze", Exit::Frozen),
            (409, "not_rolled_back", Exit::NotRolledBack),
            (409, "something_new", Exit::Suppressed),
            (400, "invalid_request", Exit::Usage),
            (404, "not_found", Exit::Usage),
            (502, "target_error", Exit::Failed),
            (500, "internal", Exit::Failed),
        ];
        for (status, code, want) in cases {
            assert_eq!(Exit::from_http(status, code), want, "{status} {code}");
        }
    }

    #[test]
    fn events_exit_zero_only_when_completed_or_a_dry_run() {
        let ev = |status: &str, reason: Option<&str>| json!({"status": status, "suppressed_reason": reason});
        assert_eq!(Exit::from_event(&ev("completed", None)), Exit::Ok);
        assert_eq!(Exit::from_event(&ev("dry_run", None)), Exit::Ok);
        assert_eq!(Exit::from_event(&ev("failed", None)), Exit::Failed);
        assert_eq!(Exit::from_event(&ev("executing", None)), Exit::Failed);
        assert_eq!(Exit::from_event(&json!({})), Exit::Failed);
        let suppressed = [
            ("in_progress", Exit::InProgress),
            ("already_rolled_back", Exit::AlreadyRolledBack),
            ("cooldown", Exit::Cooldown),
            ("freeze", Exit::Frozen),
            ("maintenance_window", Exit::Suppressed),
        ];
        for (reason, want) in suppressed {
            assert_eq!(
                Exit::from_event(&ev("suppressed", Some(reason))),
                want,
                "{reason}"
            );
        }
    }
}
