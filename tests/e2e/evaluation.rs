//! The data quality loop, the data authority's evaluations and its rectification
//! orders over HTTP, on SQLite and PostgreSQL:
//!
//! - an accepted objection obliges a corrected version within 10 working days (SD22
//!   Art.13; XT Art.21–22): the provider names it when uploading the version
//!   (`?corrects=`), the link shows on the objection, the version and its certificate
//!   and on the ledger; a correction on time stays off the compliance report, a late
//!   one (time simulated by moving the stored deadline back) is on it, pending and then
//!   corrected late; bad links are 4xx problems that leave nothing written;
//! - update frequencies are six words (GD21 Art.16; XT Art.20), anything else a 422,
//!   and a published dataset whose next version is overdue is on the report until one
//!   comes;
//! - the yearly evaluation (GD21 Art.48–49; GD18 Art.30; SD22 Art.5) counts what the
//!   test did, each indicator checked against a hand count, and is public;
//! - a rectification order (GD21 Art.52; GD18 Art.31) is issued, shows on the report,
//!   is answered and closed, and leaves the report; overdue orders are marked.
//!
//! Wrong roles are 403s, other organisations 404s, wrong states 409s.

use pdx::auth::Role;
use pdx::http::policies::POLICIES;
use pdx::samples;
use pdx_sandbox::workdays::{Calendar, iso_date};
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{draft, register, upload, upload_certified};
use crate::governance::{compliance_as_of, entries, late_items};
use crate::sandbox::{apply, approve};
use crate::support::{
    TestServer, iso_plus, key_per_role, parse_day, payload, post, refused_outside_policy, today,
};

/// The electricity entry with these data elements and update frequency.
fn electricity(elements: &[&str], frequency: &str) -> Value {
    let mut meta = samples::electricity_dataset();
    meta.elements = elements.iter().map(|e| e.to_string()).collect();
    meta.update_frequency = frequency.into();
    serde_json::to_value(meta).unwrap()
}

/// Uploads a version of `dataset` (naming `corrects` when given) and waits for its
/// certification; returns the finished job.
async fn certify(t: &TestServer, provider: &str, dataset: &str, corrects: &[&str]) -> Value {
    let query = if corrects.is_empty() {
        "?format=csv".to_string()
    } else {
        format!("?format=csv&corrects={}", corrects.join(","))
    };
    let csv = samples::electricity_csv(600, 11);
    upload_certified(t, provider, dataset, &query, csv.into_bytes()).await
}

/// Files an objection to version 1 of `dataset`; returns its id.
async fn object(t: &TestServer, key: &str, dataset: &str) -> String {
    let (s, o) = post(
        t,
        key,
        "/v1/objections",
        json!({
            "dataset_id": dataset,
            "version": 1,
            "ground": "error",
            "detail": "the Futian totals of March are doubled"
        }),
    )
    .await;
    assert_eq!(s, 201, "{}: {o}", t.backend);
    o["id"].as_str().unwrap().to_string()
}

/// The provider answers an objection; returns the objection.
async fn answer(t: &TestServer, provider: &str, objection: &str, outcome: &str) -> Value {
    let (s, o) = post(
        t,
        provider,
        &format!("/v1/objections/{objection}/answer"),
        json!({"outcome": outcome, "answer": "checked against the meter readings"}),
    )
    .await;
    assert_eq!(s, 200, "{}: {o}", t.backend);
    o
}

/// Runs one statement that moves a stored date or time, as time would.
async fn shift(t: &TestServer, sql: &'static str, value: Value, id: &str) {
    let query = sqlx::query(sql);
    let query = match value {
        Value::String(text) => query.bind(text),
        other => query.bind(other.as_i64().unwrap()),
    };
    let done = query
        .bind(id.to_string())
        .execute(t.app.db.pool())
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1, "{sql}");
}

/// Noon UTC of a day, ms since epoch.
fn noon_ms(day: &str) -> i64 {
    let midnight = parse_day(day)
        .midnight()
        .assume_utc()
        .unix_timestamp_nanos()
        / 1_000_000;
    i64::try_from(midnight).unwrap() + 12 * 3_600_000
}

/// The compliance report now.
async fn compliance(t: &TestServer, supervisor: &str) -> Value {
    let (s, report) = t.get(supervisor, "/v1/audit/compliance").await;
    assert_eq!(s, 200, "{}: {report}", t.backend);
    report
}

/// The late corrections of a report, as (objection id, state).
fn late_corrections(report: &Value) -> Vec<(String, String)> {
    late_items(report, "late_corrections", "objection_id")
}

