//! Drills, notification tests and direct notices with the real alerting programs: the daemon
//! posts to both Alertmanagers of the pair (Debian 0.25, no gossip, so each one delivers) running
//! the config rendered from the shipped one, whose email, Slack and SNS integrations point at
//! local sinks; Prometheus (Debian 2.42) scrapes the daemon and evaluates the shipped rules.
//! The Alertmanager addresses are chosen before the daemon starts, so its config can list them.

use crate::alert_loop::{alerting_for, every_expression};
use crate::harness::binary::cli;
use crate::harness::mail::{decode_mail, url_decode};
use crate::harness::promql::promql_metric_names;
use crate::harness::stack::{loopback_addr, AlertingStack, Shared};
use crate::harness::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(45);

/// Longer than the time it takes both members to flush a new group (group_wait 5 s for the
/// emergency route), shorter than its group_interval (30 s): no second notification of the
/// same group can fall inside it.
const SETTLE: Duration = Duration::from_secs(12);

/// A daemon whose config lists both Alertmanagers of `alertmanagers`, and the real alerting
/// programs on those addresses.
async fn daemon_and_stack(
    dir: &Path,
    sinks: &Shared,
    alertmanagers: &[String; 2],
) -> (TestApp, AlertingStack) {
    let yaml = format!(
        "alertmanager: {{ urls: [\"http://{}\", \"http://{}\"], timeout: 2s }}\nnotification_tests: {{ wait: 20s }}\n",
        alertmanagers[0], alertmanagers[1]
    );
    let app = TestApp::builder()
        .manual()
        .auth()
        .append_yaml(&yaml)
        .spawn()
        .await;
    let stack = alerting_for(&app, dir, sinks, alertmanagers).await;
    (app, stack)
}

/// What the sinks got, by channel: (email subjects and bodies decoded, Slack bodies, SNS bodies
/// decoded).
fn received(sinks: &Shared) -> (Vec<String>, Vec<String>, Vec<String>) {
    let s = sinks.lock().unwrap();
    let mail = s.mail.iter().map(|m| decode_mail(m)).collect();
    let by = |prefix: &str| -> Vec<String> {
        s.http
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(_, b)| url_decode(b))
            .collect()
    };
    (mail, by("/slack"), by("/sns"))
}

fn subject(mail: &str) -> &str {
    mail.lines()
        .find(|l| l.starts_with("Subject:"))
        .unwrap_or("")
}

/// Waits (bounded) until every channel carried `n` messages containing `needle`, one per
/// Alertmanager; returns them.
async fn wait_for_each_channel(
    sinks: &Shared,
    needle: &str,
    n: usize,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let what = format!("{n} email, Slack and SMS message(s) with {needle}");
    wait_until(&what, LIMIT, || async {
        let (mail, slack, sns) = received(sinks);
        let keep = |v: Vec<String>| -> Vec<String> {
            v.into_iter().filter(|m| m.contains(needle)).collect()
        };
        let (mail, slack, sns) = (keep(mail), keep(slack), keep(sns));
        (mail.len() >= n && slack.len() >= n && sns.len() >= n).then_some((mail, slack, sns))
    })
    .await
}

fn channel<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == name)
        .unwrap_or_else(|| panic!("no channel {name}: {report}"))
}

