//! Open attributes after publication over HTTP, on SQLite and PostgreSQL (SD22 Art.8,
//! 10, 20; XT Art.23(7)): a provider asks for a change of its published dataset's open
//! attribute with a reason and a legal basis, and the data authority approves it (an
//! `OpenAttributeChange` entry naming requester, approver, both attributes, reason and
//! legal basis; the dataset's grants suspended when it becomes not open) or refuses it
//! (nothing changes); a not-open dataset is not opened this way (409, the derivative
//! route); the authority relaxes an attribute for an emergency until an end date, after
//! which it reverts by itself (time is simulated by moving the stored end back; the
//! attribute in force reverts on the next read, and the server's check records the end
//! on start and periodically), with both events on the ledger and grants filed during
//! the relaxation suspended. Wrong roles are 403s, other organisations' datasets 404s,
//! bad input 4xx problems, each leaving nothing written.

use std::time::Duration;

use pdx::auth::Role;
use pdx::http::policies::POLICIES;
use pdx::samples;
use pdx_sandbox::NewDataset;
use pdx_sandbox::catalog::{OpenAttribute, metadata_hash};
use serde_json::{Value, json};

use crate::catalog::{draft, register, upload_certified, wait_job};
use crate::governance::{entries, key_in};
use crate::sandbox::{apply, approve};
use crate::support::{
    TestServer, day, key_id, key_per_role, payload, post, refused_outside_policy,
};

const COUNT_BY_DISTRICT: &str = "SELECT district, COUNT(*) AS n FROM data GROUP BY district";

/// The electricity entry with `open`, without data elements (so several can be
/// registered).
fn electricity(open: OpenAttribute) -> NewDataset {
    let mut meta = samples::electricity_dataset();
    meta.elements = Vec::new();
    meta.open_attribute = open;
    meta
}

/// Registers and publishes the electricity entry with `open`; returns its id.
async fn published(t: &TestServer, provider: &str, open: OpenAttribute) -> String {
    register(
        t,
        provider,
        &serde_json::to_value(electricity(open)).unwrap(),
    )
    .await
}

/// Like [`published`], with one certified version (runs need one).
async fn certified(t: &TestServer, provider: &str, open: OpenAttribute) -> String {
    let id = published(t, provider, open).await;
    let csv = samples::electricity_csv(crate::fhe::ROWS, crate::fhe::SEED);
    upload_certified(t, provider, &id, "?format=csv", csv.into_bytes()).await;
    id
}

