//! The checks a newly issued certificate must pass before it may replace the one being served. Pure.

use std::collections::BTreeSet;
use std::fmt;

use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::core::pem::{Bundle, CertFacts, dns_names, key_matches_leaf, sha1_hex};
use crate::core::trust::{ChainError, TrustRoots, verify_chain};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the private key does not belong to the leaf certificate")]
    KeyMismatch,
    #[error("no private key")]
    NoKey,
    #[error("certificate #{index} of the chain is not signed by certificate #{next}: {reason}")]
    BrokenChain { index: usize, next: usize, reason: String },
    #[error("the certificate's names differ from the configured ones: missing [{}], unexpected [{}]", missing.join(", "), extra.join(", "))]
    Names { missing: Vec<String>, extra: Vec<String> },
    #[error("the certificate is not valid yet: notBefore is {not_before}")]
    NotYetValid { not_before: OffsetDateTime },
    #[error("the certificate has expired: notAfter was {not_after}")]
    Expired { not_after: OffsetDateTime },
    /// The chain does not lead to a trusted root: never deployed, since every client would refuse it.
    #[error("the chain does not verify: {0}")]
    Untrusted(ChainError),
    #[error("{0}")]
    Unusable(String),
}

/// A new certificate that passed [`verify_issued`], decoded once: what the deploy writes and what proves it served
/// travel with it. Only `verify_issued` makes one, so holding one means its key matches its leaf.
#[derive(Clone, PartialEq, Eq)]
pub struct Verified {
    /// HAProxy's combined PEM: leaf, chain, key.
    pem: String,
    facts: CertFacts,
    /// The leaf's DER, which a handshake must return.
    leaf: Vec<u8>,
    /// The leaf's SHA-1, which `show ssl cert` must report.
    sha1: String,
}

impl Verified {
    pub fn pem(&self) -> &str {
        &self.pem
    }

    pub fn facts(&self) -> &CertFacts {
        &self.facts
    }

    pub fn into_facts(self) -> CertFacts {
        self.facts
    }

    pub fn leaf_der(&self) -> &[u8] {
        &self.leaf
    }

    pub fn sha1(&self) -> &str {
        &self.sha1
    }
}

/// The PEM holds the private key: `Debug` shows the facts only.
impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("facts", &self.facts)
            .field("sha1", &self.sha1)
            .finish_non_exhaustive()
    }
}

