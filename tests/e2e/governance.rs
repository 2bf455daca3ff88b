//! The catalog's governance over HTTP, on SQLite and PostgreSQL (GD21 Art.10–11; XT
//! Art.12, 14): a provider drafts an entry, submits it, and the data authority
//! (`authority` role) publishes it or returns it with a reason; the authority's late
//! reviews show on the compliance report; a returned entry is edited and resubmitted;
//! an unpublished entry is invisible to other organisations and unreachable by
//! developers; after publication each metadata edit is a catalog revision, kept as
//! history and on the ledger, late when made more than 15 working days after its legal
//! change, and versions keep their certificates. Wrong states are 409s, wrong roles
//! 403s and other organisations' entries 404s, each leaving nothing half-written.

use pdx::auth::Role;
use pdx::http::policies::POLICIES;
use pdx::samples;
use pdx_algorithms::deid::schema::{ColumnRole, ColumnSpec, ColumnType, DeidRule};
use pdx_ledger::Receipt;
use pdx_ledger::note::NoteVerifier;
use pdx_sandbox::NewDataset;
use pdx_sandbox::catalog::metadata_hash;
use pdx_sandbox::workdays::{Calendar, iso_date};
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{draft, publish, register, upload_certified};
use crate::support::{
    AUTHORITY_ORG, TestServer, day, iso_plus, key_per_role, parse_day, payload, put,
    refused_outside_policy,
};

const SQL: &str = "SELECT district, COUNT(*) AS n FROM data GROUP BY district";

async fn post(t: &TestServer, key: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    t.call(Some(key), Method::POST, path, body).await
}

/// The electricity entry, without data elements (so several can be registered).
pub(crate) fn electricity() -> NewDataset {
    let mut meta = samples::electricity_dataset();
    meta.elements = Vec::new();
    meta
}

/// A catalog entry's metadata as a request body.
pub(crate) fn json_of(meta: &NewDataset) -> Value {
    serde_json::to_value(meta).unwrap()
}

/// An edit's body: the whole metadata with its reason (and legal change date).
pub(crate) fn edit_body(meta: &NewDataset, reason: &str, legal_change_date: Option<&str>) -> Value {
    let mut body = json_of(meta);
    body["reason"] = json!(reason);
    if let Some(date) = legal_change_date {
        body["legal_change_date"] = json!(date);
    }
    body
}

/// Issues a key with `role` in the existing organisation `org`.
pub(crate) async fn key_in(t: &TestServer, org: &str, role: Role) -> String {
    let (s, key) = post(
        t,
        &t.admin,
        "/v1/keys",
        Some(json!({"org": org, "role": role.as_str()})),
    )
    .await;
    assert_eq!(s, 201, "{key}");
    key["key"].as_str().unwrap().to_string()
}

/// Every ledger entry of `kind` that `key` may read.
pub(crate) async fn entries(t: &TestServer, key: &str, kind: &str) -> Vec<Value> {
    let (s, page) = t
        .get(key, &format!("/v1/ledger/entries?kind={kind}&limit=1000"))
        .await;
    assert_eq!(s, 200, "{page}");
    page["entries"].as_array().unwrap().clone()
}

/// The ids of a catalog page.
fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

