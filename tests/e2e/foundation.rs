//! Bootstrap, keys, authentication, authorization, errors, and the operational endpoints.

use std::collections::BTreeSet;

use pdx::auth::Owner;
use pdx::http::policies::POLICIES;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestServer, key_per_role};

#[tokio::test]
async fn bootstrap_writes_a_private_admin_key_once() {
    let t = TestServer::start(false).await.unwrap();
    let path = t.dir.path().join("admin.key");
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), t.admin);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        t.app.bootstrap().await.unwrap().is_none(),
        "second start must not bootstrap"
    );
    let (s, me) = t.get(&t.admin, "/v1/whoami").await;
    assert_eq!((s, me["role"].as_str()), (200, Some("admin")));
    t.stop().await;
}

#[tokio::test]
async fn keys_are_issued_refused_and_revoked_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        assert_eq!(
            t.call(None, Method::GET, "/v1/whoami", None).await.0,
            401,
            "{b}: missing"
        );
        assert_eq!(
            t.get("pdx_0123456789abcdef_nope", "/v1/whoami").await.0,
            401,
            "{b}: invalid"
        );
        assert_eq!(
            t.get("garbage", "/v1/whoami").await.0,
            401,
            "{b}: malformed"
        );
        let (org, dev) = t.key_for("acme-data", "developer").await;
        let (s, me) = t.get(&dev, "/v1/whoami").await;
        assert_eq!(s, 200);
        assert_eq!(
            (me["org_id"].as_str(), me["role"].as_str()),
            (Some(org.as_str()), Some("developer"))
        );
        // Wrong role: a developer may not issue keys.
        let (s, p) = t
            .call(
                Some(&dev),
                Method::POST,
                "/v1/keys",
                Some(json!({"org": org, "role": "admin"})),
            )
            .await;
        assert_eq!(s, 403, "{b}");
        assert_eq!(p["status"], 403);
        assert!(p["request_id"].as_str().is_some_and(|r| !r.is_empty()));
        // Listing keys never shows a secret.
        let (s, keys) = t.get(&t.admin, "/v1/keys").await;
        assert_eq!(s, 200);
        // The secret is everything after `pdx_<key id>_` (base64url, so it may hold `_`).
        let secret = dev.splitn(3, '_').nth(2).unwrap();
        assert!(
            !keys.to_string().contains(secret),
            "{b}: a secret leaked in the key list"
        );
        // Revocation applies from the next request.
        let key_id = me["key_id"].as_str().unwrap();
        let (s, _) = t
            .call(
                Some(&t.admin),
                Method::DELETE,
                &format!("/v1/keys/{key_id}"),
                None,
            )
            .await;
        assert_eq!(s, 204, "{b}");
        assert_eq!(
            t.get(&dev, "/v1/whoami").await.0,
            401,
            "{b}: revoked key accepted"
        );
        let (s, _) = t
            .call(
                Some(&t.admin),
                Method::DELETE,
                &format!("/v1/keys/{key_id}"),
                None,
            )
            .await;
        assert_eq!(s, 404, "{b}: revoking twice");
        // Duplicate organisations conflict.
        let (s, _) = t
            .call(
                Some(&t.admin),
                Method::POST,
                "/v1/orgs",
                Some(json!({"name": "acme-data"})),
            )
            .await;
        assert_eq!(s, 409, "{b}");
        t.stop().await;
    }
}

/// `DELETE /v1/keys/{key_id}` with `key`.
async fn revoke(t: &TestServer, key: &str, key_id: &str) -> (u16, Value) {
    t.call(
        Some(key),
        Method::DELETE,
        &format!("/v1/keys/{key_id}"),
        None,
    )
    .await
}

/// Issues an admin key in `org` with the admin `key`; returns (key id, key).
async fn issue_admin_key(t: &TestServer, key: &str, org: &str, label: &str) -> (String, String) {
    let (s, issued) = t
        .call(
            Some(key),
            Method::POST,
            "/v1/keys",
            Some(json!({"org": org, "role": "admin", "label": label})),
        )
        .await;
    assert_eq!(s, 201, "{}: {issued}", t.backend);
    (
        issued["key_id"].as_str().unwrap().to_string(),
        issued["key"].as_str().unwrap().to_string(),
    )
}