/// The datasets whose next version is overdue on a report.
fn overdue_updates(report: &Value) -> Vec<String> {
    report["overdue_updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["dataset_id"].as_str().unwrap().to_string())
        .collect()
}

/// The open rectification orders of a report, as (order id, overdue).
fn open_orders(report: &Value) -> Vec<(String, bool)> {
    report["open_rectifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["order_id"].as_str().unwrap().to_string(),
                o["overdue"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The deadline of a correction accepted now: 10 working days (either side of a
/// midnight that falls during the request).
fn correction_due_window(before_ms: i64, after_ms: i64) -> [String; 2] {
    let calendar = Calendar::default();
    [
        iso_date(calendar.deadline_from_ms(before_ms, 10)),
        iso_date(calendar.deadline_from_ms(after_ms, 10)),
    ]
}

#[tokio::test]
async fn an_accepted_objection_is_corrected_on_time_or_late_and_the_late_one_is_reported_on_both_backends()
 {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("power-bureau", "provider").await;
        let (_, other_provider) = t.key_for("water-bureau", "provider").await;
        let (dev_org, dev) = t.key_for("energy-analytics", "developer").await;
        let (_, other_dev) = t.key_for("grid-analytics", "developer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let dataset = register(&t, &provider, &electricity(&["utilities.q_a"], "monthly")).await;
        let sibling = register(&t, &provider, &electricity(&["utilities.q_b"], "monthly")).await;
        let foreign = register(
            &t,
            &other_provider,
            &electricity(&["utilities.q_c"], "monthly"),
        )
        .await;
        for (key, id) in [
            (&provider, &dataset),
            (&provider, &sibling),
            (&other_provider, &foreign),
        ] {
            certify(&t, key, id, &[]).await;
        }

        // Accepting an objection sets its correction deadline: 10 working days.
        let o1 = object(&t, &dev, &dataset).await;
        let before = pdx_ledger::db::now_ms();
        let accepted = answer(&t, &provider, &o1, "accepted").await;
        let window = correction_due_window(before, pdx_ledger::db::now_ms());
        let correction = &accepted["correction"];
        let due = correction["correction_due"].as_str().unwrap().to_string();
        assert!(window.contains(&due), "{b}: {due} not in {window:?}");
        assert_eq!(correction["status"], "pending", "{b}: {accepted}");
        assert_eq!(correction["overdue"], false, "{b}: {accepted}");
        assert!(correction["version"].is_null(), "{b}: {accepted}");
        // The objector sees it too.
        let (_, seen) = t.get(&dev, &format!("/v1/objections/{o1}")).await;
        assert_eq!(seen["correction"]["correction_due"], due.as_str(), "{b}");
        // Off the report on its deadline, on it (pending) from the day after.
        let on_due = compliance_as_of(&t, &supervisor, &due).await;
        assert!(late_corrections(&on_due).is_empty(), "{b}: {on_due}");
        let past = compliance_as_of(&t, &supervisor, &iso_plus(&due, 1)).await;
        assert_eq!(
            late_corrections(&past),
            [(o1.clone(), "pending".to_string())],
            "{b}: {past}"
        );
        assert_eq!(past["clean"], false, "{b}");

        // Bad links are refused before anything is written.
        let open = object(&t, &other_dev, &dataset).await;
        let rejected = object(&t, &other_dev, &dataset).await;
        answer(&t, &provider, &rejected, "rejected").await;
        let of_sibling = {
            let (s, o) = post(
                &t,
                &dev,
                "/v1/objections",
                json!({"dataset_id": sibling, "version": 1, "ground": "omission",
                       "detail": "the Luohu enterprises are missing"}),
            )
            .await;
            assert_eq!(s, 201, "{b}: {o}");
            let id = o["id"].as_str().unwrap().to_string();
            answer(&t, &provider, &id, "accepted").await;
            id
        };
        let of_foreign = {
            let (s, o) = post(
                &t,
                &dev,
                "/v1/objections",
                json!({"dataset_id": foreign, "version": 1, "ground": "error",
                       "detail": "the water totals are wrong"}),
            )
            .await;
            assert_eq!(s, 201, "{b}: {o}");
            o["id"].as_str().unwrap().to_string()
        };
        let csv = samples::electricity_csv(600, 11).into_bytes();
        for (what, key, corrects, want) in [
            ("an open objection", &provider, open.as_str(), 409),
            ("a rejected objection", &provider, rejected.as_str(), 409),
            (
                "another dataset's objection",
                &provider,
                of_sibling.as_str(),
                422,
            ),
            (
                "another provider's objection",
                &provider,
                of_foreign.as_str(),
                404,
            ),
            (
                "an unknown objection",
                &provider,
                "obj_0123456789abcdef",
                404,
            ),
            ("a malformed id", &provider, "not-an-objection", 422),
            ("another provider", &other_provider, o1.as_str(), 404),
            ("a developer", &dev, o1.as_str(), 403),
        ] {
            let query = format!("?format=csv&corrects={o1},{corrects}");
            let (s, p) = upload(&t, key, &dataset, &query, csv.clone()).await;
            assert_eq!(s, want, "{b}: {what}: {p}");
        }
        let (_, versions) = t
            .get(&provider, &format!("/v1/datasets/{dataset}/versions"))
            .await;
        assert_eq!(versions.as_array().unwrap().len(), 1, "{b}: {versions}");
        let (_, still) = t.get(&provider, &format!("/v1/objections/{o1}")).await;
        assert_eq!(still["correction"]["status"], "pending", "{b}: {still}");

        // Version 2 corrects it, on time: linked on the objection, the version, the
        // certificate and the ledger, and off the report whatever the date.
        certify(&t, &provider, &dataset, &[o1.as_str()]).await;
        let (_, v2) = t
            .get(&dev, &format!("/v1/datasets/{dataset}/versions/2"))
            .await;
        let (_, corrected) = t.get(&dev, &format!("/v1/objections/{o1}")).await;
        let correction = &corrected["correction"];
        assert_eq!(correction["status"], "corrected", "{b}: {corrected}");
        assert_eq!(correction["version"], 2, "{b}: {corrected}");
        assert_eq!(correction["certificate_no"], v2["certificate_no"], "{b}");
        assert_eq!(correction["corrected_late"], false, "{b}");
        assert_eq!(correction["overdue"], false, "{b}");
        let link = json!([{
            "objection_id": o1,
            "correction_due": due,
            "corrected_late": false,
            "correction_seq": correction["correction_seq"],
        }]);
        assert_eq!(v2["corrects"], link, "{b}: {v2}");
        let (_, certificate) = t
            .get(
                &dev,
                &format!("/v1/datasets/{dataset}/versions/2/certificate"),
            )
            .await;
        assert_eq!(certificate["corrects"], link, "{b}: {certificate}");
        let (_, v1) = t
            .get(&dev, &format!("/v1/datasets/{dataset}/versions/1"))
            .await;
        assert_eq!(v1["corrects"], json!([]), "{b}: {v1}");
        let seq = correction["correction_seq"].as_u64().unwrap();
        let (s, entry) = t.get(&dev, &format!("/v1/ledger/entries/{seq}")).await;
        assert_eq!(s, 200, "{b}: the objector reads the link: {entry}");
        assert_eq!(entry["kind"], "objection_answer", "{b}");
        let link_entry = payload(&entry);
        assert_eq!(link_entry["step"], "corrected", "{b}: {link_entry}");
        assert_eq!(link_entry["objection_id"], o1.as_str());
        assert_eq!(link_entry["objector_org"], dev_org.as_str());
        assert_eq!(link_entry["version"], 2);
        assert_eq!(link_entry["certificate_no"], v2["certificate_no"]);
        assert_eq!(link_entry["certificate_seq"], v2["certificate_seq"]);
        assert_eq!(link_entry["correction_due"], due.as_str());
        assert_eq!(link_entry["late"], false);
        assert_eq!(
            t.get(&other_dev, &format!("/v1/ledger/entries/{seq}"))
                .await
                .0,
            404,
            "{b}: a stranger does not"
        );
        let past = compliance_as_of(&t, &supervisor, &iso_plus(&due, 30)).await;
        assert!(
            !late_corrections(&past).iter().any(|(id, _)| *id == o1),
            "{b}: {past}"
        );
        // Corrected once: naming it again is a conflict.
        let (s, p) = upload(
            &t,
            &provider,
            &dataset,
            &format!("?format=csv&corrects={o1}"),
            csv.clone(),
        )
        .await;
        assert_eq!(s, 409, "{b}: {p}");

        // Another accepted objection whose deadline has passed (moved back, as time
        // would): overdue now, then corrected late by version 3, and on the report both
        // times.
        let o4 = object(&t, &other_dev, &dataset).await;
        answer(&t, &provider, &o4, "accepted").await;
        shift(
            &t,
            "UPDATE correction_duties SET correction_due = $1 WHERE objection_id = $2",
            json!("2020-01-06"),
            &o4,
        )
        .await;
        let (_, overdue) = t.get(&other_dev, &format!("/v1/objections/{o4}")).await;
        assert_eq!(overdue["correction"]["overdue"], true, "{b}: {overdue}");
        let now = compliance(&t, &supervisor).await;
        assert!(
            late_corrections(&now).contains(&(o4.clone(), "pending".to_string())),
            "{b}: {now}"
        );
        certify(&t, &provider, &dataset, &[o4.as_str()]).await;
        let (_, late) = t.get(&other_dev, &format!("/v1/objections/{o4}")).await;
        assert_eq!(late["correction"]["version"], 3, "{b}: {late}");
        assert_eq!(late["correction"]["corrected_late"], true, "{b}: {late}");
        assert_eq!(late["correction"]["overdue"], false, "{b}: {late}");
        let now = compliance(&t, &supervisor).await;
        let item = now["late_corrections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["objection_id"] == o4.as_str())
            .unwrap()
            .clone();
        assert_eq!(item["state"], "corrected_late", "{b}: {item}");
        assert_eq!(item["version"], 3, "{b}: {item}");
        assert_eq!(item["correction_due"], "2020-01-06", "{b}: {item}");
        assert_eq!(
            item["corrected_on"],
            iso_date(today()).as_str(),
            "{b}: {item}"
        );
        let links: Vec<Value> = entries(&t, &other_dev, "objection_answer")
            .await
            .iter()
            .map(payload)
            .filter(|p| p["step"] == "corrected")
            .collect();
        assert_eq!(
            links.len(),
            1,
            "{b}: the other objector reads its own link only"
        );
        assert_eq!(links[0]["objection_id"], o4.as_str());
        assert_eq!(links[0]["late"], true);
        // Version 3 names its objection; version 2 keeps its own.
        let (_, v3) = t
            .get(&dev, &format!("/v1/datasets/{dataset}/versions/3"))
            .await;
        assert_eq!(v3["corrects"][0]["objection_id"], o4.as_str(), "{b}: {v3}");
        assert_eq!(v3["corrects"][0]["corrected_late"], true, "{b}: {v3}");
        assert_eq!(v3["corrects"].as_array().unwrap().len(), 1, "{b}: {v3}");
        t.stop().await;
    }
}

#[tokio::test]
async fn update_frequencies_are_six_words_and_an_overdue_dataset_is_reported_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("power-bureau", "provider").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;

        // Anything but the six words is a 422, and registers nothing.
        for bad in ["monthly, on the 5th", "Weekly", "hourly", ""] {
            let (s, p) = post(&t, &provider, "/v1/datasets", electricity(&[], bad)).await;
            assert_eq!(s, 422, "{b}: {bad:?}: {p}");
            let detail = p["detail"].as_str().unwrap_or_default();
            assert!(
                detail.contains("daily, weekly, monthly, quarterly, yearly, irregular"),
                "{b}: {p}"
            );
        }
        let (_, page) = t.get(&provider, "/v1/datasets").await;
        assert_eq!(page["total"], 0, "{b}: {page}");
        for good in [
            "daily",
            "weekly",
            "monthly",
            "quarterly",
            "yearly",
            "irregular",
        ] {
            let id = draft(&t, &provider, &electricity(&[], good)).await;
            let (_, entry) = t.get(&provider, &format!("/v1/datasets/{id}")).await;
            assert_eq!(entry["update_frequency"], good, "{b}: {entry}");
        }

        let weekly = register(&t, &provider, &electricity(&[], "weekly")).await;
        // An edit to free text is refused and changes nothing.
        let mut edit = electricity(&[], "every week or so");
        edit["reason"] = json!("the refresh cycle changed");
        let (s, p) = t
            .call(
                Some(provider.as_str()),
                Method::PUT,
                &format!("/v1/datasets/{weekly}"),
                Some(edit),
            )
            .await;
        assert_eq!(s, 422, "{b}: {p}");
        let (_, entry) = t.get(&provider, &format!("/v1/datasets/{weekly}")).await;
        assert_eq!(entry["revision"], 1, "{b}: {entry}");
        assert_eq!(entry["update_frequency"], "weekly", "{b}: {entry}");

        // The weekly dataset's next version is due a week after its first, plus five
        // working days; on the report from the day after.
        certify(&t, &provider, &weekly, &[]).await;
        let (_, v1) = t
            .get(&provider, &format!("/v1/datasets/{weekly}/versions/1"))
            .await;
        let certified_ms = v1["created_ms"].as_i64().unwrap();
        let certified_day = iso_date(
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(certified_ms) * 1_000_000)
                .unwrap()
                .date(),
        );
        let due = iso_date(
            Calendar::default().add_working_days(parse_day(&iso_plus(&certified_day, 7)), 5),
        );
        let on_due = compliance_as_of(&t, &supervisor, &due).await;
        assert!(overdue_updates(&on_due).is_empty(), "{b}: {on_due}");
        let past = compliance_as_of(&t, &supervisor, &iso_plus(&due, 1)).await;
        assert_eq!(
            overdue_updates(&past),
            std::slice::from_ref(&weekly),
            "{b}: {past}"
        );
        let item = &past["overdue_updates"][0];
        assert_eq!(item["update_frequency"], "weekly", "{b}: {item}");
        assert_eq!(item["latest_version"], 1, "{b}: {item}");
        assert_eq!(
            item["last_version_on"],
            certified_day.as_str(),
            "{b}: {item}"
        );
        assert_eq!(item["next_version_due"], due.as_str(), "{b}: {item}");
        assert_eq!(past["clean"], false, "{b}");

        // An irregular dataset is never overdue; nor is a stored free text (read as
        // irregular), nor an unpublished entry.
        let irregular = register(&t, &provider, &electricity(&[], "irregular")).await;
        certify(&t, &provider, &irregular, &[]).await;
        let legacy = register(&t, &provider, &electricity(&[], "daily")).await;
        certify(&t, &provider, &legacy, &[]).await;
        sqlx::query(
            "UPDATE datasets SET update_frequency = 'when the minister asks' WHERE id = $1",
        )
        .bind(legacy.clone())
        .execute(t.app.db.pool())
        .await
        .unwrap();
        let unpublished = draft(&t, &provider, &electricity(&[], "daily")).await;
        certify(&t, &provider, &unpublished, &[]).await;
        let far = compliance_as_of(
            &t,
            &supervisor,
            &iso_date(today() + time::Duration::days(800)),
        )
        .await;
        assert_eq!(
            overdue_updates(&far),
            std::slice::from_ref(&weekly),
            "{b}: {far}"
        );

        // Its first version moved back to Monday 2020-01-06 (as time would): due by
        // Monday 2020-01-20 (a week, then five working days), overdue now; a new
        // version takes it off the report.
        shift(
            &t,
            "UPDATE dataset_versions SET created_ms = $1 WHERE version = 1 AND dataset_id = $2",
            json!(noon_ms("2020-01-06")),
            &weekly,
        )
        .await;
        let now = compliance(&t, &supervisor).await;
        assert_eq!(
            overdue_updates(&now),
            std::slice::from_ref(&weekly),
            "{b}: {now}"
        );
        assert_eq!(
            now["overdue_updates"][0]["next_version_due"], "2020-01-20",
            "{b}"
        );
        certify(&t, &provider, &weekly, &[]).await;
        let now = compliance(&t, &supervisor).await;
        assert!(overdue_updates(&now).is_empty(), "{b}: {now}");
        t.stop().await;
    }
}

#[tokio::test]
async fn the_evaluation_counts_what_the_provider_did_and_is_public_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (provider_org, provider) = t.key_for("power-bureau", "provider").await;
        let (quiet_org, _) = t.key_for("water-bureau", "provider").await;
        let (_, dev) = t.key_for("energy-analytics", "developer").await;
        let (_, other_dev) = t.key_for("grid-analytics", "developer").await;
        let (_, buyer) = t.key_for("bank", "buyer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let (_, authority) = t.key_for("data-bureau", "authority").await;
        let year = today().year();

        // The catalog: A and F complete; B names no data element, E has no
        // description; C is a draft, not counted.
        let a = register(&t, &provider, &electricity(&["utilities.ev_a"], "monthly")).await;
        register(&t, &provider, &electricity(&[], "monthly")).await;
        let mut no_description = electricity(&["utilities.ev_e"], "monthly");
        no_description["description"] = json!("");
        register(&t, &provider, &no_description).await;
        draft(&t, &provider, &electricity(&["utilities.ev_c"], "monthly")).await;
        let f = register(&t, &provider, &electricity(&["utilities.ev_f"], "weekly")).await;
        certify(&t, &provider, &a, &[]).await;

        // Grant applications: G1 answered at once (met); G2 refused after its deadline
        // (missed); G3 still pending after it (missed); G4 pending, not yet due.
        let cols = json!(["district"]);
        let kinds = json!(["sql"]);
        let g1 = apply(&t, &dev, &a, cols.clone(), kinds.clone(), 0.0, 10).await;
        let g2 = apply(&t, &dev, &a, cols.clone(), kinds.clone(), 0.0, 10).await;
        let g3 = apply(&t, &dev, &a, cols.clone(), kinds.clone(), 0.0, 10).await;
        apply(&t, &dev, &a, cols.clone(), kinds.clone(), 0.0, 10).await;
        approve(&t, &provider, &g1, json!({})).await;
        for g in [&g2, &g3] {
            shift(
                &t,
                "UPDATE grants SET answer_deadline = $1 WHERE id = $2",
                json!("2020-01-06"),
                g,
            )
            .await;
        }
        let (s, refused) = post(
            &t,
            &provider,
            &format!("/v1/grants/{g2}/decision"),
            json!({"approve": false, "reason": "the purpose does not need enterprise rows"}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {refused}");

        // Objections: O1 accepted in time; O2 accepted after its deadline; O3 rejected
        // in time; O4 unanswered after its deadline; O5 open, not yet due; O6 accepted
        // in time.
        let o: Vec<String> = {
            let mut ids = Vec::new();
            for i in 0..6 {
                let key = if i % 2 == 0 { &dev } else { &other_dev };
                ids.push(object(&t, key, &a).await);
            }
            ids
        };
        for id in [&o[1], &o[3]] {
            shift(
                &t,
                "UPDATE objections SET answer_deadline = $1 WHERE id = $2",
                json!("2020-01-06"),
                id,
            )
            .await;
        }
        answer(&t, &provider, &o[0], "accepted").await;
        let late = answer(&t, &provider, &o[1], "accepted").await;
        assert_eq!(late["answered_late"], true, "{b}: {late}");
        answer(&t, &provider, &o[2], "rejected").await;
        answer(&t, &provider, &o[5], "accepted").await;

        // Corrections: O1 corrected in time by version 2; O2's deadline passes, then
        // version 3 corrects it (late); O6's deadline passes without a correction.
        certify(&t, &provider, &a, &[o[0].as_str()]).await;
        for id in [&o[1], &o[5]] {
            shift(
                &t,
                "UPDATE correction_duties SET correction_due = $1 WHERE objection_id = $2",
                json!("2020-01-06"),
                id,
            )
            .await;
        }
        certify(&t, &provider, &a, &[o[1].as_str()]).await;

        // Updates: F (weekly) had version 1 on Monday 2020-03-02, due again by Monday
        // 2020-03-16 (a week, then five working days): version 2 came on Friday
        // 2020-03-13, in time; that one's successor was due by Friday 2020-03-27 and
        // came only now (late). A's three versions came today, each in time for its
        // predecessor; its latest is not due yet.
        certify(&t, &provider, &f, &[]).await;
        shift(
            &t,
            "UPDATE dataset_versions SET created_ms = $1 WHERE version = 1 AND dataset_id = $2",
            json!(noon_ms("2020-03-02")),
            &f,
        )
        .await;
        certify(&t, &provider, &f, &[]).await;
        shift(
            &t,
            "UPDATE dataset_versions SET created_ms = $1 WHERE version = 2 AND dataset_id = $2",
            json!(noon_ms("2020-03-13")),
            &f,
        )
        .await;
        certify(&t, &provider, &f, &[]).await;

        // This year, by hand:
        // - answers on time: met G1, O1, O3, O6; missed G2, G3, O2, O4 → 4/8
        //   (G4 and O5 are not due yet);
        // - objections handled: answered O1, O2, O3, O6; O4 overdue → 4/5;
        // - corrections on time: O1 met; O2 late; O6 overdue → 1/3;
        // - updates on time: A's versions 2 and 3 came in time → 2/2 (F's versions of
        //   2020 belong to 2020; its latest, and A's, are not due yet);
        // - catalog completeness: A, F complete; B, E not (C is a draft) → 2/4.
        // Score: 30·4/8 + 15·4/5 + 20·1/3 + 20·2/2 + 15·2/4 = 15 + 12 + 6.67 + 20 + 7.5
        // = 61.17 of 100 → 61.
        let expected: [(&str, u64, u64, u64); 5] = [
            ("answers_on_time", 30, 4, 8),
            ("objections_handled", 15, 4, 5),
            ("corrections_on_time", 20, 1, 3),
            ("updates_on_time", 20, 2, 2),
            ("catalog_completeness", 15, 2, 4),
        ];
        let (s, evaluation) = post(
            &t,
            &authority,
            "/v1/evaluations",
            json!({"provider_org": provider_org, "year": year}),
        )
        .await;
        assert_eq!(s, 201, "{b}: {evaluation}");
        let indicators = |e: &Value| -> Vec<(String, u64, u64, u64)> {
            e["indicators"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    (
                        i["name"].as_str().unwrap().to_string(),
                        i["weight"].as_u64().unwrap(),
                        i["numerator"].as_u64().unwrap(),
                        i["denominator"].as_u64().unwrap(),
                    )
                })
                .collect()
        };
        let want: Vec<(String, u64, u64, u64)> = expected
            .iter()
            .map(|(name, weight, num, den)| (name.to_string(), *weight, *num, *den))
            .collect();
        assert_eq!(indicators(&evaluation), want, "{b}: {evaluation}");
        assert_eq!(evaluation["score"], 61, "{b}: {evaluation}");
        assert_eq!(evaluation["year"], year, "{b}");
        assert_eq!(evaluation["as_of"], iso_date(today()).as_str(), "{b}");
        assert_eq!(evaluation["formula"], "pdx-evaluation-v1", "{b}");
        assert_eq!(evaluation["provider_org"], provider_org.as_str(), "{b}");

        // 2020, by hand: only F's two versions of 2020 count for updates (1 of 2 in
        // time); nothing else was filed or accepted in 2020; completeness is today's,
        // 2/4. Score: (20·1/2 + 15·2/4) / (20 + 15) = 17.5/35 → 50.
        let (s, old) = post(
            &t,
            &authority,
            "/v1/evaluations",
            json!({"provider_org": provider_org, "year": 2020}),
        )
        .await;
        assert_eq!(s, 201, "{b}: {old}");
        let expected_2020: [(&str, u64, u64, u64); 5] = [
            ("answers_on_time", 30, 0, 0),
            ("objections_handled", 15, 0, 0),
            ("corrections_on_time", 20, 0, 0),
            ("updates_on_time", 20, 1, 2),
            ("catalog_completeness", 15, 2, 4),
        ];
        let want_2020: Vec<(String, u64, u64, u64)> = expected_2020
            .iter()
            .map(|(name, weight, num, den)| (name.to_string(), *weight, *num, *den))
            .collect();
        assert_eq!(indicators(&old), want_2020, "{b}: {old}");
        assert_eq!(old["score"], 50, "{b}: {old}");

        // A provider with nothing to count has no score.
        let (s, quiet) = post(
            &t,
            &authority,
            "/v1/evaluations",
            json!({"provider_org": quiet_org, "year": year}),
        )
        .await;
        assert_eq!(s, 201, "{b}: {quiet}");
        assert!(quiet["score"].is_null(), "{b}: {quiet}");
        assert!(
            indicators(&quiet)
                .iter()
                .all(|(_, _, n, d)| *n == 0 && *d == 0),
            "{b}: {quiet}"
        );

        // Refusals write nothing: a second evaluation of the year, years out of range,
        // an unknown organisation, other roles.
        for (what, key, body, want) in [
            (
                "a second one for the year",
                &authority,
                json!({"provider_org": provider_org, "year": year}),
                409,
            ),
            (
                "a year before 2000",
                &authority,
                json!({"provider_org": provider_org, "year": 1999}),
                422,
            ),
            (
                "next year",
                &authority,
                json!({"provider_org": provider_org, "year": year + 1}),
                422,
            ),
            (
                "an unknown organisation",
                &authority,
                json!({"provider_org": "org-000000000000", "year": year}),
                404,
            ),
            (
                "an unknown field",
                &authority,
                json!({"provider_org": provider_org, "year": year, "bonus": 5}),
                422,
            ),
            (
                "a provider",
                &provider,
                json!({"provider_org": provider_org, "year": 2021}),
                403,
            ),
            (
                "a supervisor",
                &supervisor,
                json!({"provider_org": provider_org, "year": 2021}),
                403,
            ),
        ] {
            let (s, p) = post(&t, key, "/v1/evaluations", body).await;
            assert_eq!(s, want, "{b}: {what}: {p}");
        }

        // Public: every role reads them, filtered by provider and year, and the
        // ledger entries carry every numerator and denominator.
        for key in [&buyer, &dev, &supervisor, &provider] {
            let (s, all) = t.get(key, "/v1/evaluations").await;
            assert_eq!(s, 200, "{b}: {all}");
            assert_eq!(all.as_array().unwrap().len(), 3, "{b}: {all}");
        }
        let (_, mine) = t
            .get(
                &buyer,
                &format!("/v1/evaluations?provider={provider_org}&year={year}"),
            )
            .await;
        assert_eq!(mine.as_array().unwrap().len(), 1, "{b}: {mine}");
        assert_eq!(mine[0]["id"], evaluation["id"], "{b}");
        let (_, of_2020) = t.get(&buyer, "/v1/evaluations?year=2020").await;
        assert_eq!(of_2020.as_array().unwrap().len(), 1, "{b}: {of_2020}");
        assert_eq!(
            t.get(&buyer, "/v1/evaluations?year=last").await.0,
            400,
            "{b}"
        );
        let on_ledger = entries(&t, &buyer, "evaluation").await;
        assert_eq!(on_ledger.len(), 3, "{b}: nothing written by the refusals");
        let entry = on_ledger
            .iter()
            .find(|e| e["seq"] == evaluation["evaluation_seq"])
            .unwrap();
        let recorded = payload(entry);
        assert_eq!(recorded["evaluation_id"], evaluation["id"], "{b}");
        assert_eq!(recorded["score"], 61, "{b}: {recorded}");
        assert_eq!(indicators(&recorded), want, "{b}: {recorded}");
        // The public reads them without a key too, as public ledger entries (SD22 Art.5).
        let (s, page) = t
            .call(
                None,
                Method::GET,
                "/v1/ledger/entries?kind=evaluation&limit=1000",
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}: {page}");
        assert_eq!(page["entries"].as_array().unwrap().len(), 3, "{b}: {page}");
        t.stop().await;
    }
}

#[tokio::test]
async fn a_rectification_order_is_issued_answered_and_closed_and_leaves_the_report_on_both_backends()
 {
    for t in TestServer::both().await {
        let b = t.backend;
        let (provider_org, provider) = t.key_for("power-bureau", "provider").await;
        let (other_org, other_provider) = t.key_for("water-bureau", "provider").await;
        let (_, dev) = t.key_for("energy-analytics", "developer").await;
        let (_, buyer) = t.key_for("bank", "buyer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let (authority_org, authority) = t.key_for("data-bureau", "authority").await;
        let year = today().year();
        let (s, evaluation) = post(
            &t,
            &authority,
            "/v1/evaluations",
            json!({"provider_org": provider_org, "year": year}),
        )
        .await;
        assert_eq!(s, 201, "{b}: {evaluation}");
        let (_, other_evaluation) = post(
            &t,
            &authority,
            "/v1/evaluations",
            json!({"provider_org": other_org, "year": year}),
        )
        .await;
        let deadline = iso_date(today() + time::Duration::days(10));
        let order_body = json!({
            "org": provider_org,
            "deadline": deadline,
            "findings": "objections answered late; catalog entries without data elements",
            "evaluation_id": evaluation["id"],
        });

        // Bad orders are refused and write nothing.
        let with = |field: &str, value: Value| {
            let mut body = order_body.clone();
            body[field] = value;
            body
        };
        for (what, key, body, want) in [
            ("a provider", &provider, order_body.clone(), 403),
            ("a supervisor", &supervisor, order_body.clone(), 403),
            (
                "a past deadline",
                &authority,
                with("deadline", json!("2020-01-06")),
                422,
            ),
            (
                "a deadline too far",
                &authority,
                with(
                    "deadline",
                    json!(iso_date(today() + time::Duration::days(400))),
                ),
                422,
            ),
            (
                "a bad date",
                &authority,
                with("deadline", json!("next week")),
                422,
            ),
            (
                "no findings",
                &authority,
                with("findings", json!("  ")),
                422,
            ),
            (
                "an unknown organisation",
                &authority,
                with("org", json!("org-000000000000")),
                404,
            ),
            (
                "its own organisation",
                &authority,
                with("org", json!(authority_org)),
                422,
            ),
            (
                "another organisation's evaluation",
                &authority,
                with("evaluation_id", other_evaluation["id"].clone()),
                422,
            ),
        ] {
            let (s, p) = post(&t, key, "/v1/rectifications", body).await;
            assert_eq!(s, want, "{b}: {what}: {p}");
        }
        let (_, none) = t.get(&supervisor, "/v1/rectifications").await;
        assert_eq!(none, json!([]), "{b}");
        assert!(entries(&t, &buyer, "rectification").await.is_empty(), "{b}");

        // Issued: public, on the ledger, and on the report (overdue from the day after
        // its deadline).
        let (s, order) = post(&t, &authority, "/v1/rectifications", order_body.clone()).await;
        assert_eq!(s, 201, "{b}: {order}");
        let id = order["id"].as_str().unwrap().to_string();
        assert_eq!(order["status"], "issued", "{b}");
        assert_eq!(order["deadline"], deadline.as_str(), "{b}");
        assert_eq!(order["evaluation_id"], evaluation["id"], "{b}");
        assert_eq!(order["overdue"], false, "{b}");
        let (s, seen) = t.get(&buyer, &format!("/v1/rectifications/{id}")).await;
        assert_eq!(s, 200, "{b}: {seen}");
        assert_eq!(
            t.get(&buyer, "/v1/rectifications/rct_0123456789abcdef")
                .await
                .0,
            404,
            "{b}"
        );
        assert_eq!(
            t.get(&buyer, "/v1/rectifications/nonsense").await.0,
            404,
            "{b}"
        );
        let issued = payload(&entries(&t, &buyer, "rectification").await[0]);
        assert_eq!(issued["step"], "issued", "{b}: {issued}");
        assert_eq!(issued["order_id"], id.as_str());
        assert_eq!(issued["org"], provider_org.as_str());
        assert_eq!(issued["authority_org"], authority_org.as_str());
        assert_eq!(issued["deadline"], deadline.as_str());
        let now = compliance(&t, &supervisor).await;
        assert_eq!(open_orders(&now), [(id.clone(), false)], "{b}: {now}");
        assert_eq!(now["clean"], false, "{b}");
        let later = compliance_as_of(&t, &supervisor, &iso_plus(&deadline, 1)).await;
        assert_eq!(open_orders(&later), [(id.clone(), true)], "{b}: {later}");

        // Only the ordered organisation answers, once.
        let response = json!({"response": "answers are now tracked daily; elements registered"});
        let path = format!("/v1/rectifications/{id}/response");
        for (what, key, want) in [
            ("another provider", &other_provider, 404),
            ("another organisation's developer", &dev, 404),
            ("the authority", &authority, 403),
            ("a supervisor", &supervisor, 403),
        ] {
            let (s, p) = post(&t, key, &path, response.clone()).await;
            assert_eq!(s, want, "{b}: {what}: {p}");
        }
        let (s, p) = post(&t, &provider, &path, json!({"response": ""})).await;
        assert_eq!(s, 422, "{b}: {p}");
        let (s, answered) = post(&t, &provider, &path, response.clone()).await;
        assert_eq!(s, 200, "{b}: {answered}");
        assert_eq!(answered["status"], "responded", "{b}");
        assert_eq!(answered["responded_late"], false, "{b}");
        let (s, p) = post(&t, &provider, &path, response.clone()).await;
        assert_eq!(s, 409, "{b}: answering twice: {p}");
        let now = compliance(&t, &supervisor).await;
        assert_eq!(
            open_orders(&now),
            [(id.clone(), false)],
            "{b}: still open: {now}"
        );

        // The authority closes it, once; then it is off the report.
        let close = format!("/v1/rectifications/{id}/close");
        let note = json!({"note": "checked the answer log and the element registry"});
        let (s, p) = post(&t, &provider, &close, note.clone()).await;
        assert_eq!(s, 403, "{b}: {p}");
        let (s, closed) = post(&t, &authority, &close, note.clone()).await;
        assert_eq!(s, 200, "{b}: {closed}");
        assert_eq!(closed["status"], "closed", "{b}");
        assert_eq!(closed["closed_by_org"], authority_org.as_str(), "{b}");
        let (s, p) = post(&t, &authority, &close, note.clone()).await;
        assert_eq!(s, 409, "{b}: closing twice: {p}");
        let (s, p) = post(&t, &provider, &path, response.clone()).await;
        assert_eq!(s, 409, "{b}: answering a closed order: {p}");
        let now = compliance(&t, &supervisor).await;
        assert!(open_orders(&now).is_empty(), "{b}: {now}");
        let steps: Vec<String> = entries(&t, &buyer, "rectification")
            .await
            .iter()
            .map(payload)
            .map(|p| p["step"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(steps, ["issued", "responded", "closed"], "{b}");

        // A second order whose deadline passed (moved back, as time would): overdue on
        // the report, answered late, and closed.
        let (s, second) = post(&t, &authority, "/v1/rectifications", order_body.clone()).await;
        assert_eq!(s, 201, "{b}: {second}");
        let second = second["id"].as_str().unwrap().to_string();
        shift(
            &t,
            "UPDATE rectification_orders SET deadline = $1 WHERE id = $2",
            json!("2020-01-06"),
            &second,
        )
        .await;
        let (_, overdue) = t.get(&buyer, &format!("/v1/rectifications/{second}")).await;
        assert_eq!(overdue["overdue"], true, "{b}: {overdue}");
        let now = compliance(&t, &supervisor).await;
        assert_eq!(open_orders(&now), [(second.clone(), true)], "{b}: {now}");
        let (s, late) = post(
            &t,
            &provider,
            &format!("/v1/rectifications/{second}/response"),
            response.clone(),
        )
        .await;
        assert_eq!(s, 200, "{b}: {late}");
        assert_eq!(late["responded_late"], true, "{b}: {late}");
        assert_eq!(late["overdue"], false, "{b}: {late}");
        let answered_entry = entries(&t, &buyer, "rectification")
            .await
            .iter()
            .map(payload)
            .find(|p| p["order_id"] == second.as_str() && p["step"] == "responded")
            .unwrap();
        assert_eq!(answered_entry["late"], true, "{b}: {answered_entry}");
        let (s, _) = post(
            &t,
            &authority,
            &format!("/v1/rectifications/{second}/close"),
            note.clone(),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        let now = compliance(&t, &supervisor).await;
        assert!(open_orders(&now).is_empty(), "{b}: {now}");

        // Lists filter by organisation and status.
        let (_, listed) = t
            .get(
                &buyer,
                &format!("/v1/rectifications?org={provider_org}&status=closed"),
            )
            .await;
        assert_eq!(listed.as_array().unwrap().len(), 2, "{b}: {listed}");
        let (_, others) = t
            .get(&buyer, &format!("/v1/rectifications?org={other_org}"))
            .await;
        assert_eq!(others, json!([]), "{b}");
        t.stop().await;
    }
}

#[tokio::test]
async fn governance_routes_refuse_every_other_role_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (provider_org, _) = t.key_for("power-bureau", "provider").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let keys = key_per_role(&t, "gov").await;
        let mut refused = 0;
        let mut routes = 0;
        for (method, route, policy) in POLICIES {
            if !(route.starts_with("/v1/evaluations") || route.starts_with("/v1/rectifications")) {
                continue;
            }
            routes += 1;
            let path = route.replace("{id}", "rct_0123456789abcdef");
            let body = json!({
                "provider_org": provider_org, "year": 2024, "org": provider_org,
                "deadline": iso_date(today()), "findings": "x",
                "response": "y", "note": "z"
            });
            refused += refused_outside_policy(&t, &keys, policy, method, &path, Some(body)).await;
        }
        assert_eq!(routes, 7, "{b}: every new route is in the policy table");
        // By hand: the three reads admit every role; publishing an evaluation, issuing
        // and closing an order admit the data authority only; an answer admits the seven
        // roles an ordered organisation acts with (provider, developer, reviewer,
        // exchange, buyer, subject, finance).
        let n = Role::ALL.len();
        assert_eq!(refused, 3 * (n - 1) + (n - 7), "{b}");
        let (_, evaluations) = t.get(&supervisor, "/v1/evaluations").await;
        assert_eq!(evaluations, json!([]), "{b}");
        let (_, orders) = t.get(&supervisor, "/v1/rectifications").await;
        assert_eq!(orders, json!([]), "{b}");
        t.stop().await;
    }
}
