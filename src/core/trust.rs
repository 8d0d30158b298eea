//! Does a chain lead to a trusted root? The one rule that both the gate before a deploy (`verify::verify_issued`) and
//! `hapcert check` apply. Pure: the roots come in loaded (`edge::roots` reads them), the moment is a parameter, and the
//! verification is webpki's path building for a TLS server certificate, without the name (names are judged apart).
//!
//! Which roots are trusted is decided by the loader from the config: the system store (or `[check] ca_bundle` in its
//! place), `[acme] trust_roots`, and Let's Encrypt's staging roots while the directory is staging. They are shipped
//! here as data, [`LETSENCRYPT_STAGING_ROOTS`].

use std::fmt;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, Error as TlsError};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Let's Encrypt's staging roots ("(STAGING) Pretend Pear X1", "(STAGING) Bogus Broccoli X2" and the staging roots of
/// generation Y), public certificates shipped with hapcert. Trusted only while the directory is the staging one: no
/// browser trusts them, and a production certificate must never chain to them.
pub const LETSENCRYPT_STAGING_ROOTS: &str = include_str!("../../data/letsencrypt-staging-roots.pem");

/// Certificates from one place, named for messages: "the system roots", "trust_roots /etc/hapcert/roots.pem".
#[derive(Debug, Clone)]
pub struct RootSource {
    pub label: String,
    pub certs: Vec<CertificateDer<'static>>,
}

/// The roots a chain must lead to, and where they came from.
#[derive(Debug, Clone)]
pub struct TrustRoots {
    store: Arc<RootCertStore>,
    /// "the system roots, trust_roots /x.pem", for messages.
    source: String,
    /// The key that adds a root where these roots judge a chain.
    key: RootsKey,
}

/// The key an operator sets to trust another root, which depends on where the chain is judged: the message of a chain
/// that leads to a root not trusted here names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootsKey {
    /// Before a deploy (and in `check` when nothing else applies): `[acme] trust_roots`.
    AcmeTrustRoots,
    /// In `check`, over the system roots: `[check] ca_bundle`.
    CheckBundle,
    /// In `check`, with `[check] ca_bundle` (this file) in place of the system roots. Left from a test CA, it is what
    /// keeps a certificate from another CA from verifying.
    CheckBundleInPlace(String),
    /// Another key, as written (a `[[watch]]` entry's `ca_bundle`).
    Other(String),
}

impl TrustRoots {
    /// The union of `sources`. An error, saying what to do, when none of them holds a usable root.
    pub fn new(sources: Vec<RootSource>) -> Result<TrustRoots, String> {
        let mut store = RootCertStore::empty();
        let mut labels = Vec::new();
        for source in sources {
            let (added, _unusable) = store.add_parsable_certificates(source.certs);
            if added > 0 {
                labels.push(source.label);
            }
        }
        if store.is_empty() {
            return Err(
                "no usable root certificate: install the ca-certificates package, or set [acme] \
                        trust_roots to the root certificates of your CA"
                    .into(),
            );
        }
        Ok(TrustRoots {
            store: Arc::new(store),
            source: join_labels(&labels),
            key: RootsKey::AcmeTrustRoots,
        })
    }

    /// The same roots, with `key` named as the way to trust another root.
    pub fn advising(self, key: RootsKey) -> TrustRoots {
        TrustRoots { key, ..self }
    }

    /// Where the roots came from, as a message names them.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The CERTIFICATE blocks of a PEM text; lines outside the blocks (comments) are skipped.
pub fn pem_certificates(text: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("it is not PEM: {}", crate::core::pem::pem_syntax(&err)))
}

/// Let's Encrypt's staging roots, parsed.
pub fn letsencrypt_staging_roots() -> RootSource {
    RootSource {
        label: "Let's Encrypt's staging roots".into(),
        certs: pem_certificates(LETSENCRYPT_STAGING_ROOTS.as_bytes()).unwrap_or_default(),
    }
}

