//! Fresh private keys and the CSR that carries a certificate's names to the CA. A new key for every issuance, so a renewal
//! also retires whatever the old key was exposed to.

use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
    PKCS_RSA_SHA256, RsaKeySize,
};

use crate::core::config::{DomainName, KeyType};

pub fn generate_key(key_type: KeyType) -> Result<KeyPair, rcgen::Error> {
    match key_type {
        KeyType::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
        KeyType::EcdsaP384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384),
        KeyType::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
        KeyType::Rsa3072 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072),
        KeyType::Rsa4096 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096),
    }
}

/// A DER CSR for `domains`, signed by `key`. The first name is also the subject's CN, which some CAs still show.
pub fn csr_der(domains: &[DomainName], key: &KeyPair) -> Result<Vec<u8>, rcgen::Error> {
    let names: Vec<String> = domains.iter().map(|d| d.as_str().to_owned()).collect();
    let mut params = CertificateParams::new(names)?;
    let mut subject = DistinguishedName::new();
    if let Some(first) = domains.first() {
        subject.push(DnType::CommonName, first.as_str());
    }
    params.distinguished_name = subject;
    Ok(params.serialize_request(key)?.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer;

    #[test]
    fn csr_carries_every_name_and_the_key() {
        let key = generate_key(KeyType::EcdsaP256).unwrap();
        let domains = ["a.example.com", "b.example.com"].map(|d| DomainName::parse(d).unwrap());
        let der = csr_der(&domains, &key).unwrap();
        let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
        csr.verify_signature().unwrap();
        let names: Vec<String> = csr
            .requested_extensions()
            .into_iter()
            .flatten()
            .filter_map(|ext| match ext {
                x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) => Some(san),
                _ => None,
            })
            .flat_map(|san| san.general_names.iter().map(|n| n.to_string()))
            .collect();
        assert_eq!(names, ["DNSName(a.example.com)", "DNSName(b.example.com)"]);
    }

    #[test]
    fn every_key_type_generates() {
        for key_type in KeyType::ALL {
            let key = generate_key(key_type).unwrap();
            assert!(!key.serialize_der().is_empty(), "{key_type}");
        }
    }
}
