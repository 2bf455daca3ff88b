//! The market pages of the web portal over HTTP, as a browser's session sees them: the
//! exchange lists a product with the form on its desk, the product appears on the
//! buyers' market, a buyer orders twice with the same rendered form (one order: the
//! form's idempotency key goes to the API), pays, and downloads the very archive the
//! API serves; the exchange settles the month and reads the reconciliation chart.
//! Refusals are the API's: another buyer's order is 404, a buyer's session gets 403 on
//! the exchange desk, a visitor 401, a form without its CSRF token 403, and a refused
//! form shows the API's status and detail.
//!
//! The market (provider, developer, reviewer, exchange, buyers, a release over a
//! certified dataset, the products' manual clock) is the one `tests/e2e/products.rs`
//! builds; the product is created through the API, as the developer pages would.

use pdx::portal::layout::yuan;
use pdx_products::Period;
use pdx_products::archive::read_tar;
use serde_json::{Value, json};

use crate::products::{SPLIT, market, product_body};
use crate::support::{TestServer, blake3_hex, csrf_of, get_page, portal_sign_in, post};

const DAY_MS: i64 = 86_400_000;

/// Submits a form (following the redirect a successful one answers with); returns the
/// status, the path it ended on and the body.
async fn submit(
    client: &reqwest::Client,
    t: &TestServer,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String, String) {
    let resp = client.post(t.url(path)).form(form).send().await.unwrap();
    let status = resp.status().as_u16();
    let end = resp.url().path().to_string();
    (status, end, resp.text().await.unwrap())
}

/// The value of the hidden field `name` as the page renders it.
fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in the page"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].to_string()
}

