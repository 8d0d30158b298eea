//! How hapcert writes a moment or a span of time, for people and for files: one owner, so that a log line, a status
//! row, an alert and a state file never disagree.

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// `at`, `by` later; the latest moment a date can hold if that is past it. A value from a CA or a config can be
/// absurd: date arithmetic on it must not panic.
pub fn later(at: OffsetDateTime, by: Duration) -> OffsetDateTime {
    time::Duration::try_from(by)
        .ok()
        .and_then(|by| at.checked_add(by))
        .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
}

/// `at`, `by` earlier; the earliest moment a date can hold if that is before it.
pub fn earlier(at: OffsetDateTime, by: Duration) -> OffsetDateTime {
    time::Duration::try_from(by)
        .ok()
        .and_then(|by| at.checked_sub(by))
        .unwrap_or(time::PrimitiveDateTime::MIN.assume_utc())
}

/// "2026-04-01 00:00:00 UTC", for messages.
pub fn format_time(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| at.to_string())
}

/// Days from `now` to `not_after`, to a tenth (negative once expired): what status, check and alerts show.
pub fn days_left(not_after: OffsetDateTime, now: OffsetDateTime) -> f64 {
    ((not_after - now).as_seconds_f64() / 86_400.0 * 10.0).round() / 10.0
}

/// RFC 3339, for state files and JSON.
pub fn format_rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// "30d", "36h", or humantime's form for odd lengths: how an operator writes durations in the config.
pub fn format_duration(d: Duration) -> String {
    match d.as_secs() {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        _ => humantime::format_duration(d).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn date_arithmetic_saturates_instead_of_panicking() {
        let now = datetime!(2026-12-02 00:00 UTC);
        assert_eq!(later(now, Duration::from_secs(60)), datetime!(2026-12-02 00:01 UTC));
        assert_eq!(later(now, Duration::MAX), time::PrimitiveDateTime::MAX.assume_utc());
        assert_eq!(
            later(now, Duration::from_secs(u64::MAX / 2)),
            time::PrimitiveDateTime::MAX.assume_utc()
        );
        assert_eq!(earlier(now, Duration::from_secs(3600)), datetime!(2026-12-01 23:00 UTC));
        assert_eq!(earlier(now, Duration::MAX), time::PrimitiveDateTime::MIN.assume_utc());
    }
}
