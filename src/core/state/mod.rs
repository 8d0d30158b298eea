//! What hapcert remembers between runs: the types of `state.json` (this module) and `monitor.json` ([`monitor`]), how
//! a run's results are recorded into them ([`record`]), and the versioned format both files are written in. Pure: the
//! bytes come and go through a [`StateStorage`] (`edge::store::StateDir` keeps them in files).
//!
//! Every serialized type is a boundary between two versions of hapcert. Each file carries a `format` number: a file
//! without one is format 1, and a file of a newer format than this hapcert reads is refused, never overwritten.

pub mod monitor;
pub mod record;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::core::ari::RenewalInfo;
use crate::core::config::CertificateSpec;
use crate::core::decision::{DirectorySwitch, Known};
use crate::core::pem::CertFacts;
use crate::core::schedule::{FailedAuthorizations, Failures, Gate, Overrides, gate};

/// The format of `state.json` this hapcert writes, and the newest it reads. Raise it when a change would make an older
/// hapcert misread the file (a field whose meaning changes, one an older version must not ignore).
pub const STATE_FORMAT: u32 = 1;

/// Where the state is kept between runs. A run loads it once, under the run lock, and saves it once at its end.
pub trait StateStorage {
    fn load_state(&self) -> anyhow::Result<State>;
    fn save_state(&self, state: &State) -> anyhow::Result<()>;
}

/// Why a state file could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(
        "it is in format {found}, newer than this hapcert reads (up to {supported}): a newer hapcert wrote it; upgrade \
         hapcert again (the file is left as it is)"
    )]
    Newer { found: u32, supported: u32 },
    /// What is wrong with it, for a message that names the file.
    #[error("it is damaged: {0}")]
    Damaged(String),
}

impl From<serde_json::Error> for FormatError {
    fn from(err: serde_json::Error) -> FormatError {
        FormatError::Damaged(err.to_string())
    }
}

#[derive(Deserialize)]
struct FormatOnly {
    #[serde(default = "first_format")]
    format: u32,
}

fn first_format() -> u32 {
    1
}

#[derive(Serialize)]
struct Versioned<'a, T> {
    format: u32,
    #[serde(flatten)]
    body: &'a T,
}

/// Reads a versioned file: its `format` first, so that a newer one is refused before its content is misread.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], supported: u32) -> Result<T, FormatError> {
    // serde reads a struct from a JSON array too, field by field, and `[]` would become an empty state: only an object
    // is one of these files.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(FormatError::Damaged("it holds no JSON object".into()));
    }
    let FormatOnly { format } = serde_json::from_slice(bytes)?;
    if format > supported {
        return Err(FormatError::Newer {
            found: format,
            supported,
        });
    }
    Ok(serde_json::from_slice(bytes)?)
}

/// Writes `body` with its format number first.
pub fn encode<T: Serialize>(body: &T, format: u32) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec_pretty(&Versioned { format, body })
}

/// What hapcert remembers between runs, in `state.json`. The certificates themselves are not in it: the deployed PEM
/// is the truth about them, and is read afresh whenever its file changed (`facts_cache`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub certificates: BTreeMap<String, CertState>,
    /// Per name, for the CA's failed-authorization limit.
    #[serde(default)]
    pub failed_authorizations: FailedAuthorizations,
    /// When the last run ended, whatever its outcome.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_run: Option<OffsetDateTime>,
    /// When the last run ended in which nothing failed or was held back: the dead-man's switch watches it.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_run_success: Option<OffsetDateTime>,
    /// Renewals ever attempted, by result ("success", "failure"): `hapcert_renewals_total`.
    #[serde(default)]
    pub renewals: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct CertState {
    /// The outcome of the last attempt, for `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<LastResult>,
    /// The CA's renewal window, or that it offers none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_info: Option<RenewalInfo>,
    #[serde(default)]
    pub failures: Failures,
    /// The serial `hapcert revoke` revoked: while it is deployed, it is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_serial: Option<String>,
    /// A deploy under way: saved before the new file is written, and cleared when its outcome is recorded at the deploy
    /// boundary. Found at the start of a run, it says a hapcert died in the middle of a deploy, and that the file may
    /// hold a certificate HAProxy does not serve: the run finishes that deploy, or undoes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploying: Option<Deploying>,
    /// The ACME directory that issued the certificate with this serial. A state written before this was kept has none,
    /// and the run records the configured directory for what it finds, so that an upgrade alone renews nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_by: Option<IssuedBy>,
}

