//! The status and triggers routes: their documented shapes, and a critical value showing up.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn status_and_triggers_have_the_documented_shapes() {
    let app = TestApp::builder()
        .manual()
        .environment("production")
        .spawn_polled()
        .await;
    let s = app.status().await.ok();
    assert_eq!(s["mode"], "session_targeted");
    assert_eq!(s["rollback_ready"], true);
    assert_eq!(s["already_rolled_back"], false);
    assert_eq!(s["monitoring_active"], true);
    assert_eq!(s["automatic_rollback"], false);
    assert_eq!(s["in_progress"], Value::Null);
    assert_eq!(s["last_event"], Value::Null);
    assert_eq!(s["agents"], json!({"healthy": 8, "expected": 8}));
    assert_eq!(s["target"]["url"], app.sim.url.as_str());
    assert_eq!(s["target"]["up"], true);
    let last = s["target"]["last_success"]
        .as_str()
        .expect("last_success is a time");
    assert!(chrono::DateTime::parse_from_rfc3339(last).is_ok(), "{last}");
    assert_eq!(s["environment"], "production");
    assert_eq!(s["cooldown_remaining_seconds"], 0.0);
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));

    let t = app.triggers().await.ok();
    assert_eq!(t["environment"], "production");
    assert_eq!(t["triggers_detected"], json!([]));
    assert!(chrono::DateTime::parse_from_rfc3339(t["updated_at"].as_str().unwrap()).is_ok());
    let want = [
        ("walk_forward_stability", "<", 50.0, 40.0, 72.5),
        ("overfitting_score", ">", 0.4, 0.5, 0.21),
        // production: consecutive_losses.critical_threshold: 6
        ("consecutive_losses", ">=", 4.0, 6.0, 1.0),
        ("max_drawdown", ">=", 3.5, 5.0, 1.2),
    ];
    assert_eq!(t["conditions"].as_array().unwrap().len(), 4, "{t}");
    for (name, op, warn, crit, value) in want {
        let c = condition(&t, name);
        assert_eq!(c["operator"], op, "{c}");
        assert_eq!(c["warning_threshold"].as_f64(), Some(warn), "{c}");
        assert_eq!(c["critical_threshold"].as_f64(), Some(crit), "{c}");
        assert_eq!(c["value"].as_f64(), Some(value), "{c}");
        assert_eq!(c["status"], "ok", "{c}");
        assert!(
            ["rising", "falling", "steady"].contains(&c["trend"].as_str().unwrap()),
            "{c}"
        );
        assert!(c["description"].is_string(), "{c}");
    }
    let m = app.metrics().await;
    m.assert(
        "trigger_condition_threshold",
        &[
            ("condition_type", "consecutive_losses"),
            ("severity", "critical"),
        ],
        6.0,
    );
    m.assert(
        "rollbackd_environment_info",
        &[("environment", "production")],
        1.0,
    );

    // A critical value shows up as detected, with the condition's status.
    app.sim.set_metrics(json!({"max_drawdown": 5.5})).await;
    let t = wait_until("max_drawdown critical", Duration::from_secs(8), || async {
        let t = app.triggers().await.json;
        (t["triggers_detected"] == json!(["max_drawdown"])).then_some(t)
    })
    .await;
    let c = condition(&t, "max_drawdown");
    assert_eq!(c["status"], "critical");
    assert_eq!(c["value"], 5.5);
    app.metrics().await.assert(
        "trigger_conditions_active",
        &[("condition_type", "max_drawdown")],
        1.0,
    );
    assert!(
        app.events("").await.is_empty(),
        "automatic rollback is off: the watchdog only watches"
    );
}
