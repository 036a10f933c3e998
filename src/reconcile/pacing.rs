//! When the loop's next pass may start, after a wake-up.
//!
//! Each pass lists every container, which costs the engine too, so wake-ups are paced:
//! - every woken pass waits a short burst, so that a run of events or writes lands first;
//! - a **routine** wake-up (an engine event, finished work, a node agent) starts at least
//!   `min_pass_interval` after the last pass, whatever woke that one;
//! - an **urgent** one (a write, a container that exited or went away) is not kept waiting by a
//!   routine pass — an in-place change answers in one engine call's time, a repair in one
//!   start's — and urgent ones in quick succession are a quarter of the interval apart (a
//!   `docker rm -f` sends `die`, then `destroy` a few ms later: the second look must not wait the
//!   whole interval).

use std::time::Duration;

use tokio::time::Instant;

/// How long a woken pass lets a burst of events or writes land.
pub(super) const BURST: Duration = Duration::from_millis(15);

/// The last pass: when it started, and whether an urgent wake-up started it.
#[derive(Clone, Copy, Debug)]
pub(super) struct LastPass {
    pub at: Instant,
    pub urgent: bool,
}

/// The earliest start of a pass for a wake-up (`urgent` or routine) at `now`.
pub(super) fn earliest(
    last: Option<LastPass>,
    urgent: bool,
    now: Instant,
    min_pass_interval: Duration,
) -> Instant {
    let burst = now + BURST;
    let spaced = last.and_then(|last| match (urgent, last.urgent) {
        (false, _) => Some(last.at + min_pass_interval),
        (true, true) => Some(last.at + min_pass_interval / 4),
        (true, false) => None,
    });
    spaced.map_or(burst, |s| s.max(burst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routine_passes_are_spaced_and_urgent_ones_only_from_each_other() {
        let min = Duration::from_millis(200);
        let t0 = Instant::now();
        let now = t0 + Duration::from_millis(10);
        let routine = Some(LastPass {
            at: t0,
            urgent: false,
        });
        let urgent = Some(LastPass {
            at: t0,
            urgent: true,
        });
        // The first pass, or one long after the last: just the burst.
        assert_eq!(earliest(None, false, now, min), now + BURST);
        assert_eq!(
            earliest(routine, false, t0 + Duration::from_secs(1), min),
            t0 + Duration::from_secs(1) + BURST
        );
        // Routine after any pass: the whole interval.
        assert_eq!(earliest(routine, false, now, min), t0 + min);
        assert_eq!(earliest(urgent, false, now, min), t0 + min);
        // Urgent after a routine pass: not kept waiting; after an urgent one: a quarter.
        assert_eq!(earliest(routine, true, now, min), now + BURST);
        assert_eq!(earliest(urgent, true, now, min), t0 + min / 4);
    }
}
