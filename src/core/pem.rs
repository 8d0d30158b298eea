//! HAProxy's combined PEM: parsing one (any order of blocks, CRLF or LF, blank lines), the facts the renewal decision needs,
//! and writing the canonical layout HAProxy wants: leaf, intermediates, key, LF endings, no blank lines. Pure.

use std::collections::BTreeSet;
use std::fmt;

use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::core::config::KeyType;

/// The blocks of a combined PEM, decoded. The private key is never shown by `Debug`.
pub struct Bundle {
    /// Leaf first, then its issuers, in file order.
    pub certs: Vec<CertificateDer<'static>>,
    pub key: Option<PrivateKeyDer<'static>>,
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("certs", &self.certs.len())
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("not PEM: {0}")]
    Syntax(String),
    #[error("holds no certificate")]
    NoCertificate,
    #[error("holds more than one private key")]
    SeveralKeys,
    #[error("certificate #{index} cannot be parsed: {reason}")]
    BadCertificate { index: usize, reason: String },
    #[error("holds no private key")]
    NoKey,
    #[error("the private key cannot be parsed: {0}")]
    BadKey(String),
}

/// A PEM syntax error in words. The library's own text shows the missing end marker as a byte array
/// (`missing section end marker: [45, 45, ...]`), which is how a truncated chain used to be reported.
pub fn pem_syntax(err: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match err {
        Error::MissingSectionEnd { end_marker } => {
            let marker = String::from_utf8_lossy(end_marker);
            let marker = marker.trim();
            let line = if marker.starts_with("-----") {
                marker.to_owned()
            } else {
                format!("-----END {marker}-----")
            };
            format!("a block is cut short: its '{line}' line is missing (the text was truncated)")
        }
        Error::IllegalSectionStart { line } => format!(
            "a block starts inside another: '{}' (the text was truncated or two files were joined badly)",
            String::from_utf8_lossy(line).trim()
        ),
        other => other.to_string(),
    }
}

/// What the renewal decision and `status` need to know of a deployed certificate. Serialized only into the facts cache
/// (`store::facts_cache`), so that a run with nothing due need not parse every PEM again: a change to what a field holds
/// must bump that cache's `FORMAT`, or facts read by the old code would be taken for new ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertFacts {
    /// Lower-case hex, as `openssl x509 -serial` prints it but without the colons.
    pub serial: String,
    /// DNS names in the SAN extension, lower case.
    pub names: BTreeSet<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// `None` for a key kind hapcert does not issue (Ed25519, P-521, odd RSA sizes).
    pub key_type: Option<KeyType>,
    /// Whether the private key in the file belongs to the leaf.
    pub key_matches: bool,
    /// The ARI certificate id (RFC 9773 §4.1): base64url of the AKI key identifier, a dot, base64url of the DER serial.
    /// `None` when the leaf has no AKI key identifier (a self-made certificate, say).
    pub ari_id: Option<String>,
}

impl Bundle {
    /// Decodes every block. Certificates keep their order; one private key of any common encoding (PKCS#8, SEC1, PKCS#1)
    /// may stand anywhere. Other block kinds (parameters, CRLs) are ignored, as HAProxy ignores them.
    pub fn parse(bytes: &[u8]) -> Result<Bundle, PemError> {
        let mut certs = Vec::new();
        let mut key = None;
        for section in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(bytes) {
            let (kind, der) = section.map_err(|e| PemError::Syntax(pem_syntax(&e)))?;
            let private = match kind {
                SectionKind::Certificate => {
                    certs.push(CertificateDer::from(der));
                    continue;
                }
                SectionKind::PrivateKey => PrivateKeyDer::Pkcs8(der.into()),
                SectionKind::EcPrivateKey => PrivateKeyDer::Sec1(der.into()),
                SectionKind::RsaPrivateKey => PrivateKeyDer::Pkcs1(der.into()),
                _ => continue,
            };
            if key.replace(private).is_some() {
                return Err(PemError::SeveralKeys);
            }
        }
        if certs.is_empty() {
            return Err(PemError::NoCertificate);
        }
        for (index, der) in certs.iter().enumerate() {
            X509Certificate::from_der(der).map_err(|e| PemError::BadCertificate {
                index,
                reason: e.to_string(),
            })?;
        }
        Ok(Bundle { certs, key })
    }

    /// Whether `bytes` are a PEM with at least one certificate block, without decoding the certificates: a cheap look,
    /// made at every start for every file hapcert is about to own. A damaged certificate passes, since replacing it
    /// is a renewal's job; a file of another kind (a config, a key, a password file) does not.
    pub fn holds_certificate(bytes: &[u8]) -> Result<(), PemError> {
        for section in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(bytes) {
            let (kind, _) = section.map_err(|e| PemError::Syntax(pem_syntax(&e)))?;
            if matches!(kind, SectionKind::Certificate) {
                return Ok(());
            }
        }
        Err(PemError::NoCertificate)
    }