/// The items of a compliance report's list `list` of late answers, as (their `id`
/// field, state).
pub(crate) fn late_items(report: &Value, list: &str, id: &str) -> Vec<(String, String)> {
    report[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[id].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The late catalog reviews of a compliance report, as (dataset id, state).
fn late_reviews(report: &Value) -> Vec<(String, String)> {
    late_items(report, "late_catalog_reviews", "dataset_id")
}

/// The compliance report as of a day.
pub(crate) async fn compliance_as_of(t: &TestServer, supervisor: &str, day: &str) -> Value {
    let (s, report) = t
        .get(supervisor, &format!("/v1/audit/compliance?as_of={day}"))
        .await;
    assert_eq!(s, 200, "{}: {report}", t.backend);
    report
}

/// The review deadline of a submission made now: 5 working days (either side of a
/// midnight that falls during the request).
fn review_due_window(before_ms: i64, after_ms: i64) -> [String; 2] {
    let calendar = Calendar::default();
    [
        iso_date(calendar.deadline_from_ms(before_ms, 5)),
        iso_date(calendar.deadline_from_ms(after_ms, 5)),
    ]
}

#[tokio::test]
async fn a_catalog_entry_goes_from_draft_through_submission_to_publication_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (provider_org, provider) = t.key_for("power-bureau", "provider").await;
        let (_, other_provider) = t.key_for("water-bureau", "provider").await;
        let (_, dev) = t.key_for("energy-analytics", "developer").await;
        let (_, buyer) = t.key_for("bank", "buyer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let (authority_org, authority) = t.key_for("data-bureau", "authority").await;
        let meta = electricity();

        // A registration is a draft at revision 1, with no review yet.
        let id = draft(&t, &provider, &json_of(&meta)).await;
        let path = format!("/v1/datasets/{id}");
        let (s, entry) = t.get(&provider, &path).await;
        assert_eq!(s, 200, "{b}: {entry}");
        assert_eq!(entry["status"], "draft", "{b}: {entry}");
        assert_eq!(entry["revision"], 1, "{b}: {entry}");
        for field in ["submitted_ms", "review_due", "reviewed_ms", "return_reason"] {
            assert!(entry[field].is_null(), "{b}: {field}: {entry}");
        }

        // Its provider, the authority and supervisors see it; nobody else does.
        for (who, key, sees) in [
            ("provider", &provider, true),
            ("authority", &authority, true),
            ("supervisor", &supervisor, true),
            ("developer", &dev, false),
            ("other provider", &other_provider, false),
            ("buyer", &buyer, false),
        ] {
            let want = if sees { 200 } else { 404 };
            for sub in ["", "/versions", "/revisions"] {
                let (s, body) = t.get(key, &format!("{path}{sub}")).await;
                assert_eq!(s, want, "{b}: {who} {sub}: {body}");
            }
            let (s, page) = t.get(key, "/v1/datasets").await;
            assert_eq!(s, 200, "{b}: {page}");
            assert_eq!(ids(&page).contains(&id), sees, "{b}: {who}: {page}");
            assert_eq!(
                page["total"],
                if sees { 1 } else { 0 },
                "{b}: {who}: {page}"
            );
        }
        let (_, queue) = t.get(&authority, "/v1/datasets?status=draft").await;
        assert_eq!(ids(&queue), std::slice::from_ref(&id), "{b}: {queue}");
        let (_, queue) = t.get(&authority, "/v1/datasets?status=submitted").await;
        assert_eq!(queue["total"], 0, "{b}: {queue}");

        // Revision 1 is the registration, with the hash of the metadata as sent.
        let (_, revisions) = t.get(&provider, &format!("{path}/revisions")).await;
        let registered_hash = metadata_hash(&meta).unwrap().to_hex();
        assert_eq!(revisions.as_array().unwrap().len(), 1, "{b}: {revisions}");
        assert_eq!(revisions[0]["revision"], 1);
        assert_eq!(revisions[0]["reason"], "registered");
        assert_eq!(revisions[0]["metadata_hash"], registered_hash.as_str());
        assert_eq!(revisions[0]["provider_org"], provider_org.as_str());
        assert!(revisions[0]["ledger_seq"].is_null(), "{b}: {revisions}");

        // Developers reach it on no path: a grant or a dry run names it as unpublished;
        // dummy rows, objections and the rest do not find it.
        let (s, p) = post(
            &t,
            &dev,
            "/v1/grants",
            Some(json!({
                "dataset_id": id, "purpose": "district statistics",
                "columns": ["district"], "model_kinds": ["sql"], "term_days": 30,
                "epsilon": 0.0, "delta": 0.0, "query_budget": 5
            })),
        )
        .await;
        assert_eq!(s, 403, "{b}: {p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("this catalog entry is not published yet"),
            "{b}: {p}"
        );
        let dry = json!({"kind": "sql", "body": SQL, "dataset_id": id, "rows": 300});
        let (s, p) = post(&t, &dev, "/v1/dry-run", Some(dry.clone())).await;
        assert_eq!(s, 403, "{b}: {p}");
        assert!(
            p["detail"].as_str().unwrap().contains("not published yet"),
            "{b}: {p}"
        );
        assert_eq!(
            t.get(&dev, &format!("{path}/dummy?rows=5")).await.0,
            404,
            "{b}"
        );

        // Its provider prepares data before publication: a version is certified as
        // usual, and stays as invisible to others as the entry.
        let csv = samples::electricity_csv(40, 7);
        upload_certified(&t, &provider, &id, "", csv.into_bytes()).await;
        let certificate = format!("{path}/versions/1/certificate");
        assert_eq!(t.get(&provider, &certificate).await.0, 200, "{b}");
        for key in [&dev, &buyer, &other_provider] {
            assert_eq!(t.get(key, &certificate).await.0, 404, "{b}");
            assert_eq!(
                t.get(key, &format!("{path}/versions/1")).await.0,
                404,
                "{b}"
            );
        }
        let (s, p) = post(
            &t,
            &dev,
            "/v1/objections",
            Some(json!({"dataset_id": id, "version": 1, "ground": "error", "detail": "wrong"})),
        )
        .await;
        assert_eq!(s, 404, "{b}: {p}");

        // Wrong states, roles and organisations: 4xx, and nothing written.
        let review = format!("{path}/review");
        let submit = format!("{path}/submit");
        let approve = json!({"decision": "approve"});
        let (s, p) = post(&t, &authority, &review, Some(approve.clone())).await;
        assert_eq!(s, 409, "{b}: a draft not submitted: {p}");
        assert_eq!(post(&t, &dev, &submit, None).await.0, 403, "{b}");
        assert_eq!(post(&t, &buyer, &submit, None).await.0, 403, "{b}");
        assert_eq!(post(&t, &other_provider, &submit, None).await.0, 404, "{b}");
        assert_eq!(
            post(&t, &provider, &review, Some(approve.clone())).await.0,
            403,
            "{b}: a provider reviews nothing"
        );
        assert_eq!(
            post(&t, &supervisor, &review, Some(approve.clone()))
                .await
                .0,
            403,
            "{b}"
        );
        let (_, unchanged) = t.get(&provider, &path).await;
        assert_eq!(unchanged["status"], "draft", "{b}: {unchanged}");
        assert!(
            entries(&t, &supervisor, "catalog_decision")
                .await
                .is_empty(),
            "{b}: a refused step wrote a ledger entry"
        );

        // Submission: the authority has 5 working days.
        let before = pdx_ledger::db::now_ms();
        let (s, submitted) = post(&t, &provider, &submit, None).await;
        let after = pdx_ledger::db::now_ms();
        assert_eq!(s, 200, "{b}: {submitted}");
        assert_eq!(submitted["status"], "submitted", "{b}: {submitted}");
        let due = submitted["review_due"].as_str().unwrap().to_string();
        assert!(
            review_due_window(before, after).contains(&due),
            "{b}: {due}"
        );
        assert!(submitted["submitted_ms"].as_i64().unwrap() >= before);
        assert!(submitted["reviewed_ms"].is_null());
        let (_, queue) = t.get(&authority, "/v1/datasets?status=submitted").await;
        assert_eq!(ids(&queue), std::slice::from_ref(&id), "{b}: {queue}");
        // Still unreachable while under review, and frozen: no second submission, no
        // edit.
        assert_eq!(
            post(&t, &dev, "/v1/dry-run", Some(dry.clone())).await.0,
            403,
            "{b}"
        );
        assert_eq!(post(&t, &provider, &submit, None).await.0, 409, "{b}");
        let mut changed = meta.clone();
        changed.description = "Electricity use of enterprises".into();
        let (s, p) = put(&t, &provider, &path, edit_body(&changed, "clearer", None)).await;
        assert_eq!(s, 409, "{b}: {p}");
        // A return needs a reason; an unknown decision is refused.
        let (s, p) = post(&t, &authority, &review, Some(json!({"decision": "return"}))).await;
        assert_eq!(s, 422, "{b}: {p}");
        let (s, p) = post(
            &t,
            &authority,
            &review,
            Some(json!({"decision": "return", "reason": "   "})),
        )
        .await;
        assert_eq!(s, 422, "{b}: {p}");
        let (s, _) = post(&t, &authority, &review, Some(json!({"decision": "maybe"}))).await;
        assert_eq!(s, 422, "{b}");
        // The authority does not review its own organisation's entries.
        let own_authority = key_in(&t, &provider_org, Role::Authority).await;
        let (s, p) = post(&t, &own_authority, &review, Some(approve.clone())).await;
        assert_eq!(s, 403, "{b}: {p}");
        let (_, unchanged) = t.get(&provider, &path).await;
        assert_eq!(unchanged["status"], "submitted", "{b}: {unchanged}");
        assert_eq!(
            entries(&t, &supervisor, "catalog_decision").await.len(),
            1,
            "{b}: only the submission"
        );

        // Approval publishes it.
        let (s, published) = post(&t, &authority, &review, Some(approve.clone())).await;
        assert_eq!(s, 200, "{b}: {published}");
        assert_eq!(published["status"], "published", "{b}: {published}");
        assert_eq!(published["review_due"], due.as_str());
        assert!(published["reviewed_ms"].as_i64().is_some(), "{b}");
        assert_eq!(
            post(&t, &authority, &review, Some(approve.clone())).await.0,
            409,
            "{b}: approving twice"
        );
        assert_eq!(
            post(&t, &provider, &submit, None).await.0,
            409,
            "{b}: submitting a published entry"
        );
        for key in [&dev, &buyer, &other_provider] {
            assert_eq!(t.get(key, &path).await.0, 200, "{b}");
            assert_eq!(t.get(key, &certificate).await.0, 200, "{b}");
            let (_, page) = t.get(key, "/v1/datasets").await;
            assert_eq!(ids(&page), std::slice::from_ref(&id), "{b}: {page}");
        }
        let (s, out) = post(&t, &dev, "/v1/dry-run", Some(dry)).await;
        assert_eq!(s, 200, "{b}: {out}");

        // The submission and the approval are on the ledger, for the same revision and
        // metadata hash; the provider reads both, developers neither.
        let decisions = entries(&t, &supervisor, "catalog_decision").await;
        assert_eq!(decisions.len(), 2, "{b}: {decisions:?}");
        let (first, second) = (payload(&decisions[0]), payload(&decisions[1]));
        assert_eq!(first["decision"], "submitted", "{b}: {first}");
        assert_eq!(second["decision"], "approved", "{b}: {second}");
        assert_eq!(decisions[0]["actor"]["org"], provider_org.as_str());
        assert_eq!(decisions[1]["actor"]["org"], authority_org.as_str());
        for p in [&first, &second] {
            assert_eq!(p["dataset_id"], id.as_str(), "{b}: {p}");
            assert_eq!(p["revision"], 1, "{b}: {p}");
            assert_eq!(p["metadata_hash"], registered_hash.as_str(), "{b}: {p}");
            assert_eq!(p["review_due"], due.as_str(), "{b}: {p}");
            assert_eq!(p["late"], false, "{b}: {p}");
        }
        assert_eq!(
            entries(&t, &provider, "catalog_decision").await.len(),
            2,
            "{b}"
        );
        assert!(
            entries(&t, &dev, "catalog_decision").await.is_empty(),
            "{b}"
        );
        let seq = decisions[1]["seq"].as_u64().unwrap();
        assert_eq!(
            t.get(&dev, &format!("/v1/ledger/entries/{seq}")).await.0,
            404,
            "{b}"
        );

        // Answered in time: nothing on the compliance report, whatever the date.
        let (s, report) = t
            .get(
                &supervisor,
                &format!("/v1/audit/compliance?as_of={}", iso_plus(&due, 30)),
            )
            .await;
        assert_eq!(s, 200, "{b}: {report}");
        assert!(late_reviews(&report).is_empty(), "{b}: {report}");
        t.stop().await;
    }
}

#[tokio::test]
async fn a_late_review_shows_on_the_compliance_report_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (provider_org, provider) = t.key_for("power-bureau", "provider").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let (authority_org, authority) = t.key_for("data-bureau", "authority").await;
        let id = draft(&t, &provider, &json_of(&electricity())).await;
        let (s, submitted) = post(&t, &provider, &format!("/v1/datasets/{id}/submit"), None).await;
        assert_eq!(s, 200, "{b}: {submitted}");
        let due = submitted["review_due"].as_str().unwrap().to_string();

        // Pending: not late on its deadline, late from the day after.
        let (_, now) = t.get(&supervisor, "/v1/audit/compliance").await;
        assert!(late_reviews(&now).is_empty(), "{b}: {now}");
        let on_due = compliance_as_of(&t, &supervisor, &due).await;
        assert!(late_reviews(&on_due).is_empty(), "{b}: {on_due}");
        let past = compliance_as_of(&t, &supervisor, &iso_plus(&due, 1)).await;
        assert_eq!(
            late_reviews(&past),
            [(id.clone(), "pending".to_string())],
            "{b}: {past}"
        );
        assert_eq!(past["clean"], false, "{b}");
        let item = &past["late_catalog_reviews"][0];
        assert_eq!(item["provider_org"], provider_org.as_str(), "{b}: {item}");
        assert_eq!(item["review_due"], due.as_str());
        assert_eq!(item["revision"], 1);
        assert!(item["answered_on"].is_null(), "{b}: {item}");

        // The submission's deadline moved back, as time would: overdue now, then
        // approved late.
        sqlx::query("UPDATE catalog_reviews SET review_due = '2020-01-06' WHERE dataset_id = $1")
            .bind(id.clone())
            .execute(t.app.db.pool())
            .await
            .unwrap();
        let (_, entry) = t.get(&provider, &format!("/v1/datasets/{id}")).await;
        assert_eq!(entry["review_due"], "2020-01-06", "{b}: {entry}");
        let (_, now) = t.get(&supervisor, "/v1/audit/compliance").await;
        assert_eq!(
            late_reviews(&now),
            [(id.clone(), "pending".to_string())],
            "{b}: {now}"
        );
        let (s, published) = post(
            &t,
            &authority,
            &format!("/v1/datasets/{id}/review"),
            Some(json!({"decision": "approve"})),
        )
        .await;
        assert_eq!(s, 200, "{b}: {published}");
        assert_eq!(published["status"], "published");
        let decisions = entries(&t, &supervisor, "catalog_decision").await;
        let approval = payload(decisions.last().unwrap());
        assert_eq!(approval["decision"], "approved", "{b}: {approval}");
        assert_eq!(approval["late"], true, "{b}: {approval}");
        assert_eq!(approval["review_due"], "2020-01-06", "{b}: {approval}");
        let (_, now) = t.get(&supervisor, "/v1/audit/compliance").await;
        assert_eq!(
            late_reviews(&now),
            [(id.clone(), "answered_late".to_string())],
            "{b}: {now}"
        );
        let item = &now["late_catalog_reviews"][0];
        assert_eq!(item["decision"], "approved", "{b}: {item}");
        assert_eq!(item["reviewer_org"], authority_org.as_str(), "{b}: {item}");
        assert_eq!(item["answered_on"], day(0).as_str(), "{b}: {item}");
        assert_eq!(item["submission_seq"], decisions[0]["seq"], "{b}: {item}");
        assert_eq!(now["clean"], false, "{b}");
        // The report is the supervisors'.
        assert_eq!(
            t.get(&authority, "/v1/audit/compliance").await.0,
            403,
            "{b}"
        );
        t.stop().await;
    }
}

