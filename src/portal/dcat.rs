//! `GET /catalog.jsonld`: the open catalog as DCAT-AP 3 in JSON-LD, so that national
//! and European portals can harvest it (issue #21).
//!
//! **What is in it.** Exactly what the public sees: the page reads `GET /v1/datasets`
//! in-process as the anonymous visitor whoever asks (a signed-in viewer's session is
//! left out), so an entry the data authority has not published is never listed, and a
//! harvester gets the same document from any browser. Published entries of every open
//! attribute are listed, as the public catalog lists them (SD22 Art.8: a not-open
//! entry's metadata is public; its data is not), with the access right that says so.
//!
//! **Shape.** One `dcat:Catalog` node (`dct:title`, `dct:description` and
//! `dct:publisher` in Chinese and English, `foaf:homepage`, `dcat:themeTaxonomy`,
//! `dcat:dataset`), with the JSON-LD `@context` naming the prefixes `dcat`, `dct`, `foaf`,
//! `vcard`, `adms`, `xsd`, `skos` and `hydra`. The catalog is paged like the API, 100
//! entries a page (`?page=N`); `hydra:view` is a `hydra:PagedCollection` with
//! `hydra:totalItems`, `hydra:itemsPerPage` and the first, last, previous and next pages,
//! the paging vocabulary harvesters such as CKAN's DCAT extension follow.
//!
//! Each `dcat:Dataset` (IRI `{base}/catalog/{id}#dataset`) has the DCAT-AP 3 mandatory
//! `dct:title` and `dct:description` (the title again when the provider left the
//! description empty: the property is mandatory), and `dct:identifier`, `dct:publisher`
//! (a `foaf:Agent` named by the providing department), `dct:creator` (the legally
//! designated source department), `dcat:keyword` (the theme and the data elements),
//! `dcat:theme` (when the theme maps, below), `dct:accessRights`, `dct:accrualPeriodicity`,
//! `dct:issued` and `dct:modified` (`xsd:dateTime`, UTC), `dcat:contactPoint` (a
//! `vcard:Organization` whose URL is the form to ask for the data to be opened),
//! `dcat:landingPage` (its page), `dcat:version` and `adms:versionNotes` once it has a
//! certified version, and `dcat:distribution`. Every entry has at least one distribution:
//! its page (`dct:format` HTML), whose `dcat:accessURL` (mandatory for a distribution) is
//! where the data is reached, through the sandbox under a grant when it is not open.
//! An unconditionally open entry with a certified version, not destroyed, also has its
//! latest version's downloads: Parquet (the certified bytes) and CSV, each with
//! `dcat:accessURL` and `dcat:downloadURL`, `dct:format` and `dcat:mediaType`.
//!
//! **Mappings** (EU Publications Office authority tables, as DCAT-AP 3 recommends):
//!
//! | open attribute (in force) | `dct:accessRights` (access-right) |
//! |---|---|
//! | `unconditional` | `PUBLIC` |
//! | `conditional` | `RESTRICTED` |
//! | `not_open` | `NON_PUBLIC` |
//!
//! | update frequency | `dct:accrualPeriodicity` (frequency) |
//! |---|---|
//! | `daily` | `DAILY` |
//! | `weekly` | `WEEKLY` |
//! | `monthly` | `MONTHLY` |
//! | `quarterly` | `QUARTERLY` |
//! | `yearly` | `ANNUAL` |
//! | `irregular` | `IRREG` |
//!
//! The theme is free text in the catalog; `dcat:theme` (data-theme) is given when its
//! lower-cased text contains one of these words, the first row that matches winning,
//! and left out otherwise (the theme stays a keyword either way):
//!
//! | data-theme | words |
//! |---|---|
//! | `AGRI` | agri, farm, fish, forest, food, 农业, 林业, 渔业 |
//! | `ECON` | econom, enterprise, business, financ, trade, tax, credit, 经济, 企业, 金融, 税 |
//! | `EDUC` | educat, school, culture, sport, 教育, 文化, 体育 |
//! | `ENER` | energy, utilit, electric, power, 能源, 电力, 公用事业 |
//! | `ENVI` | environment, climate, weather, pollution, 环境, 气象, 生态 |
//! | `GOVE` | govern, administration, public sector, 政务, 政府 |
//! | `HEAL` | health, medic, hospital, 卫生, 健康, 医疗 |
//! | `INTR` | international, 国际 |
//! | `JUST` | justice, legal, law, crime, court, safety, 司法, 法律, 公安, 安全 |
//! | `REGI` | region, city, urban, land, housing, 区域, 城市, 城乡, 住房 |
//! | `SOCI` | census, population, societ, social, demograph, employ, labour, 人口, 普查, 社会, 就业 |
//! | `TECH` | scien, technolog, research, 科技, 科学 |
//! | `TRAN` | transport, traffic, road, rail, 交通, 运输 |
//!
//! Formats: Parquet is file-type `PARQUET` and media type
//! `application/vnd.apache.parquet`; CSV is `CSV`, `text/csv`; a page is `HTML`,
//! `text/html` (media types as IANA IRIs).
//!
//! The human strings of the catalog (its title, description and publisher, the version
//! notes, the distributions' titles) come from the message catalog, in both languages
//! with their `@language`; data values (titles, departments) are as the provider wrote
//! them.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::portal::Portal;
use crate::portal::api::PageError;
use crate::portal::i18n::{Lang, t, tf};
use crate::portal::public::{DatasetPageView, DatasetView, base_url};
use crate::portal::session::Viewer;

