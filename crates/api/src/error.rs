//! Error codes and statuses.
//!
//! Every refusal has a stable snake_case code. Ledger refusals carry the ledger's own
//! [`ResultCode`] name; the API adds codes for malformed requests and for availability.

use paddock_ledger::ResultCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The JSON body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `insufficient_funds`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// Codes the API itself can return (besides the ledger's result codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The ledger refused the command.
    Ledger(ResultCode),
    /// The body is not valid JSON, has wrong types or unknown fields.
    MalformedBody,
    /// The body is larger than the limit.
    BodyTooLarge,
    /// The request target (path and query) is too long (414).
    UriTooLong,
    /// The request headers are too large (431).
    HeadersTooLarge,
    /// The request needs `Content-Type: application/json`.
    UnsupportedMediaType,
    /// A state-changing request lacks the `Idempotency-Key` header.
    IdempotencyKeyMissing,
    /// A header or path or query parameter has a bad value.
    BadParameter,
    /// No credentials, or credentials that are unknown, expired or revoked (401).
    Unauthenticated,
    /// The caller's role may not use this route, or the object is not the caller's (403). Sent
    /// before the object is looked up, so it never says whether the object exists.
    Forbidden,
    /// No such resource (route or id read).
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// This client sent too many requests; retry after the indicated time.
    RateLimited,
    /// The node is at capacity; retry after the indicated time.
    Overloaded,
    /// No leader or no quorum right now; nothing was applied.
    Unavailable,
    /// The write may or may not have been applied; retry with the same Idempotency-Key.
    OutcomeUnknown,
    /// Linearizable read could not be served right now.
    ReadUnavailable,
    /// The leader's clock disagrees with a majority of the voters, so it stamps no command;
    /// nothing was applied. Retry: leadership moves to a node whose clock agrees.
    ClockUnsynchronized,
    /// A market was created with a `closes_at` already past: it would take no bet (422).
    ClosesAtPassed,
    /// A membership change the cluster as it stands cannot take (409): removing or promoting
    /// a node that is not a member, leadership to a non-voter, a node the leader cannot reach,
    /// an address another member has. Nothing was changed; the message says what to do.
    MembershipRefused,
    /// A well-formed request refused by a rule that relates its fields or depends on the
    /// node's settings, which no schema states (422): `k` left out of a `k_of_n` bet, one of
    /// `key_id` and `key_sha256` without the other.
    RequestRefused,
    /// A backup asked for log entries this node has purged behind a snapshot (410): start a
    /// new chain with a full backup.
    LogPurged,
    /// The command needs a log-entry format a member of the cluster does not read yet: a
    /// rolling upgrade is under way or stopped half-way (409). Nothing was applied; finish the
    /// upgrade, then send it again.
    FormatNotActive,
}

impl ErrorCode {
    /// Every code of the API's own, besides the ledger's: the OpenAPI document lists them with
    /// their statuses, so a client can handle each by name.
    pub const API: [ErrorCode; 22] = [
        ErrorCode::MalformedBody,
        ErrorCode::BodyTooLarge,
        ErrorCode::UriTooLong,
        ErrorCode::HeadersTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::IdempotencyKeyMissing,
        ErrorCode::BadParameter,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RateLimited,
        ErrorCode::Overloaded,
        ErrorCode::Unavailable,
        ErrorCode::OutcomeUnknown,
        ErrorCode::ReadUnavailable,
        ErrorCode::ClockUnsynchronized,
        ErrorCode::ClosesAtPassed,
        ErrorCode::MembershipRefused,
        ErrorCode::RequestRefused,
        ErrorCode::LogPurged,
        ErrorCode::FormatNotActive,
    ];

    /// Every code a client can receive: the API's own, then the ledger's.
    pub fn all() -> impl Iterator<Item = ErrorCode> {
        ErrorCode::API.into_iter().chain(ResultCode::ALL.iter().map(|c| ErrorCode::Ledger(*c)))
    }

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Ledger(code) => code.as_str(),
            ErrorCode::MalformedBody => "malformed_body",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::IdempotencyKeyMissing => "idempotency_key_missing",
            ErrorCode::BadParameter => "bad_parameter",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::OutcomeUnknown => "outcome_unknown",
            ErrorCode::ReadUnavailable => "read_unavailable",
            ErrorCode::ClockUnsynchronized => "clock_unsynchronized",
            ErrorCode::ClosesAtPassed => "closes_at_passed",
            ErrorCode::MembershipRefused => "membership_refused",
            ErrorCode::RequestRefused => "request_refused",
            ErrorCode::LogPurged => "log_purged",
            ErrorCode::FormatNotActive => "format_not_active",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::Ledger(code) => ledger_status(code),
            ErrorCode::MalformedBody | ErrorCode::IdempotencyKeyMissing | ErrorCode::BadParameter => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::UriTooLong => 414,
            ErrorCode::HeadersTooLarge => 431,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RateLimited => 429,
            ErrorCode::ClosesAtPassed | ErrorCode::RequestRefused => 422,
            ErrorCode::MembershipRefused | ErrorCode::FormatNotActive => 409,
            ErrorCode::LogPurged => 410,
            ErrorCode::Overloaded
            | ErrorCode::Unavailable
            | ErrorCode::OutcomeUnknown
            | ErrorCode::ReadUnavailable
            | ErrorCode::ClockUnsynchronized => 503,
        }
    }
}