/// Checks that `bundle` may be deployed for `wanted` names at `now`: the key matches the leaf, each certificate is signed by
/// the next, the SANs are exactly the wanted names, the leaf is within its validity period, and the chain leads to one of
/// `roots` (the rule `check` applies to what is served: an incomplete chain is never deployed).
pub fn verify_issued(
    bundle: &Bundle,
    wanted: &BTreeSet<String>,
    roots: &TrustRoots,
    now: OffsetDateTime,
) -> Result<Verified, VerifyError> {
    let certs: Vec<X509Certificate> = bundle
        .certs
        .iter()
        .map(|der| {
            X509Certificate::from_der(der)
                .map(|(_, c)| c)
                .map_err(|e| VerifyError::Unusable(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let leaf = &certs[0];

    let key = bundle.key.as_ref().ok_or(VerifyError::NoKey)?;
    if !key_matches_leaf(key, leaf).map_err(|e| VerifyError::Unusable(e.to_string()))? {
        return Err(VerifyError::KeyMismatch);
    }

    for (index, pair) in certs.windows(2).enumerate() {
        if let Err(err) = pair[0].verify_signature(Some(pair[1].public_key())) {
            return Err(VerifyError::BrokenChain {
                index,
                next: index + 1,
                reason: err.to_string(),
            });
        }
    }

    let names = dns_names(leaf);
    if &names != wanted {
        return Err(VerifyError::Names {
            missing: wanted.difference(&names).cloned().collect(),
            extra: names.difference(wanted).cloned().collect(),
        });
    }

    let not_before = leaf.validity().not_before.to_datetime();
    let not_after = leaf.validity().not_after.to_datetime();
    if now < not_before {
        return Err(VerifyError::NotYetValid { not_before });
    }
    if now >= not_after {
        return Err(VerifyError::Expired { not_after });
    }
    verify_chain(roots, &bundle.certs, now).map_err(VerifyError::Untrusted)?;
    let pem = bundle
        .to_haproxy_pem()
        .map_err(|e| VerifyError::Unusable(e.to_string()))?;
    let leaf_der = bundle.certs[0].to_vec();
    Ok(Verified {
        pem,
        facts: CertFacts::of(leaf, true),
        sha1: sha1_hex(&leaf_der),
        leaf: leaf_der,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::KeyType;
    use crate::core::trust::{RootSource, pem_certificates};
    use crate::testing::{TestCa, leaf_pem_parts};

    fn roots(ca: &TestCa) -> TrustRoots {
        TrustRoots::new(vec![RootSource {
            label: "trust_roots test.pem".into(),
            certs: pem_certificates(ca.root_pem().as_bytes()).unwrap(),
        }])
        .unwrap()
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_good_certificate_passes() {
        let ca = TestCa::new();
        for key_type in [KeyType::EcdsaP256, KeyType::Rsa2048] {
            let pem = ca.issue(&["a.example.com", "b.example.com"], key_type, 90);
            let bundle = Bundle::parse(pem.as_bytes()).unwrap();
            let verified = verify_issued(
                &bundle,
                &names(&["a.example.com", "b.example.com"]),
                &roots(&ca),
                OffsetDateTime::now_utc(),
            )
            .unwrap();
            // Decoded once: what deploy needs is the bundle's, in HAProxy's layout.
            assert_eq!(verified.facts(), &bundle.facts().unwrap());
            assert_eq!(verified.pem(), bundle.to_haproxy_pem().unwrap());
            assert_eq!(verified.leaf_der(), bundle.certs[0].as_ref());
            assert_eq!(verified.sha1().len(), 40);
            assert!(!format!("{verified:?}").contains("PRIVATE KEY"));
        }
    }

    #[test]
    fn each_failure_is_caught() {
        let ca = TestCa::new();
        let trusted = roots(&ca);
        let now = OffsetDateTime::now_utc();
        let wanted = names(&["a.example.com"]);
        let pem = ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90);
        let (leaf, chain, key) = leaf_pem_parts(&pem);

        let other = ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90);
        let (_, _, other_key) = leaf_pem_parts(&other);
        let swapped = Bundle::parse(format!("{leaf}{chain}{other_key}").as_bytes()).unwrap();
        assert_eq!(
            verify_issued(&swapped, &wanted, &trusted, now),
            Err(VerifyError::KeyMismatch)
        );

        let stranger = TestCa::new().issue(&["a.example.com"], KeyType::EcdsaP256, 90);
        let (_, stranger_chain, _) = leaf_pem_parts(&stranger);
        let broken = Bundle::parse(format!("{leaf}{stranger_chain}{key}").as_bytes()).unwrap();
        assert!(matches!(
            verify_issued(&broken, &wanted, &trusted, now),
            Err(VerifyError::BrokenChain { index: 0, next: 1, .. })
        ));

        let bundle = Bundle::parse(pem.as_bytes()).unwrap();
        let err = verify_issued(&bundle, &names(&["a.example.com", "b.example.com"]), &trusted, now).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the certificate's names differ from the configured ones: missing [b.example.com], unexpected []"
        );

        let issued_at = crate::core::pem::Bundle::parse(pem.as_bytes())
            .unwrap()
            .facts()
            .unwrap();
        let early = issued_at.not_before - time::Duration::minutes(1);
        assert!(matches!(
            verify_issued(&bundle, &wanted, &trusted, early),
            Err(VerifyError::NotYetValid { .. })
        ));
        assert!(matches!(
            verify_issued(&bundle, &wanted, &trusted, issued_at.not_after),
            Err(VerifyError::Expired { .. })
        ));

        let keyless = Bundle::parse(format!("{leaf}{chain}").as_bytes()).unwrap();
        assert_eq!(verify_issued(&keyless, &wanted, &trusted, now), Err(VerifyError::NoKey));
    }

    #[test]
    fn a_leaf_without_its_intermediate_or_from_an_untrusted_ca_is_not_deployable() {
        let ca = TestCa::new();
        let now = OffsetDateTime::now_utc();
        let wanted = names(&["a.example.com"]);
        let pem = ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90);
        let (leaf, _chain, key) = leaf_pem_parts(&pem);
        let leaf_only = Bundle::parse(format!("{leaf}{key}").as_bytes()).unwrap();
        let err = verify_issued(&leaf_only, &wanted, &roots(&ca), now).unwrap_err();
        assert!(
            matches!(err, VerifyError::Untrusted(ChainError::MissingIssuer { .. })),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with(
                "the chain does not verify: it does not lead to a root in trust_roots test.pem: no certificate named \
                 'CN=hapcert test intermediate'"
            ),
            "{err}"
        );
        // The whole chain, but the roots are another CA's.
        let whole = Bundle::parse(pem.as_bytes()).unwrap();
        assert!(matches!(
            verify_issued(&whole, &wanted, &roots(&TestCa::new()), now),
            Err(VerifyError::Untrusted(ChainError::BadSignature { .. }))
        ));
        assert!(verify_issued(&whole, &wanted, &roots(&ca), now).is_ok());
    }
}
