//! The output checkers' pages of the web portal over HTTP, as browser sessions see
//! them, on SQLite and PostgreSQL.
//!
//! A provider publishes a small enterprise-electricity table (a district with only four
//! software firms, so that a per-district count of software firms is withheld by the
//! threshold rule) and asks for two reviewers; a developer runs a model whose SQL text
//! holds markup in a comment and names a column `=software`. Two reviewers of other
//! organisations sign in: the queue lists the output, its page flags the withheld cell
//! with the threshold class and a badge and shows the SQL inert; a vote without the
//! CSRF token is refused; the first reviewer approves through the form; the second
//! reviewer's page (and API) shows the vote count but not the first decision; the
//! second approves and the output is released in the API. After a new version of the
//! data, a second run of the same model shows its diff against that release (a count
//! changed, a district added), and a reviewer returns it with a comment. The CSV
//! summary has its header, one line per hit and the `=software` column neutralised.
//! Refusals are the API's: a developer gets 403 on every review page, a reviewer of the
//! developer's own organisation 404 on the page and 403 on the vote, a visitor 401.

use pdx::portal::i18n::{Lang, t as message};
use pdx::samples;
use reqwest::Method;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION};
use serde_json::{Value, json};

use crate::catalog::{register, upload_certified, wait_job};
use crate::sandbox::{apply, approve};
use crate::support::{TestServer, csrf_of, get_page, key_id, portal_sign_in, put};

/// The model: per district, the firms and the software firms (a column whose name a
/// spreadsheet would take for a formula), with markup in a comment.
const MODEL: &str = "SELECT district, COUNT(*) AS enterprises, \
    COUNT(*) FILTER (WHERE industry = 'software') AS \"=software\" \
    FROM data GROUP BY district\n\
    -- \"><img src=x onerror=alert(1)> <script>alert(1)</script>";

/// The first reviewer's comment: the second reviewer must not see it before voting.
const FIRST_REASON: &str = "first-look: district aggregates of 44 or more firms";

/// Version 1: (district, industry, firms). Futian has only four software firms.
const VERSION_1: &[(&str, &str, usize)] = &[
    ("Futian", "manufacturing", 40),
    ("Futian", "software", 4),
    ("Luohu", "manufacturing", 30),
    ("Luohu", "software", 20),
    ("Nanshan", "retail", 40),
    ("Nanshan", "software", 20),
];

/// What version 2 adds: 15 firms in Nanshan (60 → 75) and a new district.
const VERSION_2_MORE: &[(&str, &str, usize)] =
    &[("Nanshan", "retail", 15), ("Yantian", "logistics", 30)];

/// The electricity CSV of `groups`, one enterprise per line (each with its own valid
/// credit code; the same groups give the same lines).
fn electricity(groups: &[(&str, &str, usize)]) -> Vec<u8> {
    let mut csv = String::from("credit_code,district,industry,kwh_12m\n");
    let mut seed = 0u64;
    for (district, industry, firms) in groups {
        for _ in 0..*firms {
            seed += 1;
            csv.push_str(&format!(
                "{},{district},{industry},{}\n",
                samples::credit_code(seed),
                50_000 + seed * 37
            ));
        }
    }
    csv.into_bytes()
}

/// Posts a form and follows the redirect a successful one answers with (whether or not
/// the client follows redirects itself).
async fn submit(
    client: &reqwest::Client,
    t: &TestServer,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String, String) {
    let resp = client.post(t.url(path)).form(form).send().await.unwrap();
    if resp.status() == reqwest::StatusCode::SEE_OTHER {
        let location = resp.headers()[LOCATION].to_str().unwrap().to_string();
        return get_page(client, t, &location).await;
    }
    let status = resp.status().as_u16();
    let end = resp.url().path().to_string();
    (status, end, resp.text().await.unwrap())
}

/// The part of the queue page listing `list` (up to the next list).
fn queue_part<'p>(page: &'p str, list: &str) -> &'p str {
    let marker = format!("data-queue=\"{list}\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {list} list: {page}"));
    let rest = &page[start + marker.len()..];
    match rest.find("data-queue=") {
        Some(end) => &rest[..end],
        None => rest,
    }
}