/// HTTP status for a ledger refusal: 404 for unknown ids, 409 for conflicts with the current
/// state of a resource, 400 for a request that breaks a rule of the OpenAPI document (a type,
/// range, length or pattern of one field: a client that follows the document never sees it),
/// 422 for a well-formed request refused by a rule no schema can state — one that relates
/// fields (a stake minimum above its maximum, a Trixie of two legs), or depends on the book
/// as it stands (funds, prices, limits) or on the node's settings.
pub fn ledger_status(code: ResultCode) -> u16 {
    use ResultCode::*;
    match code {
        AccountNotFound | EventNotFound | MarketNotFound | SelectionNotFound | BetNotFound | PrincipalNotFound
        | KeyNotFound | IncidentNotFound => 404,
        AccountExists | EventExists | MarketExists | SelectionExists | IdempotencyKeyReused | MarketStateInvalid
        | MarketAlreadySettled | MarketNotSettled | MarketVoided | BetNotOpen | PrincipalExists | KeyExists
        | KeyRevoked | AccountAlreadyBound | IncidentClosed => 409,
        CurrencyInvalid
        | AmountMustBePositive
        | IdempotencyKeyInvalid
        | TextInvalid
        | SelectionCountInvalid
        | DeductionInvalid
        | LegsEmpty
        | TooManyLegs
        | ConfigInvalid
        | PrincipalNameInvalid
        | BatchSizeInvalid => 400,
        AmountOverflow
        | MarketRulesInvalid
        | ResultsInvalid
        | OddsInvalid
        | LegsSameEvent
        | BetTypeInvalid
        | LimitInvalid
        | BetAccountMismatch
        | AccountsOnlyForBettors
        | KeyTtlInvalid
        | CurrencyMismatch
        | InsufficientFunds
        | MarketNotOpen
        | MarketSuspended
        | MarketClosed
        | SelectionWithdrawn
        | OddsChanged
        | StakeBelowMinimum
        | StakeAboveMaximum
        | MaxPayoutExceeded
        | LiabilityLimitExceeded
        | EachWayNotOffered
        | SelfExcluded
        | TimedOut
        | DepositLimitExceeded
        | LossLimitReached
        | CashOutQuoteStale
        | CashOutValueTooHigh
        | CashOutUnavailable
        | TooManyAccounts
        | TooManyKeys => 422,
        // Not the client's fault and not final: the book's clock is catching up.
        ClockStepTooLarge => 503,
    }
}

/// An error ready to be sent: code, message, and for 429/503 a retry hint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// What went wrong.
    pub code: ErrorCode,
    /// Explanation for a human.
    pub message: String,
    /// Seconds after which a retry may succeed (sent as `Retry-After`).
    pub retry_after_s: Option<u32>,
}

impl ApiError {
    /// An error with a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), retry_after_s: None }
    }

    /// A ledger refusal.
    pub fn ledger(code: ResultCode) -> ApiError {
        let error = ApiError::new(ErrorCode::Ledger(code), ledger_message(code));
        if code == ResultCode::ClockStepTooLarge {
            error.retry_after(1)
        } else {
            error
        }
    }

    /// Adds a retry hint.
    pub fn retry_after(mut self, seconds: u32) -> ApiError {
        self.retry_after_s = Some(seconds);
        self
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { error: ErrorDetail { code: self.code.as_str().to_string(), message: self.message.clone() } }
    }
}

fn ledger_message(code: ResultCode) -> String {
    format!("refused by the ledger: {}", code.as_str().replace('_', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ledger_code_maps_to_a_client_error_but_the_transient_clock_refusal() {
        for code in ResultCode::ALL {
            let status = ledger_status(*code);
            if *code == ResultCode::ClockStepTooLarge {
                assert_eq!(status, 503, "a retry succeeds once the clock has caught up");
                assert_eq!(ApiError::ledger(*code).retry_after_s, Some(1));
            } else {
                assert!((400..500).contains(&status), "{code:?} -> {status}");
            }
        }
    }

    #[test]
    fn error_codes_are_unique_snake_case() {
        let mut names: Vec<&str> = ErrorCode::all().map(ErrorCode::as_str).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "duplicate error code names");
        assert!(names.iter().all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    }

    #[test]
    fn the_api_list_names_every_code_of_the_api_once() {
        // An exhaustive match: a new variant does not compile until it is placed here, and the
        // count below then fails until it is in `ErrorCode::API` too.
        let own = |code: ErrorCode| match code {
            ErrorCode::Ledger(_) => false,
            ErrorCode::MalformedBody
            | ErrorCode::BodyTooLarge
            | ErrorCode::UriTooLong
            | ErrorCode::HeadersTooLarge
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::IdempotencyKeyMissing
            | ErrorCode::BadParameter
            | ErrorCode::Unauthenticated
            | ErrorCode::Forbidden
            | ErrorCode::NotFound
            | ErrorCode::MethodNotAllowed
            | ErrorCode::RateLimited
            | ErrorCode::Overloaded
            | ErrorCode::Unavailable
            | ErrorCode::OutcomeUnknown
            | ErrorCode::ReadUnavailable
            | ErrorCode::ClockUnsynchronized
            | ErrorCode::ClosesAtPassed
            | ErrorCode::MembershipRefused
            | ErrorCode::RequestRefused
            | ErrorCode::LogPurged
            | ErrorCode::FormatNotActive => true,
        };
        assert!(ErrorCode::API.iter().all(|c| own(*c)), "the list holds no ledger code");
        let mut listed = ErrorCode::API.map(ErrorCode::as_str).to_vec();
        listed.sort_unstable();
        listed.dedup();
        assert_eq!(listed.len(), 22, "every variant of the match above, once");
    }
}
