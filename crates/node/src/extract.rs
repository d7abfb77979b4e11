//! Request extraction and error responses: every malformed request becomes a 4xx with a
//! stable code, never a panic or a 500.

use crate::auth::Caller;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use paddock_api::{ApiError, ErrorCode};
use paddock_ledger::{Actor, IdempotencyKey};
use serde::de::DeserializeOwned;

/// An API error as an HTTP response.
pub struct Failure(pub ApiError);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = (status, axum::Json(self.0.body())).into_response();
        if let Some(seconds) = self.0.retry_after_s {
            response.headers_mut().insert("retry-after", HeaderValue::from(seconds));
        }
        response
    }
}

/// A JSON body decoded with our error codes.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Failure> {
        let json_type = is_json(&req);
        let bytes = body_bytes(req, state).await?;
        if !json_type {
            return Err(Failure(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "Expected request with `Content-Type: application/json`",
            )));
        }
        decode(&bytes).map(Body).map_err(Failure)
    }
}

fn is_json(req: &Request) -> bool {
    req.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        let mime = v.split(';').next().unwrap_or_default().trim();
        mime.eq_ignore_ascii_case("application/json")
            || mime.split_once('/').is_some_and(|(top, sub)| {
                top.eq_ignore_ascii_case("application") && sub.to_ascii_lowercase().ends_with("+json")
            })
    })
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<axum::body::Bytes, Failure> {
    axum::body::Bytes::from_request(req, state).await.map_err(|r| {
        let code = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorCode::BodyTooLarge
        } else {
            ErrorCode::MalformedBody
        };
        Failure(ApiError::new(code, r.body_text()))
    })
}

/// Decodes a JSON body. JSON has one number type, and JSON Schema's `integer` admits `2.0`:
/// a body that fails only because a whole number was spelled with a fraction or an exponent
/// (`2.0`, `2e3`) is read again with those numbers as integers. Tried only after the fast
/// path fails, so an ordinary request pays nothing for it. The fast path is plain serde_json;
/// only a body it refuses is read again through axum's `Json`, which tracks the failing field's
/// path for the error message: decoding fell from 8.7 % to 4.3 % of the nodes' CPU under 200-bet
/// batches (BENCHMARKS.md, 2026-12-08).
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Ok(v) = serde_json::from_slice::<T>(bytes) {
        return Ok(v);
    }
    let first = match axum::Json::<T>::from_bytes(bytes) {
        Ok(axum::Json(v)) => return Ok(v),
        Err(rejection) => json_rejection(rejection),
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) else { return Err(first) };
    if !whole_floats_as_integers(&mut value) {
        return Err(first);
    }
    serde_json::from_value(value).map_err(|_| first)
}

/// Rewrites every float with no fractional part that an integer holds exactly (|x| <= 2^53)
/// as that integer; says whether it changed anything.
fn whole_floats_as_integers(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            let Some(whole) = n.as_f64().and_then(whole_number) else { return false };
            *value = serde_json::Value::from(whole);
            true
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().fold(false, |changed, v| whole_floats_as_integers(v) | changed)
        }
        serde_json::Value::Object(fields) => {
            fields.values_mut().fold(false, |changed, v| whole_floats_as_integers(v) | changed)
        }
        _ => false,
    }
}

/// A JSON body that may be left out: a request with no body bytes at all reads as
/// `T::default()` (suspend, resume and close need no reason); one with bytes must be JSON, as
/// for [`Body`].
pub struct OptionalBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalBody<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Failure> {
        let json_type = is_json(&req);
        let bytes = body_bytes(req, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalBody(T::default()));
        }
        if !json_type {
            return Err(Failure(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "a request body must be sent with `Content-Type: application/json` (or leave the body out)",
            )));
        }
        decode(&bytes).map(OptionalBody).map_err(Failure)
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let code = match &r {
        JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
        _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::BodyTooLarge,
        _ => ErrorCode::MalformedBody,
    };
    ApiError::new(code, r.body_text())
}

/// A path parameter decoded with our error codes.
pub struct PathParam<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParam<T> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Failure> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(PathParam(v)),
            Err(r) => {
                if let Some(v) = path_with_whole_numbers(parts, state).await {
                    return Ok(PathParam(v));
                }
                // The parameter's name, from the route's template, when it has just one.
                let template = parts.extensions.get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_string());
                let names: Vec<String> = template
                    .iter()
                    .flat_map(|t| t.split('/'))
                    .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                    .map(str::to_string)
                    .collect();
                let name = if names.len() == 1 { names[0].clone() } else { "the path parameter".to_string() };
                Err(Failure(path_rejection(r, &name)))
            }
        }
    }
}

