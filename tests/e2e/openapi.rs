//! The OpenAPI document as a client reads it: `/openapi.json` from a running server,
//! walked operation by operation (issue #25). Each check is one that a generated client
//! or schemathesis trips over when it fails, and each held for the document a new user
//! found: query parameters declared `in: path`, 401 and 403 undocumented, errors said to
//! be `application/json`, every dataset response breaking its own `allOf`, uploads
//! declared as arrays of integers, limits the server enforces left unstated.
//!
//! The document is one for both backends, so it is read from a SQLite server only.

use std::collections::BTreeSet;

use pdx::auth::Role;
use pdx::http::policies::POLICIES;
use reqwest::Method;
use serde_json::Value;

use crate::support::TestServer;

/// The methods an operation can have.
const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The document the server serves.
async fn served_document() -> Value {
    let t = TestServer::start(false).await.unwrap();
    let (s, doc) = t.call(None, Method::GET, "/openapi.json", None).await;
    assert_eq!(s, 200, "{doc}");
    t.stop().await;
    doc
}

/// Every operation as ("METHOD path", path template, operation).
fn operations(doc: &Value) -> Vec<(String, &str, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((
                    format!("{} {path}", method.to_uppercase()),
                    path.as_str(),
                    op,
                ));
            }
        }
    }
    assert!(out.len() > 100, "only {} operations", out.len());
    out
}

/// What a `$ref` to nothing resolves to.
static NULL: Value = Value::Null;

/// The component a `$ref` names (`null` if there is none, which
/// `every_reference_resolves_and_the_named_objects_are_typed` refuses).
fn component<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    match reference.strip_prefix("#/components/schemas/") {
        Some(name) => &doc["components"]["schemas"][name],
        None => &NULL,
    }
}

/// A schema with its `$ref`s followed.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => schema = component(doc, reference),
            None => return schema,
        }
    }
    panic!("a $ref cycle of aliases: {schema}");
}

/// Whether a schema's `type` is or includes `t` (3.1 allows a list).
fn has_type(schema: &Value, t: &str) -> bool {
    match &schema["type"] {
        Value::String(s) => s == t,
        Value::Array(types) => types.iter().any(|x| x == t),
        _ => false,
    }
}

/// Every schema reachable from `roots`, through references, properties, items,
/// additional properties and compositions; each component once.
fn reachable<'a>(doc: &'a Value, roots: Vec<&'a Value>) -> Vec<&'a Value> {
    let mut seen = BTreeSet::new();
    let mut stack = roots;
    let mut out = Vec::new();
    while let Some(schema) = stack.pop() {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            if seen.insert(reference) {
                stack.push(component(doc, reference));
            }
            continue;
        }
        out.push(schema);
        for key in ["allOf", "oneOf", "anyOf", "prefixItems"] {
            stack.extend(schema[key].as_array().into_iter().flatten());
        }
        for key in ["items", "additionalProperties", "not"] {
            if schema[key].is_object() {
                stack.push(&schema[key]);
            }
        }
        stack.extend(
            schema["properties"]
                .as_object()
                .into_iter()
                .flat_map(|p| p.values()),
        );
    }
    out
}

/// The schemas of every response of every operation.
fn response_schemas(doc: &Value) -> Vec<&Value> {
    let mut roots = Vec::new();
    for (_, _, op) in operations(doc) {
        for response in op["responses"].as_object().unwrap().values() {
            for content in response["content"]
                .as_object()
                .into_iter()
                .flat_map(|c| c.values())
            {
                if content["schema"].is_object() {
                    roots.push(&content["schema"]);
                }
            }
        }
    }
    roots
}

/// A property of a component schema, with its `$ref` followed.
fn property<'a>(doc: &'a Value, schema: &str, name: &str) -> &'a Value {
    let component = &doc["components"]["schemas"][schema];
    assert!(component.is_object(), "no schema {schema}");
    resolve(doc, &component["properties"][name])
}

/// A parameter of an operation.
fn parameter<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

