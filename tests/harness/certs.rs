//! Certificates the harness makes (Pebble's listener PKI, HAProxy's default certificate) and the
//! helpers tests use to look inside certificates.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A throwaway CA and the P-256 certificate it signed for Pebble's HTTPS listener.
pub struct ListenerPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn listener_pki() -> ListenerPki {
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "hapcert test listener CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("generate CA key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign listener CA");
    let issuer = Issuer::new(ca_params, ca_key);

    // KeyPair::generate() is ECDSA P-256. Both names, so clients may use either in the directory URL.
    let params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("valid listener names");
    let key = KeyPair::generate().expect("generate listener key");
    let cert = params.signed_by(&key, &issuer).expect("sign listener cert");
    ListenerPki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A self-signed certificate and key for `default.invalid`, as one PEM (leaf, then key, no blank lines:
/// HAProxy's runtime API treats a blank line as end of payload, so we never write one).
pub fn default_cert_pem() -> String {
    let mut params = CertificateParams::new(vec!["default.invalid".to_owned()]).expect("valid default name");
    params.distinguished_name.push(DnType::CommonName, "default.invalid");
    let key = KeyPair::generate().expect("generate default key");
    let cert = params.self_signed(&key).expect("self-sign default cert");
    format!("{}\n{}\n", cert.pem().trim_end(), key.serialize_pem().trim_end())
}

fn parse(cert_der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(cert_der)
        .unwrap_or_else(|e| panic!("not a DER X.509 certificate: {e}"))
        .1
}

/// The serial number as lower-case hex in whole bytes, as openssl and HAProxy's `show ssl cert` print it (and hapcert
/// too): `0448d1...`, not `448d1...`. The DER sign byte is not part of it.
pub fn serial_hex(cert_der: &[u8]) -> String {
    let cert = parse(cert_der);
    let raw = cert.raw_serial();
    let raw = if raw.len() > 1 && raw[0] == 0 { &raw[1..] } else { raw };
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// The DNS names of the subjectAltName extension, in certificate order.
pub fn san_dns_names(cert_der: &[u8]) -> Vec<String> {
    let cert = parse(cert_der);
    let san = cert
        .subject_alternative_name()
        .unwrap_or_else(|e| panic!("bad subjectAltName: {e}"));
    san.into_iter()
        .flat_map(|ext| &ext.value.general_names)
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_string()),
            _ => None,
        })
        .collect()
}

/// (notBefore, notAfter).
pub fn validity(cert_der: &[u8]) -> (OffsetDateTime, OffsetDateTime) {
    let cert = parse(cert_der);
    let validity = cert.validity();
    (validity.not_before.to_datetime(), validity.not_after.to_datetime())
}

/// The first CERTIFICATE block of a PEM file (for a combined PEM: the leaf).
pub fn leaf_der_from_pem_file(path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .next()
        .unwrap_or_else(|| panic!("{} holds no CERTIFICATE block", path.display()))
        .unwrap_or_else(|e| panic!("bad PEM in {}: {e}", path.display()))
        .to_vec()
}

/// A one-line summary of a certificate, for panic messages.
pub fn describe(cert_der: &[u8]) -> String {
    match X509Certificate::from_der(cert_der) {
        Ok((_, cert)) => format!(
            "subject \"{}\", issuer \"{}\", serial {:x}, DNS names {:?}, not after {}",
            cert.subject(),
            cert.issuer(),
            cert.serial,
            san_dns_names(cert_der),
            cert.validity().not_after
        ),
        Err(e) => format!("unparsable certificate ({e})"),
    }
}
