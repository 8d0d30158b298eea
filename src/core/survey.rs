//! The one answer to "is this certificate due?": for each configured certificate, what its file holds, what the state
//! remembers of it, the decision and, when it is due, whether the retry schedule lets it go now. The run, `status`, the
//! metrics and the daemon's planning all ask here, so they cannot disagree.

use time::OffsetDateTime;

use crate::core::config::CertificateSpec;
use crate::core::decision::{Decision, Known, Local, decide};
use crate::core::schedule::{Gate, Overrides};
use crate::core::state::{CertState, State};

/// One certificate, surveyed.
#[derive(Debug)]
pub struct Surveyed<'a> {
    pub spec: &'a CertificateSpec,
    /// What its file holds.
    pub local: &'a Local,
    /// What the state remembers of it (nothing, for one never seen).
    pub remembered: &'a CertState,
    /// What the state knows of the certificate in the file: the CA's window for it, whether it was revoked.
    pub known: Known<'a>,
    pub decision: Decision,
    /// When it is due: may it be ordered now? `None` when it is not due.
    pub gate: Option<Gate>,
}

/// Surveys each `(spec, what its file holds)` at `now`, in the order given. `overrides.force` makes every certificate
/// due (`renew --force`) and lifts hapcert's own backoff; `ignore_retry_after` also lifts the CA's limits.
/// `directory` is the configured ACME directory: a certificate the state remembers as issued by another is due. `None`
/// leaves that out (a dry run against staging is not a switch of CA).
pub fn survey<'a>(
    certificates: impl IntoIterator<Item = (&'a CertificateSpec, &'a Local)>,
    state: &'a State,
    directory: Option<&'a str>,
    now: OffsetDateTime,
    overrides: Overrides,
) -> Vec<Surveyed<'a>> {
    certificates
        .into_iter()
        .map(|(spec, local)| {
            let remembered = state.remembered(&spec.name);
            let known = remembered.known(local.facts(), directory);
            let decision = decide(spec, local, known, now, overrides.force);
            let gate = decision.due.then(|| state.gate(spec, now, overrides));
            Surveyed {
                spec,
                local,
                remembered,
                known,
                decision,
                gate,
            }
        })
        .collect()
}

impl Surveyed<'_> {
    /// Due, and held back until then (with why).
    pub fn held_back(&self) -> Option<(OffsetDateTime, String)> {
        match &self.gate {
            Some(Gate::Wait { until, why }) => Some((*until, why.to_string())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::core::decision::Reason;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    #[test]
    fn a_missing_certificate_is_due_and_gated_and_its_backoff_holds_it_back_unless_forced() {
        let spec = crate::testing::www_spec();
        let mut state = State::default();
        let fresh = survey([(&spec, &Local::Missing)], &state, None, NOW, Overrides::default());
        assert_eq!(fresh[0].decision.reason, Reason::Missing);
        assert!(matches!(fresh[0].gate, Some(Gate::Go)));

        let failures = state.remembered("www").failures.after_failure(NOW, None);
        state.certificates.entry("www".into()).or_default().failures = failures;
        let held = survey([(&spec, &Local::Missing)], &state, None, NOW, Overrides::default());
        let (until, why) = held[0].held_back().expect("held back by the backoff");
        assert!(until > NOW && !why.is_empty(), "{until} {why}");

        let forced = Overrides {
            force: true,
            ignore_retry_after: false,
        };
        let lifted = survey([(&spec, &Local::Missing)], &state, None, NOW, forced);
        assert!(
            matches!(lifted[0].gate, Some(Gate::Go)),
            "--force lifts hapcert's own backoff"
        );
    }
}
