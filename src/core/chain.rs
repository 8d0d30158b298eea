//! Chains as a list of certificates, leaf first: which of the chains a CA offers to serve (`preferred_chain`), and
//! what is wrong with the order of a chain a server sends (`check`). Pure: certificates come in as DER, nothing is
//! fetched or verified against roots here (that is `trust::verify_chain`).
//!
//! The `preferred_chain` rule, the same on every run: the CA's default chain first, then each alternate in the order
//! the CA listed them; the first whose topmost certificate (the last one sent) was issued by a CA whose common name is
//! exactly `preferred_chain` wins. The comparison is exact and case-sensitive, since CAs spell their roots' names one
//! way and a near miss should show up in the WARN that lists what was offered, not match silently.

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The issuer common name of a chain's topmost certificate: the name of the root it leads to (or, when the chain
/// includes its root, the root's own name). `None` for an empty chain, an unparsable certificate, or an issuer
/// without a common name.
pub fn topmost_issuer_cn(chain: &[CertificateDer<'_>]) -> Option<String> {
    let (_, top) = X509Certificate::from_der(chain.last()?).ok()?;
    let cn = top.issuer().iter_common_name().next()?.as_str().ok()?.to_owned();
    Some(cn)
}

/// Which chain to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The CA's default chain (also when no chain matched: see [`Choice::NoMatch`]).
    Default,
    /// The alternate at this index, in the order the CA listed them.
    Alternate(usize),
    /// None matched: the default chain is kept, and these issuer names (default first, then each alternate that had
    /// one) are what the CA offered, for the WARN.
    NoMatch { offered: Vec<String> },
}

/// Whether a chain whose topmost issuer is `issuer` is the one asked for.
pub fn matches(preferred: &str, issuer: Option<&str>) -> bool {
    issuer == Some(preferred)
}

/// The rule: the default chain if it matches, else the first alternate that does, else none. `alternates` holds the
/// topmost issuer name of each alternate the CA listed, in its order (`None` when that one could not be read).
pub fn choose(preferred: &str, default: Option<&str>, alternates: &[Option<String>]) -> Choice {
    if matches(preferred, default) {
        return Choice::Default;
    }
    if let Some(index) = alternates.iter().position(|a| matches(preferred, a.as_deref())) {
        return Choice::Alternate(index);
    }
    let offered = default
        .map(str::to_owned)
        .into_iter()
        .chain(alternates.iter().flatten().cloned())
        .collect();
    Choice::NoMatch { offered }
}

/// Something wrong with how a server orders its chain. Each one still may verify (path building copes), but it costs
/// every handshake bytes, or breaks strict clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flaw {
    /// The certificate at `position` (0 is the leaf) is self-signed: a root, which a client must already have, so
    /// sending it is wasted bytes, and a few clients refuse a chain that ends in a root they do not trust.
    IncludesRoot { position: usize, subject: String },
    /// The certificate at `position` is not issued by the next one sent (RFC 8446 §4.4.2 and RFC 5246 §7.4.2 want
    /// each certificate to certify the one before it); older and strict clients fail the handshake.
    OutOfOrder {
        position: usize,
        issuer: String,
        next_subject: String,
    },
}