/// The `GrantDecision` entries with decision `suspended`, as (grant id, reason).
async fn suspensions(t: &TestServer, supervisor: &str) -> Vec<(String, String)> {
    entries(t, supervisor, "grant_decision")
        .await
        .iter()
        .map(payload)
        .filter(|p| p["decision"] == "suspended")
        .map(|p| {
            (
                p["grant_id"].as_str().unwrap().to_string(),
                p["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_not_open(what: &str, status: u16, problem: &Value) {
    assert_eq!(status, 403, "{what}: {problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("not open (不予开放)"), "{what}: {problem}");
}

async fn dry_run(t: &TestServer, dev: &str, id: &str) -> (u16, Value) {
    post(
        t,
        dev,
        "/v1/dry-run",
        json!({"kind": "sql", "body": COUNT_BY_DISTRICT, "dataset_id": id, "rows": 50}),
    )
    .await
}

async fn run(t: &TestServer, dev: &str, model: &str, id: &str, grant: &str) -> (u16, Value) {
    post(
        t,
        dev,
        "/v1/runs",
        json!({"model_id": model, "inputs": [{"dataset_id": id, "grant_id": grant}]}),
    )
    .await
}

async fn sql_model(t: &TestServer, dev: &str) -> String {
    let (s, m) = post(
        t,
        dev,
        "/v1/models",
        json!({"name": "m", "kind": "sql", "body": COUNT_BY_DISTRICT}),
    )
    .await;
    assert_eq!(s, 201, "{}: {m}", t.backend);
    m["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_stricter_change_is_approved_by_the_authority_and_suspends_grants_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (provider_org, provider) = t.key_for("power-bureau", "provider").await;
        let (_, other_provider) = t.key_for("water-bureau", "provider").await;
        let (_, dev) = t.key_for("energy-analytics", "developer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let (authority_org, authority) = t.key_for("data-bureau", "authority").await;
        let id = certified(&t, &provider, OpenAttribute::Conditional).await;
        let path = format!("/v1/datasets/{id}");
        let change_path = format!("{path}/open-attribute");

        // What the developer holds while it is conditional: an approved grant that runs,
        // and a pending one.
        let grant = apply(
            &t,
            &dev,
            &id,
            json!(["district", "kwh_12m"]),
            json!(["sql"]),
            0.0,
            10,
        )
        .await;
        approve(&t, &provider, &grant, json!({})).await;
        let pending_grant = apply(&t, &dev, &id, json!(["district"]), json!(["sql"]), 0.0, 5).await;
        let model = sql_model(&t, &dev).await;
        let (s, job) = run(&t, &dev, &model, &id, &grant).await;
        assert_eq!(s, 202, "{b}: {job}");
        let job = wait_job(&t, &dev, job["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{b}: {job}");

        // Bad input, wrong roles and another organisation: 4xx, nothing written.
        let good = json!({
            "to": "not_open",
            "reason": "the table turned out to identify sole traders",
            "legal_basis": "PIPL Art.28; SD22 Art.8"
        });
        let mut without_basis = good.clone();
        without_basis.as_object_mut().unwrap().remove("legal_basis");
        let mut blank_basis = good.clone();
        blank_basis["legal_basis"] = json!("   ");
        let mut blank_reason = good.clone();
        blank_reason["reason"] = json!("");
        let mut unknown_to = good.clone();
        unknown_to["to"] = json!("closed");
        let mut same = good.clone();
        same["to"] = json!("conditional");
        let mut extra = good.clone();
        extra["approver"] = json!("me");
        for (what, key, body, want) in [
            ("no legal basis", &provider, without_basis, 422),
            ("a blank legal basis", &provider, blank_basis, 422),
            ("an empty reason", &provider, blank_reason, 422),
            ("an unknown attribute", &provider, unknown_to, 422),
            ("the same attribute", &provider, same, 422),
            ("an unknown field", &provider, extra, 422),
            ("a developer", &dev, good.clone(), 403),
            ("the authority", &authority, good.clone(), 403),
            ("a supervisor", &supervisor, good.clone(), 403),
            ("another provider", &other_provider, good.clone(), 404),
        ] {
            let (s, p) = post(&t, key, &change_path, body).await;
            assert_eq!(s, want, "{b}: {what}: {p}");
        }
        let (s, p) = post(
            &t,
            &provider,
            "/v1/datasets/ds_0123456789abcdef/open-attribute",
            good.clone(),
        )
        .await;
        assert_eq!(s, 404, "{b}: {p}");
        let (s, none) = t.get(&authority, "/v1/open-attribute-changes").await;
        assert_eq!(s, 200, "{b}: {none}");
        assert_eq!(none, json!([]), "{b}: a refused request was written");
        let (_, unchanged) = t.get(&provider, &path).await;
        assert_eq!(unchanged["open_attribute"], "conditional", "{b}");
        assert_eq!(unchanged["revision"], 1, "{b}");

        // The request waits for the authority; a second one is a conflict.
        let (s, change) = post(&t, &provider, &change_path, good.clone()).await;
        assert_eq!(s, 201, "{b}: {change}");
        assert_eq!(change["status"], "pending", "{b}: {change}");
        assert_eq!(change["from"], "conditional");
        assert_eq!(change["to"], "not_open");
        assert_eq!(change["stricter"], true);
        assert_eq!(change["legal_basis"], "PIPL Art.28; SD22 Art.8");
        assert_eq!(change["requester_org"], provider_org.as_str());
        assert!(change["decided_by_org"].is_null(), "{b}: {change}");
        let change_id = change["id"].as_str().unwrap().to_string();
        assert!(change_id.starts_with("oac_"), "{b}: {change_id}");
        let mut softer = good.clone();
        softer["to"] = json!("unconditional");
        let (s, p) = post(&t, &provider, &change_path, softer).await;
        assert_eq!(s, 409, "{b}: a second pending request: {p}");

        // The authority's queue, the provider's own list, and nobody else's.
        let (_, queue) = t
            .get(&authority, "/v1/open-attribute-changes?status=pending")
            .await;
        assert_eq!(queue.as_array().unwrap().len(), 1, "{b}: {queue}");
        assert_eq!(queue[0]["id"], change_id.as_str(), "{b}: {queue}");
        let (_, mine) = t.get(&provider, "/v1/open-attribute-changes").await;
        assert_eq!(mine[0]["id"], change_id.as_str(), "{b}: {mine}");
        let (_, theirs) = t.get(&other_provider, "/v1/open-attribute-changes").await;
        assert_eq!(theirs, json!([]), "{b}: {theirs}");
        let (_, all) = t
            .get(
                &supervisor,
                &format!("/v1/open-attribute-changes?dataset_id={id}"),
            )
            .await;
        assert_eq!(all.as_array().unwrap().len(), 1, "{b}: {all}");
        let (_, approved_only) = t
            .get(&authority, "/v1/open-attribute-changes?status=approved")
            .await;
        assert_eq!(approved_only, json!([]), "{b}");
        assert_eq!(
            t.get(&dev, "/v1/open-attribute-changes").await.0,
            403,
            "{b}"
        );
        // Pending changes nothing: the developer still reaches the data.
        let (s, out) = dry_run(&t, &dev, &id).await;
        assert_eq!(s, 200, "{b}: {out}");

        // Refused decisions: 4xx, nothing written.
        let decision = format!("/v1/open-attribute-changes/{change_id}/decision");
        let own_authority = key_in(&t, &provider_org, Role::Authority).await;
        for (what, key, body, want) in [
            (
                "a refusal without reason",
                &authority,
                json!({"approve": false}),
                422,
            ),
            (
                "a blank reason",
                &authority,
                json!({"approve": false, "reason": "  "}),
                422,
            ),
            ("no decision", &authority, json!({"reason": "x"}), 422),
            ("the provider", &provider, json!({"approve": true}), 403),
            ("a developer", &dev, json!({"approve": true}), 403),
            (
                "the provider's own authority",
                &own_authority,
                json!({"approve": true}),
                403,
            ),
        ] {
            let (s, p) = post(&t, key, &decision, body).await;
            assert_eq!(s, want, "{b}: {what}: {p}");
        }
        let (s, p) = post(
            &t,
            &authority,
            "/v1/open-attribute-changes/oac_0123456789abcdef/decision",
            json!({"approve": true}),
        )
        .await;
        assert_eq!(s, 404, "{b}: {p}");
        assert!(
            entries(&t, &supervisor, "open_attribute_change")
                .await
                .is_empty(),
            "{b}"
        );
        assert!(suspensions(&t, &supervisor).await.is_empty(), "{b}");

        // Approved: in effect, as catalog revision 2, grants suspended.
        let (s, decided) = post(
            &t,
            &authority,
            &decision,
            json!({"approve": true, "reason": "the legal basis holds"}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {decided}");
        assert_eq!(decided["status"], "approved", "{b}: {decided}");
        assert_eq!(decided["decided_by_org"], authority_org.as_str());
        assert_eq!(decided["decision_reason"], "the legal basis holds");
        assert_eq!(decided["revision"], 2, "{b}: {decided}");
        let mut want_suspended = vec![grant.clone(), pending_grant.clone()];
        want_suspended.sort();
        assert_eq!(
            decided["suspended_grants"],
            json!(want_suspended),
            "{b}: {decided}"
        );
        let (s, p) = post(&t, &authority, &decision, json!({"approve": true})).await;
        assert_eq!(s, 409, "{b}: approving twice: {p}");
        let (_, entry) = t.get(&dev, &path).await;
        assert_eq!(entry["open_attribute"], "not_open", "{b}: {entry}");
        assert_eq!(
            entry["effective_open_attribute"], "not_open",
            "{b}: {entry}"
        );
        assert_eq!(entry["revision"], 2, "{b}: {entry}");
        assert_eq!(entry["latest_version"], 1, "{b}: the version stays");

        // The ledger entry names requester, approver, both attributes, reason and legal
        // basis; it is public, and the catalog revision points at it.
        let changes = entries(&t, &dev, "open_attribute_change").await;
        assert_eq!(changes.len(), 1, "{b}: {changes:?}");
        let p = payload(&changes[0]);
        let closed_meta = electricity(OpenAttribute::NotOpen);
        assert_eq!(p["change_id"], change_id.as_str(), "{b}: {p}");
        assert_eq!(p["dataset_id"], id.as_str());
        assert_eq!(p["provider_org"], provider_org.as_str());
        assert_eq!(p["from"], "conditional");
        assert_eq!(p["to"], "not_open");
        assert_eq!(p["stricter"], true);
        assert_eq!(p["reason"], "the table turned out to identify sole traders");
        assert_eq!(p["legal_basis"], "PIPL Art.28; SD22 Art.8");
        assert_eq!(p["requester_org"], provider_org.as_str());
        assert_eq!(
            p["requester_key"],
            key_id(&t, &provider).await.as_str(),
            "{b}: {p}"
        );
        assert_eq!(p["approver_org"], authority_org.as_str());
        assert_eq!(p["approver_key"], key_id(&t, &authority).await.as_str());
        assert_eq!(p["revision"], 2);
        assert_eq!(
            p["metadata_hash"],
            metadata_hash(&closed_meta).unwrap().to_hex().as_str(),
            "{b}: {p}"
        );
        assert_eq!(p["grants_suspended"], json!(want_suspended), "{b}: {p}");
        assert_eq!(changes[0]["actor"]["org"], authority_org.as_str());
        assert_eq!(decided["ledger_seq"], changes[0]["seq"], "{b}");
        let (_, history) = t.get(&provider, &format!("{path}/revisions")).await;
        let r2 = &history[1];
        assert_eq!(r2["revision"], 2, "{b}: {history}");
        assert_eq!(r2["ledger_seq"], changes[0]["seq"], "{b}: {r2}");
        assert_eq!(r2["metadata"]["open_attribute"], "not_open", "{b}: {r2}");
        assert!(
            r2["reason"].as_str().unwrap().contains(change_id.as_str()),
            "{b}: {r2}"
        );

        // Both grants suspended with the reason, each a GrantDecision entry; the
        // approved one cannot run any more, the pending one cannot be decided.
        let (_, listed) = t.get(&dev, "/v1/grants").await;
        for g in listed.as_array().unwrap() {
            assert_eq!(g["status"], "suspended", "{b}: {g}");
            let reason = g["reason"].as_str().unwrap();
            assert!(reason.contains("not open"), "{b}: {reason}");
            assert!(reason.contains(change_id.as_str()), "{b}: {reason}");
        }
        let mut suspended: Vec<String> = suspensions(&t, &supervisor)
            .await
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        suspended.sort();
        assert_eq!(suspended, want_suspended, "{b}");
        let (s, p) = run(&t, &dev, &model, &id, &grant).await;
        assert_not_open(&format!("{b}: a run under the suspended grant"), s, &p);
        let (s, p) = dry_run(&t, &dev, &id).await;
        assert_not_open(&format!("{b}: a dry run"), s, &p);
        let (s, p) = post(
            &t,
            &provider,
            &format!("/v1/grants/{pending_grant}/decision"),
            json!({"approve": false, "reason": "closed"}),
        )
        .await;
        assert_eq!(s, 409, "{b}: {p}");

        // Not open is not opened by a change: 409, naming the derivative route.
        let mut reopen = good.clone();
        reopen["to"] = json!("conditional");
        let (s, p) = post(&t, &provider, &change_path, reopen).await;
        assert_eq!(s, 409, "{b}: {p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains("de-identified derivative"), "{b}: {p}");
        assert!(detail.contains("POST /v1/datasets"), "{b}: {p}");
        assert_eq!(
            entries(&t, &supervisor, "open_attribute_change")
                .await
                .len(),
            1,
            "{b}"
        );
        t.stop().await;
    }
}

#[tokio::test]
async fn a_refused_change_leaves_nothing_changed_and_a_looser_one_needs_the_authority_too_on_both_backends()
 {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("power-bureau", "provider").await;
        let (_, dev) = t.key_for("energy-analytics", "developer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let (_, authority) = t.key_for("data-bureau", "authority").await;
        let open = published(&t, &provider, OpenAttribute::Unconditional).await;

        // Refused: the request is closed with the reason, the dataset is as it was.
        let (s, change) = post(
            &t,
            &provider,
            &format!("/v1/datasets/{open}/open-attribute"),
            json!({"to": "conditional", "reason": "usage is rising", "legal_basis": "SD22 Art.8"}),
        )
        .await;
        assert_eq!(s, 201, "{b}: {change}");
        let decision = format!(
            "/v1/open-attribute-changes/{}/decision",
            change["id"].as_str().unwrap()
        );
        let (s, refused) = post(
            &t,
            &authority,
            &decision,
            json!({"approve": false, "reason": "no legal ground to restrict it"}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {refused}");
        assert_eq!(refused["status"], "refused", "{b}: {refused}");
        assert_eq!(refused["decision_reason"], "no legal ground to restrict it");
        assert!(refused["revision"].is_null(), "{b}: {refused}");
        assert!(refused["ledger_seq"].is_null(), "{b}: {refused}");
        let (s, p) = post(&t, &authority, &decision, json!({"approve": true})).await;
        assert_eq!(s, 409, "{b}: deciding a refused request: {p}");
        let (_, entry) = t.get(&dev, &format!("/v1/datasets/{open}")).await;
        assert_eq!(entry["open_attribute"], "unconditional", "{b}: {entry}");
        assert_eq!(entry["revision"], 1, "{b}: {entry}");
        let (_, history) = t.get(&dev, &format!("/v1/datasets/{open}/revisions")).await;
        assert_eq!(history.as_array().unwrap().len(), 1, "{b}: {history}");
        assert!(
            entries(&t, &supervisor, "open_attribute_change")
                .await
                .is_empty(),
            "{b}"
        );
        let (_, refused_list) = t
            .get(&provider, "/v1/open-attribute-changes?status=refused")
            .await;
        assert_eq!(refused_list.as_array().unwrap().len(), 1, "{b}");
        // A refused request no longer blocks a new one.
        let (s, again) = post(
            &t,
            &provider,
            &format!("/v1/datasets/{open}/open-attribute"),
            json!({"to": "not_open", "reason": "second thoughts", "legal_basis": "SD22 Art.8"}),
        )
        .await;
        assert_eq!(s, 201, "{b}: {again}");

        // Less strict (conditional → unconditional) waits for the authority as well.
        let conditional = published(&t, &provider, OpenAttribute::Conditional).await;
        let (s, looser) = post(
            &t,
            &provider,
            &format!("/v1/datasets/{conditional}/open-attribute"),
            json!({"to": "unconditional", "reason": "aggregated enough", "legal_basis": "SD22 Art.8, 10"}),
        )
        .await;
        assert_eq!(s, 201, "{b}: {looser}");
        assert_eq!(looser["stricter"], false, "{b}: {looser}");
        assert_eq!(looser["status"], "pending", "{b}: {looser}");
        let (_, entry) = t.get(&dev, &format!("/v1/datasets/{conditional}")).await;
        assert_eq!(entry["effective_open_attribute"], "conditional", "{b}");
        let (s, approved) = post(
            &t,
            &authority,
            &format!(
                "/v1/open-attribute-changes/{}/decision",
                looser["id"].as_str().unwrap()
            ),
            json!({"approve": true}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {approved}");
        assert_eq!(approved["suspended_grants"], json!([]), "{b}: {approved}");
        let (_, entry) = t.get(&dev, &format!("/v1/datasets/{conditional}")).await;
        assert_eq!(entry["open_attribute"], "unconditional", "{b}: {entry}");
        let changes = entries(&t, &dev, "open_attribute_change").await;
        assert_eq!(changes.len(), 1, "{b}: {changes:?}");
        assert_eq!(payload(&changes[0])["stricter"], false, "{b}");
        assert_eq!(payload(&changes[0])["to"], "unconditional", "{b}");
        t.stop().await;
    }
}

#[tokio::test]
async fn an_emergency_relaxation_opens_data_until_its_end_and_reverts_by_itself_on_both_backends() {
    for mut t in TestServer::both().await {
        let b = t.backend;
        let (provider_org, provider) = t.key_for("health-commission", "provider").await;
        let (_, dev) = t.key_for("epidemic-analytics", "developer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let (authority_org, authority) = t.key_for("data-bureau", "authority").await;
        let closed = certified(&t, &provider, OpenAttribute::NotOpen).await;
        let path = format!("/v1/datasets/{closed}");
        let relax = format!("{path}/emergency-relaxation");
        let (s, p) = dry_run(&t, &dev, &closed).await;
        assert_not_open(&format!("{b}: before the emergency"), s, &p);

        // Bad input, wrong roles, unknown and unpublished datasets: 4xx, nothing written.
        let until = day(7);
        let good =
            json!({"to": "conditional", "emergency": "flood in the river basin", "until": until});
        let mut bad_day = good.clone();
        bad_day["until"] = json!("31/07/2026");
        let mut past = good.clone();
        past["until"] = json!("2020-01-06");
        let mut far = good.clone();
        far["until"] = json!(day(400));
        let mut blank = good.clone();
        blank["emergency"] = json!("  ");
        let mut not_looser = good.clone();
        not_looser["to"] = json!("not_open");
        let mut no_until = good.clone();
        no_until.as_object_mut().unwrap().remove("until");
        let draft_id = draft(
            &t,
            &provider,
            &serde_json::to_value(electricity(OpenAttribute::NotOpen)).unwrap(),
        )
        .await;
        for (what, key, target, body, want) in [
            ("a malformed day", &authority, relax.clone(), bad_day, 422),
            ("a past day", &authority, relax.clone(), past, 422),
            ("a day too far ahead", &authority, relax.clone(), far, 422),
            ("a blank emergency", &authority, relax.clone(), blank, 422),
            ("no end", &authority, relax.clone(), no_until, 422),
            ("no relaxation", &authority, relax.clone(), not_looser, 409),
            ("the provider", &provider, relax.clone(), good.clone(), 403),
            ("a developer", &dev, relax.clone(), good.clone(), 403),
            (
                "a supervisor",
                &supervisor,
                relax.clone(),
                good.clone(),
                403,
            ),
            (
                "an unknown dataset",
                &authority,
                "/v1/datasets/ds_0123456789abcdef/emergency-relaxation".to_string(),
                good.clone(),
                404,
            ),
            (
                "a draft",
                &authority,
                format!("/v1/datasets/{draft_id}/emergency-relaxation"),
                good.clone(),
                409,
            ),
        ] {
            let (s, p) = post(&t, key, &target, body).await;
            assert_eq!(s, want, "{b}: {what}: {p}");
            assert!(
                !p.to_string().contains("31/07/2026"),
                "{b}: {what}: the problem echoes the input: {p}"
            );
        }
        let (s, none) = t.get(&dev, &format!("{path}/emergency-relaxations")).await;
        assert_eq!(s, 200, "{b}: {none}");
        assert_eq!(none, json!([]), "{b}");
        assert!(
            entries(&t, &supervisor, "emergency_relaxation")
                .await
                .is_empty(),
            "{b}"
        );

        // Relaxed to conditional: developers reach it under grants, until the end.
        let (s, relaxation) = post(&t, &authority, &relax, good.clone()).await;
        assert_eq!(s, 201, "{b}: {relaxation}");
        assert_eq!(relaxation["in_force"], true, "{b}: {relaxation}");
        assert_eq!(relaxation["open_attribute"], "not_open");
        assert_eq!(relaxation["relaxed_to"], "conditional");
        assert_eq!(relaxation["until"], until.as_str());
        assert_eq!(relaxation["authority_org"], authority_org.as_str());
        let relaxation_id = relaxation["id"].as_str().unwrap().to_string();
        let (s, p) = post(&t, &authority, &relax, good.clone()).await;
        assert_eq!(s, 409, "{b}: a second relaxation: {p}");
        let (_, entry) = t.get(&dev, &path).await;
        assert_eq!(entry["open_attribute"], "not_open", "{b}: {entry}");
        assert_eq!(
            entry["effective_open_attribute"], "conditional",
            "{b}: {entry}"
        );
        assert_eq!(
            entry["emergency_relaxation"]["id"],
            relaxation_id.as_str(),
            "{b}"
        );
        let (_, page) = t.get(&dev, "/v1/datasets?open_attribute=conditional").await;
        assert_eq!(page["items"][0]["id"], closed.as_str(), "{b}: {page}");
        let (s, out) = dry_run(&t, &dev, &closed).await;
        assert_eq!(s, 200, "{b}: {out}");
        let (s, rows) = t.get(&dev, &format!("{path}/dummy?rows=5")).await;
        assert_eq!(s, 200, "{b}: {rows}");
        let grant = apply(
            &t,
            &dev,
            &closed,
            json!(["district", "kwh_12m"]),
            json!(["sql"]),
            0.0,
            10,
        )
        .await;
        approve(&t, &provider, &grant, json!({})).await;
        let model = sql_model(&t, &dev).await;
        let (s, job) = run(&t, &dev, &model, &closed, &grant).await;
        assert_eq!(s, 202, "{b}: {job}");
        let job = wait_job(&t, &dev, job["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{b}: {job}");
        // The provider cannot change the attribute meanwhile (a not-open one, anyway).
        let (s, p) = post(
            &t,
            &provider,
            &format!("{path}/open-attribute"),
            json!({"to": "conditional", "reason": "r", "legal_basis": "b"}),
        )
        .await;
        assert_eq!(s, 409, "{b}: {p}");
        let started = entries(&t, &dev, "emergency_relaxation").await;
        assert_eq!(started.len(), 1, "{b}: public: {started:?}");
        let sp = payload(&started[0]);
        assert_eq!(sp["phase"], "started", "{b}: {sp}");
        assert_eq!(sp["relaxation_id"], relaxation_id.as_str());
        assert_eq!(sp["dataset_id"], closed.as_str());
        assert_eq!(sp["provider_org"], provider_org.as_str());
        assert_eq!(sp["open_attribute"], "not_open");
        assert_eq!(sp["relaxed_to"], "conditional");
        assert_eq!(sp["emergency"], "flood in the river basin");
        assert_eq!(sp["until"], until.as_str());
        assert_eq!(started[0]["actor"]["org"], authority_org.as_str());
        assert_eq!(relaxation["started_seq"], started[0]["seq"], "{b}");

        // Time passes: the stored end moves back to yesterday. The attribute in force
        // reverts on the next read, before any check has recorded the end.
        sqlx::query(
            "UPDATE emergency_relaxations SET until_day = $1, ends_ms = $2 WHERE dataset_id = $3",
        )
        .bind(day(-1))
        .bind(pdx_ledger::db::now_ms() - 1)
        .bind(closed.clone())
        .execute(t.app.db.pool())
        .await
        .unwrap();
        let (_, entry) = t.get(&dev, &path).await;
        assert_eq!(
            entry["effective_open_attribute"], "not_open",
            "{b}: {entry}"
        );
        assert!(entry["emergency_relaxation"].is_null(), "{b}: {entry}");
        let (s, p) = dry_run(&t, &dev, &closed).await;
        assert_not_open(&format!("{b}: a dry run after the end"), s, &p);
        let (s, p) = run(&t, &dev, &model, &closed, &grant).await;
        assert_not_open(&format!("{b}: a run after the end"), s, &p);
        let (_, listed) = t.get(&dev, &format!("{path}/emergency-relaxations")).await;
        assert_eq!(listed[0]["in_force"], false, "{b}: {listed}");

        // The server records the end when it starts (and every minute): restart it.
        let server = t.server.take().unwrap();
        server.shutdown().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        t.server = Some(pdx::server::spawn(t.app.clone(), listener).unwrap());
        let mut recorded = Vec::new();
        for _ in 0..100 {
            recorded = entries(&t, &supervisor, "emergency_relaxation").await;
            if recorded.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            recorded.len(),
            2,
            "{b}: the end was not recorded: {recorded:?}"
        );
        let ep = payload(&recorded[1]);
        assert_eq!(ep["phase"], "ended", "{b}: {ep}");
        assert_eq!(ep["relaxation_id"], relaxation_id.as_str());
        assert_eq!(ep["open_attribute"], "not_open");
        assert_eq!(ep["relaxed_to"], "conditional");
        assert_eq!(ep["started_seq"], started[0]["seq"], "{b}: {ep}");
        assert_eq!(ep["grants_suspended"], json!([grant]), "{b}: {ep}");
        assert_eq!(recorded[1]["actor"]["org"], "pdx", "{b}: the platform");
        // The grant filed during the relaxation is suspended with the reason.
        let (_, g) = t.get(&dev, &format!("/v1/grants/{grant}")).await;
        assert_eq!(g["status"], "suspended", "{b}: {g}");
        let reason = g["reason"].as_str().unwrap();
        assert!(reason.contains("emergency relaxation"), "{b}: {reason}");
        assert!(reason.contains(relaxation_id.as_str()), "{b}: {reason}");
        let suspended = suspensions(&t, &supervisor).await;
        assert_eq!(suspended.len(), 1, "{b}: {suspended:?}");
        assert_eq!(suspended[0].0, grant, "{b}");
        let (_, listed) = t.get(&dev, &format!("{path}/emergency-relaxations")).await;
        assert_eq!(listed[0]["ended_seq"], recorded[1]["seq"], "{b}: {listed}");
        assert_eq!(listed[0]["suspended_grants"], json!([grant]), "{b}");
        // Recording is done once.
        let again = t
            .app
            .sandbox
            .open_attributes()
            .end_due_relaxations()
            .await
            .unwrap();
        assert_eq!(again, 0, "{b}");
        assert_eq!(
            entries(&t, &supervisor, "emergency_relaxation").await.len(),
            2,
            "{b}"
        );

        // A later emergency opens the data again, but the suspended grant stays so.
        let (s, second) = post(&t, &authority, &relax, good.clone()).await;
        assert_eq!(s, 201, "{b}: {second}");
        let (s, p) = run(&t, &dev, &model, &closed, &grant).await;
        assert_eq!(s, 403, "{b}: {p}");
        assert!(
            p["detail"].as_str().unwrap().contains("suspended"),
            "{b}: {p}"
        );
        t.stop().await;
    }
}

#[tokio::test]
async fn a_conditional_dataset_relaxed_to_unconditional_needs_no_grant_until_the_end_on_both_backends()
 {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("transport-bureau", "provider").await;
        let (_, dev) = t.key_for("logistics-co", "developer").await;
        let (_, authority) = t.key_for("data-bureau", "authority").await;
        let id = published(&t, &provider, OpenAttribute::Conditional).await;
        let (s, relaxation) = post(
            &t,
            &authority,
            &format!("/v1/datasets/{id}/emergency-relaxation"),
            json!({"to": "unconditional", "emergency": "earthquake relief", "until": day(0)}),
        )
        .await;
        assert_eq!(s, 201, "{b}: {relaxation}");
        let application = json!({
            "dataset_id": id, "purpose": "relief routing", "columns": ["district"],
            "model_kinds": ["sql"], "term_days": 30, "epsilon": 0.0, "delta": 0.0,
            "query_budget": 5
        });
        let (s, p) = post(&t, &dev, "/v1/grants", application.clone()).await;
        assert_eq!(s, 409, "{b}: unconditionally open meanwhile: {p}");

        // The end passes; the next read, and the check, put it back to conditional.
        sqlx::query("UPDATE emergency_relaxations SET ends_ms = $1 WHERE dataset_id = $2")
            .bind(pdx_ledger::db::now_ms() - 1)
            .bind(id.clone())
            .execute(t.app.db.pool())
            .await
            .unwrap();
        let ended = t
            .app
            .sandbox
            .open_attributes()
            .end_due_relaxations()
            .await
            .unwrap();
        assert!(ended <= 1, "{b}: {ended}");
        let (_, entry) = t.get(&dev, &format!("/v1/datasets/{id}")).await;
        assert_eq!(entry["effective_open_attribute"], "conditional", "{b}");
        let (s, g) = post(&t, &dev, "/v1/grants", application).await;
        assert_eq!(s, 201, "{b}: {g}");
        let (_, listed) = t
            .get(&dev, &format!("/v1/datasets/{id}/emergency-relaxations"))
            .await;
        assert!(listed[0]["ended_seq"].as_u64().is_some(), "{b}: {listed}");
        assert_eq!(
            listed[0]["suspended_grants"],
            json!([]),
            "{b}: conditional data keeps its grants"
        );
        t.stop().await;
    }
}

#[tokio::test]
async fn open_attribute_routes_refuse_every_other_role_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("power-bureau", "provider").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let id = published(&t, &provider, OpenAttribute::Conditional).await;
        let keys = key_per_role(&t, "org").await;
        let mut refused = 0;
        let mut routes = 0;
        for (method, route, policy) in POLICIES {
            let ours = route.starts_with("/v1/open-attribute-changes")
                || route.ends_with("/open-attribute")
                || route.contains("/emergency-relaxation");
            if !ours {
                continue;
            }
            routes += 1;
            let path = if route.starts_with("/v1/open-attribute-changes") {
                route.replace("{id}", "oac_0123456789abcdef")
            } else {
                route.replace("{id}", &id)
            };
            let body = json!({
                "to": "not_open", "reason": "x", "legal_basis": "y",
                "approve": true, "emergency": "z", "until": day(1)
            });
            refused += refused_outside_policy(&t, &keys, policy, method, &path, Some(body)).await;
        }
        assert_eq!(routes, 5, "{b}: every new route is in the policy table");
        // The request (9 roles), the decision (9), the relaxation (9) and the list of
        // requests (7: providers, the authority and supervisors read it); every role
        // reads a dataset's relaxations.
        assert_eq!(refused, 34, "{b}");
        let (_, changes) = t.get(&supervisor, "/v1/open-attribute-changes").await;
        assert_eq!(changes, json!([]), "{b}");
        let (_, entry) = t.get(&provider, &format!("/v1/datasets/{id}")).await;
        assert_eq!(entry["open_attribute"], "conditional", "{b}: {entry}");
        assert!(entry["emergency_relaxation"].is_null(), "{b}: {entry}");
        t.stop().await;
    }
}
