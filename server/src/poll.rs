//! The one way the server waits for background work elsewhere (a flush, an import, a
//! load): ask, back off, ask again, until an answer, a deadline or a cancel.
//!
//! Every wait goes through [`until`], so deadlines come from configuration
//! (`[timeouts]`), backoff is the same everywhere, and a cancelled job stops waiting
//! at once instead of at the end of a sleep.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// How long to wait and how often to ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// Give up after this long.
    pub(crate) deadline: Duration,
    /// First pause between two questions.
    pub(crate) first: Duration,
    /// Longest pause between two questions (pauses double up to it).
    pub(crate) max: Duration,
}

/// Calls `ask` until it returns `Some`, the deadline passes ([`Error::Timeout`] naming
/// `what`) or `cancel` fires ([`Error::Cancelled`]). Errors from `ask` end the wait.
pub(crate) async fn until<T, F, Fut>(
    what: &str,
    schedule: &Schedule,
    cancel: &CancellationToken,
    mut ask: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + schedule.deadline;
    let mut pause = schedule.first;
    loop {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        if let Some(v) = ask().await? {
            return Ok(v);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                secs: schedule.deadline.as_secs(),
            });
        }
        let sleep = pause.min(deadline - now);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = cancel.cancelled() => return Err(Error::Cancelled),
        }
        pause = (pause * 2).min(schedule.max);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn schedule(deadline_secs: u64) -> Schedule {
        Schedule {
            deadline: Duration::from_secs(deadline_secs),
            first: Duration::from_millis(100),
            max: Duration::from_secs(2),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn returns_the_first_answer() {
        let n = AtomicU32::new(0);
        let got = until("x", &schedule(60), &CancellationToken::new(), || async {
            Ok((n.fetch_add(1, Ordering::SeqCst) == 3).then_some(7))
        })
        .await
        .expect("answer");
        assert_eq!(got, 7);
        assert_eq!(n.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_naming_what() {
        let start = tokio::time::Instant::now();
        let err = until(
            "import task 9",
            &schedule(10),
            &CancellationToken::new(),
            || async { Ok(None::<()>) },
        )
        .await
        .expect_err("timeout");
        assert!(matches!(&err, Error::Timeout { what, secs: 10 } if what == "import task 9"));
        let waited = start.elapsed();
        assert!(waited >= Duration::from_secs(10) && waited < Duration::from_secs(11));
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_stops_the_wait_at_once() {
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            c2.cancel();
        });
        let start = tokio::time::Instant::now();
        let err = until("x", &schedule(3600), &cancel, || async { Ok(None::<()>) })
            .await
            .expect_err("cancelled");
        assert!(matches!(err, Error::Cancelled));
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