/// The refusal to revoke the last admin key: a 409 problem that says how to rotate.
fn assert_last_admin_refused(b: &str, status: u16, problem: &Value) {
    assert_eq!(status, 409, "{b}: {problem}");
    assert_eq!(
        problem["type"], "urn:pdx:problem:conflict",
        "{b}: {problem}"
    );
    assert_eq!(problem["status"], 409, "{b}: {problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("last active admin key")
            && detail.contains("POST /v1/keys")
            && detail.contains(r#""role": "admin""#)
            && detail.contains("pdx keys create")
            && detail.contains("then revoke"),
        "{b}: {detail}"
    );
}

#[tokio::test]
async fn the_last_admin_key_cannot_be_revoked_and_rotation_works_on_both_backends() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (s, me) = t.get(&t.admin, "/v1/whoami").await;
        assert_eq!(s, 200, "{b}: {me}");
        let first_id = me["key_id"].as_str().unwrap().to_string();
        let platform = me["org_id"].as_str().unwrap().to_string();

        // The only admin key, revoking itself: refused, and it still works.
        let (s, p) = revoke(&t, &t.admin, &first_id).await;
        assert_last_admin_refused(b, s, &p);
        assert_eq!(
            t.get(&t.admin, "/v1/keys").await.0,
            200,
            "{b}: the refused revocation took effect"
        );

        // The CLI calls the same code: the same message on stderr, exit code 1.
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pdx"))
            .arg("--data-dir")
            .arg(t.dir.path())
            .args(["--database-url", &t.app.config.database_url])
            .args(["keys", "revoke", &first_id])
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{b}: {stderr}");
        assert!(
            stderr.contains("last active admin key") && stderr.contains("pdx keys create"),
            "{b}: {stderr}"
        );
        assert_eq!(
            t.get(&t.admin, "/v1/keys").await.0,
            200,
            "{b}: the CLI revoked the last admin key"
        );

        // Rotation: the new admin key first, then the old one may go (here by itself).
        let (second_id, second) = issue_admin_key(&t, &t.admin, &platform, "rotated").await;
        let (s, p) = revoke(&t, &t.admin, &first_id).await;
        assert_eq!(s, 204, "{b}: {p}");
        assert_eq!(
            t.get(&t.admin, "/v1/whoami").await.0,
            401,
            "{b}: revoked admin key accepted"
        );
        assert_eq!(t.get(&second, "/v1/keys").await.0, 200, "{b}");

        // Now the second is the last one, whoever asks.
        let (s, p) = revoke(&t, &second, &second_id).await;
        assert_last_admin_refused(b, s, &p);
        assert_eq!(t.get(&second, "/v1/keys").await.0, 200, "{b}");

        // Keys of other roles are revoked as before, and revoking twice is still a 404.
        // (`t.admin` is revoked now: the second admin key issues it.)
        let (s, org) = t
            .call(
                Some(&second),
                Method::POST,
                "/v1/orgs",
                Some(json!({"name": "acme-rotation"})),
            )
            .await;
        assert_eq!(s, 201, "{b}: {org}");
        let (s, dev) = t
            .call(
                Some(&second),
                Method::POST,
                "/v1/keys",
                Some(json!({"org": org["id"], "role": "developer"})),
            )
            .await;
        assert_eq!(s, 201, "{b}: {dev}");
        let dev_id = dev["key_id"].as_str().unwrap();
        assert_eq!(revoke(&t, &second, dev_id).await.0, 204, "{b}");
        assert_eq!(revoke(&t, &second, dev_id).await.0, 404, "{b}");
        assert_eq!(revoke(&t, &second, &first_id).await.0, 404, "{b}");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_revocations_of_the_last_two_admin_keys_let_exactly_one_through() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, me) = t.get(&t.admin, "/v1/whoami").await;
        let platform = me["org_id"].as_str().unwrap().to_string();
        let mut survivor = (me["key_id"].as_str().unwrap().to_string(), t.admin.clone());
        // Several rounds, to give a check-then-write race room to show.
        for round in 0..5 {
            let other =
                issue_admin_key(&t, &survivor.1, &platform, &format!("round {round}")).await;
            // Each key revokes itself, so both requests authenticate whatever the order.
            let ((s1, p1), (s2, p2)) = tokio::join!(
                revoke(&t, &survivor.1, &survivor.0),
                revoke(&t, &other.1, &other.0)
            );
            let mut statuses = [s1, s2];
            statuses.sort();
            assert_eq!(statuses, [204, 409], "{b} round {round}: {p1} {p2}");
            let refused = if s1 == 409 { &p1 } else { &p2 };
            assert_last_admin_refused(b, 409, refused);
            let (gone, kept) = if s1 == 204 {
                (survivor, other)
            } else {
                (other, survivor)
            };
            assert_eq!(
                t.get(&gone.1, "/v1/whoami").await.0,
                401,
                "{b} round {round}: revoked admin key accepted"
            );
            assert_eq!(
                t.get(&kept.1, "/v1/keys").await.0,
                200,
                "{b} round {round}: no admin key left"
            );
            survivor = kept;
        }
        let (s, keys) = t.get(&survivor.1, "/v1/keys").await;
        assert_eq!(s, 200, "{b}");
        let active_admins: Vec<&str> = keys
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["role"] == "admin" && k["revoked_ms"].is_null())
            .map(|k| k["key_id"].as_str().unwrap())
            .collect();
        assert_eq!(active_admins, [survivor.0.as_str()], "{b}: {keys}");
        t.stop().await;
    }
}

