//! The clock a send is stamped with: its wall-clock timestamp (epoch milliseconds, what
//! `causal.timestamp` shows) and its start on the monotonic clock (what flow durations are
//! measured from), from one clock read in the common case.
//!
//! What holds: `wall_ms` is `SystemTime::now()` in whole milliseconds, as if read at the same
//! instant as `monotonic_ms`, give or take the two clocks' drift over less than a millisecond
//! (parts per million) and never more than a millisecond behind a change of the wall clock.
//!
//! How: a send reads the monotonic clock. The wall clock is read too only when the monotonic
//! reading has moved past the millisecond the last wall reading fell in (less a margin for
//! drift): at thousands of sends a millisecond, nearly every send saves a clock read.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How close to the next millisecond a cached wall reading stops being used: far above the
/// drift of the monotonic clock against the wall clock over one millisecond (NTP slews at most
/// 500 ppm, 0.5 µs a millisecond), far below a millisecond.
const MARGIN: Duration = Duration::from_micros(20);

/// The instant monotonic milliseconds count from, shared by every core of the process (and by
/// `monotonic_ms`, which the JS layer calibrates against `performance.now()` once).
fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Milliseconds on the monotonic clock since the process's first reading.
pub fn monotonic_ms() -> f64 {
    ms_since_epoch(Instant::now())
}

fn ms_since_epoch(at: Instant) -> f64 {
    at.saturating_duration_since(epoch()).as_secs_f64() * 1000.0
}

/// One send's stamp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub wall_ms: f64,
    pub monotonic_ms: f64,
}

/// The wall millisecond last read, and until when (monotonic) it is still the current one.
#[derive(Debug, Default)]
pub struct SendClock {
    cached: Option<(f64, Instant)>,
}

impl SendClock {
    pub fn now(&mut self) -> Reading {
        let at = Instant::now();
        let wall_ms = match self.cached {
            Some((ms, until)) if at < until => ms,
            _ => self.read_wall(at),
        };
        Reading {
            wall_ms,
            monotonic_ms: ms_since_epoch(at),
        }
    }

    fn read_wall(&mut self, at: Instant) -> f64 {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let ms = since_epoch.as_secs() as f64 * 1000.0 + f64::from(since_epoch.subsec_millis());
        let into_ms = Duration::from_nanos(u64::from(since_epoch.subsec_nanos() % 1_000_000));
        let left = Duration::from_millis(1).saturating_sub(into_ms);
        self.cached = left.checked_sub(MARGIN).map(|usable| (ms, at + usable));
        ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall_now_ms() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as f64
    }

    #[test]
    fn every_reading_is_the_wall_clock_millisecond_between_two_reads_around_it() {
        let mut clock = SendClock::default();
        let mut last = clock.now();
        for i in 0..200_000 {
            let before = wall_now_ms();
            let reading = clock.now();
            let after = wall_now_ms();
            assert!(
                before <= reading.wall_ms && reading.wall_ms <= after,
                "reading {i}: {} not within [{before}, {after}]",
                reading.wall_ms
            );
            assert!(reading.monotonic_ms >= last.monotonic_ms);
            assert!(reading.wall_ms.fract() == 0.0);
            last = reading;
        }
    }

    #[test]
    fn most_readings_in_a_busy_millisecond_reuse_the_wall_reading() {
        let mut clock = SendClock::default();
        let mut wall_reads = 0;
        for _ in 0..10_000 {
            let cached = clock.cached;
            clock.now();
            if clock.cached != cached {
                wall_reads += 1;
            }
        }
        // 10,000 readings take well under 10 ms here; one wall read per millisecond at most.
        assert!(wall_reads < 1_000, "{wall_reads} wall reads");
    }
}