    pub fn leaf(&self) -> X509Certificate<'_> {
        // `parse` checked that every certificate decodes.
        X509Certificate::from_der(&self.certs[0])
            .expect("checked in Bundle::parse")
            .1
    }

    pub fn facts(&self) -> Result<CertFacts, PemError> {
        let leaf = self.leaf();
        let key_matches = match &self.key {
            Some(key) => key_matches_leaf(key, &leaf)?,
            None => return Err(PemError::NoKey),
        };
        Ok(CertFacts::of(&leaf, key_matches))
    }

    /// HAProxy's layout: leaf, intermediates, then the key; LF endings, no blank lines, a final newline.
    pub fn to_haproxy_pem(&self) -> Result<String, PemError> {
        let key = self.key.as_ref().ok_or(PemError::NoKey)?;
        let label = match key {
            PrivateKeyDer::Pkcs8(_) => "PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            _ => return Err(PemError::BadKey("unsupported key encoding".into())),
        };
        let mut blocks: Vec<pem::Pem> = self
            .certs
            .iter()
            .map(|c| pem::Pem::new("CERTIFICATE", c.to_vec()))
            .collect();
        blocks.push(pem::Pem::new(label, key.secret_der().to_vec()));
        let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
        Ok(pem::encode_many_config(&blocks, lf).replace("\n\n", "\n"))
    }
}

impl CertFacts {
    /// The facts of a decoded leaf; `key_matches` is what the caller found of its key.
    pub fn of(leaf: &X509Certificate<'_>, key_matches: bool) -> CertFacts {
        CertFacts {
            serial: serial_hex(leaf.raw_serial()),
            names: dns_names(leaf),
            not_before: leaf.validity().not_before.to_datetime(),
            not_after: leaf.validity().not_after.to_datetime(),
            key_type: key_type_of(leaf),
            key_matches,
            ari_id: ari_id(leaf),
        }
    }
}

/// The SHA-1 of a certificate's DER in lower-case hex: how HAProxy's `show ssl cert` names the leaf it holds.
pub fn sha1_hex(der: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref())
}

fn ari_id(leaf: &X509Certificate<'_>) -> Option<String> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let aki = leaf.iter_extensions().find_map(|ext| match ext.parsed_extension() {
        x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref(),
        _ => None,
    })?;
    Some(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(aki.0),
        URL_SAFE_NO_PAD.encode(leaf.raw_serial())
    ))
}

/// The private key belongs to the certificate when it yields the same public key bytes.
pub fn key_matches_leaf(key: &PrivateKeyDer<'_>, leaf: &X509Certificate<'_>) -> Result<bool, PemError> {
    use rcgen::PublicKeyData;
    let pair = rcgen::KeyPair::try_from(key).map_err(|e| PemError::BadKey(e.to_string()))?;
    Ok(pair.der_bytes() == leaf.public_key().subject_public_key.data.as_ref())
}

pub fn key_type_of(cert: &X509Certificate<'_>) -> Option<KeyType> {
    match cert.public_key().parsed().ok()? {
        PublicKey::EC(point) => match point.key_size() {
            256 => Some(KeyType::EcdsaP256),
            384 => Some(KeyType::EcdsaP384),
            _ => None,
        },
        PublicKey::RSA(rsa) => match rsa.key_size() {
            2048 => Some(KeyType::Rsa2048),
            3072 => Some(KeyType::Rsa3072),
            4096 => Some(KeyType::Rsa4096),
            _ => None,
        },
        _ => None,
    }
}