/// The flaws of a served chain, in the order they appear. "Issued by the next" compares the issuer name with the next
/// certificate's subject name, byte for byte as encoded, which is how clients build the path; "self-signed" wants the
/// same name on both sides and a signature that its own key verifies. Unparsable certificates are skipped: the chain
/// verification reports them.
pub fn flaws(chain: &[CertificateDer<'_>]) -> Vec<Flaw> {
    let parsed: Vec<Option<X509Certificate<'_>>> = chain
        .iter()
        .map(|der| X509Certificate::from_der(der).ok().map(|(_, cert)| cert))
        .collect();
    let mut found = Vec::new();
    for (position, cert) in parsed.iter().enumerate() {
        let Some(cert) = cert else { continue };
        if position > 0 && self_signed(cert) {
            found.push(Flaw::IncludesRoot {
                position,
                subject: cert.subject().to_string(),
            });
        }
        if let Some(Some(next)) = parsed.get(position + 1)
            && cert.issuer().as_raw() != next.subject().as_raw()
        {
            found.push(Flaw::OutOfOrder {
                position,
                issuer: cert.issuer().to_string(),
                next_subject: next.subject().to_string(),
            });
        }
    }
    found
}

fn self_signed(cert: &X509Certificate<'_>) -> bool {
    cert.subject().as_raw() == cert.issuer().as_raw() && cert.verify_signature(None).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::KeyType;
    use crate::core::pem::Bundle;
    use crate::core::trust::pem_certificates;
    use crate::testing::TestCa;

    /// Leaf, intermediate, root of a fresh test CA.
    fn three() -> Vec<CertificateDer<'static>> {
        let ca = TestCa::new();
        let mut certs = Bundle::parse(ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90).as_bytes())
            .unwrap()
            .certs;
        certs.extend(pem_certificates(ca.root_pem().as_bytes()).unwrap());
        certs
    }

    #[test]
    fn the_topmost_issuer_is_the_root_a_chain_leads_to() {
        let chain = three();
        assert_eq!(topmost_issuer_cn(&chain[..2]).as_deref(), Some("hapcert test root"));
        assert_eq!(
            topmost_issuer_cn(&chain[..1]).as_deref(),
            Some("hapcert test intermediate")
        );
        assert_eq!(topmost_issuer_cn(&[]), None);
        assert_eq!(topmost_issuer_cn(&[CertificateDer::from(vec![1, 2, 3])]), None);
    }

    #[test]
    fn the_default_chain_wins_when_it_matches_then_the_first_matching_alternate_in_the_cas_order() {
        let alts = |names: &[&str]| names.iter().map(|n| Some((*n).to_owned())).collect::<Vec<_>>();
        assert_eq!(choose("X1", Some("X1"), &alts(&["X1", "X2"])), Choice::Default);
        assert_eq!(
            choose("X2", Some("X1"), &alts(&["X3", "X2", "X2"])),
            Choice::Alternate(1)
        );
        // An alternate that could not be read is skipped, not a match and not an offer.
        assert_eq!(
            choose("X2", Some("X1"), &[None, Some("X2".into())]),
            Choice::Alternate(1)
        );
        // Exact and case-sensitive: a near miss is reported, never taken.
        assert_eq!(
            choose(
                "isrg root x1",
                Some("ISRG Root X1"),
                &[None, Some("ISRG Root X2".into())]
            ),
            Choice::NoMatch {
                offered: vec!["ISRG Root X1".into(), "ISRG Root X2".into()]
            }
        );
        assert_eq!(choose("X1", None, &[]), Choice::NoMatch { offered: vec![] });
    }

    #[test]
    fn a_chain_in_order_without_its_root_has_no_flaw() {
        let chain = three();
        assert_eq!(flaws(&chain[..2]), []);
        assert_eq!(flaws(&chain[..1]), []);
    }

    #[test]
    fn a_served_root_and_a_chain_out_of_order_are_flaws_with_their_position() {
        let chain = three();
        assert_eq!(
            flaws(&chain),
            [Flaw::IncludesRoot {
                position: 2,
                subject: "CN=hapcert test root".into()
            }]
        );
        // Root before intermediate: the leaf is followed by a certificate that did not issue it, and the root (its
        // own issuer) by the intermediate.
        let swapped = vec![chain[0].clone(), chain[2].clone(), chain[1].clone()];
        assert_eq!(
            flaws(&swapped),
            [
                Flaw::OutOfOrder {
                    position: 0,
                    issuer: "CN=hapcert test intermediate".into(),
                    next_subject: "CN=hapcert test root".into()
                },
                Flaw::IncludesRoot {
                    position: 1,
                    subject: "CN=hapcert test root".into()
                },
                Flaw::OutOfOrder {
                    position: 1,
                    issuer: "CN=hapcert test root".into(),
                    next_subject: "CN=hapcert test intermediate".into()
                },
            ]
        );
    }
}