/// Which ACME directory issued which certificate: only the certificate with `serial` is known to come from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedBy {
    /// The directory URL, aliases resolved.
    pub directory: String,
    pub serial: String,
}

/// What a deploy is about to write, so that a run after a crash knows the file it finds is hapcert's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deploying {
    /// The serial of the certificate being written.
    pub serial: String,
    /// RFC 3339: when the deploy started.
    pub since: String,
    /// The file it replaces (its bytes are the backup in the state dir); `None` when there was no file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<ReplacedFile>,
}

/// The mode and owner of a file a deploy replaces, to give back with its bytes if the deploy is undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplacedFile {
    pub mode: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

impl State {
    /// What is remembered about certificate `name`; nothing, for one never seen.
    pub fn remembered(&self, name: &str) -> &CertState {
        static NOTHING: std::sync::LazyLock<CertState> = std::sync::LazyLock::new(CertState::default);
        self.certificates.get(name).unwrap_or(&NOTHING)
    }

    /// May `spec`, when due, be ordered now? Its failures and its names' failed validations decide.
    pub fn gate(&self, spec: &CertificateSpec, now: OffsetDateTime, overrides: Overrides) -> Gate {
        let names: Vec<String> = spec.domains.iter().map(|d| d.to_string()).collect();
        let no_failures = Failures::default();
        let failures = self.certificates.get(&spec.name).map_or(&no_failures, |c| &c.failures);
        gate(failures, &self.failed_authorizations, &names, now, overrides)
    }

    /// Records `directory` as the issuer of each `(name, serial)` whose certificate the state has no issuer for: one
    /// just deployed, or one found on disk that an older hapcert (or someone else) put there. Called with the
    /// configured directory only, so a certificate already known to come from another directory keeps that record
    /// until it is replaced.
    pub fn note_issuers<'a>(&mut self, certificates: impl IntoIterator<Item = (&'a str, &'a str)>, directory: &str) {
        for (name, serial) in certificates {
            let entry = self.certificates.entry(name.to_owned()).or_default();
            if entry.issued_by.as_ref().is_some_and(|by| by.serial == serial) {
                continue;
            }
            entry.issued_by = Some(IssuedBy {
                directory: directory.to_owned(),
                serial: serial.to_owned(),
            });
        }
    }
}

