//! The parts of the OpenAPI document that no single handler states: what every operation
//! can answer besides its own responses, and the schema of a raw upload.
//!
//! A handler's annotation (`#[utoipa::path]`) states what is particular to it: its
//! success responses and the 403s, 404s, 409s and 422s its own logic returns.
//! [`StandardResponses`] then adds, once for every operation, what the layers around the
//! handlers answer, read from where the operation sits:
//!
//! - 400 where it takes a query, a body or a path parameter that is not an id: the
//!   extractors' parse errors ([`super::json`]);
//! - 401 wherever a security requirement is stated: no key, or one that does not
//!   authenticate (on the public routes too: a bad key is never the public);
//! - 403 where the policy table can refuse the caller ([`super::policies`]): a role
//!   outside the route's policy, or a suspended organisation on a write or on a read not
//!   open to it;
//! - 404 where the path names a resource: a malformed id names nothing, as an unknown
//!   one does;
//! - 413 wherever a body is read, and 415 and 422 where it is JSON ([`super::json`]);
//! - 429 everywhere (the admission limits of [`super::limits`]), with `Retry-After`;
//! - 503 everywhere: the request timeout of `observe`.
//!
//! It also states every error response as what [`super::problem::ApiError`] sends,
//! `application/problem+json` with the `Problem` schema, where utoipa would say
//! `application/json`. Doing this in one place keeps 125 annotations short and means a
//! new route cannot forget them; `tests/e2e/openapi.rs` checks the result.
//!
//! [`FlatUnions`] spells out the tagged unions nested in others. An internally tagged
//! newtype variant that holds another tagged enum (`DeidRule::Mask(MaskFormat)`,
//! `Domain::Identifier(MaskFormat)`, serialised as `{"kind": "mask", "format": "mobile"}`)
//! is what utoipa states as `allOf: [MaskFormat, {kind}]`, an `allOf` whose first member
//! is a `oneOf`. openapi-python-client cannot read that, and dropped every catalog
//! operation whose body or answer holds a dataset schema. The document states the same
//! values as one object per variant of the inner enum with the outer tag added;
//! `tests/e2e/client.rs` generates a client from it.
//!
//! [`IntegerRanges`] states the range of every integer the server parses. utoipa names
//! Rust's integer types by format (`uint8`, `uint16`, `uint32`, `uint64`, `int8`,
//! `int16`, with its `non_strict_integers` feature; without it a `u32` was an `int32`,
//! whose range a client reads as ending at 2³¹ − 1 while the server took up to
//! 2³² − 1). Formats beyond `int32` and `int64` are annotations a client may not know, so
//! each such integer also gets its type's `minimum` and `maximum`, unless its field
//! states a narrower range itself.

use std::collections::BTreeMap;

use axum::http::Method;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::{
    Content, HeaderBuilder, Object, OpenApi, Ref, RefOr, Response, Schema, SecurityRequirement,
    Type,
};

use super::policies;
use crate::auth::{Role, WhileSuspended};

/// The media type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The body of a raw upload (a CSV or Parquet file, a serialised FHE server key): the
/// bytes as they are, `application/octet-stream`. utoipa would describe `Vec<u8>` as an
/// array of integers, which no client sends.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct RawBytes(pub Vec<u8>);

/// Adds the responses every operation can give besides its own, and states every error
/// response as problem+json (see the module documentation).
pub struct StandardResponses;

impl utoipa::Modify for StandardResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for (route, item) in openapi.paths.paths.iter_mut() {
            for (method, operation) in operations_mut(item) {
                complete(&method, route, operation);
            }
        }
    }
}

/// The operations of one path, with their methods.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
    [
        (Method::GET, item.get.as_mut()),
        (Method::PUT, item.put.as_mut()),
        (Method::POST, item.post.as_mut()),
        (Method::DELETE, item.delete.as_mut()),
        (Method::PATCH, item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|operation| (method, operation)))
}

