//! The rest of a streamed upload refused as too large.
//!
//! A handler that stops reading a body early leaves the client's remaining bytes
//! unread. hyper then closes the connection, and a client still sending (most send the
//! whole body before they read) gets a reset instead of the answer. So after a 413 the
//! upload handlers read and discard the rest, up to a bound in bytes and in time,
//! before answering. The 413 itself says `Connection: close` (see
//! [`super::problem::ApiError`]), so the client does not reuse the connection either way.

use std::time::Duration;

use axum::body::BodyDataStream;
use futures_util::StreamExt;

/// The most bytes discarded after the limit: twice the limit, but never more than this.
pub const MAX_DISCARD_BYTES: u64 = 64 * 1024 * 1024;

/// The longest time spent discarding; after it the answer goes out anyway.
pub const MAX_DISCARD_TIME: Duration = Duration::from_secs(5);

/// The most bytes [`discard_rest`] reads past an upload limit of `limit` bytes.
pub fn discard_budget(limit: u64) -> u64 {
    limit.saturating_mul(2).min(MAX_DISCARD_BYTES)
}

/// Reads and discards the rest of a body whose upload went over `limit`: at most
/// [`discard_budget`] bytes and [`MAX_DISCARD_TIME`]. Returns true if the body ended
/// within those bounds (the connection then closes cleanly after the answer); false if
/// it gave up, and hyper closes the connection without reading the rest.
pub async fn discard_rest(stream: &mut BodyDataStream, limit: u64) -> bool {
    let budget = discard_budget(limit);
    let discard = async {
        let mut discarded = 0u64;
        loop {
            match stream.next().await {
                None => return true,
                Some(Err(_)) => return false,
                Some(Ok(chunk)) => discarded += chunk.len() as u64,
            }
            if discarded > budget {
                return false;
            }
        }
    };
    let ended = tokio::time::timeout(MAX_DISCARD_TIME, discard)
        .await
        .unwrap_or(false);
    if !ended {
        tracing::debug!(
            limit,
            "gave up discarding an oversized upload; the connection closes unread"
        );
    }
    ended
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, Bytes};

    use super::*;

    fn chunked(chunks: usize, size: usize) -> BodyDataStream {
        let stream = futures_util::stream::iter(
            (0..chunks).map(move |_| Ok::<_, std::io::Error>(Bytes::from(vec![0u8; size]))),
        );
        Body::from_stream(stream).into_data_stream()
    }

    #[test]
    fn the_budget_is_twice_the_limit_capped() {
        assert_eq!(discard_budget(4 << 20), 8 << 20);
        assert_eq!(discard_budget(1 << 30), MAX_DISCARD_BYTES);
        assert_eq!(discard_budget(u64::MAX), MAX_DISCARD_BYTES);
    }

    #[tokio::test]
    async fn a_rest_within_the_budget_is_read_to_the_end() {
        let mut stream = chunked(10, 1000);
        assert!(discard_rest(&mut stream, 10_000).await);
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn a_rest_over_the_budget_is_left_unread() {
        let mut stream = chunked(100, 1000);
        assert!(!discard_rest(&mut stream, 10_000).await);
        // It stopped just past 2 × 10 000 bytes: the rest is still there.
        let mut left = 0;
        while let Some(chunk) = stream.next().await {
            left += chunk.unwrap().len();
        }
        assert_eq!(left, 100_000 - 21_000);
    }
}
