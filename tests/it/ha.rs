//! Two replicas on one real PostgreSQL: one leader, one history, exactly one rollback however
//! the alerts are spread, a leader killed mid-rollback, the database restarted under them.

use crate::harness::api::Api;
use crate::harness::app::{Builder, Replica};
use crate::harness::binary::ProcessReplica;
use crate::harness::library::TestSim;
use crate::harness::postgres::Postgres;
use crate::harness::{
    alert, condition, delivery, wait_until, Scenario, TestApp, ADMIN_TOKEN, OPS_TOKEN,
    SECOND_ADMIN_TOKEN,
};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);
const UNLIMITED: &str = "limits: { write_requests_per_minute: 0 }\n";

async fn leader(api: &Api) -> Option<f64> {
    api.metric("rollbackd_leader", &[]).await
}

/// Two replicas on `pg` guarding one simulator (the first one's), built alike by `build`.
async fn pair(pg: &Postgres, build: impl Fn(Builder) -> Builder) -> (TestApp, Replica) {
    let a = build(TestApp::builder().postgres(pg)).spawn_polled().await;
    let b = build(TestApp::builder().postgres(pg))
        .spawn_replica(&a)
        .await;
    (a, b)
}

/// Waits until exactly one of `apis` leads; returns its index.
async fn one_leader(apis: &[&Api]) -> usize {
    wait_until("exactly one replica to lead", LIMIT, || async {
        let mut flags = Vec::new();
        for a in apis {
            flags.push(leader(a).await?);
        }
        (flags.iter().sum::<f64>() == 1.0).then(|| flags.iter().position(|f| *f == 1.0).unwrap())
    })
    .await
}

fn is_final(e: &Value) -> bool {
    matches!(
        e["status"].as_str(),
        Some("completed" | "failed" | "suppressed" | "dry_run")
    )
}