/// The cells (`<td …>…</td>`) of a page whose classes include `class`.
fn flagged_cells<'p>(page: &'p str, class: &str) -> Vec<&'p str> {
    page.match_indices("<td class=\"")
        .filter_map(|(at, _)| {
            let cell = &page[at..];
            let cell = &cell[..cell.find("</td>")?];
            let classes = cell["<td class=\"".len()..].split('"').next()?;
            classes.split(' ').any(|c| c == class).then_some(cell)
        })
        .collect()
}

/// The fields of one CSV line (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Runs the registered model on the latest version under the grant; the output id.
async fn run(t: &TestServer, dev: &str, model: &str, dataset: &str, grant: &str) -> String {
    let b = t.backend;
    let (s, job) = t
        .call(
            Some(dev),
            Method::POST,
            "/v1/runs",
            Some(
                json!({"model_id": model, "inputs": [{"dataset_id": dataset, "grant_id": grant}]}),
            ),
        )
        .await;
    assert_eq!(s, 202, "{b}: {job}");
    let job = wait_job(t, dev, job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{b}: {job}");
    job["result"]["output_id"].as_str().unwrap().to_string()
}

/// The `enterprises` count of `district` in rows as the API hands them out.
fn enterprises(rows: &Value, district: &str) -> Value {
    rows.as_array()
        .and_then(|rows| rows.iter().find(|r| r["district"] == district))
        .map(|r| r["enterprises"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn two_reviewers_check_and_release_an_output_in_the_portal_and_the_next_run_shows_its_diff() {
    for t in TestServer::both().await {
        let b = t.backend;
        let (_, provider) = t.key_for("power-bureau", "provider").await;
        let (dev_org, dev) = t.key_for("energy-analytics", "developer").await;
        let (_, reviewer1) = t.key_for("output-checkers-a", "reviewer").await;
        let (_, reviewer2) = t.key_for("output-checkers-b", "reviewer").await;
        // A reviewer key of the developer's own organisation.
        let (s, own) = t
            .call(
                Some(&t.admin),
                Method::POST,
                "/v1/keys",
                Some(json!({"org": dev_org, "role": "reviewer"})),
            )
            .await;
        assert_eq!(s, 201, "{b}: {own}");
        let own_reviewer = own["key"].as_str().unwrap().to_string();

        // A conditional dataset needing two reviewers, a grant, a model, a run.
        let meta = serde_json::to_value(samples::electricity_dataset()).unwrap();
        let dataset = register(&t, &provider, &meta).await;
        upload_certified(
            &t,
            &provider,
            &dataset,
            "?format=csv",
            electricity(VERSION_1),
        )
        .await;
        let (s, policy) = put(
            &t,
            &provider,
            &format!("/v1/datasets/{dataset}/output-policy"),
            json!({"reviewers_required": 2}),
        )
        .await;
        assert_eq!(s, 200, "{b}: {policy}");
        let columns = json!(["district", "industry", "kwh_12m"]);
        let grant = apply(&t, &dev, &dataset, columns, json!(["sql"]), 0.0, 100).await;
        approve(&t, &provider, &grant, json!({})).await;
        let (s, model) = t
            .call(
                Some(&dev),
                Method::POST,
                "/v1/models",
                Some(json!({"name": "firms by district", "kind": "sql", "body": MODEL})),
            )
            .await;
        assert_eq!(s, 201, "{b}: {model}");
        let model = model["id"].as_str().unwrap().to_string();
        let output = run(&t, &dev, &model, &dataset, &grant).await;

        // The API's view first: a threshold hit on Futian's `=software` cell, two
        // reviews required, none yet.
        let (s, item) = t.get(&reviewer1, &format!("/v1/review/{output}")).await;
        assert_eq!(s, 200, "{b}: {item}");
        assert_eq!(item["output"]["required_reviews"], 2, "{b}: {item}");
        assert_eq!(item["output"]["votes"], 0, "{b}: {item}");
        assert_eq!(item["grant_id"], grant.as_str(), "{b}: {item}");
        assert!(item["previous_release"].is_null(), "{b}: {item}");
        let hits = item["output"]["check_report"]["hits"]
            .as_array()
            .unwrap()
            .clone();
        assert!(
            hits.iter()
                .any(|h| h["rule"] == "threshold" && h["column"] == "=software"),
            "{b}: {hits:?}"
        );
        let (s, rows) = t
            .get(
                &reviewer1,
                &format!("/v1/outputs/{output}/download?format=json"),
            )
            .await;
        assert_eq!(s, 200, "{b}: {rows}");
        assert_eq!(enterprises(&rows, "Nanshan"), 60, "{b}: {rows}");

        // The queue: the output awaits the first reviewer.
        let first = portal_sign_in(&t, &reviewer1).await;
        let (s, _, queue) = get_page(&first, &t, "/review").await;
        assert_eq!(s, 200, "{b}: {queue}");
        let marker = format!("data-output=\"{output}\"");
        assert!(
            queue_part(&queue, "awaiting-me").contains(&marker),
            "{b}: {queue}"
        );

        // The output page: the job, the SQL shown inert, the flagged cell with the
        // threshold class and its badge, the legend, no previous release.
        let page_path = format!("/review/outputs/{output}");
        let (s, _, page) = get_page(&first, &t, &page_path).await;
        assert_eq!(s, 200, "{b}: {page}");
        assert!(page.contains(&model), "{b}: the model id is shown");
        let flagged = flagged_cells(&page, "flag-threshold");
        assert!(
            !flagged.is_empty(),
            "{b}: no cell flagged by the threshold: {page}"
        );
        let label = message(Lang::Zh, "review.rule.threshold");
        assert!(
            flagged
                .iter()
                .any(|cell| cell.contains("data-rule=\"threshold\"") && cell.contains(label)),
            "{b}: the flagged cell has no badge: {flagged:?}"
        );
        assert!(
            page.contains("data-legend=\"threshold\""),
            "{b}: the legend"
        );
        assert!(!page.contains("<script>alert(1)"), "{b}: {page}");
        assert!(!page.contains("<img src=x"), "{b}: {page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{b}"
        );
        assert!(
            page.contains("data-previous=\"\""),
            "{b}: no previous release"
        );
        assert!(
            page.contains("action=\"/review/outputs/"),
            "{b}: the vote form"
        );

        // A vote without the CSRF token is refused, and nothing is recorded.
        let (s, _, _) = submit(
            &first,
            &t,
            &page_path,
            &[("decision", "approve"), ("reason", FIRST_REASON)],
        )
        .await;
        assert_eq!(s, 403, "{b}");
        let (_, seen) = t.get(&reviewer1, &format!("/v1/outputs/{output}")).await;
        assert_eq!(seen["votes"], 0, "{b}: {seen}");

        // The author's organisation: the page is the API's 404, the vote its 403.
        let author = portal_sign_in(&t, &own_reviewer).await;
        let (s, _, _) = get_page(&author, &t, &page_path).await;
        assert_eq!(s, 404, "{b}");
        assert_eq!(
            t.get(&own_reviewer, &format!("/v1/review/{output}"))
                .await
                .0,
            404
        );
        let (s, _, author_queue) = get_page(&author, &t, "/review").await;
        assert_eq!(s, 200, "{b}: {author_queue}");
        assert!(
            !author_queue.contains(&marker),
            "{b}: its own output is not queued"
        );
        let author_csrf = csrf_of(&author_queue);
        let (s, _, refused) = submit(
            &author,
            &t,
            &page_path,
            &[
                ("csrf", &author_csrf),
                ("decision", "approve"),
                ("reason", "mine"),
            ],
        )
        .await;
        assert_eq!(s, 403, "{b}: {refused}");

        // The first reviewer approves through the form.
        let csrf = csrf_of(&page);
        let (s, end, after) = submit(
            &first,
            &t,
            &page_path,
            &[
                ("csrf", &csrf),
                ("decision", "approve"),
                ("reason", FIRST_REASON),
            ],
        )
        .await;
        assert_eq!(s, 200, "{b}: {after}");
        assert_eq!(end, page_path, "{b}");
        assert!(
            after.contains("data-decision=\"approve\""),
            "{b}: one's own vote shows"
        );
        let (_, seen) = t.get(&reviewer1, &format!("/v1/outputs/{output}")).await;
        assert_eq!(seen["status"], "quarantined", "{b}: {seen}");
        assert_eq!(seen["votes"], 1, "{b}: {seen}");
        assert_eq!(seen["reviews"].as_array().unwrap().len(), 1, "{b}: {seen}");
        let (s, _, queue) = get_page(&first, &t, "/review").await;
        assert_eq!(s, 200, "{b}: {queue}");
        assert!(
            queue_part(&queue, "awaiting-others").contains(&marker),
            "{b}: {queue}"
        );
        assert!(
            !queue_part(&queue, "awaiting-me").contains(&marker),
            "{b}: {queue}"
        );

        // The second reviewer sees one vote, not its decision nor its comment (the API
        // does not hand them out either).
        let second = portal_sign_in(&t, &reviewer2).await;
        let (s, _, queue2) = get_page(&second, &t, "/review").await;
        assert_eq!(s, 200, "{b}: {queue2}");
        assert!(
            queue_part(&queue2, "awaiting-me").contains(&marker),
            "{b}: {queue2}"
        );
        let (s, _, page2) = get_page(&second, &t, &page_path).await;
        assert_eq!(s, 200, "{b}: {page2}");
        let first_key = key_id(&t, &reviewer1).await;
        assert!(page2.contains("data-votes=\"1\""), "{b}: {page2}");
        assert!(
            !page2.contains("first-look"),
            "{b}: the first comment shows: {page2}"
        );
        assert!(!page2.contains(&first_key), "{b}: the first reviewer shows");
        assert!(
            !page2.contains("data-decision="),
            "{b}: a decision shows: {page2}"
        );
        let (_, hidden) = t.get(&reviewer2, &format!("/v1/outputs/{output}")).await;
        assert_eq!(hidden["votes"], 1, "{b}: {hidden}");
        assert_eq!(hidden["reviews"], json!([]), "{b}: {hidden}");
        assert!(!hidden.to_string().contains("first-look"), "{b}: {hidden}");

        // The second approves: the output is released, and every vote shows.
        let csrf = csrf_of(&page2);
        let (s, _, released_page) = submit(
            &second,
            &t,
            &page_path,
            &[
                ("csrf", &csrf),
                ("decision", "approve"),
                ("reason", "second look: fine"),
            ],
        )
        .await;
        assert_eq!(s, 200, "{b}: {released_page}");
        let (_, mine) = t.get(&dev, &format!("/v1/outputs/{output}")).await;
        assert_eq!(mine["status"], "released", "{b}: {mine}");
        assert!(mine["release_seq"].as_u64().is_some(), "{b}: {mine}");
        assert!(released_page.contains("first-look"), "{b}: {released_page}");
        assert_eq!(
            released_page.matches("data-decision=\"approve\"").count(),
            2,
            "{b}: {released_page}"
        );
        assert!(
            !released_page.contains("name=\"decision\""),
            "{b}: no form once decided"
        );
        let (s, _, queue) = get_page(&first, &t, "/review").await;
        assert_eq!(s, 200, "{b}: {queue}");
        assert!(
            queue_part(&queue, "decided").contains(&marker),
            "{b}: {queue}"
        );
        // A vote on a decided output is the API's 409.
        let (s, _, _) = submit(
            &first,
            &t,
            &page_path,
            &[
                ("csrf", &csrf_of(&queue)),
                ("decision", "return"),
                ("reason", "late"),
            ],
        )
        .await;
        assert_eq!(s, 409, "{b}");

        // The CSV summary: its header, one line per hit, totals, formulas neutralised.
        let resp = first
            .get(t.url(&format!("/review/outputs/{output}/summary.csv")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{b}");
        assert_eq!(
            resp.headers()[CONTENT_TYPE],
            "text/csv; charset=utf-8",
            "{b}"
        );
        let disposition = resp.headers()[CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .to_string();
        assert!(disposition.starts_with("attachment"), "{b}: {disposition}");
        let csv = resp.text().await.unwrap();
        let lines: Vec<Vec<String>> = csv
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(csv_fields)
            .collect();
        assert_eq!(
            lines[0],
            [
                "output_id",
                "row",
                "released_row",
                "column",
                "rule",
                "detail"
            ],
            "{b}: {csv}"
        );
        let hit_lines: Vec<&Vec<String>> = lines[1..].iter().filter(|l| l[1] != "total").collect();
        assert_eq!(hit_lines.len(), hits.len(), "{b}: {csv}");
        assert!(
            hit_lines.iter().all(|l| l.len() == 6 && l[0] == output),
            "{b}: {csv}"
        );
        assert!(
            hit_lines
                .iter()
                .any(|l| l[3] == "'=software" && l[4] == "threshold"),
            "{b}: {csv}"
        );
        assert!(
            lines
                .iter()
                .flatten()
                .all(|f| !f.starts_with(['=', '+', '-', '@'])),
            "{b}: a field a spreadsheet would run: {csv}"
        );
        let total = lines
            .iter()
            .find(|l| l[1] == "total" && l[4] == "hits")
            .unwrap_or_else(|| panic!("{b}: no total: {csv}"));
        assert_eq!(total[5], hits.len().to_string(), "{b}: {csv}");

        // The developer gets the API's 403 on every review page, a visitor 401.
        let developer = portal_sign_in(&t, &dev).await;
        assert_eq!(t.get(&dev, "/v1/review").await.0, 403, "{b}");
        for path in [
            "/review".to_string(),
            page_path.clone(),
            format!("{page_path}/summary.csv"),
        ] {
            let (s, _, _) = get_page(&developer, &t, &path).await;
            assert_eq!(s, 403, "{b}: {path}");
        }
        let visitor = reqwest::Client::new();
        let (s, _, _) = get_page(&visitor, &t, "/review").await;
        assert_eq!(s, 401, "{b}");

        // A new version; the same model again: its page shows the diff against the
        // release (Nanshan's count changed, Yantian added), through the API's new route.
        let mut version_2 = VERSION_1.to_vec();
        version_2.extend_from_slice(VERSION_2_MORE);
        upload_certified(
            &t,
            &provider,
            &dataset,
            "?format=csv",
            electricity(&version_2),
        )
        .await;
        let output2 = run(&t, &dev, &model, &dataset, &grant).await;
        let (s, rows2) = t
            .get(
                &reviewer1,
                &format!("/v1/outputs/{output2}/download?format=json"),
            )
            .await;
        assert_eq!(s, 200, "{b}: {rows2}");
        assert_eq!(enterprises(&rows2, "Nanshan"), 75, "{b}: {rows2}");
        assert_eq!(enterprises(&rows2, "Yantian"), 30, "{b}: {rows2}");
        let (s, previous) = t
            .get(&reviewer1, &format!("/v1/review/{output2}/previous"))
            .await;
        assert_eq!(s, 200, "{b}: {previous}");
        assert_eq!(
            previous["release"]["output_id"],
            output.as_str(),
            "{b}: {previous}"
        );
        assert_eq!(
            previous["release"]["matched_by"], "model",
            "{b}: {previous}"
        );
        assert_eq!(
            previous["output_hash"], mine["output_hash"],
            "{b}: {previous}"
        );
        assert_eq!(
            enterprises(&previous["rows"], "Nanshan"),
            60,
            "{b}: {previous}"
        );
        assert_eq!(
            t.get(&dev, &format!("/v1/review/{output2}/previous"))
                .await
                .0,
            403
        );
        assert_eq!(
            t.get(&reviewer1, &format!("/v1/review/{output}/previous"))
                .await
                .0,
            404,
            "{b}: the first release has nothing before it"
        );
        let page2_path = format!("/review/outputs/{output2}");
        let (s, _, diff_page) = get_page(&first, &t, &page2_path).await;
        assert_eq!(s, 200, "{b}: {diff_page}");
        assert!(
            diff_page.contains(&format!("data-previous=\"{output}\"")),
            "{b}: {diff_page}"
        );
        assert!(diff_page.contains("60 → 75"), "{b}: {diff_page}");
        assert!(
            diff_page.contains("data-diff=\"added-row\""),
            "{b}: {diff_page}"
        );
        assert!(
            diff_page.contains("data-diff-counts=\"1,0,1,3,0\""),
            "{b}: {diff_page}"
        );

        // Returned with a comment: an empty one is the API's 422; then it is rejected.
        let csrf = csrf_of(&diff_page);
        let (s, _, _) = submit(
            &first,
            &t,
            &page2_path,
            &[("csrf", &csrf), ("decision", "return"), ("reason", " ")],
        )
        .await;
        assert_eq!(s, 422, "{b}");
        let (s, _, returned) = submit(
            &first,
            &t,
            &page2_path,
            &[
                ("csrf", &csrf),
                ("decision", "return"),
                ("reason", "Yantian is new; ask why"),
            ],
        )
        .await;
        assert_eq!(s, 200, "{b}: {returned}");
        assert!(
            returned.contains("data-decision=\"reject\""),
            "{b}: {returned}"
        );
        let (_, seen) = t.get(&dev, &format!("/v1/outputs/{output2}")).await;
        assert_eq!(seen["status"], "rejected", "{b}: {seen}");
        let (s, bad) = t.get(&reviewer1, "/v1/review?state=closed").await;
        assert_eq!(s, 422, "{b}: {bad}");
        t.stop().await;
    }
}
