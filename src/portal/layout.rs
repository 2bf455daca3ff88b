//! The page frame every portal page shares, and small formatters for people.
//!
//! [`page`] wraps a page's body in the whole document: `<html lang>`, the stylesheet and
//! the scripts (external files only: the Content-Security-Policy forbids inline script
//! and style), a skip link, the header with the navigation for the viewer's role, the
//! language switch and the sign-in link or sign-out form, a notice when the viewer's
//! session just ended, and the footer. The page's own `<h1>` is part of its body.
//!
//! Times are shown to people in China time ([`china_time`]); data (JSON, CSV) keeps RFC
//! 3339 UTC. Every text here comes from the message catalog ([`super::i18n`]); every
//! data value is spliced by maud, which escapes it.

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;
use time::OffsetDateTime;

use super::asset_url;
use super::i18n::{Lang, t, tf};
use super::session::{Viewer, safe_return};
use crate::auth::Role;

/// A whole HTML page: <html lang>, /static/portal.css, the scripts (defer), header with the
/// navigation for the viewer's role, language switch, sign-in link or sign-out form, main.
pub fn page(viewer: &Viewer, title: &str, body: Markup) -> Markup {
    let lang = viewer.lang;
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (t(lang, "core.brand")) }
                link rel="stylesheet" href=(asset_url("portal.css"));
                script src=(asset_url("portal.js")) defer {}
                script src=(asset_url("upload.js")) defer {}
                script src=(asset_url("runs.js")) defer {}
            }
            body {
                a.skip-link href="#main" { (t(lang, "core.skip")) }
                header.site-header {
                    a.brand href="/" {
                        span.brand-mark { "pdx" }
                        " "
                        span.brand-name { (t(lang, "core.brand")) }
                    }
                    (navigation(viewer))
                    div.session-bar {
                        (language_switch(viewer))
                        (session_controls(viewer))
                    }
                }
                main #main {
                    @if viewer.session_expired {
                        div.notice role="status" {
                            (t(lang, "core.session.expired"))
                            " "
                            a href="/signin" { (t(lang, "core.signin.link")) }
                        }
                    }
                    (body)
                }
                footer.site-footer {
                    p.muted { (t(lang, "core.footer.text")) }
                    p {
                        a href="/checkpoint" { (t(lang, "core.nav.checkpoint")) }
                        " · "
                        a href="/openapi.json" { (t(lang, "core.footer.api")) }
                    }
                }
            }
        }
    }
}

/// `<input type=hidden name=csrf value=…>` for forms.
pub fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// The page for a refused or failed request ([`super::api::PageError`]): the status in
/// words, the detail, a sign-in link for a 401 and a way home. Drawn without the
/// viewer's session (an error can come before it is known), so it has no forms; the
/// portal's middleware draws it again with [`error_page_for`] once the viewer is known.
pub fn error_page(lang: Lang, status: StatusCode, detail: &str) -> Markup {
    error_page_for(&Viewer::anonymous(lang), status, detail)
}

/// The error page for a known viewer (navigation, language switch, sign-out form).
pub fn error_page_for(viewer: &Viewer, status: StatusCode, detail: &str) -> Markup {
    let lang = viewer.lang;
    let title = status_title(lang, status);
    page(
        viewer,
        title,
        html! {
            h1 { (title) }
            p.error role="alert" { (detail) }
            @if status == StatusCode::UNAUTHORIZED {
                p { a.button href="/signin" { (t(lang, "core.signin.link")) } }
            }
            p { a href="/" { (t(lang, "core.error.back_home")) } }
            p.muted { "HTTP " (status.as_u16()) }
        },
    )
}

/// A status in words, for the error page's heading.
pub fn status_title(lang: Lang, status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => t(lang, "core.error.400"),
        401 => t(lang, "core.error.401"),
        403 => t(lang, "core.error.403"),
        404 => t(lang, "core.error.404"),
        405 => t(lang, "core.error.405"),
        409 => t(lang, "core.error.409"),
        413 => t(lang, "core.error.413"),
        415 => t(lang, "core.error.415"),
        422 => t(lang, "core.error.422"),
        429 => t(lang, "core.error.429"),
        503 => t(lang, "core.error.503"),
        500..=599 => t(lang, "core.error.500"),
        _ => t(lang, "core.error.other"),
    }
}

/// A role's name for people.
pub fn role_name(lang: Lang, role: Role) -> &'static str {
    match role {
        Role::Provider => t(lang, "core.role.provider"),
        Role::Developer => t(lang, "core.role.developer"),
        Role::Reviewer => t(lang, "core.role.reviewer"),
        Role::Exchange => t(lang, "core.role.exchange"),
        Role::Buyer => t(lang, "core.role.buyer"),
        Role::Subject => t(lang, "core.role.subject"),
        Role::Authority => t(lang, "core.role.authority"),
        Role::Finance => t(lang, "core.role.finance"),
        Role::Supervisor => t(lang, "core.role.supervisor"),
        Role::Admin => t(lang, "core.role.admin"),
    }
}