impl CertState {
    /// What is remembered about the certificate `facts` describes (the deployed one), for the decision. With the
    /// configured `directory`, a certificate remembered as issued by another one is a switch of CA.
    pub fn known<'a>(&'a self, facts: Option<&CertFacts>, directory: Option<&'a str>) -> Known<'a> {
        let Some(facts) = facts else {
            return Known::default();
        };
        let issued_by = self.issued_by.as_ref().filter(|by| by.serial == facts.serial);
        Known {
            switched: match (issued_by, directory) {
                (Some(by), Some(configured)) if by.directory != configured => Some(DirectorySwitch {
                    issued_by: &by.directory,
                    configured,
                }),
                _ => None,
            },
            window: facts
                .ari_id
                .as_deref()
                .and_then(|id| self.renewal_info.as_ref()?.window_for(id)),
            revoked: self.revoked_serial.as_deref() == Some(facts.serial.as_str()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastResult {
    /// RFC 3339.
    pub at: String,
    pub outcome: Outcome,
    pub serial: Option<String>,
    pub message: String,
    /// The serial last proven served on the wire after a deploy.
    #[serde(default)]
    pub verified_serial: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Renewed,
    Failed,
    DryRun,
    Revoked,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Renewed => "renewed",
            Outcome::Failed => "FAILED",
            Outcome::DryRun => "dry run",
            Outcome::Revoked => "revoked",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_format_is_the_first_and_one_of_a_newer_format_is_refused() {
        let mut state = State::default();
        state.renewals.insert("success".into(), 2);
        let bytes = encode(&state, STATE_FORMAT).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains("\"format\": 1"));
        let back: State = decode(&bytes, STATE_FORMAT).unwrap();
        assert_eq!(back.renewals["success"], 2);

        let unversioned: State = decode(br#"{"renewals": {"success": 3}}"#, STATE_FORMAT).unwrap();
        assert_eq!(unversioned.renewals["success"], 3);

        let newer = decode::<State>(br#"{"format": 2, "renewals": {"success": 3}}"#, STATE_FORMAT).unwrap_err();
        assert!(
            matches!(newer, FormatError::Newer { found: 2, supported: 1 }),
            "{newer:?}"
        );
        assert!(newer.to_string().contains("newer than this hapcert reads"), "{newer}");
    }

    #[test]
    fn the_issuing_directory_is_known_for_its_serial_only_and_an_old_state_takes_the_configured_one() {
        const STAGING: &str = crate::core::config::LETSENCRYPT_STAGING;
        const PRODUCTION: &str = crate::core::config::LETSENCRYPT;
        let facts = |serial: &str| CertFacts {
            serial: serial.into(),
            names: ["example.com".to_owned()].into(),
            not_before: OffsetDateTime::UNIX_EPOCH,
            not_after: OffsetDateTime::UNIX_EPOCH,
            key_type: None,
            key_matches: true,
            ari_id: None,
        };
        // A state from before the directory was recorded: nothing is known, so nothing is due for it.
        let mut state: State = decode(br#"{"certificates": {"www": {}}}"#, STATE_FORMAT).unwrap();
        assert_eq!(
            state
                .remembered("www")
                .known(Some(&facts("01")), Some(PRODUCTION))
                .switched,
            None
        );
        // The run then records the configured directory for what it finds, and a later switch is seen.
        state.note_issuers([("www", "01")], STAGING);
        let remembered = state.remembered("www");
        assert_eq!(remembered.known(Some(&facts("01")), Some(STAGING)).switched, None);
        assert_eq!(
            remembered.known(Some(&facts("01")), Some(PRODUCTION)).switched,
            Some(DirectorySwitch {
                issued_by: STAGING,
                configured: PRODUCTION
            })
        );
        // Unless the comparison is left out (a dry run), or the file holds another certificate than the one recorded.
        assert_eq!(remembered.known(Some(&facts("01")), None).switched, None);
        assert_eq!(remembered.known(Some(&facts("02")), Some(PRODUCTION)).switched, None);
        // The same serial keeps its record whatever directory is configured now; a new one takes the configured one.
        state.note_issuers([("www", "01")], PRODUCTION);
        assert_eq!(state.remembered("www").issued_by.as_ref().unwrap().directory, STAGING);
        state.note_issuers([("www", "02")], PRODUCTION);
        let by = state.remembered("www").issued_by.clone().unwrap();
        assert_eq!((by.directory.as_str(), by.serial.as_str()), (PRODUCTION, "02"));
        // It survives the file.
        let back: State = decode(&encode(&state, STATE_FORMAT).unwrap(), STATE_FORMAT).unwrap();
        assert_eq!(back.remembered("www").issued_by, Some(by));
    }

    #[test]
    fn a_file_that_is_not_one_json_object_is_damaged_not_empty() {
        for text in ["[]", "  [1, 2]", "null", "\"state\"", "", "3"] {
            let err = decode::<State>(text.as_bytes(), STATE_FORMAT).unwrap_err();
            assert!(matches!(err, FormatError::Damaged(_)), "{text:?}: {err:?}");
        }
        let err = decode::<State>(b"[]", STATE_FORMAT).unwrap_err();
        assert_eq!(err.to_string(), "it is damaged: it holds no JSON object");
        assert!(decode::<State>(b" {}", STATE_FORMAT).is_ok());
    }
}
