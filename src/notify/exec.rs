//! The exec channel: the operator's command, run with `sh -c`, the notice in `HAPCERT_*` environment variables.

use std::time::Duration;

use super::Notice;
use crate::edge::shell::run_shell;

/// The environment the command gets, on top of hapcert's own. An absent value is an empty string, so a script may
/// use every variable without checking that it is set.
pub fn environment(notice: &Notice) -> Vec<(String, String)> {
    let event = &notice.event;
    let optional = |value: &Option<String>| value.clone().unwrap_or_default();
    [
        ("HAPCERT_EVENT", event.kind.name().to_owned()),
        ("HAPCERT_STATUS", notice.status.name().to_owned()),
        ("HAPCERT_CERTIFICATE", optional(&event.certificate)),
        ("HAPCERT_SOURCE", event.source.name().to_owned()),
        ("HAPCERT_NAMES", event.names.join(" ")),
        ("HAPCERT_SERVED_SERIAL", optional(&event.served_serial)),
        ("HAPCERT_EXPECTED_SERIAL", optional(&event.expected_serial)),
        (
            "HAPCERT_DAYS_LEFT",
            event.days_left.map(|d| format!("{d:.1}")).unwrap_or_default(),
        ),
        ("HAPCERT_MESSAGE", event.message.clone()),
        ("HAPCERT_TEXT", notice.text()),
        ("HAPCERT_HOST", notice.host.clone()),
        ("HAPCERT_AT", notice.at_rfc3339()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

pub async fn send(command: &str, notice: &Notice, timeout: Duration) -> Result<(), String> {
    run_shell(command, &environment(notice), timeout).await
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::core::state::monitor::{Event, Source};
    use crate::notify::{EventKind, Phase};

    #[test]
    fn every_field_is_a_variable_and_an_absent_one_is_empty() {
        let notice = Notice {
            event: Event {
                kind: EventKind::Warning,
                certificate: Some("www".to_owned()),
                source: Source::Managed,
                names: vec!["example.com".to_owned(), "www.example.com".to_owned()],
                served_serial: Some("0a".to_owned()),
                expected_serial: None,
                days_left: Some(19.96),
                message: "expires in 20.0 days".to_owned(),
            },
            status: Phase::Firing,
            host: "lb1".to_owned(),
            at: datetime!(2025-06-01 12:00 UTC),
        };
        let env = environment(&notice);
        let get = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("HAPCERT_EVENT"), Some("warning"));
        assert_eq!(get("HAPCERT_STATUS"), Some("firing"));
        assert_eq!(get("HAPCERT_NAMES"), Some("example.com www.example.com"));
        assert_eq!(get("HAPCERT_EXPECTED_SERIAL"), Some(""));
        assert_eq!(get("HAPCERT_DAYS_LEFT"), Some("20.0"));
        assert_eq!(
            get("HAPCERT_TEXT"),
            Some("[hapcert lb1] WARNING www: expires in 20.0 days")
        );
        assert_eq!(get("HAPCERT_AT"), Some("2025-06-01T12:00:00Z"));
    }
}