/// The navigation's links for a role (None: the public): its own pages first, then the
/// public ones everyone may read.
fn links_of(lang: Lang, role: Option<Role>) -> Vec<(&'static str, &'static str)> {
    let mut links = match role {
        Some(Role::Provider) => vec![
            ("/provider", t(lang, "core.nav.provider")),
            ("/provider/grants", t(lang, "core.nav.provider_grants")),
            (
                "/provider/objections",
                t(lang, "core.nav.provider_objections"),
            ),
        ],
        Some(Role::Developer) => vec![
            ("/developer", t(lang, "core.nav.developer")),
            ("/developer/sql", t(lang, "core.nav.developer_sql")),
            ("/developer/runs", t(lang, "core.nav.developer_runs")),
        ],
        Some(Role::Reviewer) => vec![("/review", t(lang, "core.nav.review"))],
        Some(Role::Exchange) => vec![
            ("/exchange", t(lang, "core.nav.exchange")),
            ("/exchange/orders", t(lang, "core.nav.exchange_orders")),
            (
                "/exchange/settlements",
                t(lang, "core.nav.exchange_settlements"),
            ),
            (
                "/exchange/reconciliation",
                t(lang, "core.nav.exchange_reconciliation"),
            ),
        ],
        Some(Role::Buyer) => vec![("/buyer", t(lang, "core.nav.buyer"))],
        Some(Role::Supervisor) => vec![
            ("/supervisor", t(lang, "core.nav.supervisor")),
            ("/supervisor/ledger", t(lang, "core.nav.supervisor_ledger")),
            ("/supervisor/verify", t(lang, "core.nav.supervisor_verify")),
            (
                "/supervisor/budgets",
                t(lang, "core.nav.supervisor_budgets"),
            ),
            (
                "/supervisor/compliance",
                t(lang, "core.nav.supervisor_compliance"),
            ),
            (
                "/supervisor/suspensions",
                t(lang, "core.nav.supervisor_suspensions"),
            ),
        ],
        Some(Role::Authority) => vec![("/authority", t(lang, "core.nav.authority"))],
        Some(Role::Subject | Role::Finance | Role::Admin) | None => Vec::new(),
    };
    links.push(("/catalog", t(lang, "core.nav.catalog")));
    links.push(("/market", t(lang, "core.nav.market")));
    if role != Some(Role::Supervisor) {
        links.push(("/suspensions", t(lang, "core.nav.suspensions")));
    }
    links
}

/// The main navigation; the link of the page being shown is marked current.
fn navigation(viewer: &Viewer) -> Markup {
    let lang = viewer.lang;
    let current = viewer.path.split('?').next().unwrap_or_default();
    html! {
        nav.site-nav aria-label=(t(lang, "core.nav.label")) {
            ul {
                @for (href, label) in links_of(lang, viewer.role()) {
                    li {
                        a href=(href) aria-current=[(current == href).then_some("page")] {
                            (label)
                        }
                    }
                }
            }
        }
    }
}

/// The switch to the other language (a form: it sets a cookie, so it is a POST with the
/// CSRF token). Not shown without a token (error pages).
fn language_switch(viewer: &Viewer) -> Markup {
    let other = viewer.lang.other();
    html! {
        @if !viewer.csrf.is_empty() {
            form.inline.lang-switch method="post" action="/lang" {
                (csrf_field(viewer))
                input type="hidden" name="lang" value=(other.short());
                input type="hidden" name="return" value=(safe_return(&viewer.path));
                button.link-button type="submit" lang=(other.code())
                    title=(t(viewer.lang, "core.lang.switch")) {
                    (t(other, "core.lang.name"))
                }
            }
        }
    }
}

/// Who is signed in and the sign-out form, or the sign-in link.
fn session_controls(viewer: &Viewer) -> Markup {
    let lang = viewer.lang;
    html! {
        @if let Some(signed_in) = &viewer.signed_in {
            a.who href="/account" {
                (tf(lang, "core.signed_in_as", &[("role", role_name(lang, signed_in.role))]))
            }
            @if !viewer.csrf.is_empty() {
                form.inline method="post" action="/signout" {
                    (csrf_field(viewer))
                    button.link-button type="submit" { (t(lang, "core.signout")) }
                }
            }
        } @else {
            a.button href="/signin" { (t(lang, "core.signin.link")) }
        }
    }
}

/// China's offset from UTC (no daylight saving).
const CHINA: time::UtcOffset = time::macros::offset!(+8);