/// Entries on one page of the JSON-LD catalog (the API's largest page).
pub const PER_PAGE: u32 = 100;

/// The content type of the document.
pub const CONTENT_TYPE: &str = "application/ld+json";

/// The EU access-right authority table.
const ACCESS_RIGHT: &str = "http://publications.europa.eu/resource/authority/access-right/";

/// The EU frequency authority table.
const FREQUENCY: &str = "http://publications.europa.eu/resource/authority/frequency/";

/// The EU data-theme authority table.
const DATA_THEME: &str = "http://publications.europa.eu/resource/authority/data-theme";

/// The EU file-type authority table.
const FILE_TYPE: &str = "http://publications.europa.eu/resource/authority/file-type/";

/// IANA media types, as IRIs.
const MEDIA_TYPE: &str = "https://www.iana.org/assignments/media-types/";

/// The data themes and the words of a catalog theme that map to each (see the module
/// documentation).
const THEMES: [(&str, &[&str]); 13] = [
    (
        "AGRI",
        &[
            "agri", "farm", "fish", "forest", "food", "农业", "林业", "渔业",
        ],
    ),
    (
        "ECON",
        &[
            "econom",
            "enterprise",
            "business",
            "financ",
            "trade",
            "tax",
            "credit",
            "经济",
            "企业",
            "金融",
            "税",
        ],
    ),
    (
        "EDUC",
        &[
            "educat", "school", "culture", "sport", "教育", "文化", "体育",
        ],
    ),
    (
        "ENER",
        &[
            "energy",
            "utilit",
            "electric",
            "power",
            "能源",
            "电力",
            "公用事业",
        ],
    ),
    (
        "ENVI",
        &[
            "environment",
            "climate",
            "weather",
            "pollution",
            "环境",
            "气象",
            "生态",
        ],
    ),
    (
        "GOVE",
        &["govern", "administration", "public sector", "政务", "政府"],
    ),
    (
        "HEAL",
        &["health", "medic", "hospital", "卫生", "健康", "医疗"],
    ),
    ("INTR", &["international", "国际"]),
    (
        "JUST",
        &[
            "justice", "legal", "law", "crime", "court", "safety", "司法", "法律", "公安", "安全",
        ],
    ),
    (
        "REGI",
        &[
            "region", "city", "urban", "land", "housing", "区域", "城市", "城乡", "住房",
        ],
    ),
    (
        "SOCI",
        &[
            "census",
            "population",
            "societ",
            "social",
            "demograph",
            "employ",
            "labour",
            "人口",
            "普查",
            "社会",
            "就业",
        ],
    ),
    ("TECH", &["scien", "technolog", "research", "科技", "科学"]),
    (
        "TRAN",
        &["transport", "traffic", "road", "rail", "交通", "运输"],
    ),
];

/// The catalog as JSON-LD.
pub fn routes() -> Router<Portal> {
    Router::new().route("/catalog.jsonld", get(catalog_jsonld))
}

/// The query of `/catalog.jsonld`.
#[derive(Debug, Default, Deserialize)]
struct DcatParams {
    page: Option<String>,
}