/// Why a chain does not lead to a trusted root. `Display` is what an operator reads after "the chain ...: ".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainError {
    /// Nothing to verify.
    Empty,
    /// Neither the chain nor the roots hold the issuer of the chain's last certificate.
    MissingIssuer {
        /// The issuer's name, as in the certificate: "CN=Pebble Intermediate-CA 5e1d2c".
        issuer: String,
        /// How many certificates the chain holds (the last one names the missing issuer).
        certificates: usize,
        /// When the last certificate is a CA's (an intermediate, or a root sent along), the chain is whole and ends at
        /// a root that is not trusted here: that root's common name. `None` when the last one is the leaf, whose
        /// issuer (an intermediate, usually) is missing from the chain.
        leads_to: Option<String>,
        roots: String,
        /// The key that would trust it.
        key: RootsKey,
    },
    /// A certificate of that name is there, but its key did not sign the one below it.
    BadSignature {
        roots: String,
    },
    Expired,
    NotValidYet,
    /// The certificate is not for a TLS server, or is otherwise refused; what webpki said, in words.
    Refused(String),
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::Empty => write!(f, "it holds no certificate"),
            ChainError::MissingIssuer {
                leads_to: Some(root),
                roots,
                key,
                ..
            } => {
                write!(f, "it leads to {root}, which is not in {roots}: ")?;
                match key {
                    RootsKey::CheckBundleInPlace(path) => write!(
                        f,
                        "[check] ca_bundle ({path}) takes the place of the system roots and lacks it; if it was set \
                         for a test CA that is no longer used (after a switch of [acme] directory, say), remove \
                         [check] ca_bundle, else add this root to {path}"
                    ),
                    key => write!(
                        f,
                        "a test or private CA? set {} to the file of its root certificates",
                        key.name()
                    ),
                }
            }
            ChainError::MissingIssuer {
                issuer,
                certificates,
                leads_to: None,
                roots,
                key,
            } => write!(
                f,
                "it does not lead to a root in {roots}: no certificate named '{issuer}' (the issuer of certificate \
                 #{certificates}, the last one) is in the chain or among the roots; an intermediate certificate is \
                 missing from the file (the CA or the file dropped it), or another CA issued it (for a private or \
                 test CA, set {} to the file of its root certificates)",
                key.name()
            ),
            ChainError::BadSignature { roots } => write!(
                f,
                "a signature in it does not verify against {roots}: another CA of the same name issued it?"
            ),
            ChainError::Expired => write!(f, "an intermediate certificate has expired"),
            ChainError::NotValidYet => write!(f, "a certificate in it is not valid yet (is this host's clock right?)"),
            ChainError::Refused(why) => write!(f, "{why}"),
        }
    }
}

/// Verifies that `chain` (leaf first, as sent or served) leads to one of `roots` at `at`, for a TLS server. The names
/// are not looked at.
pub fn verify_chain(roots: &TrustRoots, chain: &[CertificateDer<'_>], at: OffsetDateTime) -> Result<(), ChainError> {
    let (leaf, intermediates) = chain.split_first().ok_or(ChainError::Empty)?;
    let parsed = ParsedCertificate::try_from(leaf).map_err(|err| ChainError::Refused(in_words(&err)))?;
    let algorithms = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
    let seconds = u64::try_from(at.unix_timestamp()).unwrap_or(0);
    let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
    match verify_server_cert_signed_by_trust_anchor(&parsed, &roots.store, intermediates, now, algorithms.all) {
        Ok(()) => Ok(()),
        Err(TlsError::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            let last = chain.last().expect("not empty");
            let (issuer, leads_to) = match X509Certificate::from_der(last) {
                // A CA's certificate at the end (an intermediate, or a root sent along): what is missing is the root
                // it names, not a link of the chain. A leaf at the end is missing its issuer.
                Ok((_, cert)) => (
                    cert.issuer().to_string(),
                    cert.is_ca().then(|| common_name(cert.issuer())),
                ),
                Err(_) => ("(unreadable)".to_owned(), None),
            };
            Err(ChainError::MissingIssuer {
                issuer,
                certificates: chain.len(),
                leads_to,
                roots: roots.source.clone(),
                key: roots.key.clone(),
            })
        }
        Err(TlsError::InvalidCertificate(CertificateError::BadSignature)) => Err(ChainError::BadSignature {
            roots: roots.source.clone(),
        }),
        Err(TlsError::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. })) => {
            Err(ChainError::Expired)
        }
        Err(TlsError::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        )) => Err(ChainError::NotValidYet),
        Err(err) => Err(ChainError::Refused(in_words(&err))),
    }
}