/// A time for people: China time "2026-12-07 11:20 (UTC+8)", from Unix milliseconds.
pub fn china_time(ms: i64) -> String {
    match OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(at) => format_china(at).unwrap_or_else(|| ms.to_string()),
        Err(_) => ms.to_string(),
    }
}

/// A time for people from an RFC 3339 string (falls back to the string).
pub fn china_time_rfc3339(s: &str) -> String {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(format_china)
        .unwrap_or_else(|| s.to_string())
}

fn format_china(at: OffsetDateTime) -> Option<String> {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    let local = at.checked_to_offset(CHINA)?.format(format).ok()?;
    Some(format!("{local} (UTC+8)"))
}

/// A money amount in fen shown as yuan "¥123.45" (thousands grouped: "¥12,345.67").
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    let digits = (fen / 100).to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{sign}¥{grouped}.{:02}", fen % 100)
}

/// A table of JSON rows: one column per (header, JSON pointer) pair; cells are text.
/// A pointer without a leading `/` names a top-level field. Strings show as they are,
/// null and missing fields as empty cells, anything else as compact JSON.
pub fn json_table(rows: &[Value], columns: &[(&str, &str)]) -> Markup {
    html! {
        table.table {
            thead {
                tr {
                    @for (header, _) in columns {
                        th scope="col" { (header) }
                    }
                }
            }
            tbody {
                @for row in rows {
                    tr {
                        @for (_, pointer) in columns {
                            td { (cell_text(field(row, pointer))) }
                        }
                    }
                }
            }
        }
    }
}

/// The value at a JSON pointer, or at a top-level field name.
fn field<'v>(row: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.is_empty() || pointer.starts_with('/') {
        row.pointer(pointer)
    } else {
        row.get(pointer)
    }
}

/// A JSON value as the text of a cell.
fn cell_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_china_time() {
        // 2026-12-07T03:20:00Z
        assert_eq!(china_time(1_796_613_600_000), "2026-12-07 11:20 (UTC+8)");
        assert_eq!(
            china_time_rfc3339("2026-12-07T03:20:00Z"),
            "2026-12-07 11:20 (UTC+8)"
        );
        assert_eq!(china_time_rfc3339("not a time"), "not a time");
        assert_eq!(china_time(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn yuan_groups_thousands_and_keeps_two_decimals() {
        assert_eq!(yuan(12_345), "¥123.45");
        assert_eq!(yuan(1_234_567), "¥12,345.67");
        assert_eq!(yuan(5), "¥0.05");
        assert_eq!(yuan(-98_000), "-¥980.00");
        assert_eq!(yuan(100_000_000), "¥1,000,000.00");
    }

    #[test]
    fn json_tables_escape_their_cells() {
        let rows = vec![
            serde_json::json!({"title": "<script>alert(1)</script>", "n": 3, "meta": {"k": null}}),
            serde_json::json!({"title": "\"><img onerror=x>"}),
        ];
        let html =
            json_table(&rows, &[("Title", "/title"), ("N", "n"), ("K", "/meta/k")]).into_string();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("&quot;&gt;&lt;img onerror=x&gt;"), "{html}");
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(html.contains("<th scope=\"col\">Title</th>"), "{html}");
        assert!(html.contains("<td>3</td>"), "{html}");
    }

    #[test]
    fn a_page_has_its_language_the_stylesheet_and_no_inline_script_or_style() {
        let mut viewer = Viewer::anonymous(Lang::En);
        viewer.csrf = "t".repeat(43);
        let html = page(&viewer, "T<itle>", html! { h1 { "Body" } }).into_string();
        assert!(
            html.starts_with("<!DOCTYPE html><html lang=\"en\">"),
            "{html}"
        );
        assert!(html.contains("/static/portal.css?v="), "{html}");
        assert!(html.contains("T&lt;itle&gt;"), "{html}");
        assert!(html.contains("action=\"/lang\""), "{html}");
        assert!(html.contains("href=\"/signin\""), "{html}");
        assert!(
            !html.contains("style=") && !html.contains("<style"),
            "{html}"
        );
        for script in html.split("<script").skip(1) {
            assert!(
                script.trim_start().starts_with("src="),
                "inline script: {script}"
            );
        }
        let handler = html.match_indices(" on").any(|(i, _)| {
            let rest = &html[i + 3..];
            let name = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name > 0 && rest[name..].starts_with('=')
        });
        assert!(!handler, "an inline event handler: {html}");
        // Without a token (an error page) there are no forms.
        let bare = error_page(Lang::Zh, StatusCode::UNAUTHORIZED, "x").into_string();
        assert!(!bare.contains("<form"), "{bare}");
        assert!(bare.contains("lang=\"zh-CN\"") && bare.contains("href=\"/signin\""));
    }
}
