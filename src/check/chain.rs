//! Does a served chain lead to a trusted root? The roots are the system's, or `[check] ca_bundle`; loading them is the only
//! I/O here. The verification itself is rustls' (webpki), the same a browser-like client does, minus the name: whether
//! the name is covered is judged apart (`judge::covers`), so that a chain problem and a name problem are both reported.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore};
use time::OffsetDateTime;

use crate::core::config::CheckConfig;

/// What served chains are verified against.
pub enum Roots {
    Loaded {
        verifier: Arc<WebPkiServerVerifier>,
        /// "the system roots" or "ca_bundle /path", for messages.
        source: String,
    },
    /// No chain can be verified; the reason, with what to do.
    Unavailable(String),
}

/// The verdict on one served chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chain {
    Verifies,
    Fails(String),
    /// The roots could not be loaded; not the served chain's fault.
    NotChecked(String),
}

impl Roots {
    /// `[check] ca_bundle` when set, else the system's roots.
    pub fn load(check: &CheckConfig) -> Roots {
        let (certs, source) = match &check.ca_bundle {
            Some(bundle) => match bundle_roots(&bundle.value) {
                Ok(certs) => (certs, format!("ca_bundle {}", bundle.value.display())),
                Err(why) => return Roots::Unavailable(why),
            },
            None => {
                let found = rustls_native_certs::load_native_certs();
                if found.certs.is_empty() {
                    let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                    return Roots::Unavailable(format!(
                        "no system root certificates found ({}); install the ca-certificates package, or set \
                         [check] ca_bundle",
                        if errors.is_empty() {
                            "none installed".to_owned()
                        } else {
                            errors.join("; ")
                        }
                    ));
                }
                (found.certs, "the system roots".to_owned())
            }
        };
        Roots::from_certs(certs, source)
    }

    fn from_certs(certs: Vec<CertificateDer<'static>>, source: String) -> Roots {
        let mut store = RootCertStore::empty();
        let (added, _ignored) = store.add_parsable_certificates(certs);
        if added == 0 {
            return Roots::Unavailable(format!("{source} holds no usable root certificate"));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        match WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider).build() {
            Ok(verifier) => Roots::Loaded { verifier, source },
            Err(err) => Roots::Unavailable(format!("cannot use {source}: {err}")),
        }
    }

    /// Verifies `chain` (leaf first, as served) for a TLS server at `now`. An expired leaf is verified at its expiry
    /// instead: its expiry is reported on its own, and the chain verdict then says whether the rest is sound.
    pub fn verify(
        &self,
        chain: &[CertificateDer<'_>],
        server_name: &str,
        leaf_not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Chain {
        let (verifier, source) = match self {
            Roots::Loaded { verifier, source } => (verifier, source),
            Roots::Unavailable(why) => return Chain::NotChecked(why.clone()),
        };
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Chain::Fails("no certificate was served".into());
        };
        let Ok(name) = ServerName::try_from(server_name) else {
            return Chain::NotChecked(format!("'{server_name}' is not a server name"));
        };
        let at = unix_time(now.min(leaf_not_after));
        match verifier.verify_server_cert(leaf, intermediates, &name, &[], at) {
            Ok(_) => Chain::Verifies,
            // webpki checks the name only after the chain verified.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Chain::Verifies,
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => Chain::Fails(format!(
                "it does not lead to a root in {source}: an intermediate certificate is missing from the file, or \
                 another CA issued it"
            )),
            Err(rustls::Error::InvalidCertificate(CertificateError::BadSignature)) => Chain::Fails(format!(
                "a signature in it does not verify against {source}: another CA of the same name issued it?"
            )),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            )) => Chain::Fails("an intermediate certificate has expired".into()),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
            )) => Chain::Fails("a certificate in it is not valid yet (is this host's clock right?)".into()),
            Err(err) => Chain::Fails(err.to_string()),
        }
    }
}

fn bundle_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let fix = "fix [check] ca_bundle, or remove it to use the system roots";
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read ca_bundle {}: {e}; {fix}", path.display()))?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(format!(
            "ca_bundle {} holds no CERTIFICATE block; {fix}",
            path.display()
        )),
        Err(err) => Err(format!("ca_bundle {} is not PEM ({err}); {fix}", path.display())),
    }
}

fn unix_time(at: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.unix_timestamp().max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::KeyType;
    use crate::core::pem::Bundle;
    use crate::testing::TestCa;

    fn served(issued: &str) -> (Vec<CertificateDer<'static>>, OffsetDateTime) {
        let bundle = Bundle::parse(issued.as_bytes()).unwrap();
        let not_after = bundle.facts().unwrap().not_after;
        (bundle.certs, not_after)
    }

    fn roots_of(ca: &TestCa) -> Roots {
        let certs = CertificateDer::pem_slice_iter(ca.root_pem().as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        Roots::from_certs(certs, "ca_bundle test.pem".into())
    }

    #[test]
    fn a_chain_to_the_bundle_verifies_whatever_the_name_and_another_ca_does_not() {
        let ca = TestCa::new();
        let (chain, not_after) = served(&ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90));
        let now = OffsetDateTime::now_utc();
        let roots = roots_of(&ca);
        assert_eq!(roots.verify(&chain, "a.example.com", not_after, now), Chain::Verifies);
        assert_eq!(
            roots.verify(&chain, "other.example.com", not_after, now),
            Chain::Verifies
        );

        // Another CA, with the same names as this one (the test CAs all have them): its signatures do not verify.
        let other = roots_of(&TestCa::new());
        match other.verify(&chain, "a.example.com", not_after, now) {
            Chain::Fails(why) => assert!(why.contains("does not verify against ca_bundle test.pem"), "{why}"),
            verdict => panic!("{verdict:?}"),
        }
        // Without the intermediate the leaf does not lead to the root.
        match roots.verify(&chain[..1], "a.example.com", not_after, now) {
            Chain::Fails(why) => assert!(why.contains("does not lead to a root in ca_bundle test.pem"), "{why}"),
            verdict => panic!("{verdict:?}"),
        }
    }

    #[test]
    fn an_expired_leaf_is_not_a_chain_problem_and_missing_roots_are_not_the_chains_fault() {
        let ca = TestCa::new();
        let (chain, not_after) = served(&ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90));
        let later = not_after + time::Duration::days(3);
        assert_eq!(
            roots_of(&ca).verify(&chain, "a.example.com", not_after, later),
            Chain::Verifies
        );
        let none = Roots::Unavailable("no roots here".into());
        assert_eq!(
            none.verify(&chain, "a.example.com", not_after, later),
            Chain::NotChecked("no roots here".into())
        );
    }
}
