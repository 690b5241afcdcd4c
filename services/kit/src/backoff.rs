//! The one retry-delay rule of the platform: exponential, capped. Event delivery, the outbox
//! relay, the service client and the notification dispatcher all wait this way.

use std::time::Duration;

/// The wait after failed attempt number `attempt` (1-based): `initial · 2^(attempt-1)`, capped at
/// `max` (and never overflowing, whatever `attempt` is).
pub fn exponential(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
    initial.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_first_wait_and_caps() {
        let waits: Vec<u128> = (1..=6)
            .map(|a| exponential(Duration::from_secs(10), Duration::from_secs(100), a).as_secs().into())
            .collect();
        assert_eq!(waits, vec![10, 20, 40, 80, 100, 100]);
        assert_eq!(
            exponential(Duration::from_millis(1), Duration::from_secs(2), 0),
            Duration::from_millis(1)
        );
        assert_eq!(
            exponential(Duration::from_secs(1), Duration::from_secs(60), u32::MAX),
            Duration::from_secs(60)
        );
    }
}