async fn notification_test(app: &TestApp) -> Value {
    let r = app
        .with_token(OPS_TOKEN)
        .post("/api/v1/notification-tests", &json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_and_a_notification_test_reach_people_on_every_channel_marked_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let sinks = Shared::default();
    let alertmanagers = [loopback_addr(), loopback_addr()];
    let (app, stack) = daemon_and_stack(dir.path(), &sinks, &alertmanagers).await;

    // (a) A drill: every step passes, both members accept the drill notification.
    let r = app
        .with_token(OPS_TOKEN)
        .post("/api/v1/drills", &json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let drill = r.json;
    assert_eq!(drill["passed"], true, "{drill}");
    let notify = drill["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "notify")
        .unwrap_or_else(|| panic!("no notify step: {drill}"));
    assert_eq!(notify["result"], "passed", "{drill}");
    let notified = drill["notified"].as_array().unwrap();
    assert_eq!(notified.len(), 2, "{drill}");
    for (m, addr) in notified.iter().zip(&alertmanagers) {
        assert_eq!(m["url"], format!("http://{addr}"), "{drill}");
        assert_eq!(m["ok"], true, "{drill}");
    }
    let id = drill["id"].as_str().unwrap();
    // Each member delivers on every channel, marked as a drill.
    let (mail, slack, sns) = wait_for_each_channel(&sinks, id, 2).await;
    for m in &mail {
        assert!(subject(m).contains("[DRILL]"), "{}", subject(m));
        assert!(m.contains("the trading system was not switched"), "{m}");
    }
    for s in &slack {
        assert!(s.contains("DRILL"), "{s}");
    }
    for s in &sns {
        assert!(s.contains("[DRILL]"), "{s}");
    }
    assert!(app.sim.switches().is_empty(), "a drill switches nothing");

    // (b) A notification test: Alertmanager's own counters say every channel delivered.
    let t = notification_test(&app).await;
    for c in ["email", "slack", "sns"] {
        assert_eq!(channel(&t, c)["result"], "passed", "{c}: {t}");
    }
    assert_eq!(t["passed"], true, "{t}");
    let test_id = t["id"].as_str().unwrap();
    let (mail, slack, _) = wait_for_each_channel(&sinks, test_id, 2).await;
    assert!(mail.iter().all(|m| subject(m).contains("[TEST]")));
    assert!(slack.iter().all(|s| s.contains("TEST")));

    let m = app.metrics().await;
    m.assert("rollback_drill_last_success", &[], 1.0);
    for c in ["email", "slack", "sns"] {
        m.assert(
            "rollback_notification_test_last_success",
            &[("channel", c)],
            1.0,
        );
    }
    // Every rule and dashboard expression on the drill and test metrics runs on Prometheus;
    // the dashboards' show data once Prometheus has scraped the results.
    let exprs: Vec<(String, String)> = every_expression()
        .into_iter()
        .filter(|(_, e)| {
            promql_metric_names(e).iter().any(|n| {
                n.starts_with("rollback_drill_") || n.starts_with("rollback_notification_test_")
            })
        })
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    for (where_, expr) in &exprs {
        let dashboard = where_.contains(".json");
        let what = format!("{where_}: {expr}");
        wait_until(&what, LIMIT, || async {
            let v = stack.query(expr).await?;
            assert_eq!(v["status"], "success", "{what}: {v}");
            let rows = v["data"]["result"].as_array()?.len();
            (!dashboard || rows > 0).then_some(())
        })
        .await;
    }
}

/// A refusing sink: Alertmanager counts the request as failed at once
/// (`alertmanager_notification_requests_failed_total`); judged by attempts
/// (`alertmanager_notifications_total`) the channel would read as delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_that_refuses_fails_the_notification_test_and_the_others_pass() {
    let dir = tempfile::tempdir().unwrap();
    let sinks = Shared::default();
    sinks.lock().unwrap().refuse.push("/slack".into());
    let alertmanagers = [loopback_addr(), loopback_addr()];
    let (app, _stack) = daemon_and_stack(dir.path(), &sinks, &alertmanagers).await;

    let t = notification_test(&app).await;
    assert_eq!(channel(&t, "slack")["result"], "failed", "{t}");
    assert_eq!(channel(&t, "email")["result"], "passed", "{t}");
    assert_eq!(channel(&t, "sns")["result"], "passed", "{t}");
    assert_eq!(t["passed"], false, "{t}");
    // Slack was tried (and refused), so the failure is the channel's, not the routing's.
    let (_, slack, _) = received(&sinks);
    assert!(
        slack.iter().any(|s| s.contains(t["id"].as_str().unwrap())),
        "{slack:?}"
    );
    let m = app.metrics().await;
    m.assert(
        "rollback_notification_test_last_success",
        &[("channel", "slack")],
        0.0,
    );
    m.assert(
        "rollback_notification_test_last_success",
        &[("channel", "email")],
        1.0,
    );
    m.assert(
        "rollback_notification_test_last_success",
        &[("channel", "sns")],
        1.0,
    );
}

/// `notify-test --channel slack` (the CLI, the API's `channels`) judges Slack only: SMS is
/// broken here (its sink refuses) and the test still passes, recording exactly one channel.
/// An unknown channel, an empty list or a repeated one is refused before anything is posted,
/// naming what was wrong, and nothing is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_test_of_one_channel_records_only_it_and_a_bad_channel_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let sinks = Shared::default();
    sinks.lock().unwrap().refuse.push("/sns".into());
    let alertmanagers = [loopback_addr(), loopback_addr()];
    let (app, _stack) = daemon_and_stack(dir.path(), &sinks, &alertmanagers).await;
    let ops = app.with_token(OPS_TOKEN);

    let o = cli(
        &[
            "notify-test",
            "--channel",
            "slack",
            "--json",
            "--url",
            &app.url,
        ],
        Some(OPS_TOKEN),
    )
    .await;
    assert!(o.ok(), "{o:?}");
    let t: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o:?}"));
    assert_eq!(pluck(&t["channels"], "channel"), ["slack"], "{t}");
    assert_eq!(channel(&t, "slack")["result"], "passed", "{t}");
    assert_eq!(t["passed"], true, "{t}");
    assert_eq!(t["actor"], "ops", "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    // Stored as answered, and only Slack's gauge is set.
    let listed = app.get("/api/v1/notification-tests").await.ok();
    let tests = listed["notification_tests"].as_array().unwrap();
    assert_eq!(tests.len(), 1, "{listed}");
    assert_eq!(tests[0]["id"], id.as_str());
    assert_eq!(pluck(&tests[0]["channels"], "channel"), ["slack"]);
    let m = app.metrics().await;
    m.assert(
        "rollback_notification_test_last_success",
        &[("channel", "slack")],
        1.0,
    );
    for c in ["email", "sns"] {
        assert_eq!(
            m.get("rollback_notification_test_last_success", &[("channel", c)]),
            None,
            "{c} was not tested"
        );
    }

    // The API's `channels` field, wrong in each way: 400 naming it, nothing posted or stored.
    for (channels, says) in [
        (json!([]), "name at least one channel"),
        (json!(["slack", "slack"]), "\"slack\" is listed twice"),
        (json!(["slack", "pager"]), "unknown channel \"pager\""),
    ] {
        let r = ops
            .post(
                "/api/v1/notification-tests",
                &json!({ "channels": channels }),
            )
            .await;
        let msg = r.error(400, "invalid_request");
        assert!(msg.starts_with("channels: "), "{channels}: {msg}");
        assert!(msg.contains(says), "{channels}: {msg}");
    }
    let o = cli(
        &["notify-test", "--channel", "pager", "--url", &app.url],
        Some(OPS_TOKEN),
    )
    .await;
    assert_eq!(o.code, Some(2), "a refused request is a usage error: {o:?}");
    assert!(o.stderr.contains("\"pager\""), "{o:?}");
    let listed = app.get("/api/v1/notification-tests").await.ok();
    assert_eq!(listed["notification_tests"].as_array().unwrap().len(), 1);
    // Each Alertmanager holds the one test alert that was posted, none of the refused ones.
    for addr in &alertmanagers {
        let alerts = am_get(addr, "/api/v2/alerts").await.unwrap();
        let tests: Vec<&Value> = alerts
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["alertname"] == "RollbackNotificationTest")
            .collect();
        assert_eq!(tests.len(), 1, "{addr}: {tests:?}");
        assert_eq!(tests[0]["labels"]["test_id"], id.as_str());
        assert_eq!(tests[0]["labels"]["channels"], "slack");
    }
}