#[tokio::test]
async fn the_market_pages_list_order_once_pay_download_and_settle() {
    for postgres in [false, true] {
        let Some(m) = market(postgres).await else {
            continue;
        };
        let t = &m.t;
        let b = t.backend;
        let release_id = m.release["release_id"].as_str().unwrap();
        let (s, product) = post(
            t,
            &m.dev,
            "/v1/products",
            product_body(json!([release_id]), "commercial_internal", SPLIT),
        )
        .await;
        assert_eq!(s, 201, "{b}: {product}");
        let pid = product["id"].as_str().unwrap().to_string();
        let title = product["title"].as_str().unwrap().to_string();
        let price = product["price_minor"].as_i64().unwrap();
        let region = product["regions"][0]["region"]
            .as_str()
            .unwrap()
            .to_string();
        let certificate = product["manifest"]["sources"][0]["datasets"][0]["certificate_no"]
            .as_str()
            .unwrap()
            .to_string();

        let exchange = portal_sign_in(t, &m.exchange).await;
        let buyer = portal_sign_in(t, &m.buyer).await;
        let buyer2 = portal_sign_in(t, &m.buyer2).await;
        let visitor = reqwest::Client::new();

        // The desk's queue: the pending product with its manifest, lineage and forms.
        let (s, _, queue) = get_page(&exchange, t, "/exchange").await;
        assert_eq!(s, 200, "{b}: {queue}");
        assert!(
            queue.contains(&pid) && queue.contains(&title),
            "{b}: {queue}"
        );
        assert!(
            queue.contains(&certificate),
            "{b}: the manifest's certificate"
        );
        assert!(queue.contains("<svg"), "{b}: the lineage graph");
        let list_path = format!("/exchange/products/{pid}/list");
        assert!(queue.contains(&format!("action=\"{list_path}\"")), "{b}");
        assert!(
            queue.contains(&format!("action=\"/exchange/products/{pid}/reject\"")),
            "{b}"
        );

        // The desk is the exchange's: a buyer's session gets the API's 403, a visitor
        // without a session 401.
        let product_desk = format!("/exchange/products/{pid}");
        for path in [
            "/exchange",
            "/exchange/orders",
            "/exchange/settlements",
            "/exchange/reconciliation",
            product_desk.as_str(),
        ] {
            assert_eq!(
                get_page(&buyer, t, path).await.0,
                403,
                "{b}: {path} as a buyer"
            );
            assert_eq!(
                get_page(&visitor, t, path).await.0,
                401,
                "{b}: {path} signed out"
            );
        }
        assert_eq!(get_page(&visitor, t, "/buyer").await.0, 401, "{b}");

        // Not on the market before it is listed.
        let (s, _, on_sale) = get_page(&buyer, t, "/buyer").await;
        assert_eq!(s, 200, "{b}: {on_sale}");
        assert!(
            !on_sale.contains(&pid),
            "{b}: a pending product is not on sale"
        );

        // A list form post without the CSRF token, or with another one, is refused and
        // lists nothing.
        assert_eq!(submit(&exchange, t, &list_path, &[]).await.0, 403, "{b}");
        let forged = [("csrf", "not-the-session-token")];
        assert_eq!(
            submit(&exchange, t, &list_path, &forged).await.0,
            403,
            "{b}"
        );
        let (_, p) = t.get(&m.exchange, &format!("/v1/products/{pid}")).await;
        assert_eq!(p["status"], "pending_review", "{b}");
        // A buyer's session cannot list it either (the API's 403).
        let (_, _, buyer_home) = get_page(&buyer, t, "/buyer").await;
        let buyer_csrf = csrf_of(&buyer_home);
        let as_buyer = [("csrf", buyer_csrf.as_str())];
        assert_eq!(submit(&buyer, t, &list_path, &as_buyer).await.0, 403, "{b}");

        // The exchange lists it with the form: registration number, listed.
        let csrf = csrf_of(&queue);
        let with_csrf = [("csrf", csrf.as_str())];
        let (s, end, listed) = submit(&exchange, t, &list_path, &with_csrf).await;
        assert_eq!(s, 200, "{b}: {listed}");
        assert_eq!(end, product_desk, "{b}");
        let (_, p) = t.get(&m.exchange, &format!("/v1/products/{pid}")).await;
        assert_eq!(p["status"], "listed", "{b}: {p}");
        let registration = p["registration_no"].as_str().unwrap().to_string();
        assert!(listed.contains(&registration), "{b}: {listed}");

        // A refused form shows the API's status and detail: a rejection without a
        // reason is its 422; with one, the product is rejected.
        let (s, second) = post(
            t,
            &m.dev,
            "/v1/products",
            product_body(json!([release_id]), "commercial_internal", SPLIT),
        )
        .await;
        assert_eq!(s, 201, "{b}: {second}");
        let pid2 = second["id"].as_str().unwrap();
        let reject_path = format!("/exchange/products/{pid2}/reject");
        let blank = [("csrf", csrf.as_str()), ("reason", "  ")];
        let (s, _, refused) = submit(&exchange, t, &reject_path, &blank).await;
        assert_eq!(s, 422, "{b}: the API's status: {refused}");
        assert!(
            refused.contains("reason is empty"),
            "{b}: the API's detail: {refused}"
        );
        let reason = "the description overstates the coverage";
        let given = [("csrf", csrf.as_str()), ("reason", reason)];
        let (s, _, rejected) = submit(&exchange, t, &reject_path, &given).await;
        assert_eq!(s, 200, "{b}: {rejected}");
        assert!(rejected.contains(reason), "{b}: {rejected}");
        let (_, p2) = t.get(&m.exchange, &format!("/v1/products/{pid2}")).await;
        assert_eq!(p2["status"], "rejected", "{b}");

        // The buyer's market shows the listed product (and finds it by search).
        let (s, _, on_sale) = get_page(&buyer, t, "/buyer").await;
        assert_eq!(s, 200);
        assert!(on_sale.contains(&pid), "{b}: listed products are on sale");
        assert!(!on_sale.contains(pid2), "{b}: rejected products are not");
        let (_, _, found) = get_page(&buyer, t, "/buyer?q=DISTRICT").await;
        assert!(found.contains(&pid), "{b}: search ignores case");
        let (_, _, none) = get_page(&buyer, t, "/buyer?q=no-such-product-anywhere").await;
        assert!(!none.contains(&pid), "{b}");

        // The product page: price in yuan and an order form with a fresh key each time.
        let product_page = format!("/buyer/products/{pid}");
        let (s, _, page) = get_page(&buyer, t, &product_page).await;
        assert_eq!(s, 200, "{b}: {page}");
        assert!(page.contains(&yuan(price)), "{b}: the price in yuan");
        assert!(page.contains(&certificate), "{b}: the manifest");
        let key = hidden_field(&page, "idempotency_key");
        let (_, _, again) = get_page(&buyer, t, &product_page).await;
        assert_ne!(hidden_field(&again, "idempotency_key"), key, "{b}");

        // The same rendered form submitted twice is one order.
        let order_path = format!("/buyer/products/{pid}/order");
        let order_form = [
            ("csrf", buyer_csrf.as_str()),
            ("idempotency_key", key.as_str()),
        ];
        let (s, first, placed) = submit(&buyer, t, &order_path, &order_form).await;
        assert_eq!(s, 200, "{b}: {placed}");
        let oid = first
            .strip_prefix("/buyer/orders/")
            .unwrap_or_else(|| panic!("{b}: ended on {first}"))
            .to_string();
        let (s, replay, _) = submit(&buyer, t, &order_path, &order_form).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(replay, first, "{b}: the same form is the same order");
        let (s, orders) = t.get(&m.buyer, "/v1/orders").await;
        assert_eq!(s, 200);
        assert_eq!(
            orders.as_array().unwrap().len(),
            1,
            "{b}: one order: {orders}"
        );
        assert_eq!(orders[0]["id"], oid.as_str());
        assert_eq!(orders[0]["status"], "pending");

        // The order page: a payment form, nothing to download yet (the API's 402).
        let order_page = format!("/buyer/orders/{oid}");
        let pay_path = format!("/buyer/orders/{oid}/pay");
        let download_path = format!("/buyer/orders/{oid}/download");
        let (s, _, pending) = get_page(&buyer, t, &order_page).await;
        assert_eq!(s, 200, "{b}: {pending}");
        assert!(pending.contains(&format!("action=\"{pay_path}\"")), "{b}");
        assert!(!pending.contains(&download_path), "{b}: unpaid");
        assert_eq!(get_page(&buyer, t, &download_path).await.0, 402, "{b}");

        // Another buyer's order is not found, as in the API, for every page and form.
        let (_, _, other_home) = get_page(&buyer2, t, "/buyer").await;
        let other_csrf = csrf_of(&other_home);
        assert_eq!(get_page(&buyer2, t, &order_page).await.0, 404, "{b}");
        assert_eq!(get_page(&buyer2, t, &download_path).await.0, 404, "{b}");
        let theirs = [("csrf", other_csrf.as_str()), ("payment_ref", "theirs")];
        assert_eq!(submit(&buyer2, t, &pay_path, &theirs).await.0, 404, "{b}");
        assert_eq!(t.get(&m.buyer2, &format!("/v1/orders/{oid}")).await.0, 404);

        // Pay with the form.
        let payment = [
            ("csrf", buyer_csrf.as_str()),
            ("payment_ref", "bank-portal-0001"),
        ];
        let (s, end, paid) = submit(&buyer, t, &pay_path, &payment).await;
        assert_eq!(s, 200, "{b}: {paid}");
        assert_eq!(end, order_page, "{b}");
        assert!(paid.contains(&download_path), "{b}: the download link");
        let (_, o) = t.get(&m.buyer, &format!("/v1/orders/{oid}")).await;
        assert_eq!(o["status"], "paid", "{b}: {o}");
        assert_eq!(o["payment_ref"], "bank-portal-0001");

        // The download: the API's archive, its headers passed through.
        let resp = buyer.get(t.url(&download_path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{b}");
        assert_eq!(resp.headers()["content-type"], "application/x-tar");
        let disposition = resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(
            disposition,
            format!("attachment; filename=\"{registration}-{oid}.tar\"")
        );
        let announced = resp.headers()["x-archive-blake3"]
            .to_str()
            .unwrap()
            .to_string();
        let through_portal = resp.bytes().await.unwrap();
        assert_eq!(
            blake3_hex(&through_portal),
            announced,
            "{b}: the bytes the API served, unchanged"
        );
        let direct = t
            .http
            .get(t.url(&format!("/v1/orders/{oid}/download")))
            .bearer_auth(&m.buyer)
            .send()
            .await
            .unwrap();
        assert_eq!(direct.status().as_u16(), 200, "{b}");
        assert_eq!(
            direct.headers()["content-disposition"].to_str().unwrap(),
            disposition
        );
        let direct = direct.bytes().await.unwrap();
        // The archives are built per download from the same records and the products'
        // manual clock; only the receipt's checkpoint may be newer if the server signed
        // one in between.
        let ours = read_tar(&through_portal).unwrap();
        let theirs = read_tar(&direct).unwrap();
        let names = |members: &[(String, Vec<u8>)]| {
            members.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()
        };
        assert_eq!(names(ours.as_slice()), names(theirs.as_slice()), "{b}");
        for ((name, data), (_, other)) in ours.iter().zip(&theirs) {
            if name.ends_with("/receipt.json") {
                let a: Value = serde_json::from_slice(data).unwrap();
                let z: Value = serde_json::from_slice(other).unwrap();
                assert_eq!(a["entry"], z["entry"], "{b}: the receipt of the same sale");
            } else {
                assert_eq!(data, other, "{b}: {name}");
            }
        }
        if ours == theirs {
            assert_eq!(through_portal, direct, "{b}: the same tar, byte for byte");
        }
        let (_, o) = t.get(&m.buyer, &format!("/v1/orders/{oid}")).await;
        assert_eq!(o["status"], "delivered", "{b}");

        // The order book, filtered by status (an unknown status is the API's 400).
        let (s, _, book) = get_page(&exchange, t, "/exchange/orders").await;
        assert_eq!(s, 200, "{b}: {book}");
        assert!(book.contains(&oid), "{b}");
        let (_, _, delivered) = get_page(&exchange, t, "/exchange/orders?status=delivered").await;
        assert!(delivered.contains(&oid), "{b}");
        let (_, _, refunded) = get_page(&exchange, t, "/exchange/orders?status=refunded").await;
        assert!(!refunded.contains(&oid), "{b}");
        let (s, _, _) = get_page(&exchange, t, "/exchange/orders?status=lost").await;
        assert_eq!(s, 400, "{b}");

        // Reconciliation: the table and a chart, by provider region by default.
        let (s, _, recon) = get_page(&exchange, t, "/exchange/reconciliation").await;
        assert_eq!(s, 200, "{b}: {recon}");
        assert!(recon.contains("<svg"), "{b}: the chart");
        assert!(recon.contains(&region), "{b}");
        assert!(recon.contains(&yuan(price)), "{b}: the sale, in yuan");
        let (s, _, by_developer) =
            get_page(&exchange, t, "/exchange/reconciliation?group_by=developer").await;
        assert_eq!(s, 200);
        assert!(by_developer.contains(&m.dev_org), "{b}");
        let (s, _, _) = get_page(&exchange, t, "/exchange/reconciliation?group_by=colour").await;
        assert_eq!(s, 400, "{b}: the API's refusal");

        // Settlement: March has not ended (the API's 409); a malformed month is 422
        // before and after the API; once April has begun, the form settles March.
        let march = [("csrf", csrf.as_str()), ("period", "2030-03")];
        let (s, _, early) = submit(&exchange, t, "/exchange/settlements", &march).await;
        assert_eq!(s, 409, "{b}: {early}");
        let bad = [("csrf", csrf.as_str()), ("period", "March")];
        assert_eq!(
            submit(&exchange, t, "/exchange/settlements", &bad).await.0,
            422
        );
        let bad_month = [("csrf", csrf.as_str()), ("period", "2030-13")];
        let (s, _, _) = submit(&exchange, t, "/exchange/settlements", &bad_month).await;
        assert_eq!(s, 422, "{b}: the API judges the month");
        let no_token = [("period", "2030-03")];
        assert_eq!(
            submit(&exchange, t, "/exchange/settlements", &no_token)
                .await
                .0,
            403
        );
        m.clock
            .set_ms(Period::parse("2030-04").unwrap().from_ms + DAY_MS);
        let (s, _, open) = get_page(&exchange, t, "/exchange/settlements").await;
        assert_eq!(s, 200, "{b}: {open}");
        assert!(
            open.contains("name=\"period\" value=\"2030-03\""),
            "{b}: the month money moved in, with its settle button: {open}"
        );
        let (s, end, settled) = submit(&exchange, t, "/exchange/settlements", &march).await;
        assert_eq!(s, 200, "{b}: {settled}");
        assert_eq!(end, "/exchange/settlements");
        assert!(
            settled.contains(&format!("public-finance:{region}")),
            "{b}: the remittances: {settled}"
        );
        assert!(settled.contains("<svg"), "{b}: remitted by class of payee");
        let (s, stored) = t.get(&m.exchange, "/v1/settlements/2030-03").await;
        assert_eq!(s, 200, "{b}: {stored}");
        assert_eq!(stored["remittances"].as_array().unwrap().len(), 3, "{b}");
        let paid_out: i64 = stored["remittances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["amount_minor"].as_i64().unwrap())
            .sum();
        assert_eq!(paid_out, price, "{b}");
        m.t.stop().await;
    }
}