async fn catalog_jsonld(
    State(portal): State<Portal>,
    viewer: Viewer,
    headers: HeaderMap,
    query: Result<Query<DcatParams>, QueryRejection>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let bad_page = || {
        PageError::new(
            StatusCode::BAD_REQUEST,
            t(lang, "public.error.bad_page"),
            lang,
        )
    };
    let Ok(Query(params)) = query else {
        return Err(bad_page());
    };
    let page = match params
        .page
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        None => 1,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(bad_page)?,
    };
    // The public's catalog whoever asks: a signed-in viewer's session would add its own
    // organisation's drafts, which are not the public's.
    let mut public = viewer.clone();
    public.signed_in = None;
    let found: DatasetPageView = portal
        .get(
            &public,
            &format!("/v1/datasets?page={page}&per_page={PER_PAGE}"),
        )
        .await?;
    let document = catalog_document(&base_url(&portal, &headers), page, &found);
    let body = serde_json::to_string_pretty(&document).map_err(|_| {
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            t(lang, "public.error.api_answer"),
            lang,
        )
    })?;
    // The same document whoever asks (the public's), so shared caches may keep it a
    // while; the portal then adds no cookie to it.
    Ok((
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response())
}

/// The JSON-LD `@context`: the prefixes the document uses.
fn context() -> Value {
    json!({
        "dcat": "http://www.w3.org/ns/dcat#",
        "dct": "http://purl.org/dc/terms/",
        "foaf": "http://xmlns.com/foaf/0.1/",
        "vcard": "http://www.w3.org/2006/vcard/ns#",
        "adms": "http://www.w3.org/ns/adms#",
        "xsd": "http://www.w3.org/2001/XMLSchema#",
        "skos": "http://www.w3.org/2004/02/skos/core#",
        "hydra": "http://www.w3.org/ns/hydra/core#"
    })
}

/// A message in Chinese and English, as language-tagged JSON-LD values.
fn both(key: &str) -> Value {
    json!([
        {"@value": t(Lang::Zh, key), "@language": "zh"},
        {"@value": t(Lang::En, key), "@language": "en"}
    ])
}

/// A message with values in Chinese and English, as language-tagged JSON-LD values.
fn both_with(key: &str, args: &[(&str, &str)]) -> Value {
    json!([
        {"@value": tf(Lang::Zh, key, args), "@language": "zh"},
        {"@value": tf(Lang::En, key, args), "@language": "en"}
    ])
}

/// An IRI node.
fn iri(iri: &str) -> Value {
    json!({ "@id": iri })
}

/// Milliseconds since the epoch as an `xsd:dateTime` (RFC 3339, UTC).
fn date_time(ms: i64) -> Option<Value> {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    let text = at
        .format(&time::format_description::well_known::Rfc3339)
        .ok()?;
    Some(json!({ "@value": text, "@type": "xsd:dateTime" }))
}

/// The access-right IRI of an open attribute.
pub fn access_right(open_attribute: &str) -> Option<String> {
    let code = match open_attribute {
        "unconditional" => "PUBLIC",
        "conditional" => "RESTRICTED",
        "not_open" => "NON_PUBLIC",
        _ => return None,
    };
    Some(format!("{ACCESS_RIGHT}{code}"))
}

/// The frequency IRI of an update frequency.
pub fn accrual_periodicity(update_frequency: &str) -> Option<String> {
    let code = match update_frequency {
        "daily" => "DAILY",
        "weekly" => "WEEKLY",
        "monthly" => "MONTHLY",
        "quarterly" => "QUARTERLY",
        "yearly" => "ANNUAL",
        "irregular" => "IRREG",
        _ => return None,
    };
    Some(format!("{FREQUENCY}{code}"))
}

/// The data-theme IRI of a catalog theme, when one of its words maps.
pub fn data_theme(theme: &str) -> Option<String> {
    let theme = theme.to_lowercase();
    THEMES
        .iter()
        .find(|(_, words)| words.iter().any(|word| theme.contains(word)))
        .map(|(code, _)| format!("{DATA_THEME}/{code}"))
}

/// The whole document of one page of the catalog.
fn catalog_document(base: &str, page: u32, found: &DatasetPageView) -> Value {
    let datasets: Vec<Value> = found
        .items
        .iter()
        .map(|entry| dataset_node(base, entry))
        .collect();
    let per_page = found.per_page.max(1);
    let last = found.total.div_ceil(u64::from(per_page)).max(1);
    let page_url = |n: u64| format!("{base}/catalog.jsonld?page={n}");
    let mut view = json!({
        "@id": page_url(u64::from(page)),
        "@type": "hydra:PagedCollection",
        "hydra:totalItems": found.total,
        "hydra:itemsPerPage": per_page,
        "hydra:firstPage": page_url(1),
        "hydra:lastPage": page_url(last),
    });
    if page > 1 {
        view["hydra:previousPage"] = json!(page_url(u64::from(page) - 1));
    }
    if u64::from(page) < last {
        view["hydra:nextPage"] = json!(page_url(u64::from(page) + 1));
    }
    json!({
        "@context": context(),
        "@id": format!("{base}/catalog.jsonld"),
        "@type": "dcat:Catalog",
        "dct:title": both("public.dcat.title"),
        "dct:description": both("public.dcat.description"),
        "dct:publisher": {
            "@type": "foaf:Agent",
            "foaf:name": both("public.dcat.publisher"),
        },
        "foaf:homepage": iri(&format!("{base}/catalog")),
        "dcat:themeTaxonomy": iri(DATA_THEME),
        "hydra:view": view,
        "dcat:dataset": datasets,
    })
}

