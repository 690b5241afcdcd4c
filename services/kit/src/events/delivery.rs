//! Running one handler on one event: retries with exponential backoff, panics caught.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Envelope, Handler};

/// How often a failing handler is retried before its event is dead-lettered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// Attempts in total (the first included) before dead-lettering; at least 1.
    pub max_attempts: u32,
    #[serde(with = "super::millis")]
    pub initial_backoff: Duration,
    #[serde(with = "super::millis")]
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based): initial × 2^(attempt-1), capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        crate::backoff::exponential(self.initial_backoff, self.max_backoff, attempt)
    }
}

/// The outcome of delivering one event to one handler.
#[derive(Debug)]
pub(crate) enum Outcome {
    Processed,
    /// Every attempt failed; the last error and the number of attempts.
    Exhausted {
        error: String,
        attempts: u32,
    },
    /// Shutdown came while retrying: do not commit; the event will be delivered again.
    Cancelled,
}

/// Calls `handler` until it succeeds, `policy.max_attempts` are used, or `shutdown` fires.
/// A panic counts as a failed attempt.
pub(crate) async fn deliver(
    handler: &dyn Handler,
    event: &Envelope,
    group: &str,
    policy: &RetryPolicy,
    shutdown: &CancellationToken,
) -> Outcome {
    let max = policy.max_attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = AssertUnwindSafe(handler.handle(event.clone())).catch_unwind().await;
        let error = match result {
            Ok(Ok(())) => {
                metrics::counter!(crate::contract::metrics::EVENTS_CONSUMED.name, "type" => event.ty.clone(), "group" => group.to_string())
                    .increment(1);
                return Outcome::Processed;
            }
            Ok(Err(e)) => format!("{e:#}"),
            Err(panic) => format!("handler panicked: {}", panic_message(&panic)),
        };
        metrics::counter!(crate::contract::metrics::EVENTS_FAILED.name, "type" => event.ty.clone(), "group" => group.to_string())
            .increment(1);
        tracing::warn!(event_id = %event.id, r#type = %event.ty, group, attempt, max, %error, "event handler failed");
        if attempt >= max {
            return Outcome::Exhausted { error, attempts: attempt };
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Outcome::Cancelled,
            _ = tokio::time::sleep(policy.backoff(attempt)) => {}
        }
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(700),
        };
        let waits: Vec<_> = (1..=5).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 700, 700]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_millis(700));
    }
}