/// What each added status means, as its description says.
fn standard_description(status: u16) -> &'static str {
    match status {
        400 => "Bad request: a query, path parameter or body that does not parse",
        401 => "Unauthorized: no API key, or one that is unknown or revoked",
        403 => {
            "Forbidden: the caller's role may not call this route, or its organisation is \
             suspended"
        }
        404 => "Not found: no such resource, or none the caller may see",
        409 => "Conflict: the resource is not in a state that allows this",
        413 => "Payload too large: the body is over this route's limit",
        415 => "Unsupported media type: send the body as application/json",
        422 => "Unprocessable: a value that does not fit; `path` names the field",
        429 => {
            "Too many requests: a rate limit, an address locked out after failed keys, or too \
             many uploads in progress; retry after `Retry-After` seconds when given"
        }
        503 => "Service unavailable: the request took longer than the server allows",
        _ => "An error, as a problem",
    }
}

/// Adds the standard responses to one operation and rewrites its error responses.
fn complete(method: &Method, route: &str, operation: &mut Operation) {
    let secured = operation.security.as_ref().is_some_and(|requirements| {
        requirements
            .iter()
            .any(|r| *r != SecurityRequirement::default())
    });
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    // A typed id (a `$ref` to its named schema) that does not parse is a 404 (`ApiPath`);
    // any other path or query parameter that does not parse is a 400.
    let parses_parameters = parameters.iter().any(|p| match p.parameter_in {
        ParameterIn::Query => true,
        ParameterIn::Path => !matches!(p.schema, Some(RefOr::Ref(_))),
        _ => false,
    });
    let names_resource = parameters
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let body = operation.request_body.as_ref();
    let reads_body = body.is_some();
    let reads_json = body.is_some_and(|b| b.content.contains_key("application/json"));

    let mut added: Vec<u16> = Vec::new();
    if parses_parameters || reads_body {
        added.push(400);
    }
    if secured {
        added.push(401);
        if refusable(method, route) {
            added.push(403);
        }
    }
    if names_resource {
        added.push(404);
    }
    if reads_body {
        added.push(413);
    }
    if reads_json {
        added.extend([415, 422]);
    }
    added.extend([429, 503]);

    let responses = &mut operation.responses.responses;
    for status in added {
        responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(Response::new(standard_description(status))));
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        let Ok(code) = status.parse::<u16>() else {
            continue;
        };
        if code < 400 {
            continue;
        }
        if response.description.is_empty() {
            response.description = standard_description(code).to_string();
        }
        response.content.clear();
        response.content.insert(
            PROBLEM_JSON.to_string(),
            Content::new(Some(Ref::from_schema_name("Problem"))),
        );
        if code == 429 {
            response.headers.insert(
                "Retry-After".to_string(),
                HeaderBuilder::new()
                    .schema(Object::with_type(Type::Integer))
                    .description(Some("Seconds to wait before trying again"))
                    .build(),
            );
        }
    }
}

/// Whether the policy table can refuse a caller with a valid key at this route: a role
/// outside its policy, or a suspended organisation ([`crate::auth::Principal::admit`]).
fn refusable(method: &Method, route: &str) -> bool {
    let Some(policy) = policies::policy_for(method, route) else {
        // A route without a policy is refused to everyone.
        return true;
    };
    let every_role = Role::ALL.iter().all(|role| policy.roles.contains(role));
    let refused_while_suspended = policy.writes
        || *method != Method::GET
        || policies::while_suspended(method, route) == WhileSuspended::Refused;
    !every_role || refused_while_suspended
}

/// Spells out every variant `allOf: [a union of objects, an object]` of a union as one
/// object per variant of the inner union, each with the outer object's properties added
/// (see the module documentation). The values allowed are the same.
pub struct FlatUnions;

impl utoipa::Modify for FlatUnions {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        // The named unions whose variants are all objects, as they are before any change.
        let unions: BTreeMap<String, Vec<Object>> = components
            .schemas
            .iter()
            .filter_map(|(name, schema)| object_variants(schema).map(|v| (name.clone(), v)))
            .collect();
        for schema in components.schemas.values_mut() {
            let RefOr::T(Schema::OneOf(one_of)) = schema else {
                continue;
            };
            let variants = std::mem::take(&mut one_of.items);
            one_of.items = variants
                .into_iter()
                .flat_map(|variant| spelled_out(variant, &unions))
                .collect();
        }
    }
}