/// The path parameters read again with ids written as whole numbers in another spelling
/// (`11991011.0`, `5e2`), as the body allows: a link that carries an id from a request body
/// into the path carries it as the client spelt it. `None` if that is not what went wrong.
async fn path_with_whole_numbers<T: DeserializeOwned, S: Send + Sync>(parts: &mut Parts, state: &S) -> Option<T> {
    let raw = axum::extract::RawPathParams::from_request_parts(parts, state).await.ok()?;
    let mut values = Vec::new();
    for (name, text) in raw.iter() {
        let value = if paddock_api::openapi::TEXT_PATH_PARAMETERS.contains(&name) {
            serde_json::Value::from(text)
        } else {
            let id = text.parse::<u64>().ok().or_else(|| whole_number(text.parse().ok()?)?.try_into().ok())?;
            serde_json::Value::from(id)
        };
        values.push(value);
    }
    let value = if values.len() == 1 { values.pop()? } else { serde_json::Value::Array(values) };
    serde_json::from_value(value).ok()
}

/// `f` as an integer if it is one that a float holds exactly (|f| <= 2^53).
fn whole_number(f: f64) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    // In range and whole: the conversion is exact.
    #[allow(clippy::cast_possible_truncation)]
    (f.fract() == 0.0 && f.abs() <= EXACT).then_some(f as i64)
}

/// Says which rule a path parameter broke, in words (not serde's "Cannot parse `-1` to a
/// `u64`").
fn path_rejection(r: PathRejection, name: &str) -> ApiError {
    use axum::extract::path::ErrorKind;
    let message = match &r {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::ParseErrorAtKey { key, value, expected_type } => {
                format!("{key} must be {}, not \"{value}\"", type_in_words(expected_type))
            }
            ErrorKind::ParseError { value, expected_type }
            | ErrorKind::ParseErrorAtIndex { value, expected_type, .. } => {
                format!("{name} must be {}, not \"{value}\"", type_in_words(expected_type))
            }
            _ => e.body_text(),
        },
        _ => r.body_text(),
    };
    ApiError::new(ErrorCode::BadParameter, message)
}

fn type_in_words(rust_type: &str) -> String {
    match rust_type {
        "u64" => format!("a whole number from 0 to {}", u64::MAX),
        "u32" => format!("a whole number from 0 to {}", u32::MAX),
        "alloc::string::String" | "String" => "text".to_string(),
        other => format!("a value of type {other}"),
    }
}

/// Query parameters decoded with our error codes.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Failure> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(QueryParams(v)),
            Err(r) => Err(Failure(query_rejection(r))),
        }
    }
}

fn query_rejection(r: QueryRejection) -> ApiError {
    ApiError::new(ErrorCode::BadParameter, r.body_text())
}

/// The `Idempotency-Key` header, required on every state-changing request: a retry with the
/// same key and body returns the first answer instead of acting twice.
pub struct IdemKey(pub IdempotencyKey);

impl<S: Send + Sync> FromRequestParts<S> for IdemKey {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Failure> {
        let value = parts.headers.get("idempotency-key").ok_or_else(|| {
            Failure(ApiError::new(
                ErrorCode::IdempotencyKeyMissing,
                "every state-changing request needs an Idempotency-Key header (1-64 printable ASCII characters, \
                 e.g. a UUID); send the same key again to retry the same request safely",
            ))
        })?;
        let text =
            value.to_str().map_err(|_| Failure(ApiError::ledger(paddock_ledger::ResultCode::IdempotencyKeyInvalid)))?;
        let key = IdempotencyKey(text.to_string());
        if !key.is_valid() {
            return Err(Failure(ApiError::new(
                ErrorCode::Ledger(paddock_ledger::ResultCode::IdempotencyKeyInvalid),
                "Idempotency-Key must be 1-64 printable ASCII characters",
            )));
        }
        Ok(IdemKey(key))
    }
}

/// The authenticated caller, put there by `auth::authorize`.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Failure> {
        // Every non-public route runs behind `authorize`; a handler that asks for a caller on
        // a public route is a bug, answered as unauthenticated rather than served anonymously.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Failure(ApiError::new(ErrorCode::Unauthenticated, "this route needs an API key")))
    }
}

/// The acting principal of an operator command, for the audit trail: the authenticated
/// caller, never a header the client chose.
pub struct Operator(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Operator {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Failure> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(Operator(Actor(caller.principal)))
    }
}