/// One catalog entry as a `dcat:Dataset`.
fn dataset_node(base: &str, entry: &DatasetView) -> Value {
    let page = format!("{base}/catalog/{}", entry.id);
    let description = if entry.description.trim().is_empty() {
        entry.title.as_str()
    } else {
        entry.description.as_str()
    };
    let mut keywords: Vec<&str> = vec![entry.theme.as_str()];
    for element in &entry.elements {
        if !keywords.contains(&element.as_str()) {
            keywords.push(element);
        }
    }
    let mut node = json!({
        "@id": format!("{page}#dataset"),
        "@type": "dcat:Dataset",
        "dct:identifier": entry.id,
        "dct:title": entry.title,
        "dct:description": description,
        "dct:publisher": { "@type": "foaf:Agent", "foaf:name": entry.providing_department },
        "dct:creator": { "@type": "foaf:Agent", "foaf:name": entry.source_department },
        "dcat:keyword": keywords,
        "dcat:landingPage": iri(&page),
        "dcat:contactPoint": {
            "@type": "vcard:Organization",
            "vcard:fn": entry.providing_department,
            "vcard:hasURL": iri(&format!("{base}/open-data-requests?dataset_id={}", entry.id)),
        },
        "dcat:distribution": distributions(base, entry),
    });
    if let Some(theme) = data_theme(&entry.theme) {
        node["dcat:theme"] = iri(&theme);
    }
    if let Some(rights) = access_right(&entry.effective_open_attribute) {
        node["dct:accessRights"] = iri(&rights);
    }
    if let Some(periodicity) = accrual_periodicity(&entry.update_frequency) {
        node["dct:accrualPeriodicity"] = iri(&periodicity);
    }
    if let Some(issued) = date_time(entry.created_ms) {
        node["dct:issued"] = issued;
    }
    if let Some(modified) = date_time(entry.updated_ms) {
        node["dct:modified"] = modified;
    }
    if let Some(version) = entry.latest_version {
        let version = version.to_string();
        node["dcat:version"] = json!(version);
        node["adms:versionNotes"] = both_with(
            "public.dcat.version_notes",
            &[
                ("version", &version),
                ("certificate", &format!("{page}/versions/{version}")),
            ],
        );
    }
    node
}