#[tokio::test]
async fn bad_bodies_get_problem_json_with_the_field_path() {
    let t = TestServer::start(false).await.unwrap();
    let post = |body: Vec<u8>, ctype: Option<&'static str>| {
        let mut req = t
            .http
            .post(t.url("/v1/orgs"))
            .bearer_auth(&t.admin)
            .body(body);
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
            let v: serde_json::Value = resp.json().await.unwrap();
            (status, ctype, v)
        }
    };
    let (s, c, v) = post(b"{\"name\": ".to_vec(), Some("application/json")).await;
    assert_eq!((s, c.as_str()), (400, "application/problem+json"), "{v}");
    let (s, _, v) = post(br#"{"name": 5}"#.to_vec(), Some("application/json")).await;
    assert_eq!(s, 422);
    assert_eq!(v["path"], "name");
    let (s, _, v) = post(
        br#"{"name": "x", "colour": "red"}"#.to_vec(),
        Some("application/json"),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    let (s, _, _) = post(br#"{"name": "x"}"#.to_vec(), None).await;
    assert_eq!(s, 415);
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(200 * 1024));
    let (s, _, v) = post(big.into_bytes(), Some("application/json")).await;
    assert_eq!(s, 413, "{v}");
    let (s, _, v) = post(br#"{"name": ""}"#.to_vec(), Some("application/json")).await;
    assert_eq!(s, 422, "{v}");
    // Unknown routes and bad path parameters are problems too, never 500s.
    assert_eq!(t.get(&t.admin, "/v1/nothing-here").await.0, 404);
    assert_eq!(
        t.get(&t.admin, "/v1/ledger/entries/not-a-number").await.0,
        400
    );
    t.stop().await;
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi_3_1() {
    let t = TestServer::start(false).await.unwrap();
    assert_eq!(t.call(None, Method::GET, "/healthz", None).await.0, 200);
    assert_eq!(t.call(None, Method::GET, "/readyz", None).await.0, 200);
    t.get(&t.admin, "/v1/whoami").await;
    let (s, metrics) = t.call(None, Method::GET, "/metrics", None).await;
    assert_eq!(s, 200);
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics
            .contains(r#"pdx_http_requests_total{route="/v1/whoami",method="GET",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("pdx_http_request_duration_seconds_bucket{route=\"/v1/whoami\""));
    let (s, doc) = t.call(None, Method::GET, "/openapi.json", None).await;
    assert_eq!(s, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["paths"]["/v1/keys"]["post"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    t.stop().await;
}

/// Every `/v1` operation in the OpenAPI document as (METHOD, path).
fn documented_routes() -> BTreeSet<(String, String)> {
    let (_, doc) = pdx::http::api_routes().split_for_parts();
    let doc = serde_json::to_value(&doc).unwrap();
    let mut out = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[test]
fn every_route_has_exactly_one_policy_and_no_policy_is_stale() {
    let routes = documented_routes();
    assert!(routes.len() >= 10);
    let policies: BTreeSet<(String, String)> = POLICIES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(policies.len(), POLICIES.len(), "duplicate policy entries");
    let missing: Vec<_> = routes.difference(&policies).collect();
    assert!(
        missing.is_empty(),
        "routes without an authorization policy: {missing:?}"
    );
    let stale: Vec<_> = policies.difference(&routes).collect();
    assert!(
        stale.is_empty(),
        "policies for routes that do not exist: {stale:?}"
    );
}

#[tokio::test]
async fn every_route_refuses_no_key_and_every_role_outside_its_policy() {
    let t = TestServer::start(false).await.unwrap();
    let keys = key_per_role(&t, "org").await;
    let mut refused = 0;
    for (method, path, policy) in POLICIES {
        let concrete = path
            .replace("{key_id}", "0123456789abcdef")
            .replace("{seq}", "0");
        let method: Method = method.parse().unwrap();
        // The open catalog's routes answer the public (tests/e2e/public_catalog.rs).
        if policy.owner != Owner::Public {
            let (s, _) = t.call(None, method.clone(), &concrete, None).await;
            assert_eq!(s, 401, "{method} {path} without a key");
        }
        for (role, key) in &keys {
            if policy.roles.contains(role) {
                continue;
            }
            let (s, _) = t
                .call(Some(key), method.clone(), &concrete, Some(json!({})))
                .await;
            assert_eq!(s, 403, "{method} {path} as {role}");
            refused += 1;
        }
    }
    assert!(refused > 20, "only {refused} refusals checked");
    t.stop().await;
}

#[tokio::test]
async fn malformed_ids_in_paths_are_404s_that_do_not_echo_them_and_openapi_shows_id_forms() {
    let t = TestServer::start(false).await.unwrap();
    // (path, the malformed id in it); every route here is open to the admin key, so the
    // answer is the handler's, not the role check's.
    for (path, bad) in [
        ("/v1/jobs/not-a-job-id", "not-a-job-id"),
        ("/v1/datasets/ds_UPPER", "ds_UPPER"),
        ("/v1/datasets/ds_UPPER/versions", "ds_UPPER"),
        ("/v1/datasets/ds_UPPER/versions/1", "ds_UPPER"),
        // A well-formed id of another kind names no job.
        ("/v1/jobs/ds_0123456789abcdef", "ds_0123456789abcdef"),
    ] {
        // `call` asserts that a 4xx is application/problem+json.
        let (s, problem) = t.get(&t.admin, path).await;
        assert_eq!(s, 404, "{path}: {problem}");
        assert_eq!(problem["type"], "urn:pdx:problem:not-found", "{path}");
        assert_eq!(problem["status"], 404, "{path}");
        assert!(
            !problem.to_string().contains(bad),
            "{path}: the problem echoes the id: {problem}"
        );
    }
    // Each id kind is a named string schema with its pattern, and path parameters
    // refer to it.
    let (s, doc) = t.call(None, Method::GET, "/openapi.json", None).await;
    assert_eq!(s, 200);
    let dataset_id = &doc["components"]["schemas"]["DatasetId"];
    assert_eq!(dataset_id["type"], "string", "{dataset_id}");
    assert_eq!(
        dataset_id["pattern"], "^ds_[0-9a-z_-]{1,64}$",
        "{dataset_id}"
    );
    let params = doc["paths"]["/v1/datasets/{id}"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let id = params.iter().find(|p| p["name"] == "id").unwrap();
    assert_eq!(
        id["schema"]["$ref"], "#/components/schemas/DatasetId",
        "{id}"
    );
    let job_id = &doc["components"]["schemas"]["JobId"];
    assert!(job_id["pattern"].as_str().is_some(), "{job_id}");
    t.stop().await;
}