/// Alertmanager's API on `addr`: `GET path`, as JSON.
async fn am_get(addr: &str, path: &str) -> Option<Value> {
    reqwest::get(format!("http://{addr}{path}"))
        .await
        .ok()?
        .json()
        .await
        .ok()
}

fn is_direct(a: &Value) -> bool {
    a["annotations"]["source"] == "rollbackd direct notice"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_is_told_to_alertmanager_directly_and_people_hear_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let sinks = Shared::default();
    let alertmanagers = [loopback_addr(), loopback_addr()];
    let (app, _stack) = daemon_and_stack(dir.path(), &sinks, &alertmanagers).await;

    let r = app
        .with_token(OPS_TOKEN)
        .rollback("direct notice drill of the stack")
        .await
        .ok();
    let id = r["id"].as_str().unwrap().to_string();

    // The direct notice is in both members, routed to the emergency receiver, with the
    // labels of the Prometheus rule.
    for addr in &alertmanagers {
        let notice = wait_until("the direct notice in Alertmanager", LIMIT, || async {
            let alerts = am_get(addr, "/api/v2/alerts").await?;
            alerts
                .as_array()?
                .iter()
                .find(|a| {
                    a["labels"]["alertname"] == "EmergencyRollbackTriggered"
                        && a["labels"]["event_id"] == id.as_str()
                        && is_direct(a)
                })
                .cloned()
        })
        .await;
        assert_eq!(notice["labels"]["severity"], "critical", "{notice}");
        assert_eq!(notice["labels"]["team"], "trading-ops", "{notice}");
        assert_eq!(notice["labels"]["service"], "rollbackd", "{notice}");
        assert_eq!(notice["labels"]["trigger_type"], "manual", "{notice}");
        assert!(notice["labels"].get("notify").is_none(), "{notice}");
        assert_eq!(
            notice["receivers"],
            json!([{"name": "emergency-rollback"}]),
            "{notice}"
        );
        // Once the rollback ended, the `executing` notice is resolved: a page never lists a
        // state the rollback has left.
        wait_until("the executing notice resolved", LIMIT, || async {
            let alerts = am_get(addr, "/api/v2/alerts").await?;
            let stale = alerts.as_array()?.iter().any(|a| {
                a["labels"]["event_id"] == id.as_str()
                    && a["labels"]["status"] == "executing"
                    && is_direct(a)
            });
            (!stale).then_some(())
        })
        .await;
    }

    // People hear it once: each member sends the group's first notification once, group_wait
    // (5 s) after the notice, and the group is not told again before its group_interval (30 s),
    // whenever the rule's alert joins it. So, counted from the first messages, nothing else
    // about this event reaches Slack within SETTLE.
    let slack_about = |sinks: &Shared| -> Vec<String> {
        received(sinks)
            .1
            .into_iter()
            .filter(|b| b.contains(&id))
            .collect()
    };
    wait_until("a Slack message from each member", LIMIT, || async {
        (slack_about(&sinks).len() >= 2).then_some(())
    })
    .await;
    tokio::time::sleep(SETTLE).await;
    let told = slack_about(&sinks);
    assert_eq!(told.len(), 2, "one message per member: {told:#?}");
    for t in &told {
        assert!(
            t.contains("EMERGENCY: Trading System Rolled Back to Cycle 4"),
            "{t}"
        );
    }

    // The Prometheus rule, the backstop, fires for the same event and joins the same group:
    // one group per member holds every alert of this event.
    for addr in &alertmanagers {
        let groups = wait_until(
            "the rule alert in the direct notice's group",
            LIMIT,
            || async {
                let groups = am_get(addr, "/api/v2/alerts/groups").await?;
                let mine: Vec<Value> = groups
                    .as_array()?
                    .iter()
                    .filter(|g| {
                        g["alerts"].as_array().is_some_and(|a| {
                            a.iter().any(|a| a["labels"]["event_id"] == id.as_str())
                        })
                    })
                    .cloned()
                    .collect();
                let rule_in = mine.iter().any(|g| {
                    g["alerts"].as_array().unwrap().iter().any(|a| {
                        a["labels"]["event_id"] == id.as_str()
                            && !is_direct(a)
                            && a["labels"]["job"] == "rollbackd"
                    })
                });
                rule_in.then_some(mine)
            },
        )
        .await;
        assert_eq!(groups.len(), 1, "one group for the event: {groups:?}");
        let g = &groups[0];
        assert_eq!(g["receiver"]["name"], "emergency-rollback", "{g}");
        assert_eq!(
            g["labels"],
            json!({"alertname": "EmergencyRollbackTriggered", "event_id": id}),
            "{g}"
        );
        assert!(g["alerts"].as_array().unwrap().iter().any(is_direct), "{g}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollback_is_told_to_alertmanager_directly_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    let sinks = Shared::default();
    let alertmanagers = [loopback_addr(), loopback_addr()];
    let (app, _stack) = daemon_and_stack(dir.path(), &sinks, &alertmanagers).await;
    // The target says yes and keeps its mode: the read-back proves the rollback failed.
    app.sim.set_scenario("accepts-but-does-not-apply").await;
    let e = app
        .with_token(OPS_TOKEN)
        .rollback("a target that does not switch")
        .await
        .failed();
    assert_eq!(e["status"], "failed", "{e}");
    let id = e["id"].as_str().unwrap().to_string();
    for addr in &alertmanagers {
        let notice = wait_until("the failed notice in Alertmanager", LIMIT, || async {
            let alerts = am_get(addr, "/api/v2/alerts").await?;
            alerts
                .as_array()?
                .iter()
                .find(|a| {
                    a["labels"]["event_id"] == id.as_str()
                        && a["labels"]["status"] == "failed"
                        && is_direct(a)
                })
                .cloned()
        })
        .await;
        assert_eq!(
            notice["labels"]["alertname"], "EmergencyRollbackTriggered",
            "{notice}"
        );
        assert_eq!(notice["labels"]["severity"], "critical", "{notice}");
        assert_eq!(
            notice["receivers"],
            json!([{"name": "emergency-rollback"}]),
            "{notice}"
        );
    }
    // People are told it failed.
    wait_until(
        "a Slack message that the rollback failed",
        LIMIT,
        || async {
            received(&sinks)
                .1
                .iter()
                .any(|b| b.contains(&id) && b.to_lowercase().contains("failed"))
                .then_some(())
        },
    )
    .await;
}
