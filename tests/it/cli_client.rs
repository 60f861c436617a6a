//! The CLI client (the real binary) against a running daemon: every command, `--json`, tokens
//! from the environment or the flag, and errors that exit non-zero with the server's message.

use crate::harness::binary::cli;
use crate::harness::*;
use serde_json::json;

#[tokio::test]
async fn cli_client_commands_work_against_a_running_daemon() {
    let app = TestApp::builder().manual().auth().spawn_polled().await;
    let url = app.url.as_str();

    cli(&["status", "--url", url], None)
        .await
        .assert_printed(&["session_targeted", "8/8"]);
    let o = cli(&["status", "--url", url, "--json"], None).await;
    assert!(o.ok(), "{}", o.stderr);
    assert_eq!(o.json()["mode"], "session_targeted");

    cli(&["triggers", "--url", url], None)
        .await
        .assert_printed(&["walk_forward_stability", "max_drawdown"]);
    let o = cli(&["triggers", "--json", "--url", url], None).await;
    assert_eq!(o.json()["conditions"].as_array().unwrap().len(), 4);

    let rehearsal = [
        "rollback",
        "--reason",
        "cli rehearsal",
        "--dry-run",
        "--url",
        url,
        "--json",
    ];
    let o = cli(&rehearsal, Some(OPS_TOKEN)).await;
    assert!(o.ok(), "{}", o.stderr);
    let v = o.json();
    assert_eq!(v["status"], "dry_run");
    assert_eq!(v["actor"], "ops", "ROLLBACKD_TOKEN was used");
    assert!(app.sim.switches().is_empty());
    let with_flag = [
        "rollback",
        "--reason",
        "cli rehearsal 2",
        "--dry-run",
        "--url",
        url,
        "--token",
        ADMIN_TOKEN,
    ];
    cli(&with_flag, None)
        .await
        .assert_printed(&["dry_run", "boss"]);

    cli(&["history", "--url", url], None)
        .await
        .assert_printed(&["cli rehearsal", "dry_run"]);
    let o = cli(&["history", "--url", url, "--json"], None).await;
    assert_eq!(o.json()["events"].as_array().unwrap().len(), 2);

    cli(&["monitoring", "stop", "--url", url], Some(OPS_TOKEN))
        .await
        .assert_printed(&["false"]);
    assert_eq!(app.engine_status()["monitoring_active"], false);
    let start = ["monitoring", "start", "--url", url, "--json"];
    let o = cli(&start, Some(OPS_TOKEN)).await;
    assert!(o.ok(), "{}", o.stderr);
    assert_eq!(o.json(), json!({"monitoring_active": true}));
}

#[tokio::test]
async fn cli_errors_exit_non_zero_with_the_servers_message() {
    let app = TestApp::builder().manual().auth().spawn_polled().await;
    let url = app.url.as_str();
    let viewer_tries = ["rollback", "--reason", "viewer tries", "--url", url];
    let o = cli(&viewer_tries, Some(VIEWER_TOKEN)).await;
    assert!(!o.ok(), "a 403 exits non-zero: {}", o.stdout);
    assert!(
        o.stderr.contains("403") && o.stderr.contains("forbidden"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("has role viewer"),
        "the server's message: {}",
        o.stderr
    );
    let not_rolled_back = ["restore", "--reason", "not rolled back", "--url", url];
    let o = cli(&not_rolled_back, Some(ADMIN_TOKEN)).await;
    assert!(!o.ok());
    assert!(
        o.stderr.contains("409") && o.stderr.contains("not_rolled_back"),
        "{}",
        o.stderr
    );
    let o = cli(&["monitoring", "stop", "--url", url], None).await;
    assert!(!o.ok());
    assert!(o.stderr.contains("401"), "{}", o.stderr);
    assert_eq!(app.engine_status()["monitoring_active"], true);
    // Nobody listening.
    let o = cli(&["status", "--url", "http://127.0.0.1:9"], None).await;
    assert!(!o.ok());
    assert!(o.stderr.contains("cannot reach rollbackd"), "{}", o.stderr);
}
