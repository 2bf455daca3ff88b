//! A JSON body extractor whose errors are problem+json and name the field path.
//!
//! axum's own `Json` rejects with plain text; this one reads the body under the
//! configured size limit (413), insists on `application/json` (415), and parses with
//! `serde_path_to_error` so that a syntax error is a 400 and a wrong field is a 422 with
//! the path (`grants[2].epsilon`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// A JSON request body.
pub struct ApiJson<T>(pub T);

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Parses JSON bytes into `T`, naming the field at fault.
///
/// JSON has one number type, and JSON Schema's `integer` holds every number with a zero
/// fractional part, so `1005.0` is as good an integer as `1005` (generated clients and
/// spreadsheets send both). serde refuses a float where it expects an integer; when that
/// is the only fault, the body is read again with such numbers as integers.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let first = serde_path_to_error::deserialize(de);
    let err = match first {
        Ok(value) => return Ok(value),
        Err(err) => err,
    };
    if err.inner().is_data()
        && err.inner().to_string().contains("floating point")
        && let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && integral_floats_as_integers(&mut value)
    {
        return serde_path_to_error::deserialize(value).map_err(|err| {
            let path = err.path().to_string();
            ApiError::invalid_field(path, err.into_inner().to_string())
        });
    }
    Err(json_problem(err))
}

/// Replaces every float with a zero fractional part that an `i64` or `u64` holds by
/// that integer; whether anything changed.
fn integral_floats_as_integers(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            let Some(f) = n.as_f64() else {
                return false;
            };
            // Exactly representable bounds: -2^63 and 2^64.
            let integer = if f.fract() != 0.0 || !f.is_finite() {
                None
            } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                Some(serde_json::Number::from(f as i64))
            } else if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                Some(serde_json::Number::from(f as u64))
            } else {
                None
            };
            match integer {
                Some(integer) => {
                    *n = integer;
                    true
                }
                None => false,
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().fold(false, |changed, item| {
            integral_floats_as_integers(item) | changed
        }),
        serde_json::Value::Object(fields) => fields.values_mut().fold(false, |changed, item| {
            integral_floats_as_integers(item) | changed
        }),
        _ => false,
    }
}

/// The problem for a body serde could not read: 422 naming the field for a wrong
/// value, 400 for a syntax error.
fn json_problem(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    // Report line/column and category, not the input text.
    let detail = match inner.classify() {
        serde_json::error::Category::Data => inner.to_string(),
        serde_json::error::Category::Eof => "the body ends before the JSON value does".into(),
        _ => format!(
            "the body is not valid JSON (line {}, column {})",
            inner.line(),
            inner.column()
        ),
    };
    if inner.is_data() {
        ApiError::invalid_field(path, detail)
    } else {
        ApiError::bad_body(path, detail)
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::unsupported_media(
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Maps a body-read failure (notably the size limit) to a problem.
pub fn bytes_rejection(r: BytesRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large("the body is larger than this server accepts")
    } else {
        ApiError::bad_request("the body could not be read")
    }
}

/// A query string, with problem+json rejections.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(t)| ApiQuery(t))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Path parameters, with problem+json rejections. A typed id of the wrong form
/// (`pdx_ids`) names nothing that exists, so it is a 404 like an unknown id; any other
/// unparsable parameter is a 400.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| ApiPath(t))
            .map_err(|e| {
                let text = e.body_text();
                if text.contains(pdx_ids::MALFORMED_ID) {
                    ApiError::not_found("no such resource")
                } else {
                    ApiError::bad_request(text)
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        inner: Vec<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    #[test]
    fn wrong_field_names_its_path_and_is_422() {
        let err = parse_json::<Outer>(br#"{"inner":[{"n":1},{"n":"x"}]}"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.path(), Some("inner[1].n"));
    }

    #[test]
    fn integral_floats_are_integers_and_fractions_are_not() {
        let outer = parse_json::<Outer>(br#"{"inner":[{"n":1005.0},{"n":7},{"n":-0.0}]}"#)
            .expect("integral floats are integers");
        let ns: Vec<u32> = outer.inner.iter().map(|i| i.n).collect();
        assert_eq!(ns, [1005, 7, 0]);
        let err = parse_json::<Outer>(br#"{"inner":[{"n":1.0},{"n":2.5}]}"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.path(), Some("inner[1].n"));
        // Out of the field's range stays a range error, not a wrapped value.
        let err = parse_json::<Outer>(br#"{"inner":[{"n":5e12}]}"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.path(), Some("inner[0].n"));
    }

    #[test]
    fn syntax_error_is_400() {
        let err = parse_json::<Outer>(br#"{"inner": [ "#).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }
}