/// An entry's distributions: its latest version's downloads when the public may download
/// it, and always its page, through which the data is reached.
fn distributions(base: &str, entry: &DatasetView) -> Vec<Value> {
    let page = format!("{base}/catalog/{}", entry.id);
    let mut out = Vec::new();
    if entry.downloadable()
        && let Some(version) = entry.latest_version
    {
        for (suffix, format, media_type, query) in [
            ("parquet", "PARQUET", "application/vnd.apache.parquet", ""),
            ("csv", "CSV", "text/csv", "?format=csv"),
        ] {
            let download = format!(
                "{base}/v1/datasets/{}/versions/{version}/download{query}",
                entry.id
            );
            out.push(json!({
                "@id": format!("{page}#distribution-v{version}-{suffix}"),
                "@type": "dcat:Distribution",
                "dct:title": both_with(
                    "public.dcat.download_title",
                    &[("version", &version.to_string()), ("format", format)],
                ),
                "dcat:accessURL": iri(&download),
                "dcat:downloadURL": iri(&download),
                "dct:format": iri(&format!("{FILE_TYPE}{format}")),
                "dcat:mediaType": iri(&format!("{MEDIA_TYPE}{media_type}")),
            }));
        }
    }
    let access = match entry.effective_open_attribute.as_str() {
        "unconditional" => both("public.dcat.access_open"),
        "conditional" => both("public.dcat.access_conditional"),
        _ => both("public.dcat.access_not_open"),
    };
    out.push(json!({
        "@id": format!("{page}#distribution-page"),
        "@type": "dcat:Distribution",
        "dct:title": both("public.dcat.page_title"),
        "dct:description": access,
        "dcat:accessURL": iri(&page),
        "dct:format": iri(&format!("{FILE_TYPE}HTML")),
        "dcat:mediaType": iri(&format!("{MEDIA_TYPE}text/html")),
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(open: &str, latest: Option<u64>, description: &str) -> DatasetView {
        serde_json::from_value(json!({
            "id": "ds_0123456789abcdef",
            "provider_org": "org-stats",
            "title": "Census <extract>",
            "description": description,
            "theme": "census",
            "source_department": "Statistics Bureau",
            "collecting_department": "Statistics Bureau",
            "approving_department": "Data Management Bureau",
            "providing_department": "Statistics Bureau",
            "data_form": "table",
            "update_frequency": "yearly",
            "level": "L3",
            "share_type": "conditional",
            "open_attribute": open,
            "effective_open_attribute": open,
            "elements": ["census.person_income"],
            "schema": {"columns": []},
            "latest_version": latest,
            "created_ms": 1_780_000_000_000_i64,
            "updated_ms": 1_780_000_100_000_i64,
            "status": "published",
        }))
        .unwrap()
    }

    #[test]
    fn the_vocabularies_map_every_attribute_and_frequency() {
        assert_eq!(
            access_right("unconditional").as_deref(),
            Some("http://publications.europa.eu/resource/authority/access-right/PUBLIC")
        );
        assert!(
            access_right("conditional")
                .unwrap()
                .ends_with("/RESTRICTED")
        );
        assert!(access_right("not_open").unwrap().ends_with("/NON_PUBLIC"));
        assert_eq!(access_right("open"), None);
        for wire in crate::portal::public::OPEN_ATTRIBUTES {
            assert!(access_right(wire).is_some(), "{wire}");
        }
        for wire in crate::portal::public::FREQUENCIES {
            assert!(accrual_periodicity(wire).is_some(), "{wire}");
        }
        assert!(
            accrual_periodicity("yearly")
                .unwrap()
                .ends_with("/frequency/ANNUAL")
        );
        assert!(
            accrual_periodicity("irregular")
                .unwrap()
                .ends_with("/IRREG")
        );
        assert!(data_theme("Census").unwrap().ends_with("/data-theme/SOCI"));
        assert!(data_theme("utilities").unwrap().ends_with("/ENER"));
        assert!(data_theme("企业信用").unwrap().ends_with("/ECON"));
        assert_eq!(data_theme("miscellany"), None);
    }

    #[test]
    fn an_open_entry_has_its_downloads_and_every_entry_its_page() {
        let found = DatasetPageView {
            items: vec![
                entry("unconditional", Some(2), "Per person"),
                entry("not_open", Some(1), ""),
            ],
            total: 250,
            page: 2,
            per_page: 100,
        };
        let doc = catalog_document("https://pdx.example", 2, &found);
        assert_eq!(doc["@type"], "dcat:Catalog");
        for prefix in ["dcat", "dct", "foaf", "vcard", "adms", "xsd"] {
            assert!(doc["@context"][prefix].is_string(), "{prefix}");
        }
        assert_eq!(
            doc["hydra:view"]["hydra:nextPage"],
            "https://pdx.example/catalog.jsonld?page=3"
        );
        assert_eq!(
            doc["hydra:view"]["hydra:previousPage"],
            "https://pdx.example/catalog.jsonld?page=1"
        );
        let datasets = doc["dcat:dataset"].as_array().unwrap();
        let open = &datasets[0];
        assert_eq!(open["dct:title"], "Census <extract>");
        assert_eq!(open["dcat:version"], "2");
        assert_eq!(open["dct:issued"]["@type"], "xsd:dateTime");
        let formats: Vec<&str> = open["dcat:distribution"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["dct:format"]["@id"].as_str().unwrap())
            .collect();
        assert_eq!(formats.len(), 3, "{formats:?}");
        assert!(formats[0].ends_with("/PARQUET"), "{formats:?}");
        let closed = &datasets[1];
        // The mandatory description falls back to the title.
        assert_eq!(closed["dct:description"], "Census <extract>");
        assert!(
            closed["dct:accessRights"]["@id"]
                .as_str()
                .unwrap()
                .ends_with("/NON_PUBLIC")
        );
        let only = closed["dcat:distribution"].as_array().unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(
            only[0]["dcat:accessURL"]["@id"],
            "https://pdx.example/catalog/ds_0123456789abcdef"
        );
    }
}