#[tokio::test]
async fn path_parameters_are_exactly_the_template_s_and_query_parameters_are_in_the_query() {
    let doc = served_document().await;
    let mut query_parameters = 0;
    for (label, path, op) in operations(&doc) {
        let in_template: BTreeSet<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect();
        let mut declared = BTreeSet::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap();
            match p["in"].as_str().unwrap() {
                "path" => {
                    assert_eq!(p["required"], true, "{label}: path parameter {name}");
                    assert!(declared.insert(name), "{label}: {name} declared twice");
                }
                "query" => query_parameters += 1,
                _ => {}
            }
        }
        assert_eq!(
            declared, in_template,
            "{label}: the path parameters declared are not the template's"
        );
    }
    // The catalog search, the uploads' and downloads' options, the ledger's paging and
    // proofs, and the list filters are all in the query.
    assert!(
        query_parameters > 30,
        "only {query_parameters} query parameters"
    );
    for (method, path, name) in [
        ("get", "/v1/datasets", "q"),
        ("get", "/v1/datasets", "page"),
        ("post", "/v1/datasets/{id}/versions", "format"),
        ("post", "/v1/datasets/{id}/versions", "delimiter"),
        ("get", "/v1/ledger/proof/inclusion", "seq"),
        ("get", "/v1/ledger/proof/inclusion", "size"),
    ] {
        assert_eq!(
            parameter(&doc, method, path, name)["in"],
            "query",
            "{method} {path} {name}"
        );
    }
}

#[tokio::test]
async fn every_secured_operation_documents_401_and_403_where_a_role_is_refused() {
    let doc = served_document().await;
    let mut secured = 0;
    for (label, _, op) in operations(&doc) {
        let requirements = op["security"].as_array().into_iter().flatten();
        if requirements
            .filter_map(Value::as_object)
            .any(|r| !r.is_empty())
        {
            secured += 1;
            assert!(op["responses"].get("401").is_some(), "{label}: no 401");
        }
    }
    assert!(secured > 100, "only {secured} secured operations");
    let mut refusable = 0;
    for (method, path, policy) in POLICIES {
        if Role::ALL.iter().all(|role| policy.roles.contains(role)) {
            continue;
        }
        refusable += 1;
        let op = &doc["paths"][*path][method.to_lowercase()];
        assert!(
            op["responses"].get("403").is_some(),
            "{method} {path}: a role is refused, but 403 is undocumented"
        );
    }
    assert!(refusable > 50, "only {refusable} operations refuse a role");
}