pub fn dns_names(cert: &X509Certificate<'_>) -> BTreeSet<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return BTreeSet::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Lower-case hex of every byte, as HAProxy prints a SHA-1 fingerprint.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A certificate's serial in hex, from its DER integer bytes. A DER integer may carry a leading zero byte to stay
/// positive; it is not part of the serial people compare. (Only a serial: a digest's leading zero byte is its own.)
pub fn serial_hex(der_integer: &[u8]) -> String {
    match der_integer {
        [0, rest @ ..] if !rest.is_empty() => hex(rest),
        _ => hex(der_integer),
    }
}

#[cfg(test)]
mod hex_tests {
    use super::*;

    #[test]
    fn a_digest_keeps_its_leading_zero_byte_and_a_serial_drops_the_der_sign_byte() {
        // One SHA-1 in 256 starts with a zero byte; HAProxy prints it, and a deploy compares against it.
        assert_eq!(hex(&[0x00, 0x35, 0xfe]), "0035fe");
        assert_eq!(serial_hex(&[0x00, 0x8a, 0x01]), "8a01");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[0x7f, 0x00]), "7f00");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestCa, leaf_pem_parts};

    #[test]
    fn parses_any_block_order_and_crlf_and_writes_the_canonical_layout() {
        let ca = TestCa::new();
        let issued = ca.issue(&["a.example.com", "b.example.com"], KeyType::EcdsaP256, 90);
        let (leaf, chain, key) = leaf_pem_parts(&issued);
        // Key first, CRLF endings, blank lines between blocks: all of it still parses.
        let messy = format!("{key}\n\n{leaf}\n{chain}").replace('\n', "\r\n");
        let bundle = Bundle::parse(messy.as_bytes()).unwrap();
        assert_eq!(bundle.certs.len(), 2);

        let out = bundle.to_haproxy_pem().unwrap();
        assert!(!out.contains('\r'), "LF only");
        assert!(!out.contains("\n\n"), "no blank lines");
        assert!(out.ends_with("-----END PRIVATE KEY-----\n"));
        let order: Vec<&str> = out.lines().filter(|l| l.starts_with("-----BEGIN")).collect();
        assert_eq!(
            order,
            [
                "-----BEGIN CERTIFICATE-----",
                "-----BEGIN CERTIFICATE-----",
                "-----BEGIN PRIVATE KEY-----"
            ]
        );
        assert_eq!(out, format!("{leaf}{chain}{key}"), "leaf, chain, key, byte for byte");
    }

    #[test]
    fn facts_of_a_good_bundle() {
        let ca = TestCa::new();
        let issued = ca.issue(&["B.example.com", "a.example.com"], KeyType::EcdsaP384, 90);
        let facts = Bundle::parse(issued.as_bytes()).unwrap().facts().unwrap();
        assert_eq!(
            facts.names,
            BTreeSet::from(["a.example.com".to_owned(), "b.example.com".to_owned()])
        );
        assert_eq!(facts.key_type, Some(KeyType::EcdsaP384));
        assert!(facts.key_matches);
        assert_eq!((facts.not_after - facts.not_before).whole_days(), 90);
        assert!(!facts.serial.is_empty() && facts.serial.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn detects_a_key_of_another_certificate_and_rsa_sizes() {
        let ca = TestCa::new();
        let one = ca.issue(&["a.example.com"], KeyType::Rsa2048, 90);
        let other = ca.issue(&["a.example.com"], KeyType::Rsa2048, 90);
        let (leaf, chain, _) = leaf_pem_parts(&one);
        let (_, _, other_key) = leaf_pem_parts(&other);
        let facts = Bundle::parse(format!("{leaf}{chain}{other_key}").as_bytes())
            .unwrap()
            .facts()
            .unwrap();
        assert_eq!(facts.key_type, Some(KeyType::Rsa2048));
        assert!(!facts.key_matches);
    }

    #[test]
    fn accepts_sec1_keys() {
        let ca = TestCa::new();
        let issued = ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90);
        let (leaf, chain, key) = leaf_pem_parts(&issued);
        let sec1 = crate::testing::pkcs8_to_sec1_pem(&key);
        let facts = Bundle::parse(format!("{leaf}{chain}{sec1}").as_bytes())
            .unwrap()
            .facts()
            .unwrap();
        assert!(facts.key_matches);
    }

    #[test]
    fn reports_what_is_wrong() {
        assert_eq!(Bundle::parse(b"").unwrap_err(), PemError::NoCertificate);
        assert_eq!(Bundle::parse(b"hello\n").unwrap_err(), PemError::NoCertificate);
        assert!(matches!(
            Bundle::parse(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap_err(),
            PemError::BadCertificate { index: 0, .. }
        ));
        let ca = TestCa::new();
        let issued = ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90);
        let (leaf, chain, key) = leaf_pem_parts(&issued);
        assert_eq!(
            Bundle::parse(format!("{leaf}{chain}").as_bytes())
                .unwrap()
                .facts()
                .unwrap_err(),
            PemError::NoKey
        );
        assert_eq!(
            Bundle::parse(format!("{leaf}{key}{key}").as_bytes()).unwrap_err(),
            PemError::SeveralKeys
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let ca = TestCa::new();
        let issued = ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90);
        let shown = format!("{:?}", Bundle::parse(issued.as_bytes()).unwrap());
        assert!(shown.contains("<redacted>") && !shown.contains("PRIVATE"), "{shown}");
    }
}

#[cfg(test)]
mod ari_id_tests {
    use super::*;
    use crate::testing::TestCa;

    #[test]
    fn the_ari_id_is_the_aki_and_the_der_serial_in_base64url() {
        let issued = TestCa::new().issue(&["a.example.com"], KeyType::EcdsaP256, 90);
        let bundle = Bundle::parse(issued.as_bytes()).unwrap();
        let facts = bundle.facts().unwrap();
        let (_, leaf) = X509Certificate::from_der(&bundle.certs[0]).unwrap();
        let id = facts.ari_id.expect("the test CA sets an authority key id");
        let (aki, serial) = id.split_once('.').unwrap();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        assert_eq!(b64.decode(serial).unwrap(), leaf.raw_serial());
        assert!(!b64.decode(aki).unwrap().is_empty());
    }

    #[test]
    fn a_truncated_pem_is_described_in_words_not_bytes() {
        let pem = crate::testing::TestCa::new().issue(&["a.example.com"], KeyType::EcdsaP256, 90);
        let cut = &pem[..pem.len() / 2];
        let err = Bundle::parse(cut.as_bytes()).unwrap_err().to_string();
        assert!(
            err.starts_with("not PEM: a block is cut short: its '-----END "),
            "{err}"
        );
        assert!(!err.contains("[45"), "{err}");
    }
}
