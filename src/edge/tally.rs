//! A count for the log of events that can come by the thousand: each is worth a debug line, the operator one line a
//! minute at most, with the count. The HTTP-01 responder tells this way of requests for tokens no pending order has
//! (a scanner, or a CA's validator retrying an order that ended), and the HTTP servers of the connections they close
//! under a flood. The events themselves drive it (no timer): the first after a quiet minute is told of at once.

use std::time::{Duration, Instant};

/// At most one summary in this span.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// The events counted since the last summary.
#[derive(Debug, Default)]
pub struct Tally {
    untold: u64,
    last_summary: Option<Instant>,
}

/// What one INFO line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Events since the last summary (requests, connections).
    pub count: u64,
    /// How long ago the previous summary was; `None` for the first.
    pub since: Option<Duration>,
}

impl Tally {
    /// Counts one event; the summary to log now, if the last one is at least [`SUMMARY_INTERVAL`] old (or there was
    /// none).
    pub fn record(&mut self, now: Instant) -> Option<Summary> {
        self.untold += 1;
        let since = self.last_summary.map(|last| now.saturating_duration_since(last));
        if since.is_some_and(|since| since < SUMMARY_INTERVAL) {
            return None;
        }
        Some(self.summarise(now, since))
    }

    /// The events not told of yet, when the server stops: none is left out of the log.
    pub fn finish(&mut self, now: Instant) -> Option<Summary> {
        let since = self.last_summary.map(|last| now.saturating_duration_since(last));
        (self.untold > 0).then(|| self.summarise(now, since))
    }

    fn summarise(&mut self, now: Instant, since: Option<Duration>) -> Summary {
        self.last_summary = Some(now);
        Summary {
            count: std::mem::take(&mut self.untold),
            since,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_told_at_once_and_the_rest_of_the_minute_in_one_summary() {
        let start = Instant::now();
        let mut tally = Tally::default();
        assert_eq!(tally.record(start), Some(Summary { count: 1, since: None }));
        for n in 1..1000 {
            assert_eq!(tally.record(start + Duration::from_millis(50 * n)), None, "request {n}");
        }
        assert_eq!(
            tally.record(start + SUMMARY_INTERVAL),
            Some(Summary {
                count: 1000,
                since: Some(SUMMARY_INTERVAL)
            })
        );
        assert_eq!(
            tally.finish(start + SUMMARY_INTERVAL * 2),
            None,
            "nothing is left untold"
        );
    }

    #[test]
    fn after_a_quiet_spell_the_next_request_is_told_at_once() {
        let start = Instant::now();
        let mut tally = Tally::default();
        tally.record(start);
        let later = start + Duration::from_secs(3600);
        assert_eq!(
            tally.record(later),
            Some(Summary {
                count: 1,
                since: Some(Duration::from_secs(3600))
            })
        );
    }

    #[test]
    fn what_is_untold_when_the_responder_stops_is_summarised() {
        let start = Instant::now();
        let mut tally = Tally::default();
        assert_eq!(tally.finish(start), None, "no request, no line");
        tally.record(start);
        tally.record(start + Duration::from_secs(1));
        tally.record(start + Duration::from_secs(2));
        assert_eq!(
            tally.finish(start + Duration::from_secs(5)),
            Some(Summary {
                count: 2,
                since: Some(Duration::from_secs(5))
            })
        );
    }
}
