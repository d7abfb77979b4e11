//! The public HTTP API's contract: JSON wire types, error codes and their HTTP statuses, the
//! conversion between wire types and ledger commands, and the OpenAPI document.
//!
//! # Layout
//! - [`wire`]: request and response bodies. Every request body refuses unknown fields.
//! - [`error`]: the error body and every stable error code with its HTTP status.
//! - [`convert`]: wire ↔ ledger. The only place that knows both shapes.
//! - [`openapi`]: the OpenAPI 3.1 document served at `/v1/openapi.json`.
//! - [`examples`]: an example of every body, checked against its type.
//!
//! # API boundary
//! Money is always an integer count of minor units (`*_minor`); odds travel as text ("5/2",
//! "3.5", "+250") on the way in and as an object with exact and display forms on the way out;
//! ids are integers. Nothing here does I/O.

pub mod convert;
pub mod error;
pub mod examples;
pub mod openapi;
pub mod wire;

pub use error::{ApiError, ErrorBody, ErrorCode};
/// API keys and roles, as clients make and name them.
pub use paddock_ledger::auth::{key_hash, KeyHash, KeyId, KeyText, Role};
