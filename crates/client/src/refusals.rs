//! Rate-limited refusal logging: every refused request may be logged (`custos::rejected`), but
//! a flood of them must not fill the disk. At most [`LINES_PER_WINDOW`] refusal lines are written
//! per [`WINDOW`]; the rest are counted, and one summary line says how many were dropped when the
//! window closes (at the next refusal, or at the next [`Limiter::flush`], which a server calls
//! periodically).
//!
//! Use the [`refused!`](crate::refused) macro in place of `warn!(target: "custos::rejected", …)`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Refusal lines written per window at most.
pub const LINES_PER_WINDOW: u32 = 100;

/// The window.
pub const WINDOW: Duration = Duration::from_secs(10);

/// What to do with one refusal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// Write its line; first a summary of `dropped` lines, if any, from the closed window.
    Log {
        /// Lines dropped in the window that just closed.
        dropped: u64,
    },
    /// Count it, write nothing.
    Drop,
}

#[derive(Debug)]
struct Window {
    start: Option<Instant>,
    written: u32,
    dropped: u64,
}

/// Counts refusal lines per window. See the module docs.
#[derive(Debug)]
pub struct Limiter {
    per_window: u32,
    window: Duration,
    state: Mutex<Window>,
}

impl Limiter {
    /// A limiter of `per_window` lines per `window`.
    pub const fn new(per_window: u32, window: Duration) -> Self {
        Limiter {
            per_window,
            window,
            state: Mutex::new(Window {
                start: None,
                written: 0,
                dropped: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The verdict on a refusal at `now`.
    pub fn admit_at(&self, now: Instant) -> Verdict {
        let mut w = self.lock();
        let mut dropped = 0;
        let expired = w
            .start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.window);
        if expired {
            dropped = std::mem::take(&mut w.dropped);
            w.start = Some(now);
            w.written = 0;
        }
        if w.written < self.per_window {
            w.written += 1;
            Verdict::Log { dropped }
        } else {
            w.dropped += 1;
            Verdict::Drop
        }
    }

    /// Closes the window if it is over at `now`, returning the lines it dropped (to summarize).
    pub fn flush_at(&self, now: Instant) -> u64 {
        let mut w = self.lock();
        match w.start {
            Some(start) if now.saturating_duration_since(start) >= self.window => {
                w.start = None;
                w.written = 0;
                std::mem::take(&mut w.dropped)
            }
            _ => 0,
        }
    }

    /// Whether to write a refusal's line now; writes the summary of a closed window first.
    pub fn admit(&self) -> bool {
        match self.admit_at(Instant::now()) {
            Verdict::Log { dropped } => {
                summarize(dropped);
                true
            }
            Verdict::Drop => false,
        }
    }

    /// Writes the summary of a window that is over; a server calls it every [`WINDOW`].
    pub fn flush(&self) {
        summarize(self.flush_at(Instant::now()));
    }
}

fn summarize(dropped: u64) {
    if dropped > 0 {
        tracing::warn!(
            target: "custos::rejected",
            dropped,
            "dropped {dropped} refusal line(s) over the limit of {LINES_PER_WINDOW} per {} s",
            WINDOW.as_secs()
        );
    }
}

/// The process's refusal limiter.
pub static REFUSALS: Limiter = Limiter::new(LINES_PER_WINDOW, WINDOW);

/// Logs a refusal at WARN under `custos::rejected`, within the process's limit
/// ([`REFUSALS`]); takes what `tracing::warn!` takes after its target.
#[macro_export]
macro_rules! refused {
    ($($arg:tt)+) => {
        if $crate::refusals::REFUSALS.admit() {
            ::tracing::warn!(target: "custos::rejected", $($arg)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_writes_the_limit_per_window_and_one_summary() {
        let limiter = Limiter::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> = (0..1000).map(|_| limiter.admit_at(t0)).collect();
        let written = verdicts.iter().filter(|v| **v != Verdict::Drop).count();
        assert_eq!(written, 3);
        // The next window's first line carries the count of what the last one dropped.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(limiter.admit_at(later), Verdict::Log { dropped: 997 });
        assert_eq!(limiter.admit_at(later), Verdict::Log { dropped: 0 });
    }

    #[test]
    fn a_flush_summarizes_a_closed_window_once() {
        let limiter = Limiter::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..5 {
            limiter.admit_at(t0);
        }
        assert_eq!(
            limiter.flush_at(t0 + Duration::from_secs(9)),
            0,
            "still open"
        );
        assert_eq!(limiter.flush_at(t0 + Duration::from_secs(10)), 4);
        assert_eq!(limiter.flush_at(t0 + Duration::from_secs(20)), 0);
        assert_eq!(
            limiter.admit_at(t0 + Duration::from_secs(21)),
            Verdict::Log { dropped: 0 }
        );
    }
}