/// webpki's error as a sentence: rustls prints some of them with `Debug`, byte arrays included.
fn in_words(err: &TlsError) -> String {
    let what = match err {
        TlsError::InvalidCertificate(cert) => match cert {
            CertificateError::BadEncoding => "a certificate in it is not valid DER (truncated or damaged)".to_owned(),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "a certificate in it is not for TLS servers (its extended key usage)".to_owned()
            }
            CertificateError::Revoked => "a certificate in it is revoked".to_owned(),
            CertificateError::UnhandledCriticalExtension => {
                "a certificate in it has a critical extension that cannot be verified".to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the certificate is not for the name".to_owned()
            }
            CertificateError::Other(other) => format!("it was refused: {other}"),
            _ => "it was refused by the path verification (a certificate in it is malformed or not allowed to \
                  issue)"
                .to_owned(),
        },
        other => format!("it could not be verified: {other}"),
    };
    // Whatever the variant, never a byte array.
    if what.contains('[') {
        "it was refused by the path verification".to_owned()
    } else {
        what
    }
}

impl RootsKey {
    fn name(&self) -> &str {
        match self {
            RootsKey::AcmeTrustRoots => "[acme] trust_roots",
            RootsKey::CheckBundle | RootsKey::CheckBundleInPlace(_) => "[check] ca_bundle",
            RootsKey::Other(key) => key,
        }
    }
}

/// The common name of `name` ("Pebble Root CA 5e1d2c"), or the whole name when it has none.
fn common_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map_or_else(|| name.to_string(), str::to_owned)
}