/// Sends every delivery, `concurrency` at a time, alternating between the replicas; returns
/// the answers' statuses.
async fn spread(apis: &[Api], deliveries: Vec<Value>, concurrency: usize) -> Vec<u16> {
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    for (i, d) in deliveries.into_iter().enumerate() {
        let api = apis[i % apis.len()].clone();
        let permit = gate.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let status = api.webhook(&d).await.status;
            drop(permit);
            status
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_one_history_with_exactly_one_leader() {
    let pg = Postgres::start();
    let (a, b) = pair(&pg, |b| b.manual()).await;
    let (aa, ba) = (a.api(), b.api());
    let lead = one_leader(&[&aa, &ba]).await;
    for api in [&aa, &ba] {
        assert_eq!(api.get("/-/ready").await.status, 200);
        assert_eq!(api.metric("rollbackd_database_up", &[]).await, Some(1.0));
    }
    let (leader_api, follower) = if lead == 0 { (&aa, &ba) } else { (&ba, &aa) };
    assert_eq!(
        leader_api
            .metric("rollbackd_leadership_changes_total", &[])
            .await,
        Some(1.0)
    );
    assert_eq!(
        follower
            .metric("rollbackd_leadership_changes_total", &[])
            .await,
        Some(0.0)
    );
    // A person's rollback on the follower runs there, through the database's one slot.
    let event = follower.rollback("asked on the follower").await.ok();
    assert_eq!(event["status"], "completed", "{event}");
    let id = event["id"].as_str().unwrap().to_string();
    // The leader learns of it from the database's notice: its status page names it.
    wait_until("the leader to learn of the event", LIMIT, || async {
        let s = leader_api.status().await.json;
        (s["last_event"]["id"] == id.as_str() && s["last_event"]["status"] == "completed")
            .then_some(())
    })
    .await;
    let on_leader = leader_api.rollback_by_id(&id).await.ok();
    assert_eq!(on_leader["status"], "completed");
    assert_eq!(a.sim.switches().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_duplicate_deliveries_over_both_replicas_give_one_rollback() {
    let pg = Postgres::start();
    let (a, b) = pair(&pg, |b| b.append_yaml(UNLIMITED)).await;
    one_leader(&[&a.api(), &b.api()]).await;
    let d = delivery(alert(
        "WalkForwardStabilityCritical",
        "firing",
        "fp-dup",
        true,
    ));
    let statuses = spread(&[a.api(), b.api()], vec![d; 1000], 32).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let events = wait_until("the one rollback to finish", LIMIT, || async {
        let v = a.events("").await;
        v.iter().all(is_final).then_some(v)
    })
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["status"], "completed");
    assert_eq!(b.events("").await.len(), 1);
    assert_eq!(a.sim.switches().len(), 1);

    // The same fingerprint firing again (a new startsAt) is a new alert on either replica,
    // not a duplicate: recorded, judged, and held by the rollback already done.
    let mut again = alert("WalkForwardStabilityCritical", "firing", "fp-dup", true);
    again["startsAt"] = json!("2026-11-23T11:02:00Z");
    let r = b.api().webhook(&delivery(again)).await.ok();
    assert_eq!(r["deduplicated"], 0, "{r}");
    assert_eq!(r["accepted"], 1, "{r}");
    let events = wait_until("the new firing to be judged", LIMIT, || async {
        let v = a.events("").await;
        (v.len() == 2 && v.iter().all(is_final)).then_some(v)
    })
    .await;
    assert_eq!(events[0]["status"], "suppressed", "{events:?}");
    assert_eq!(a.sim.switches().len(), 1, "still one rollback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_distinct_critical_alerts_on_both_replicas_give_one_rollback_in_flight() {
    let pg = Postgres::start();
    let (a, b) = pair(&pg, |b| b.append_yaml(UNLIMITED)).await;
    one_leader(&[&a.api(), &b.api()]).await;
    // A slow target keeps the rollback in flight while the alerts land.
    a.sim.set_delay_ms(300).await;
    let deliveries = (0..200)
        .map(|i| {
            delivery(alert(
                "WalkForwardStabilityCritical",
                "firing",
                &format!("fp-{i}"),
                true,
            ))
        })
        .collect();
    let statuses = spread(&[a.api(), b.api()], deliveries, 32).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let events = wait_until("all 200 events to be final", LIMIT, || async {
        let v = a.events("").await;
        (v.len() == 200 && v.iter().all(is_final)).then_some(v)
    })
    .await;
    let executed: Vec<&Value> = events
        .iter()
        .filter(|e| e["status"] != "suppressed")
        .collect();
    assert_eq!(executed.len(), 1, "exactly one executed: {executed:?}");
    assert_eq!(executed[0]["status"], "completed");
    let reasons: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e["suppressed_reason"].as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .all(|r| ["in_progress", "already_rolled_back", "cooldown"].contains(r)),
        "{reasons:?}"
    );
    assert_eq!(a.sim.switches().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_killed_mid_rollback_is_replaced_and_the_event_finished_once() {
    let pg = Postgres::start();
    let sim = TestSim::spawn(Scenario::Steady).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rollbackd.yaml");
    let yaml = TestApp::builder()
        .postgres(&pg)
        .manual()
        .timeout("5s")
        .append_yaml(UNLIMITED)
        .yaml(&sim.url);
    std::fs::write(&config, yaml).unwrap();
    let mut first = ProcessReplica::start(&config).await;
    wait_until("the first replica to lead", LIMIT, || async {
        (first.leader().await? == 1.0).then_some(())
    })
    .await;
    let second = ProcessReplica::start(&config).await;
    assert_eq!(second.leader().await, Some(0.0));
    sim.set_delay_ms(1500).await;
    let api = first.api.clone();
    let asked = tokio::spawn(async move {
        api.try_send(
            reqwest::Method::POST,
            "/api/v1/rollback",
            crate::harness::Body::Json(&json!({ "reason": "killed mid-rollback" })),
        )
        .await
    });
    let id = wait_until("the switch to reach the target", LIMIT, || async {
        Some(sim.switches().first()?["event_id"].as_str()?.to_string())
    })
    .await;
    first.kill9().await;
    assert!(
        asked.await.unwrap().is_err(),
        "the killed leader never answered"
    );
    wait_until("the standby to lead", LIMIT, || async {
        (second.leader().await? == 1.0).then_some(())
    })
    .await;
    sim.set_delay_ms(0).await;
    let event = wait_until("the interrupted event to be finished", LIMIT, || async {
        let e = second.api.rollback_by_id(&id).await.json;
        is_final(&e).then_some(e)
    })
    .await;
    assert_eq!(event["status"], "completed", "{event}");
    let finals: Vec<&Value> = event["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| is_final(t))
        .collect();
    assert_eq!(finals.len(), 1, "finished exactly once: {event}");
    assert_eq!(sim.switches().len(), 1);
    // The new leader keeps watching the target.
    wait_until("the new leader to read the target", LIMIT, || async {
        let s = second.api.status().await.json;
        (s["target"]["up"] == true && s["mode"] == "universal_cycle_4").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_loses_nothing_doubles_nothing_and_a_breach_waits_for_a_leader() {
    let pg = Postgres::start();
    let (a, b) = pair(&pg, |b| b.append_yaml(UNLIMITED)).await;
    let (aa, ba) = (a.api(), b.api());
    one_leader(&[&aa, &ba]).await;
    // Recorded before the restart (a dry run: no cooldown for the breach to come).
    let before = aa.dry_run("before the restart").await.ok();
    assert_eq!(before["status"], "dry_run");

    pg.down();
    for api in [&aa, &ba] {
        wait_until("readiness to say the database is gone", LIMIT, || async {
            let r = api.get("/-/ready").await;
            let up = api.metric("rollbackd_database_up", &[]).await?;
            (r.status == 503 && up == 0.0 && leader(api).await? == 0.0).then_some(())
        })
        .await;
    }
    // A critical breach with no database: seen by both, acted on by neither (no record, no
    // rollback); an Alertmanager delivery is refused so Alertmanager retries it.
    let switches = a.sim.switches().len();
    a.sim
        .set_metrics(json!({"walk_forward_stability": 30.0}))
        .await;
    for api in [&aa, &ba] {
        wait_until("the breach to be seen", LIMIT, || async {
            let t = api.triggers().await.json;
            (condition(&t, "walk_forward_stability")["status"] == "critical").then_some(())
        })
        .await;
    }
    let refused = ba
        .webhook(&delivery(alert(
            "WalkForwardStabilityCritical",
            "firing",
            "fp-down",
            true,
        )))
        .await;
    assert_ne!(refused.status, 200, "{}", refused.text);
    assert_eq!(a.sim.switches().len(), switches, "nothing ran unrecorded");

    pg.up();
    one_leader(&[&aa, &ba]).await;
    let events = wait_until("the breach to be rolled back once", LIMIT, || async {
        let v = aa.events("").await;
        let done = v
            .iter()
            .any(|e| e["trigger_type"] == "watchdog" && e["status"] == "completed");
        (done && v.iter().all(is_final)).then_some(v)
    })
    .await;
    assert_eq!(a.sim.switches().len(), switches + 1);
    let watchdog: Vec<&Value> = events
        .iter()
        .filter(|e| e["trigger_type"] == "watchdog" && e["status"] != "suppressed")
        .collect();
    assert_eq!(watchdog.len(), 1, "{watchdog:?}");
    // Alertmanager's retry lands now; what was recorded before the restart is all there.
    assert_eq!(
        ba.webhook(&delivery(alert(
            "WalkForwardStabilityCritical",
            "firing",
            "fp-down",
            true
        )))
        .await
        .status,
        200
    );
    let ids: std::collections::BTreeSet<String> = aa
        .events("")
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(before["id"].as_str().unwrap()));
    assert_eq!(
        ids.len(),
        ba.events("").await.len(),
        "both read one history"
    );
    wait_until(
        "the retried delivery's event to be final",
        LIMIT,
        || async { aa.events("").await.iter().all(is_final).then_some(()) },
    )
    .await;
    assert_eq!(
        a.sim.switches().len(),
        switches + 1,
        "the retried delivery ran no second rollback"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_leader_is_replaced_and_wakes_up_following_with_one_leader_throughout() {
    let pg = Postgres::start();
    let sim = TestSim::spawn(Scenario::Steady).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rollbackd.yaml");
    let yaml = TestApp::builder().postgres(&pg).manual().yaml(&sim.url);
    std::fs::write(&config, yaml).unwrap();
    let first = ProcessReplica::start(&config).await;
    wait_until("the first replica to lead", LIMIT, || async {
        (first.leader().await? == 1.0).then_some(())
    })
    .await;
    let second = ProcessReplica::start(&config).await;
    assert_eq!(second.leader().await, Some(0.0));
    // SIGSTOP: the process is alive, its session silent; the server frees the leader's lock
    // only after the idle-session timeout, by when the frozen leader's lease has run out.
    first.signal("STOP");
    wait_until("the standby to lead", LIMIT, || async {
        (second.leader().await? == 1.0).then_some(())
    })
    .await;
    first.signal("CONT");
    // Its first answer after waking already says it does not lead.
    let woke = wait_until("the woken replica to answer", LIMIT, || first.leader()).await;
    assert_eq!(
        woke, 0.0,
        "a woken leader whose lease ran out does not lead"
    );
    assert_eq!(second.leader().await, Some(1.0));
    // Later too: one leader, the standby that took over.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(first.leader().await, Some(0.0));
    assert_eq!(second.leader().await, Some(1.0));
    // A person's rollback asked on the woken replica still runs once, through the slot.
    let e = first.api.rollback("after the freeze").await.ok();
    assert_eq!(e["status"], "completed", "{e}");
    assert_eq!(sim.switches().len(), 1);
}

/// The replica that leads and the other one.
async fn leader_and_follower(a: &TestApp, b: &Replica) -> (Api, Api) {
    let (aa, ba) = (a.api(), b.api());
    if one_leader(&[&aa, &ba]).await == 0 {
        (aa, ba)
    } else {
        (ba, aa)
    }
}

/// Waits until the watchdog of `api` sees max_drawdown in `status`.
async fn drawdown_is(api: &Api, status: &str) {
    wait_until(&format!("max_drawdown {status}"), LIMIT, || async {
        let t = api.triggers().await.json;
        (condition(&t, "max_drawdown")["status"] == status).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_freeze_arming_and_a_proposal_made_on_one_replica_hold_on_the_other() {
    let pg = Postgres::start();
    let (a, b) = pair(&pg, |b| b).await;
    let (leader, follower) = leader_and_follower(&a, &b).await;

    // A freeze asked on the follower holds the leader's watchdog, which is the one that acts.
    let r = follower
        .post(
            "/api/v1/freeze",
            &json!({"duration": "1h", "reason": "CPI release", "name": "cpi"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    wait_until("the leader to hold the freeze", LIMIT, || async {
        (leader.status().await.json["holds"]["freeze"]["name"] == "cpi").then_some(())
    })
    .await;
    assert_eq!(
        leader.metric("rollback_freeze_active", &[]).await,
        Some(1.0)
    );
    a.sim.set_metrics(json!({"max_drawdown": 6.0})).await;
    let e = wait_until("the breach to be recorded", LIMIT, || async {
        a.events("")
            .await
            .into_iter()
            .find(|e| e["trigger_type"] == "watchdog")
    })
    .await;
    assert_eq!(e["status"], "suppressed", "{e}");
    assert_eq!(e["suppressed_reason"], "freeze", "{e}");
    assert!(a.sim.switches().is_empty(), "the freeze held the leader");
    // Both replicas watch; only the leader's watchdog records a trigger.
    drawdown_is(&follower, "critical").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let watchdog = a
        .events("")
        .await
        .into_iter()
        .filter(|e| e["trigger_type"] == "watchdog")
        .count();
    assert_eq!(
        watchdog, 1,
        "one breach, one watchdog trigger on two replicas"
    );

    // Ended on the leader: the follower's status says so.
    let r = leader
        .post("/api/v1/freeze/end", &json!({"reason": "released"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_until("the follower to see the freeze ended", LIMIT, || async {
        follower.status().await.json["holds"]["freeze"]
            .is_null()
            .then_some(())
    })
    .await;
    a.sim.set_metrics(json!({"max_drawdown": 1.0})).await;
    drawdown_is(&leader, "ok").await;

    // The watchdog path disarmed on the follower is disarmed on the leader.
    let r = follower
        .post(
            "/api/v1/automation",
            &json!({"path": "watchdog", "armed": false, "reason": "feed check"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_until("the leader to disarm", LIMIT, || async {
        let armed = leader
            .metric("rollback_automatic_path_armed", &[("path", "watchdog")])
            .await;
        (armed == Some(0.0)).then_some(())
    })
    .await;
    // A disarmed watchdog watches without triggering: the breach is seen, nothing is done.
    let before = a.events("").await.len();
    a.sim.set_metrics(json!({"max_drawdown": 6.0})).await;
    drawdown_is(&leader, "critical").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        a.events("").await.len(),
        before,
        "no trigger while disarmed"
    );
    assert!(
        a.sim.switches().is_empty(),
        "disarmed on the follower held the leader"
    );
    a.sim.set_metrics(json!({"max_drawdown": 1.0})).await;
    drawdown_is(&leader, "ok").await;

    // Confirm mode set on the follower, re-armed there: the leader's breach becomes a
    // proposal the follower shows and answers.
    let r = follower
        .post(
            "/api/v1/automation/mode",
            &json!({"mode": "confirm", "reason": "a person decides today"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = follower
        .post(
            "/api/v1/automation",
            &json!({"path": "watchdog", "armed": true, "reason": "feed fine"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_until("the leader to be armed in confirm mode", LIMIT, || async {
        let s = leader.status().await.json;
        let armed = leader
            .metric("rollback_automatic_path_armed", &[("path", "watchdog")])
            .await;
        (s["holds"]["automation_mode"] == "confirm" && armed == Some(1.0)).then_some(())
    })
    .await;
    a.sim.set_metrics(json!({"max_drawdown": 6.0})).await;
    let p = wait_until(
        "the follower to show the leader's proposal",
        LIMIT,
        || async { follower.proposals().await?.first().cloned() },
    )
    .await;
    assert!(a.sim.switches().is_empty(), "nothing acts before an answer");
    let id = p["id"].as_str().unwrap();
    let done = follower
        .post(
            &format!("/api/v1/proposals/{id}/approve"),
            &json!({"reason": "looks real"}),
        )
        .await
        .ok();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(a.sim.switches().len(), 1);
    wait_until(
        "the leader to drop the answered proposal",
        LIMIT,
        || async { leader.proposals().await?.is_empty().then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_two_person_restore_asked_on_one_replica_is_approved_on_the_other() {
    let pg = Postgres::start();
    let yaml = "automation: { restore_approval: two_person }\n";
    let (a, b) = pair(&pg, |b| b.manual().auth().append_yaml(yaml)).await;
    one_leader(&[&a.api(), &b.api()]).await;
    let done = a.with_token(OPS_TOKEN).rollback("bad fills").await.ok();
    assert_eq!(done["status"], "completed", "{done}");
    wait_until("the other replica to see the rollback", LIMIT, || async {
        (b.api().status().await.json["mode"] == "universal_cycle_4").then_some(())
    })
    .await;
    let asked = a.with_token(ADMIN_TOKEN).restore("market calm").await;
    assert_eq!(asked.status, 202, "{}", asked.text);
    let id = asked.json["restore_request"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/restore/requests/{id}/approve");
    let other = b.api();
    wait_until("the other replica to show the request", LIMIT, || async {
        let h = other.get("/api/v1/holds").await.json;
        h["restore_requests"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["id"] == id.as_str()))
            .then_some(())
    })
    .await;
    // The requester cannot approve it on the other replica either; a second admin can.
    other
        .with_token(ADMIN_TOKEN)
        .post(&path, &json!({}))
        .await
        .error(403, "second_person_required");
    let restored = other
        .with_token(SECOND_ADMIN_TOKEN)
        .post(&path, &json!({"reason": "agreed"}))
        .await
        .ok();
    assert_eq!(restored["status"], "completed", "{restored}");
    assert_eq!(restored["actor"], "chief");
    assert_eq!(a.sim.status().await["mode"], "session_targeted");
    // Answered once: the replica it was asked on drops it too.
    wait_until("the asking replica to drop the request", LIMIT, || async {
        let h = a.get("/api/v1/holds").await.json;
        h["restore_requests"]
            .as_array()
            .is_some_and(|r| r.is_empty())
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_proposal_opened_by_a_webhook_on_the_follower_runs_out_on_the_leader() {
    let pg = Postgres::start();
    let yaml = "automation: { mode: confirm, confirm_timeout: 2s, on_timeout: proceed }\n";
    let (a, b) = pair(&pg, |b| b.manual().append_yaml(yaml)).await;
    let (leader, follower) = leader_and_follower(&a, &b).await;
    let d = delivery(alert("MaxDrawdownCritical", "firing", "fp-confirm", true));
    let r = follower.webhook(&d).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The leader holds the follower's proposal and, unanswered, lets it proceed.
    wait_until("the leader to hold the proposal", LIMIT, || async {
        (leader.proposals().await?.len() == 1).then_some(())
    })
    .await;
    let e = wait_until("the proposal to proceed", LIMIT, || async {
        a.events("")
            .await
            .into_iter()
            .find(|e| e["status"] == "completed")
    })
    .await;
    assert_eq!(e["trigger_type"], "alertmanager", "{e}");
    assert!(
        e["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no answer in time"),
        "{e}"
    );
    assert_eq!(a.sim.switches().len(), 1);
    let kinds: Vec<String> = leader.get("/api/v1/audit?limit=50").await.json["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["kind"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "proposal.proceeded").count(),
        1,
        "proceeded once: {kinds:?}"
    );
}