#[tokio::test]
async fn a_returned_entry_is_edited_and_resubmitted_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("power-bureau", "provider").await;
        let (_, other_provider) = t.key_for("water-bureau", "provider").await;
        let (_, dev) = t.key_for("energy-analytics", "developer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let (_, authority) = t.key_for("data-bureau", "authority").await;
        let meta = electricity();
        let id = draft(&t, &provider, &json_of(&meta)).await;
        let path = format!("/v1/datasets/{id}");
        let submit = format!("{path}/submit");
        let review = format!("{path}/review");
        assert_eq!(post(&t, &provider, &submit, None).await.0, 200, "{b}");

        // Returned with a reason, which its provider reads on the entry.
        let reason = "state the update cycle's day of the month";
        let (s, returned) = post(
            &t,
            &authority,
            &review,
            Some(json!({"decision": "return", "reason": reason})),
        )
        .await;
        assert_eq!(s, 200, "{b}: {returned}");
        assert_eq!(returned["status"], "returned", "{b}: {returned}");
        assert_eq!(returned["return_reason"], reason, "{b}: {returned}");
        assert_eq!(t.get(&dev, &path).await.0, 404, "{b}: still unpublished");
        let (s, p) = post(
            &t,
            &authority,
            &review,
            Some(json!({"decision": "approve"})),
        )
        .await;
        assert_eq!(s, 409, "{b}: a returned entry is not under review: {p}");

        // Bad edits are refused and change nothing.
        let mut fixed = meta.clone();
        fixed.update_frequency = "quarterly".into();
        let mut no_reason = json_of(&fixed);
        no_reason["reason"] = Value::Null;
        for (what, key, body, want) in [
            ("no reason", &provider, json_of(&fixed), 422),
            ("a null reason", &provider, no_reason, 422),
            (
                "an empty reason",
                &provider,
                edit_body(&fixed, "  ", None),
                422,
            ),
            (
                "a bad date",
                &provider,
                edit_body(&fixed, "asked", Some("next week")),
                422,
            ),
            ("no change", &provider, edit_body(&meta, "asked", None), 422),
            (
                "an unknown field",
                &provider,
                {
                    let mut body = edit_body(&fixed, "asked", None);
                    body["colour"] = json!("blue");
                    body
                },
                422,
            ),
            (
                "another organisation",
                &other_provider,
                edit_body(&fixed, "asked", None),
                404,
            ),
            ("a developer", &dev, edit_body(&fixed, "asked", None), 403),
            (
                "the authority",
                &authority,
                edit_body(&fixed, "asked", None),
                403,
            ),
        ] {
            let (s, p) = put(&t, key, &path, body).await;
            assert_eq!(s, want, "{b}: {what}: {p}");
        }
        let (_, unchanged) = t.get(&provider, &path).await;
        assert_eq!(unchanged["revision"], 1, "{b}: {unchanged}");
        assert_eq!(unchanged["update_frequency"], "monthly", "{b}");
        assert!(
            entries(&t, &supervisor, "catalog_revision")
                .await
                .is_empty()
        );

        // The edit is revision 2; the entry stays returned until resubmitted.
        let (s, edited) = put(
            &t,
            &provider,
            &path,
            edit_body(&fixed, "the data authority asked for the day", None),
        )
        .await;
        assert_eq!(s, 200, "{b}: {edited}");
        assert_eq!(edited["revision"], 2, "{b}: {edited}");
        assert_eq!(edited["status"], "returned", "{b}: {edited}");
        assert_eq!(edited["update_frequency"], "quarterly");
        let (s, resubmitted) = post(&t, &provider, &submit, None).await;
        assert_eq!(s, 200, "{b}: {resubmitted}");
        assert_eq!(resubmitted["status"], "submitted");
        assert!(resubmitted["return_reason"].is_null(), "{b}: {resubmitted}");
        let (s, published) = post(
            &t,
            &authority,
            &review,
            Some(json!({"decision": "approve"})),
        )
        .await;
        assert_eq!(s, 200, "{b}: {published}");
        assert_eq!(published["status"], "published");
        assert_eq!(t.get(&dev, &path).await.0, 200, "{b}");

        // The ledger tells the whole story: submitted 1, returned 1 (with the reason),
        // revision 2, submitted 2, approved 2, each with its revision's hash.
        let hash1 = metadata_hash(&meta).unwrap().to_hex();
        let hash2 = metadata_hash(&fixed).unwrap().to_hex();
        let decisions: Vec<Value> = entries(&t, &supervisor, "catalog_decision")
            .await
            .iter()
            .map(payload)
            .collect();
        let story: Vec<(String, u64, String)> = decisions
            .iter()
            .map(|d| {
                (
                    d["decision"].as_str().unwrap().to_string(),
                    d["revision"].as_u64().unwrap(),
                    d["metadata_hash"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            story,
            [
                ("submitted".to_string(), 1, hash1.clone()),
                ("returned".to_string(), 1, hash1.clone()),
                ("submitted".to_string(), 2, hash2.clone()),
                ("approved".to_string(), 2, hash2.clone()),
            ],
            "{b}: {decisions:?}"
        );
        assert_eq!(decisions[1]["reason"], reason, "{b}");
        let revisions = entries(&t, &supervisor, "catalog_revision").await;
        assert_eq!(revisions.len(), 1, "{b}");
        assert_eq!(payload(&revisions[0])["metadata_hash"], hash2.as_str());
        let (_, history) = t.get(&dev, &format!("{path}/revisions")).await;
        let numbers: Vec<u64> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["revision"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, [1, 2], "{b}: {history}");
        t.stop().await;
    }
}

#[tokio::test]
async fn catalog_revisions_keep_history_ledger_entries_and_certificates_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (provider_org, provider) = t.key_for("power-bureau", "provider").await;
        let (_, dev) = t.key_for("energy-analytics", "developer").await;
        let (_, supervisor) = t.key_for("regulator", "supervisor").await;
        let meta = electricity();
        let id = register(&t, &provider, &json_of(&meta)).await;
        let path = format!("/v1/datasets/{id}");
        let csv = samples::electricity_csv(40, 7);
        upload_certified(&t, &provider, &id, "", csv.into_bytes()).await;
        let certificate_path = format!("{path}/versions/1/certificate");
        let (s, before) = t.get(&dev, &certificate_path).await;
        assert_eq!(s, 200, "{b}: {before}");
        let (_, versions_before) = t.get(&dev, &format!("{path}/versions")).await;

        // An edit after a legal change of today: revision 2, in time.
        let mut edited = meta.clone();
        edited.description =
            "Monthly electricity use of enterprises in kWh, by the 2026 tariff law".into();
        edited.legal_basis = "Electricity Law Art.5 (2026); GD21 Art.12".into();
        let changed_on = day(0);
        let (s, entry) = put(
            &t,
            &provider,
            &path,
            edit_body(&edited, "the tariff law changed", Some(&changed_on)),
        )
        .await;
        assert_eq!(s, 200, "{b}: {entry}");
        assert_eq!(entry["revision"], 2, "{b}: {entry}");
        assert_eq!(entry["status"], "published");
        assert_eq!(entry["legal_basis"], edited.legal_basis.as_str());
        assert_eq!(entry["latest_version"], 1);

        let (s, history) = t.get(&dev, &format!("{path}/revisions")).await;
        assert_eq!(s, 200, "{b}: {history}");
        let history = history.as_array().unwrap().clone();
        assert_eq!(history.len(), 2, "{b}: {history:?}");
        let r2 = &history[1];
        let hash2 = metadata_hash(&edited).unwrap().to_hex();
        let due = iso_date(Calendar::default().add_working_days(parse_day(&changed_on), 15));
        assert_eq!(r2["revision"], 2, "{b}: {r2}");
        assert_eq!(r2["metadata_hash"], hash2.as_str(), "{b}: {r2}");
        assert_eq!(r2["reason"], "the tariff law changed");
        assert_eq!(r2["provider_org"], provider_org.as_str());
        assert_eq!(r2["legal_change_date"], changed_on.as_str());
        assert_eq!(r2["update_due"], due.as_str(), "{b}: {r2}");
        assert_eq!(r2["late"], false);
        assert_eq!(r2["metadata"]["legal_basis"], edited.legal_basis.as_str());
        assert!(r2["created_ms"].as_i64().is_some());
        assert!(r2["actor_key"].as_str().is_some());

        // On the ledger, for the provider and supervisors, not for developers.
        let seq = r2["ledger_seq"].as_u64().unwrap();
        let (s, ledger_entry) = t.get(&provider, &format!("/v1/ledger/entries/{seq}")).await;
        assert_eq!(s, 200, "{b}: {ledger_entry}");
        assert_eq!(ledger_entry["kind"], "catalog_revision");
        let p = payload(&ledger_entry);
        assert_eq!(p["dataset_id"], id.as_str(), "{b}: {p}");
        assert_eq!(p["revision"], 2);
        assert_eq!(p["metadata_hash"], hash2.as_str());
        assert_eq!(p["reason"], "the tariff law changed");
        assert_eq!(p["legal_change_date"], changed_on.as_str());
        assert_eq!(p["late"], false);
        assert_eq!(
            t.get(&supervisor, &format!("/v1/ledger/entries/{seq}"))
                .await
                .0,
            200
        );
        assert_eq!(
            t.get(&dev, &format!("/v1/ledger/entries/{seq}")).await.0,
            404,
            "{b}"
        );

        // The version keeps its certificate: the same certificate and ledger entry, and
        // both receipts, the one from before and the one now, verify offline.
        let (s, after) = t.get(&dev, &certificate_path).await;
        assert_eq!(s, 200, "{b}: {after}");
        assert_eq!(after["certificate"], before["certificate"], "{b}");
        assert_eq!(after["receipt"]["entry"], before["receipt"]["entry"], "{b}");
        let key = NoteVerifier::parse(&t.app.ledger.verifier().to_vkey()).unwrap();
        for cert in [&before, &after] {
            let receipt: Receipt = serde_json::from_value(cert["receipt"].clone()).unwrap();
            receipt.verify(&key).unwrap();
            assert_eq!(receipt.entry.kind.as_str(), "asset_certificate");
        }
        let (_, versions_after) = t.get(&dev, &format!("{path}/versions")).await;
        assert_eq!(versions_after, versions_before, "{b}");
        // And the entry stays reachable.
        let (s, out) = post(
            &t,
            &dev,
            "/v1/dry-run",
            Some(json!({"kind": "sql", "body": SQL, "dataset_id": id, "rows": 300})),
        )
        .await;
        assert_eq!(s, 200, "{b}: {out}");

        // Refused edits of a published entry with a version: 409, nothing written.
        let mut opened = edited.clone();
        opened.open_attribute = pdx_sandbox::catalog::OpenAttribute::Unconditional;
        let (s, p) = put(&t, &provider, &path, edit_body(&opened, "open it", None)).await;
        assert_eq!(s, 409, "{b}: {p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("open-attribute change procedure"),
            "{b}: {p}"
        );
        let mut reshaped = edited.clone();
        reshaped.schema.columns.push(ColumnSpec {
            name: "note".into(),
            column_type: ColumnType::String,
            role: ColumnRole::Other,
            rule: DeidRule::Keep,
            domain: None,
            nullable: false,
        });
        let (s, p) = put(
            &t,
            &provider,
            &path,
            edit_body(&reshaped, "a note per enterprise", None),
        )
        .await;
        assert_eq!(s, 409, "{b}: {p}");
        assert!(p["detail"].as_str().unwrap().contains("schema"), "{b}: {p}");
        let (_, unchanged) = t.get(&provider, &path).await;
        assert_eq!(unchanged["revision"], 2, "{b}: {unchanged}");
        assert_eq!(unchanged["open_attribute"], "conditional");
        assert_eq!(
            entries(&t, &supervisor, "catalog_revision").await.len(),
            1,
            "{b}"
        );

        // An edit more than 15 working days after its legal change is late, and shows
        // on the compliance report.
        let mut late = edited.clone();
        late.theme = "energy".into();
        let (s, entry) = put(
            &t,
            &provider,
            &path,
            edit_body(
                &late,
                "the 2020 reorganisation of themes",
                Some("2020-01-06"),
            ),
        )
        .await;
        assert_eq!(s, 200, "{b}: {entry}");
        assert_eq!(entry["revision"], 3);
        let (_, history) = t.get(&provider, &format!("{path}/revisions")).await;
        let r3 = &history[2];
        let due3 = iso_date(Calendar::default().add_working_days(parse_day("2020-01-06"), 15));
        assert_eq!(r3["late"], true, "{b}: {r3}");
        assert_eq!(r3["update_due"], due3.as_str(), "{b}: {r3}");
        let seq3 = r3["ledger_seq"].as_u64().unwrap();
        let (_, e3) = t
            .get(&supervisor, &format!("/v1/ledger/entries/{seq3}"))
            .await;
        assert_eq!(payload(&e3)["late"], true, "{b}: {e3}");
        let (s, report) = t.get(&supervisor, "/v1/audit/compliance").await;
        assert_eq!(s, 200, "{b}: {report}");
        let late_revisions = report["late_catalog_revisions"].as_array().unwrap();
        assert_eq!(late_revisions.len(), 1, "{b}: {report}");
        let item = &late_revisions[0];
        assert_eq!(item["dataset_id"], id.as_str(), "{b}: {item}");
        assert_eq!(item["revision"], 3);
        assert_eq!(item["legal_change_date"], "2020-01-06");
        assert_eq!(item["update_due"], due3.as_str());
        assert_eq!(item["revised_on"], day(0).as_str());
        assert_eq!(item["revision_seq"], seq3);
        assert_eq!(report["clean"], false);
        // The search text follows the edit.
        let (_, page) = t.get(&dev, "/v1/datasets?theme=energy").await;
        assert_eq!(ids(&page), std::slice::from_ref(&id), "{b}: {page}");
        t.stop().await;
    }
}