/// "a", "a and b", "a, b and c".
fn join_labels(labels: &[String]) -> String {
    match labels {
        [] => "no roots".into(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::KeyType;
    use crate::core::pem::Bundle;
    use crate::testing::TestCa;

    fn roots_of(ca: &TestCa, label: &str) -> TrustRoots {
        TrustRoots::new(vec![RootSource {
            label: label.into(),
            certs: pem_certificates(ca.root_pem().as_bytes()).unwrap(),
        }])
        .unwrap()
    }

    fn chain(pem: &str) -> Vec<CertificateDer<'static>> {
        Bundle::parse(pem.as_bytes()).unwrap().certs
    }

    #[test]
    fn a_whole_chain_verifies_and_a_leaf_alone_names_its_missing_issuer() {
        let ca = TestCa::new();
        let roots = roots_of(&ca, "trust_roots /etc/hapcert/test-roots.pem");
        let issued = chain(&ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90));
        let now = OffsetDateTime::now_utc();
        assert_eq!(verify_chain(&roots, &issued, now), Ok(()));

        let err = verify_chain(&roots, &issued[..1], now).unwrap_err();
        assert_eq!(
            err,
            ChainError::MissingIssuer {
                issuer: "CN=hapcert test intermediate".into(),
                certificates: 1,
                leads_to: None,
                roots: "trust_roots /etc/hapcert/test-roots.pem".into(),
                key: RootsKey::AcmeTrustRoots,
            }
        );
        let text = err.to_string();
        assert!(text.starts_with("it does not lead to a root in trust_roots /etc/hapcert/test-roots.pem: no certificate named 'CN=hapcert test intermediate'"), "{text}");
        assert!(
            text.contains("an intermediate certificate is missing from the file (the CA or the file dropped it), or another CA issued it"),
            "{text}"
        );
        assert!(text.contains("set [acme] trust_roots"), "{text}");
        assert!(!text.contains("[0x") && !text.contains(", 0"), "no byte array: {text}");
    }

    #[test]
    fn another_cas_chain_and_its_root_are_refused() {
        let ca = TestCa::new();
        let other = TestCa::new();
        let issued = chain(&ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90));
        let now = OffsetDateTime::now_utc();
        // Same names, other keys.
        let err = verify_chain(&roots_of(&other, "the system roots"), &issued, now).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a signature in it does not verify against the system roots: another CA of the same name issued it?"
        );
        // The chain sent with its root, which is not trusted.
        let mut with_root = issued.clone();
        with_root.extend(pem_certificates(ca.root_pem().as_bytes()).unwrap());
        let staging = TrustRoots::new(vec![letsencrypt_staging_roots()]).unwrap();
        match verify_chain(&staging, &with_root, now) {
            Err(ChainError::MissingIssuer {
                issuer,
                leads_to: Some(root),
                certificates: 3,
                roots,
                ..
            }) => {
                assert_eq!(issuer, "CN=hapcert test root");
                assert_eq!(root, "hapcert test root");
                assert_eq!(roots, "Let's Encrypt's staging roots");
            }
            verdict => panic!("{verdict:?}"),
        }
    }

    #[test]
    fn a_whole_chain_to_a_root_the_store_lacks_says_so_and_names_the_key_of_where_it_is_judged() {
        let ca = TestCa::new();
        // Leaf and intermediate, as a server sends them: whole, but the root is not among these.
        let issued = chain(&ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90));
        let now = OffsetDateTime::now_utc();
        let system = || {
            TrustRoots::new(vec![RootSource {
                label: "the system roots".into(),
                certs: pem_certificates(LETSENCRYPT_STAGING_ROOTS.as_bytes()).unwrap(),
            }])
            .unwrap()
        };
        let verdict = |roots: TrustRoots| verify_chain(&roots, &issued, now).unwrap_err().to_string();

        let at_deploy = verdict(system());
        assert_eq!(
            at_deploy,
            "it leads to hapcert test root, which is not in the system roots: a test or private CA? set [acme] \
             trust_roots to the file of its root certificates"
        );
        assert!(!at_deploy.contains("intermediate"), "{at_deploy}");
        let in_check = verdict(system().advising(RootsKey::CheckBundle));
        assert_eq!(
            in_check,
            "it leads to hapcert test root, which is not in the system roots: a test or private CA? set [check] \
             ca_bundle to the file of its root certificates"
        );
        // A bundle left from a test CA, in place of the system roots: it is named, with both ways out.
        let bundle = TrustRoots::new(vec![RootSource {
            label: "ca_bundle /etc/hapcert/staging.pem".into(),
            certs: pem_certificates(LETSENCRYPT_STAGING_ROOTS.as_bytes()).unwrap(),
        }])
        .unwrap()
        .advising(RootsKey::CheckBundleInPlace("/etc/hapcert/staging.pem".into()));
        let left_over = verdict(bundle);
        assert_eq!(
            left_over,
            "it leads to hapcert test root, which is not in ca_bundle /etc/hapcert/staging.pem: [check] ca_bundle \
             (/etc/hapcert/staging.pem) takes the place of the system roots and lacks it; if it was set for a test CA \
             that is no longer used (after a switch of [acme] directory, say), remove [check] ca_bundle, else add \
             this root to /etc/hapcert/staging.pem"
        );
        // The leaf alone from the same CA: that is a missing intermediate, and said so.
        let leaf_only = verify_chain(&system(), &issued[..1], now).unwrap_err().to_string();
        assert!(
            leaf_only.contains("an intermediate certificate is missing"),
            "{leaf_only}"
        );
    }

    #[test]
    fn the_staging_roots_are_the_four_published_ones_and_sources_are_named_together() {
        let staging = letsencrypt_staging_roots();
        let subjects: Vec<String> = staging
            .certs
            .iter()
            .map(|der| X509Certificate::from_der(der).unwrap().1.subject().to_string())
            .collect();
        assert_eq!(subjects.len(), 4, "{subjects:?}");
        for name in [
            "(STAGING) Pretend Pear X1",
            "(STAGING) Bogus Broccoli X2",
            "(STAGING) Yearning Yucca Root YE",
            "(STAGING) Yonder Yam Root YR",
        ] {
            assert!(subjects.iter().any(|s| s.contains(name)), "{name} in {subjects:?}");
        }
        let ca = TestCa::new();
        let roots = TrustRoots::new(vec![
            RootSource {
                label: "the system roots".into(),
                certs: vec![],
            },
            RootSource {
                label: "trust_roots t.pem".into(),
                certs: pem_certificates(ca.root_pem().as_bytes()).unwrap(),
            },
            staging,
        ])
        .unwrap();
        assert_eq!(roots.source(), "trust_roots t.pem and Let's Encrypt's staging roots");
        assert!(TrustRoots::new(vec![]).unwrap_err().contains("set [acme] trust_roots"));
    }

    #[test]
    fn expiry_and_clock_are_named() {
        let ca = TestCa::new();
        let roots = roots_of(&ca, "r");
        let issued = chain(&ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90));
        let long_ago = OffsetDateTime::now_utc() - time::Duration::days(400);
        assert_eq!(verify_chain(&roots, &issued, long_ago), Err(ChainError::NotValidYet));
        assert_eq!(verify_chain(&roots, &[], long_ago), Err(ChainError::Empty));
    }
}
