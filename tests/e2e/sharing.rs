//! Data sharing between government departments over HTTP, on SQLite and PostgreSQL
//! (GD18; GD21 Art.22–23): a providing department asks for another provider's dataset
//! for its duty, and the dataset's share type decides — unconditional is granted at
//! once (even for data not open to developers), not shared is refused at once naming
//! the catalog's legal basis, conditional waits for the owning department, which
//! approves or refuses (with a reason) within 10 working days; a late decision shows on
//! the compliance report (time is simulated, as for late catalog reviews, by moving the
//! stored deadline back). While a share is active the requesting department downloads
//! the certified, de-identified version files, each download an `access` ledger entry
//! with the bytes and their hash; a revocation or the end of the term stops downloads.
//! Every request and decision is a `department_share` entry both departments read and
//! a third does not. Wrong states are 409s, wrong roles 403s, other organisations 404s,
//! bad input 422s, each leaving nothing written.

use pdx::auth::Role;
use pdx::http::policies::POLICIES;
use pdx::samples;
use pdx_sandbox::NewDataset;
use pdx_sandbox::catalog::{OpenAttribute, ShareType};
use pdx_sandbox::workdays::{Calendar, iso_date};
use serde_json::{Value, json};

use crate::catalog::{draft, register, upload_certified};
use crate::governance::{entries, late_items};
use crate::support::{TestServer, day, key_per_role, payload, post, refused_outside_policy, today};

const SHARES: &str = "/v1/share-requests";

/// The legal basis a not-shared test dataset records.
const NOT_SHARED_BASIS: &str = "Measures on Grid Security Data Art.9; GD21 Art.13";

/// The electricity entry with `share` and `open`, without data elements (so several
/// can be registered).
fn electricity(share: ShareType, open: OpenAttribute) -> NewDataset {
    let mut meta = samples::electricity_dataset();
    meta.elements = Vec::new();
    meta.share_type = share;
    meta.open_attribute = open;
    if share == ShareType::NotShared {
        meta.legal_basis = NOT_SHARED_BASIS.into();
    }
    meta
}

/// Registers and publishes the electricity entry with `share` and `open`, with one
/// certified version; returns its id.
async fn certified(
    t: &TestServer,
    provider: &str,
    share: ShareType,
    open: OpenAttribute,
) -> String {
    let id = register(
        t,
        provider,
        &serde_json::to_value(electricity(share, open)).unwrap(),
    )
    .await;
    let csv = samples::electricity_csv(crate::fhe::ROWS, crate::fhe::SEED);
    upload_certified(t, provider, &id, "?format=csv", csv.into_bytes()).await;
    id
}

/// A request body for `dataset`, through the `until` day.
fn request_body(dataset: &str, until: &str) -> Value {
    json!({
        "dataset_id": dataset,
        "purpose": "monitoring the power supply of hospitals during the heat season",
        "duty_legal_basis": "Basic Medical and Health Care Law Art.48",
        "until": until
    })
}

/// Files a share request as `key`; returns the request.
async fn request(t: &TestServer, key: &str, dataset: &str, until: &str) -> Value {
    let (s, share) = post(t, key, SHARES, request_body(dataset, until)).await;
    assert_eq!(s, 201, "{}: {share}", t.backend);
    share
}

