//! Request ids: one id per client request, carried with a write or read that a follower
//! forwards to the leader, so the leader's log lines about it name the same id as the
//! follower's (and as the `X-Request-Id` answer header the client got).
//!
//! The node's HTTP layer sets the id for the request's task ([`scope`]); the gRPC transport
//! reads it ([`current`]) when it forwards, as the `x-request-id` metadata of the call; the
//! receiving node's peer server scopes the forwarded work under it again. Nothing is persisted:
//! the id is for logs and traces only.

use std::future::Future;
use std::sync::Arc;

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// Longest id accepted from a client or a peer, in bytes.
pub const LEN_MAX: usize = 64;

/// The gRPC metadata key that carries the id to the leader.
pub const METADATA_KEY: &str = "x-request-id";

/// `text` if it is a usable id: 1 to [`LEN_MAX`] characters of `A-Z a-z 0-9 . _ -` (so it
/// is safe in a header, a log line and a JSON string as it is).
pub fn valid(text: &str) -> Option<&str> {
    let ok = !text.is_empty()
        && text.len() <= LEN_MAX
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    ok.then_some(text)
}

/// Runs `work` with `id` as the current request id.
pub async fn scope<F: Future>(id: Arc<str>, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// The current task's request id, if it runs for a request.
pub fn current() -> Option<Arc<str>> {
    REQUEST_ID.try_with(Arc::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_short_plain_text_or_it_is_not_used() {
        assert_eq!(valid("req-42.a_b"), Some("req-42.a_b"));
        assert_eq!(valid(""), None);
        assert_eq!(valid(&"a".repeat(LEN_MAX)), Some("a".repeat(LEN_MAX).as_str()));
        assert_eq!(valid(&"a".repeat(LEN_MAX + 1)), None);
        for bad in ["a b", "a\"b", "a\nb", "ä", "a/b", "{}"] {
            assert_eq!(valid(bad), None, "refused: {bad}");
        }
    }

    #[tokio::test]
    async fn the_id_is_current_inside_its_scope_only() {
        assert!(current().is_none());
        let seen = scope(Arc::from("r1"), async { current() }).await;
        assert_eq!(seen.as_deref(), Some("r1"));
        assert!(current().is_none());
    }
}
