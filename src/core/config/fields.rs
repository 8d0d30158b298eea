//! Readers of single values that the config's sections share: paths, durations, commands, endpoints, e-mail contacts.
//! Each records a problem in `Errors` under its key and gives back what it could read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::Located;
use super::errors::Errors;

/// The longest certificate lifetime a public CA issues today (Let's Encrypt's 90 days, which is shrinking): a renewal or
/// alert threshold at least this long would fire for every certificate, always.
pub(super) const LONGEST_LIFETIME: Duration = Duration::from_secs(90 * 86_400);

/// The longest lifetime in days: a warning or critical threshold longer than any lifetime always fires.
const LONGEST_DAYS: f64 = LONGEST_LIFETIME.as_secs() as f64 / 86_400.0;

/// `mailto:` URI for an e-mail address written with or without the scheme; `None` if it is not one.
pub fn contact_uri(text: &str) -> Option<String> {
    let address = text.strip_prefix("mailto:").unwrap_or(text);
    let valid = address.split_once('@').is_some_and(|(user, host)| {
        !user.is_empty() && host.contains('.') && !address.contains(char::is_whitespace) && !address.contains(',')
    });
    valid.then(|| format!("mailto:{address}"))
}

/// TLS endpoints, `host:port`.
pub(super) fn endpoints(errors: &mut Errors, list: &Spanned<Vec<Spanned<String>>>, key: &str) -> Vec<String> {
    if list.get_ref().is_empty() {
        errors.at(list, key, "is empty; name at least one host:port, like 127.0.0.1:443");
    }
    let mut out = Vec::new();
    for (i, entry) in list.get_ref().iter().enumerate() {
        let valid = entry
            .get_ref()
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        if valid {
            out.push(entry.get_ref().clone());
        } else {
            errors.at(
                entry,
                &format!("{key}[{i}]"),
                format!("'{}' is not host:port, like 127.0.0.1:443", entry.get_ref()),
            );
        }
    }
    out
}

pub(super) fn located_path(errors: &mut Errors, base: &Path, value: Spanned<String>, key: &str) -> Located<PathBuf> {
    let span = value.span();
    if value.get_ref().is_empty() {
        errors.at(&value, key, "is empty; give a path");
    }
    errors.locate(base.join(value.get_ref()), span, key)
}

/// A duration written like "36h" or "5m"; `None` (after recording the problem) when it is not one, or is zero and
/// `allow_zero` is not set.
pub(super) fn duration(errors: &mut Errors, text: &Spanned<String>, key: &str, allow_zero: bool) -> Option<Duration> {
    match humantime::parse_duration(text.get_ref()) {
        Ok(d) if d.is_zero() && !allow_zero => {
            errors.at(text, key, "must be longer than zero");
            None
        }
        Ok(d) => Some(d),
        Err(err) => {
            errors.at(
                text,
                key,
                format!(
                    "'{}' is not a duration ({err}); write it like \"30d\", \"36h\" or \"5m\"",
                    text.get_ref()
                ),
            );
            None
        }
    }
}

pub(super) fn command(errors: &mut Errors, text: Option<Spanned<String>>, key: &str) -> Option<String> {
    let text = text?;
    if text.get_ref().trim().is_empty() {
        errors.at(&text, key, "is empty; give a command, or remove the key");
        return None;
    }
    Some(text.into_inner())
}

/// [`duration`], or `default` when the key is absent or unreadable (the problem is recorded).
pub(super) fn duration_or(
    errors: &mut Errors,
    text: &Option<Spanned<String>>,
    key: &str,
    default: Duration,
    allow_zero: bool,
) -> Duration {
    text.as_ref()
        .and_then(|t| duration(errors, t, key, allow_zero))
        .unwrap_or(default)
}

/// A table whose keys depend on its `kind`: a key set for another kind is refused, so a misplaced key is not silently
/// ignored. `present` pairs each kind-specific key with whether the table sets it.
pub(super) fn refuse_other_kinds_keys(
    errors: &mut Errors,
    table: &std::ops::Range<usize>,
    key: &dyn Fn(&str) -> String,
    kind: &str,
    present: &[(&str, bool)],
    allowed: &[&str],
) {
    for (field, _) in present.iter().filter(|(f, set)| *set && !allowed.contains(f)) {
        errors.push(
            Some(table.clone()),
            &key(field),
            format!("does not apply to kind = \"{kind}\"; remove it"),
        );
    }
}

/// A days threshold (`warn_days`, `crit_days`): zero or more, and not beyond the longest lifetime.
pub(super) fn days(errors: &mut Errors, value: &Option<Spanned<f64>>, key: &str) -> Option<f64> {
    value.as_ref().and_then(|v| {
        let days = *v.get_ref();
        if days.is_finite() && days > LONGEST_DAYS {
            errors.at(
                v,
                key,
                format!("{days} days is more than 90, the longest lifetime Let's Encrypt issues (and lifetimes are shrinking), so every certificate would always be reported; use less, like 30"),
            );
            None
        } else if days.is_finite() && days >= 0.0 {
            Some(days)
        } else {
            errors.at(v, key, "must be a number of days, zero or more");
            None
        }
    })
}
