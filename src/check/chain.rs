//! Does a served chain lead to a trusted root? The rule is `core::trust::verify_chain`, the one the gate before a deploy
//! applies too, with the roots `edge::roots` loads (the only I/O here). Whether the name is covered is judged apart
//! (`judge::covers`), so that a chain problem and a name problem are both reported.

use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::core::config::Config;
use crate::core::trust::{TrustRoots, verify_chain};

/// What served chains are verified against.
pub enum Roots {
    Loaded(TrustRoots),
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
    /// The roots a new certificate is verified against before its deploy (see `edge::roots`), with the messages
    /// naming `[check] ca_bundle`.
    pub fn load(config: &Config) -> Roots {
        match crate::edge::roots::load_for_check(config) {
            Ok(roots) => Roots::Loaded(roots),
            Err(why) => Roots::Unavailable(why),
        }
    }

    /// The roots of one bundle (a `[[watch]]` entry's `ca_bundle`), in place of the system's.
    pub fn bundle(path: &std::path::Path, key: &str) -> Roots {
        match crate::edge::roots::load_bundle(path, key) {
            Ok(roots) => Roots::Loaded(roots),
            Err(why) => Roots::Unavailable(why),
        }
    }

    /// Verifies `chain` (leaf first, as served) at `now`. An expired leaf is verified at its expiry instead: its
    /// expiry is reported on its own, and the chain verdict then says whether the rest is sound.
    pub fn verify(&self, chain: &[CertificateDer<'_>], leaf_not_after: OffsetDateTime, now: OffsetDateTime) -> Chain {
        let roots = match self {
            Roots::Loaded(roots) => roots,
            Roots::Unavailable(why) => return Chain::NotChecked(why.clone()),
        };
        match verify_chain(roots, chain, now.min(leaf_not_after)) {
            Ok(()) => Chain::Verifies,
            Err(err) => Chain::Fails(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::KeyType;
    use crate::core::pem::Bundle;
    use crate::core::trust::{RootSource, pem_certificates};
    use crate::testing::TestCa;

    fn served(issued: &str) -> (Vec<CertificateDer<'static>>, OffsetDateTime) {
        let bundle = Bundle::parse(issued.as_bytes()).unwrap();
        let not_after = bundle.facts().unwrap().not_after;
        (bundle.certs, not_after)
    }

    fn roots_of(ca: &TestCa) -> Roots {
        let certs = pem_certificates(ca.root_pem().as_bytes()).unwrap();
        let source = RootSource {
            label: "ca_bundle test.pem".into(),
            certs,
        };
        Roots::Loaded(TrustRoots::new(vec![source]).unwrap())
    }

    #[test]
    fn a_chain_to_the_bundle_verifies_and_another_ca_or_a_missing_intermediate_does_not() {
        let ca = TestCa::new();
        let (chain, not_after) = served(&ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90));
        let now = OffsetDateTime::now_utc();
        let roots = roots_of(&ca);
        assert_eq!(roots.verify(&chain, not_after, now), Chain::Verifies);

        // Another CA, with the same names as this one (the test CAs all have them): its signatures do not verify.
        let other = roots_of(&TestCa::new());
        match other.verify(&chain, not_after, now) {
            Chain::Fails(why) => assert!(why.contains("does not verify against ca_bundle test.pem"), "{why}"),
            verdict => panic!("{verdict:?}"),
        }
        // Without the intermediate the leaf does not lead to the root; the message names the missing issuer.
        match roots.verify(&chain[..1], not_after, now) {
            Chain::Fails(why) => assert!(
                why.starts_with(
                    "it does not lead to a root in ca_bundle test.pem: no certificate named 'CN=hapcert test \
                     intermediate'"
                ),
                "{why}"
            ),
            verdict => panic!("{verdict:?}"),
        }
    }

    #[test]
    fn an_expired_leaf_is_not_a_chain_problem_and_missing_roots_are_not_the_chains_fault() {
        let ca = TestCa::new();
        let (chain, not_after) = served(&ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90));
        let later = not_after + time::Duration::days(3);
        assert_eq!(roots_of(&ca).verify(&chain, not_after, later), Chain::Verifies);
        let none = Roots::Unavailable("no roots here".into());
        assert_eq!(
            none.verify(&chain, not_after, later),
            Chain::NotChecked("no roots here".into())
        );
    }
}