/// The variants of a union (`oneOf`) whose variants are all inline objects.
fn object_variants(schema: &RefOr<Schema>) -> Option<Vec<Object>> {
    let RefOr::T(Schema::OneOf(one_of)) = schema else {
        return None;
    };
    one_of
        .items
        .iter()
        .map(|variant| match variant {
            RefOr::T(Schema::Object(object)) => Some(object.clone()),
            _ => None,
        })
        .collect()
}

/// A variant `allOf: [$ref, object]` whose reference names one of `unions`, as one object
/// per variant of that union, each with the object's properties and required names added
/// and both descriptions; any other variant as it is.
fn spelled_out(
    variant: RefOr<Schema>,
    unions: &BTreeMap<String, Vec<Object>>,
) -> Vec<RefOr<Schema>> {
    if let RefOr::T(Schema::AllOf(both)) = &variant
        && let [RefOr::Ref(inner), RefOr::T(Schema::Object(outer))] = both.items.as_slice()
        && let Some(inner_variants) = inner
            .ref_location
            .strip_prefix("#/components/schemas/")
            .and_then(|name| unions.get(name))
    {
        return inner_variants
            .iter()
            .map(|inner_variant| {
                let mut merged = inner_variant.clone();
                for (name, property) in &outer.properties {
                    if !merged.properties.contains_key(name) {
                        merged.properties.insert(name.clone(), property.clone());
                    }
                }
                for name in &outer.required {
                    if !merged.required.contains(name) {
                        merged.required.push(name.clone());
                    }
                }
                merged.description = match (&both.description, &inner_variant.description) {
                    (Some(what), Some(which)) => Some(format!("{what} {which}")),
                    (what, which) => what.clone().or_else(|| which.clone()),
                };
                RefOr::T(Schema::Object(merged))
            })
            .collect();
    }
    vec![variant]
}

/// States each integer's range from its format (see the module documentation).
pub struct IntegerRanges;

impl utoipa::Modify for IntegerRanges {
    fn modify(&self, openapi: &mut OpenApi) {
        // The schemas sit in components, parameters, bodies and responses, nested in
        // every kind of composition: rewrite the document's JSON form in one walk.
        let Ok(mut document) = serde_json::to_value(&*openapi) else {
            return;
        };
        state_ranges(&mut document);
        if let Ok(ranged) = serde_json::from_value::<OpenApi>(document) {
            *openapi = ranged;
        }
    }
}

/// The range of an integer format beyond `int32` and `int64`.
fn format_range(format: &str) -> Option<(serde_json::Value, serde_json::Value)> {
    use serde_json::Value;
    let (min, max): (Value, Value) = match format {
        "uint8" => (0.into(), u8::MAX.into()),
        "uint16" => (0.into(), u16::MAX.into()),
        "uint32" => (0.into(), u32::MAX.into()),
        "uint64" => (0.into(), u64::MAX.into()),
        "int8" => (i8::MIN.into(), i8::MAX.into()),
        "int16" => (i16::MIN.into(), i16::MAX.into()),
        _ => return None,
    };
    Some((min, max))
}

/// Adds `minimum` and `maximum` to every integer schema under `value` whose format has a
/// range and which does not state that bound itself.
fn state_ranges(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let integer = match map.get("type") {
                Some(Value::String(t)) => t == "integer",
                Some(Value::Array(types)) => types.iter().any(|t| t == "integer"),
                _ => false,
            };
            let range = map
                .get("format")
                .and_then(Value::as_str)
                .and_then(format_range);
            if let (true, Some((min, max))) = (integer, range) {
                map.entry("minimum").or_insert(min);
                map.entry("maximum").or_insert(max);
            }
            map.values_mut().for_each(state_ranges);
        }
        Value::Array(items) => items.iter_mut().for_each(state_ranges),
        _ => {}
    }
}