#[tokio::test]
async fn every_error_response_is_a_problem_and_operation_ids_are_unique() {
    let doc = served_document().await;
    let mut errors = 0;
    let mut ids = BTreeSet::new();
    for (label, _, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(
            ids.insert(id.to_string()),
            "{label}: operation id {id} is taken"
        );
        for (status, response) in op["responses"].as_object().unwrap() {
            if !(status.starts_with('4') || status.starts_with('5')) {
                continue;
            }
            errors += 1;
            let content = response["content"].as_object();
            let media_types: Vec<&String> = content.into_iter().flat_map(|c| c.keys()).collect();
            assert_eq!(
                media_types,
                ["application/problem+json"],
                "{label} {status}: {response}"
            );
            assert_eq!(
                response["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{label} {status}"
            );
        }
    }
    assert!(errors > 500, "only {errors} error responses");
}

#[tokio::test]
async fn no_response_schema_puts_a_closed_object_in_an_all_of() {
    let doc = served_document().await;
    let schemas = reachable(&doc, response_schemas(&doc));
    assert!(
        schemas.len() > 100,
        "only {} schemas reached",
        schemas.len()
    );
    let mut all_ofs = 0;
    for schema in schemas {
        for member in schema["allOf"].as_array().into_iter().flatten() {
            all_ofs += 1;
            let member = resolve(&doc, member);
            assert_ne!(
                member["additionalProperties"], false,
                "a closed object inside an allOf refuses the other members' fields: {schema}"
            );
        }
    }
    // A catalog entry is its metadata and its own fields, together.
    assert!(all_ofs > 0, "no allOf reached: is the check still looking?");
    let dataset = resolve(&doc, &doc["components"]["schemas"]["Dataset"]);
    assert!(dataset["allOf"].is_array(), "{dataset}");
}

#[tokio::test]
async fn no_all_of_holds_a_union() {
    // openapi-python-client cannot read an allOf with a union member and drops every
    // operation whose body or answer reaches one (`api_doc::FlatUnions` spells them out).
    let doc = served_document().await;
    let mut roots: Vec<&Value> = doc["components"]["schemas"]
        .as_object()
        .unwrap()
        .values()
        .collect();
    roots.extend(response_schemas(&doc));
    for schema in reachable(&doc, roots) {
        for member in schema["allOf"].as_array().into_iter().flatten() {
            let member = resolve(&doc, member);
            assert!(
                member["oneOf"].is_null() && member["anyOf"].is_null(),
                "an allOf holds a union: {schema}"
            );
        }
    }
    // A column's identifier domain, spelled out per format.
    let domain = &doc["components"]["schemas"]["Domain"]["oneOf"];
    assert!(
        domain.as_array().unwrap().iter().any(|variant| {
            variant["properties"]["kind"]["enum"][0] == "identifier"
                && variant["properties"]["format"]["enum"][0] == "credit_code"
        }),
        "{domain}"
    );
}

#[tokio::test]
async fn uploads_are_binary_and_no_body_is_an_array_of_integers() {
    let doc = served_document().await;
    let mut octet_streams = 0;
    for (label, _, op) in operations(&doc) {
        let bodies = op["requestBody"]["content"].as_object();
        for (media_type, content) in bodies.into_iter().flatten() {
            let schema = resolve(&doc, &content["schema"]);
            let integers =
                has_type(schema, "array") && has_type(resolve(&doc, &schema["items"]), "integer");
            assert!(
                !integers,
                "{label} {media_type}: an array of integers: {schema}"
            );
            if media_type == "application/octet-stream" {
                octet_streams += 1;
                assert!(has_type(schema, "string"), "{label}: {schema}");
                assert_eq!(schema["format"], "binary", "{label}: {schema}");
            }
        }
    }
    // Dataset versions and FHE server keys.
    assert_eq!(octet_streams, 2);
}

#[tokio::test]
async fn every_reference_resolves_and_the_named_objects_are_typed() {
    let doc = served_document().await;
    let mut references = Vec::new();
    let mut stack = vec![&doc];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                    references.push(reference);
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    assert!(references.len() > 100);
    for reference in references {
        assert!(
            component(&doc, reference).is_object(),
            "{reference} names no component"
        );
    }
    // Bodies a client must build, and what comes back, have their fields stated.
    for (schema, name) in [
        ("NewDataset", "schema"),
        ("NewTemplate", "spec"),
        ("FheTemplate", "spec"),
        ("CertificateWithReceipt", "certificate"),
        ("CertificateWithReceipt", "receipt"),
        ("LedgerHop", "receipt"),
        ("OpenBody", "authorisation"),
    ] {
        let typed = property(&doc, schema, name);
        assert!(
            typed["properties"].is_object(),
            "{schema}.{name} is an untyped object: {typed}"
        );
    }
    // Rows are arrays of objects, not one object.
    for (schema, name) in [
        ("DryRunResult", "sample"),
        ("ReviewItem", "preview"),
        ("PreviousRows", "rows"),
    ] {
        let rows = property(&doc, schema, name);
        assert!(has_type(rows, "array"), "{schema}.{name}: {rows}");
    }
    let entries = property(&doc, "EntryPage", "entries");
    assert_eq!(entries["items"]["$ref"], "#/components/schemas/Entry");
}

#[tokio::test]
async fn the_limits_the_server_enforces_are_stated() {
    let doc = served_document().await;
    let search = |name| parameter(&doc, "get", "/v1/datasets", name)["schema"].clone();
    assert_eq!(search("per_page")["minimum"], 1);
    assert_eq!(search("per_page")["maximum"], 100);
    assert_eq!(search("page")["minimum"], 1);
    let rows = &parameter(&doc, "get", "/v1/datasets/{id}/dummy", "rows")["schema"];
    assert_eq!(rows["minimum"], 1);
    assert_eq!(rows["maximum"], pdx_sandbox::access::MAX_DUMMY_ROWS);
    let limit = &parameter(&doc, "get", "/v1/ledger/entries", "limit")["schema"];
    assert_eq!(limit["maximum"], pdx::http::ledger_api::MAX_PAGE);
    assert_eq!(
        property(&doc, "GrantApplication", "epsilon")["maximum"],
        100
    );
    assert_eq!(
        property(&doc, "GrantApplication", "term_days")["maximum"],
        pdx_sandbox::grants::MAX_TERM_DAYS
    );
    for (schema, name) in [
        ("NewDataset", "title"),
        ("NewModel", "name"),
        ("NewTemplate", "name"),
        ("CreateOrg", "name"),
        ("GrantApplication", "purpose"),
    ] {
        let text = property(&doc, schema, name);
        assert_eq!(text["minLength"], 1, "{schema}.{name} may be empty: {text}");
        assert!(
            text["pattern"].is_string(),
            "{schema}.{name} may be blank: {text}"
        );
    }
}