/// A download under `share` as `key`: (status, body bytes, the `access` entry's seq).
async fn download(t: &TestServer, key: &str, share: &str) -> (u16, Vec<u8>, Option<u64>) {
    let resp = t
        .http
        .get(t.url(&format!("{SHARES}/{share}/download")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    if status == 200 {
        assert_eq!(ctype, "application/vnd.apache.parquet");
    } else {
        assert_eq!(ctype, "application/problem+json", "{status}");
    }
    let seq = resp
        .headers()
        .get("x-pdx-access-seq")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bytes = resp.bytes().await.unwrap().to_vec();
    (status, bytes, seq)
}

/// The problem detail of a refused download.
fn detail(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes).unwrap()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The certified content hash of a dataset version.
async fn content_hash(t: &TestServer, key: &str, dataset: &str, version: u64) -> String {
    let (s, v) = t
        .get(key, &format!("/v1/datasets/{dataset}/versions/{version}"))
        .await;
    assert_eq!(s, 200, "{v}");
    v["content_hash"].as_str().unwrap().to_string()
}

/// The `department_share` entries `key` may read about `share`, as (event, payload).
async fn share_events(t: &TestServer, key: &str, share: &str) -> Vec<(String, Value)> {
    entries(t, key, "department_share")
        .await
        .iter()
        .map(payload)
        .filter(|p| p["share_id"] == share)
        .map(|p| (p["event"].as_str().unwrap().to_string(), p))
        .collect()
}

fn events(list: &[(String, Value)]) -> Vec<&str> {
    list.iter().map(|(e, _)| e.as_str()).collect()
}

/// The late share decisions of a compliance report, as (share id, state).
fn late_shares(report: &Value) -> Vec<(String, String)> {
    late_items(report, "late_share_decisions", "share_id")
}

async fn compliance(t: &TestServer, supervisor: &str, as_of: Option<&str>) -> Value {
    let path = match as_of {
        Some(day) => format!("/v1/audit/compliance?as_of={day}"),
        None => "/v1/audit/compliance".to_string(),
    };
    let (s, report) = t.get(supervisor, &path).await;
    assert_eq!(s, 200, "{report}");
    report
}

#[tokio::test]
async fn an_unconditional_share_is_granted_at_once_and_downloaded_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (owner_org, owner) = t.key_for("power-bureau", "provider").await;
        let (health_org, health) = t.key_for("health-commission", "provider").await;
        let (_, third) = t.key_for("water-bureau", "provider").await;
        let (_, dev) = t.key_for("energy-analytics", "developer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let authority = t.authority().await.to_string();
        // Not open to developers, but shared unconditionally between departments: the
        // share type governs government sharing (GD18 Art.18), not the open attribute.
        let id = certified(&t, &owner, ShareType::Unconditional, OpenAttribute::NotOpen).await;
        let (s, p) = t
            .get(&dev, &format!("/v1/datasets/{id}/versions/1/download"))
            .await;
        assert_eq!(
            s, 403,
            "{b}: a developer does not download not-open data: {p}"
        );

        // Refusals first: nothing is written by any of them.
        let good = request_body(&id, &day(30));
        let mut without_basis = good.clone();
        without_basis
            .as_object_mut()
            .unwrap()
            .remove("duty_legal_basis");
        let mut blank_purpose = good.clone();
        blank_purpose["purpose"] = json!("   ");
        let mut past = good.clone();
        past["until"] = json!(day(-1));
        let mut too_far = good.clone();
        too_far["until"] = json!(day(1200));
        let mut not_a_day = good.clone();
        not_a_day["until"] = json!("31/12/2026");
        let mut extra = good.clone();
        extra["status"] = json!("granted");
        let mut unknown = good.clone();
        unknown["dataset_id"] = json!("ds_0123456789abcdef");
        let mut malformed = good.clone();
        malformed["dataset_id"] = json!("not a dataset");
        let drafted = draft(
            &t,
            &owner,
            &serde_json::to_value(electricity(
                ShareType::Unconditional,
                OpenAttribute::Conditional,
            ))
            .unwrap(),
        )
        .await;
        let unpublished = request_body(&drafted, &day(30));
        for (what, key, body, want) in [
            ("no duty legal basis", &health, without_basis, 422),
            ("a blank purpose", &health, blank_purpose, 422),
            ("a term in the past", &health, past, 422),
            ("a term beyond three years", &health, too_far, 422),
            ("a malformed day", &health, not_a_day, 422),
            ("an unknown field", &health, extra, 422),
            ("a malformed dataset id", &health, malformed, 422),
            ("an absent dataset", &health, unknown, 404),
            ("an unpublished dataset", &health, unpublished, 404),
            ("its own dataset", &owner, good.clone(), 422),
            ("a developer", &dev, good.clone(), 403),
            ("the data authority", &authority, good.clone(), 403),
            ("a supervisor", &supervisor, good.clone(), 403),
        ] {
            let (s, p) = post(&t, key, SHARES, body).await;
            assert_eq!(s, want, "{b}: {what}: {p}");
        }
        let (_, all) = t.get(&supervisor, SHARES).await;
        assert_eq!(all, json!([]), "{b}: refusals leave nothing");
        assert!(
            entries(&t, &supervisor, "department_share")
                .await
                .is_empty()
        );

        // Granted at once by the platform under the share type.
        let share = request(&t, &health, &id, &day(30)).await;
        let sid = share["id"].as_str().unwrap().to_string();
        assert!(sid.starts_with("shr_"), "{b}: {share}");
        assert_eq!(share["status"], "granted", "{b}: {share}");
        assert_eq!(share["active"], true, "{b}: {share}");
        assert_eq!(share["automatic"], true, "{b}: {share}");
        assert_eq!(share["share_type"], "unconditional");
        assert_eq!(share["owner_org"], owner_org.as_str());
        assert_eq!(share["requester_org"], health_org.as_str());
        assert_eq!(share["until"], day(30).as_str());
        assert!(share["answer_deadline"].is_null(), "{b}: {share}");
        assert!(share["decision_seq"].as_u64().is_some(), "{b}: {share}");
        assert_eq!(share["downloads"], 0);
        // A second request while the share is active is a conflict; deciding one the
        // share type decided is too.
        let (s, p) = post(&t, &health, SHARES, request_body(&id, &day(10))).await;
        assert_eq!(s, 409, "{b}: {p}");
        let (s, p) = post(
            &t,
            &owner,
            &format!("{SHARES}/{sid}/decision"),
            json!({"approve": false, "reason": "no"}),
        )
        .await;
        assert_eq!(s, 409, "{b}: {p}");
        assert!(
            p["detail"].as_str().unwrap().contains("at once"),
            "{b}: {p}"
        );

        // The requesting department downloads the certified, de-identified file.
        let (s, bytes, seq) = download(&t, &health, &sid).await;
        assert_eq!(s, 200, "{b}: {}", String::from_utf8_lossy(&bytes));
        let certified_hash = content_hash(&t, &owner, &id, 1).await;
        assert_eq!(
            hex::encode(blake3::hash(&bytes).as_bytes()),
            certified_hash,
            "{b}: the bytes are the certified version's"
        );
        let seq = seq.expect("the access entry's seq");
        // Its access entry: both departments read it, a third does not.
        let (s, entry) = t.get(&health, &format!("/v1/ledger/entries/{seq}")).await;
        assert_eq!(s, 200, "{b}: {entry}");
        assert_eq!(entry["kind"], "department_share", "{b}: {entry}");
        let access = payload(&entry);
        assert_eq!(access["event"], "access", "{b}: {access}");
        assert_eq!(access["share_id"], sid.as_str());
        assert_eq!(access["version"], 1);
        assert_eq!(access["bytes"], bytes.len() as u64, "{b}: {access}");
        assert_eq!(access["content_hash"], certified_hash.as_str());
        assert_eq!(access["purpose"], good["purpose"], "{b}: {access}");
        assert_eq!(
            t.get(&owner, &format!("/v1/ledger/entries/{seq}")).await.0,
            200
        );
        assert_eq!(
            t.get(&third, &format!("/v1/ledger/entries/{seq}")).await.0,
            404,
            "{b}"
        );
        for key in [&health, &owner, &supervisor] {
            assert_eq!(
                events(&share_events(&t, key, &sid).await),
                ["requested", "granted", "access"],
                "{b}"
            );
        }
        assert!(share_events(&t, &third, &sid).await.is_empty(), "{b}");
        let seen = share_events(&t, &supervisor, &sid).await;
        let granted = &seen[1].1;
        assert_eq!(granted["automatic"], true, "{b}: {granted}");
        assert_eq!(
            granted["request_seq"], share["request_seq"],
            "{b}: {granted}"
        );

        // Only the requesting department downloads; a third is told nothing exists.
        let (s, bytes, _) = download(&t, &owner, &sid).await;
        assert_eq!(s, 403, "{b}: {}", detail(&bytes));
        let (s, _, _) = download(&t, &third, &sid).await;
        assert_eq!(s, 404, "{b}");
        let (s, _, _) = download(&t, &dev, &sid).await;
        assert_eq!(s, 403, "{b}");
        let (s, _, _) = download(&t, &health, "shr_0123456789abcdef").await;
        assert_eq!(s, 404, "{b}");

        // Both departments, the authority and supervisors read the share.
        for key in [&health, &owner, &authority, &supervisor] {
            let (s, read) = t.get(key, &format!("{SHARES}/{sid}")).await;
            assert_eq!(s, 200, "{b}: {read}");
            assert_eq!(read["downloads"], 1, "{b}: {read}");
        }
        assert_eq!(t.get(&third, &format!("{SHARES}/{sid}")).await.0, 404);
        assert_eq!(t.get(&dev, &format!("{SHARES}/{sid}")).await.0, 403);
        assert_eq!(t.get(&third, "/v1/share-requests/not-an-id").await.0, 404);
        let (_, mine) = t.get(&owner, SHARES).await;
        assert_eq!(mine.as_array().unwrap().len(), 1, "{b}: {mine}");
        let (_, theirs) = t.get(&third, SHARES).await;
        assert_eq!(theirs, json!([]), "{b}");
        let (_, granted) = t.get(&health, &format!("{SHARES}?status=granted")).await;
        assert_eq!(granted.as_array().unwrap().len(), 1, "{b}: {granted}");
        let (_, pending) = t.get(&health, &format!("{SHARES}?status=pending")).await;
        assert_eq!(pending, json!([]), "{b}");

        // A suspended department downloads nothing, even under an active share (XT
        // Art.33).
        let (s, p) = post(
            &t,
            &supervisor,
            "/v1/audit/suspensions",
            json!({"org_id": health_org, "action": "suspend", "reason": "data used beyond the shared purpose"}),
        )
        .await;
        assert_eq!(s, 201, "{b}: {p}");
        let (s, bytes, _) = download(&t, &health, &sid).await;
        assert_eq!(s, 403, "{b}");
        assert!(
            detail(&bytes).contains("suspended"),
            "{b}: {}",
            detail(&bytes)
        );
        let (_, read) = t.get(&owner, &format!("{SHARES}/{sid}")).await;
        assert_eq!(read["downloads"], 1, "{b}: {read}");
        t.stop().await;
    }
}

#[tokio::test]
async fn conditional_shares_are_decided_by_the_owner_within_ten_working_days_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (owner_org, owner) = t.key_for("power-bureau", "provider").await;
        let (_, health) = t.key_for("health-commission", "provider").await;
        let (transport_org, transport) = t.key_for("transport-bureau", "provider").await;
        let (_, emergency) = t.key_for("emergency-management", "provider").await;
        let (_, third) = t.key_for("water-bureau", "provider").await;
        let (_, dev) = t.key_for("energy-analytics", "developer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let authority = t.authority().await.to_string();
        let id = certified(
            &t,
            &owner,
            ShareType::Conditional,
            OpenAttribute::Conditional,
        )
        .await;

        // Approved on time, then downloadable.
        let before = pdx_ledger::db::now_ms();
        let share = request(&t, &health, &id, &day(60)).await;
        let after = pdx_ledger::db::now_ms();
        let sid = share["id"].as_str().unwrap().to_string();
        assert_eq!(share["status"], "pending", "{b}: {share}");
        assert_eq!(share["active"], false);
        assert_eq!(share["automatic"], false);
        assert_eq!(share["overdue"], false);
        let calendar = Calendar::default();
        let window = [
            iso_date(calendar.deadline_from_ms(before, 10)),
            iso_date(calendar.deadline_from_ms(after, 10)),
        ];
        let deadline = share["answer_deadline"].as_str().unwrap().to_string();
        assert!(window.contains(&deadline), "{b}: 10 working days: {share}");
        let (s, bytes, _) = download(&t, &health, &sid).await;
        assert_eq!(s, 403, "{b}: pending: {}", detail(&bytes));
        let decision = format!("{SHARES}/{sid}/decision");
        for (what, key, body, want) in [
            (
                "a refusal without a reason",
                &owner,
                json!({"approve": false}),
                422,
            ),
            (
                "a blank reason",
                &owner,
                json!({"approve": false, "reason": " "}),
                422,
            ),
            (
                "an unknown field",
                &owner,
                json!({"approve": true, "until": "x"}),
                422,
            ),
            (
                "the requesting department",
                &health,
                json!({"approve": true}),
                403,
            ),
            ("another department", &third, json!({"approve": true}), 404),
            ("a developer", &dev, json!({"approve": true}), 403),
            (
                "the data authority",
                &authority,
                json!({"approve": true}),
                403,
            ),
            ("a supervisor", &supervisor, json!({"approve": true}), 403),
        ] {
            let (s, p) = post(&t, key, &decision, body).await;
            assert_eq!(s, want, "{b}: {what}: {p}");
        }
        let (_, still) = t.get(&owner, &format!("{SHARES}/{sid}")).await;
        assert_eq!(
            still["status"], "pending",
            "{b}: refusals change nothing: {still}"
        );
        assert_eq!(events(&share_events(&t, &owner, &sid).await), ["requested"]);
        let (_, queue) = t.get(&owner, &format!("{SHARES}?status=pending")).await;
        assert_eq!(
            queue[0]["id"],
            sid.as_str(),
            "{b}: the owner's queue: {queue}"
        );

        let (s, approved) = post(&t, &owner, &decision, json!({"approve": true})).await;
        assert_eq!(s, 200, "{b}: {approved}");
        assert_eq!(approved["status"], "granted", "{b}: {approved}");
        assert_eq!(approved["active"], true);
        assert_eq!(approved["decision_late"], false);
        assert_eq!(approved["decided_by_org"], owner_org.as_str());
        let (s, p) = post(&t, &owner, &decision, json!({"approve": true})).await;
        assert_eq!(s, 409, "{b}: deciding twice: {p}");
        let (s, bytes, seq) = download(&t, &health, &sid).await;
        assert_eq!(s, 200, "{b}: {}", String::from_utf8_lossy(&bytes));
        assert_eq!(
            hex::encode(blake3::hash(&bytes).as_bytes()),
            content_hash(&t, &owner, &id, 1).await
        );
        assert!(seq.is_some());
        let seen = share_events(&t, &health, &sid).await;
        assert_eq!(events(&seen), ["requested", "granted", "access"], "{b}");
        assert_eq!(seen[1].1["late"], false, "{b}: {:?}", seen[1]);
        assert_eq!(seen[1].1["automatic"], false);
        let report = compliance(&t, &supervisor, None).await;
        assert!(late_shares(&report).is_empty(), "{b}: on time: {report}");

        // Refused with a reason: nothing to download.
        let refused = request(&t, &transport, &id, &day(60)).await;
        let rid = refused["id"].as_str().unwrap().to_string();
        let reason = "the duty stated does not need enterprise-level consumption";
        let (s, out) = post(
            &t,
            &owner,
            &format!("{SHARES}/{rid}/decision"),
            json!({"approve": false, "reason": reason}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {out}");
        assert_eq!(out["status"], "refused", "{b}: {out}");
        assert_eq!(out["decision_reason"], reason);
        let (s, bytes, _) = download(&t, &transport, &rid).await;
        assert_eq!(s, 403, "{b}: {}", detail(&bytes));
        assert!(detail(&bytes).contains("refused"), "{b}");
        let seen = share_events(&t, &transport, &rid).await;
        assert_eq!(events(&seen), ["requested", "refused"], "{b}");
        assert_eq!(seen[1].1["reason"], reason);
        assert_eq!(seen[1].1["requester_org"], transport_org.as_str());
        assert!(share_events(&t, &health, &rid).await.is_empty(), "{b}");
        let (s, p) = post(
            &t,
            &owner,
            &format!("{SHARES}/{rid}/revoke"),
            json!({"reason": "x"}),
        )
        .await;
        assert_eq!(s, 409, "{b}: a refused share is not revoked: {p}");

        // Decided late: pending past its deadline, then approved late; both show on
        // the compliance report.
        let late = request(&t, &emergency, &id, &day(60)).await;
        let lid = late["id"].as_str().unwrap().to_string();
        let due = late["answer_deadline"].as_str().unwrap().to_string();
        let on_due = compliance(&t, &supervisor, Some(&due)).await;
        assert!(late_shares(&on_due).is_empty(), "{b}: {on_due}");
        let next = iso_date(
            time::Date::parse(
                &due,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .unwrap()
            .next_day()
            .unwrap(),
        );
        let past = compliance(&t, &supervisor, Some(&next)).await;
        assert_eq!(
            late_shares(&past),
            [(lid.clone(), "pending".to_string())],
            "{b}: {past}"
        );
        assert_eq!(past["clean"], false);
        // The deadline moved back, as time would.
        sqlx::query("UPDATE share_requests SET answer_deadline = '2020-01-06' WHERE id = $1")
            .bind(lid.clone())
            .execute(t.app.db.pool())
            .await
            .unwrap();
        let (_, overdue) = t.get(&owner, &format!("{SHARES}/{lid}")).await;
        assert_eq!(overdue["overdue"], true, "{b}: {overdue}");
        let now = compliance(&t, &supervisor, None).await;
        assert_eq!(
            late_shares(&now),
            [(lid.clone(), "pending".to_string())],
            "{b}: {now}"
        );
        let (s, approved) = post(
            &t,
            &owner,
            &format!("{SHARES}/{lid}/decision"),
            json!({"approve": true}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {approved}");
        assert_eq!(approved["decision_late"], true, "{b}: {approved}");
        assert_eq!(approved["overdue"], false);
        let seen = share_events(&t, &supervisor, &lid).await;
        assert_eq!(seen[1].0, "granted");
        assert_eq!(seen[1].1["late"], true, "{b}: {:?}", seen[1]);
        let now = compliance(&t, &supervisor, None).await;
        assert_eq!(
            late_shares(&now),
            [(lid.clone(), "answered_late".to_string())],
            "{b}: {now}"
        );
        let item = &now["late_share_decisions"][0];
        assert_eq!(item["decision"], "granted", "{b}: {item}");
        assert_eq!(item["answer_deadline"], "2020-01-06");
        assert_eq!(
            item["answered_on"],
            iso_date(today()).as_str(),
            "{b}: {item}"
        );
        assert_eq!(item["owner_org"], owner_org.as_str());
        assert_eq!(item["request_seq"], late["request_seq"], "{b}: {item}");
        t.stop().await;
    }
}

#[tokio::test]
async fn a_not_shared_dataset_is_refused_at_once_with_its_legal_basis_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, owner) = t.key_for("power-bureau", "provider").await;
        let (_, health) = t.key_for("health-commission", "provider").await;
        let (_, third) = t.key_for("water-bureau", "provider").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let id = certified(&t, &owner, ShareType::NotShared, OpenAttribute::Conditional).await;

        let share = request(&t, &health, &id, &day(30)).await;
        let sid = share["id"].as_str().unwrap().to_string();
        assert_eq!(share["status"], "refused", "{b}: {share}");
        assert_eq!(share["automatic"], true);
        assert_eq!(share["active"], false);
        assert_eq!(
            share["dataset_legal_basis"], NOT_SHARED_BASIS,
            "{b}: {share}"
        );
        let reason = share["decision_reason"].as_str().unwrap();
        assert!(reason.contains(NOT_SHARED_BASIS), "{b}: {reason}");
        assert!(reason.contains("不予共享"), "{b}: {reason}");
        let (s, bytes, _) = download(&t, &health, &sid).await;
        assert_eq!(s, 403, "{b}: {}", detail(&bytes));
        for (path, body) in [
            ("decision", json!({"approve": true})),
            ("revoke", json!({"reason": "x"})),
        ] {
            let (s, p) = post(&t, &owner, &format!("{SHARES}/{sid}/{path}"), body).await;
            assert_eq!(s, 409, "{b}: {path}: {p}");
        }
        let seen = share_events(&t, &owner, &sid).await;
        assert_eq!(events(&seen), ["requested", "refused"], "{b}");
        assert_eq!(seen[1].1["dataset_legal_basis"], NOT_SHARED_BASIS);
        assert_eq!(seen[1].1["automatic"], true);
        let refusal = entries(&t, &supervisor, "department_share").await;
        assert_eq!(
            refusal[1]["actor"]["org"], "pdx",
            "{b}: the platform refused"
        );
        assert_eq!(share_events(&t, &health, &sid).await.len(), 2, "{b}");
        assert!(share_events(&t, &third, &sid).await.is_empty(), "{b}");
        t.stop().await;
    }
}

#[tokio::test]
async fn revocation_and_the_end_of_the_term_stop_downloads_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, owner) = t.key_for("power-bureau", "provider").await;
        let (_, health) = t.key_for("health-commission", "provider").await;
        let (_, third) = t.key_for("water-bureau", "provider").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let id = certified(
            &t,
            &owner,
            ShareType::Unconditional,
            OpenAttribute::Conditional,
        )
        .await;

        // Revoked by its owner, with a reason: downloads stop.
        let share = request(&t, &health, &id, &iso_date(today())).await;
        let sid = share["id"].as_str().unwrap().to_string();
        assert_eq!(
            share["status"], "granted",
            "{b}: a share through today: {share}"
        );
        assert_eq!(download(&t, &health, &sid).await.0, 200, "{b}");
        let revoke = format!("{SHARES}/{sid}/revoke");
        for (what, key, body, want) in [
            ("no reason", &owner, json!({}), 422),
            ("a blank reason", &owner, json!({"reason": ""}), 422),
            (
                "the requesting department",
                &health,
                json!({"reason": "r"}),
                403,
            ),
            ("another department", &third, json!({"reason": "r"}), 404),
            ("a supervisor", &supervisor, json!({"reason": "r"}), 403),
        ] {
            let (s, p) = post(&t, key, &revoke, body).await;
            assert_eq!(s, want, "{b}: {what}: {p}");
        }
        assert_eq!(
            download(&t, &health, &sid).await.0,
            200,
            "{b}: still active"
        );
        let reason = "the heat-season monitoring has ended";
        let (s, revoked) = post(&t, &owner, &revoke, json!({"reason": reason})).await;
        assert_eq!(s, 200, "{b}: {revoked}");
        assert_eq!(revoked["status"], "revoked", "{b}: {revoked}");
        assert_eq!(revoked["active"], false);
        assert_eq!(revoked["revoke_reason"], reason);
        assert_eq!(revoked["downloads"], 2);
        let (s, bytes, _) = download(&t, &health, &sid).await;
        assert_eq!(s, 403, "{b}");
        assert!(
            detail(&bytes).contains("revoked"),
            "{b}: {}",
            detail(&bytes)
        );
        let (s, p) = post(&t, &owner, &revoke, json!({"reason": reason})).await;
        assert_eq!(s, 409, "{b}: revoking twice: {p}");
        let seen = share_events(&t, &health, &sid).await;
        assert_eq!(
            events(&seen),
            ["requested", "granted", "access", "access", "revoked"],
            "{b}"
        );
        assert_eq!(seen[4].1["reason"], reason);
        let (_, read) = t.get(&health, &format!("{SHARES}/{sid}")).await;
        assert_eq!(
            read["downloads"], 2,
            "{b}: a refused download is not counted"
        );

        // A new share (the revoked one no longer blocks it) ends with its term.
        let again = request(&t, &health, &id, &day(3)).await;
        let aid = again["id"].as_str().unwrap().to_string();
        assert_eq!(again["status"], "granted", "{b}: {again}");
        assert_eq!(download(&t, &health, &aid).await.0, 200, "{b}");
        // Its term moved back, as time would: it ended at 00:00 UTC on 2020-01-07.
        sqlx::query(
            "UPDATE share_requests SET until_day = '2020-01-06', ends_ms = 1578355200000 \
             WHERE id = $1",
        )
        .bind(aid.clone())
        .execute(t.app.db.pool())
        .await
        .unwrap();
        let (_, ended) = t.get(&health, &format!("{SHARES}/{aid}")).await;
        assert_eq!(ended["status"], "expired", "{b}: {ended}");
        assert_eq!(ended["active"], false);
        let (s, bytes, _) = download(&t, &health, &aid).await;
        assert_eq!(s, 403, "{b}");
        assert!(detail(&bytes).contains("term"), "{b}: {}", detail(&bytes));
        let (s, p) = post(
            &t,
            &owner,
            &format!("{SHARES}/{aid}/revoke"),
            json!({"reason": "r"}),
        )
        .await;
        assert_eq!(s, 409, "{b}: an ended share is not revoked: {p}");
        let (_, expired) = t.get(&owner, &format!("{SHARES}?status=expired")).await;
        assert_eq!(expired[0]["id"], aid.as_str(), "{b}: {expired}");
        assert_eq!(expired.as_array().unwrap().len(), 1, "{b}: {expired}");
        t.stop().await;
    }
}

#[tokio::test]
async fn share_routes_refuse_every_other_role_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let keys = key_per_role(&t, "org").await;
        let mut refused = 0;
        let mut routes = 0;
        for (method, route, policy) in POLICIES {
            if !route.starts_with(SHARES) {
                continue;
            }
            routes += 1;
            let path = route.replace("{id}", "shr_0123456789abcdef");
            let body = json!({
                "dataset_id": "ds_0123456789abcdef", "purpose": "p",
                "duty_legal_basis": "b", "until": day(1),
                "approve": true, "reason": "r"
            });
            refused += refused_outside_policy(&t, &keys, policy, method, &path, Some(body)).await;
        }
        assert_eq!(routes, 6, "{b}: every share route is in the policy table");
        // Four routes are the providers' alone; the list and a share are read by
        // providers, the data authority and supervisors too.
        let n = Role::ALL.len();
        assert_eq!(refused, 4 * (n - 1) + 2 * (n - 3), "{b}");
        let (_, supervisor) = &keys[keys
            .iter()
            .position(|(r, _)| *r == Role::Supervisor)
            .unwrap()];
        let (_, all) = t.get(supervisor, SHARES).await;
        assert_eq!(all, json!([]), "{b}: nothing written");
        t.stop().await;
    }
}