#[tokio::test]
async fn the_harness_publishes_through_its_own_data_authority() {
    let t = TestServer::start(false).await.unwrap();
    let (_, provider) = t.key_for("power-bureau", "provider").await;
    let (_, dev) = t.key_for("energy-analytics", "developer").await;
    let id = draft(&t, &provider, &json_of(&electricity())).await;
    assert_eq!(t.get(&dev, &format!("/v1/datasets/{id}")).await.0, 404);
    let published = publish(&t, &provider, &id).await;
    assert_eq!(published["status"], "published", "{published}");
    assert_eq!(t.get(&dev, &format!("/v1/datasets/{id}")).await.0, 200);
    let (_, me) = t.get(t.authority().await, "/v1/whoami").await;
    assert_eq!(me["role"], "authority", "{me}");
    let (_, orgs) = t.get(&t.admin, "/v1/orgs").await;
    assert!(
        orgs.to_string().contains(AUTHORITY_ORG),
        "the authority's organisation: {orgs}"
    );
    t.stop().await;
}

#[tokio::test]
async fn catalog_life_cycle_routes_refuse_every_other_role_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("power-bureau", "provider").await;
        let id = draft(&t, &provider, &json_of(&electricity())).await;
        let keys = key_per_role(&t, "org").await;
        let mut refused = 0;
        for (method, route, policy) in POLICIES {
            let life_cycle = matches!(
                (*method, *route),
                ("PUT", "/v1/datasets/{id}")
                    | ("POST", "/v1/datasets/{id}/submit")
                    | ("POST", "/v1/datasets/{id}/review")
                    | ("GET", "/v1/datasets/{id}/revisions")
            );
            if !life_cycle {
                continue;
            }
            let path = route.replace("{id}", &id);
            let body = json!({"decision": "approve", "reason": "x"});
            refused += refused_outside_policy(&t, &keys, policy, method, &path, Some(body)).await;
        }
        // PUT and submit: 9 roles each; review: 9; revisions: none.
        assert_eq!(refused, 27, "{b}");
        let (_, entry) = t.get(&provider, &format!("/v1/datasets/{id}")).await;
        assert_eq!(entry["status"], "draft", "{b}: {entry}");
        assert_eq!(entry["revision"], 1, "{b}: {entry}");
        t.stop().await;
    }
}