/// `?consistency=stale` asks for a read from this node without the ReadIndex round trip.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadOptions {
    /// "linearizable" (default) or "stale".
    #[serde(default)]
    pub consistency: Option<String>,
}

impl ReadOptions {
    /// Whether the caller accepts a possibly stale read.
    pub fn stale(&self) -> Result<bool, Failure> {
        match self.consistency.as_deref() {
            None | Some("linearizable") => Ok(false),
            Some("stale") => Ok(true),
            Some(other) => Err(Failure(ApiError::new(
                ErrorCode::BadParameter,
                format!("consistency must be linearizable or stale, not {other:?}"),
            ))),
        }
    }
}

/// Items per page when the client does not say.
pub const PAGE_DEFAULT: usize = 100;
/// Most items one page holds.
pub const PAGE_MAX: usize = 1000;

/// `?after=<cursor>&limit=<n>&consistency=...` of a list: items after the cursor (exclusive,
/// in the list's order), at most `limit` of them (1 to [`PAGE_MAX`], default
/// [`PAGE_DEFAULT`]). A full page says where the next one starts in the `X-Next-Cursor` header.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListOptions {
    /// "linearizable" (default) or "stale".
    #[serde(default)]
    pub consistency: Option<String>,
    /// The last item of the previous page (its id, or a principal's name).
    #[serde(default)]
    pub after: Option<String>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<usize>,
}

impl ListOptions {
    /// The read consistency asked for.
    pub fn read(&self) -> ReadOptions {
        ReadOptions { consistency: self.consistency.clone() }
    }

    /// The page size, refused outside 1..=PAGE_MAX.
    pub fn limit(&self) -> Result<usize, Failure> {
        match self.limit {
            None => Ok(PAGE_DEFAULT),
            Some(n) if (1..=PAGE_MAX).contains(&n) => Ok(n),
            Some(n) => Err(Failure(ApiError::new(
                ErrorCode::BadParameter,
                format!("limit must be between 1 and {PAGE_MAX}, not {n}"),
            ))),
        }
    }

    /// The cursor as an id.
    pub fn after_id(&self) -> Result<Option<u64>, Failure> {
        match &self.after {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                Failure(ApiError::new(
                    ErrorCode::BadParameter,
                    format!("after must be an id from a previous page, not {text:?}"),
                ))
            }),
        }
    }
}

/// One page of a list: the items as a JSON array, and the `X-Next-Cursor` header when more may
/// follow.
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The cursor of the next page.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// The first `limit` of `items` (which the caller took as `limit + 1`, to know whether
    /// more follow), and the cursor after the last one shown.
    pub fn of(mut items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Page<T> {
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more { items.last().map(cursor) } else { None };
        Page { items, next }
    }
}

impl<T: serde::Serialize> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self.items).into_response();
        if let Some(next) = self.next.and_then(|n| HeaderValue::from_str(&n).ok()) {
            response.headers_mut().insert("x-next-cursor", next);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Stake {
        stake_minor: u64,
        legs: Vec<u32>,
    }

    #[test]
    fn a_whole_number_spelled_with_a_fraction_or_an_exponent_is_that_integer() {
        let read: Stake = decode(br#"{"stake_minor": 500.0, "legs": [1, 2e0]}"#).expect("whole numbers");
        assert_eq!(read, Stake { stake_minor: 500, legs: vec![1, 2] });
        let read: Stake = decode(br#"{"stake_minor": 5e2, "legs": []}"#).expect("an exponent");
        assert_eq!(read.stake_minor, 500);
        // Parsed exactly (serde_json's float_roundtrip), not one unit in the last place off.
        let read: Stake = decode(br#"{"stake_minor": 1932205392191641.0, "legs": []}"#).expect("exact");
        assert_eq!(read.stake_minor, 1_932_205_392_191_641);
    }

    #[test]
    fn a_fraction_or_an_inexact_float_is_refused_with_the_first_error() {
        let refused = decode::<Stake>(br#"{"stake_minor": 500.5, "legs": []}"#).expect_err("a fraction");
        assert_eq!(refused.code.as_str(), "malformed_body");
        assert!(refused.message.contains("stake_minor"), "names the field: {}", refused.message);
        let past_exact = decode::<Stake>(br#"{"stake_minor": 1e19, "legs": []}"#).expect_err("not exact as a float");
        assert_eq!(past_exact.code.as_str(), "malformed_body");
        let negative = decode::<Stake>(br#"{"stake_minor": -1.0, "legs": []}"#).expect_err("still negative");
        assert_eq!(negative.code.as_str(), "malformed_body");
    }
}
