//! A small CA for unit tests: root → intermediate → leaf, made with rcgen, so the PEM and verification logic is tested on
//! real certificates without a network.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use time::{Duration, OffsetDateTime};

use crate::core::config::KeyType;
use crate::core::keys::generate_key;

pub struct TestCa {
    root_pem: String,
    intermediate_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let root_key = KeyPair::generate().unwrap();
        let root_params = ca_params("hapcert test root");
        let root_pem = root_params.self_signed(&root_key).unwrap().pem();
        let root_issuer = Issuer::new(root_params, root_key);

        let intermediate_key = KeyPair::generate().unwrap();
        let intermediate_params = ca_params("hapcert test intermediate");
        let intermediate = intermediate_params.signed_by(&intermediate_key, &root_issuer).unwrap();
        TestCa {
            root_pem,
            intermediate_pem: intermediate.pem(),
            issuer: Issuer::new(intermediate_params, intermediate_key),
        }
    }

    /// The self-signed root, for a trust store.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// A combined PEM (leaf, intermediate, PKCS#8 key) valid from an hour ago for `days` days.
    pub fn issue(&self, names: &[&str], key_type: KeyType, days: i64) -> String {
        let not_before = OffsetDateTime::now_utc() - Duration::hours(1);
        self.issue_between(names, key_type, not_before, not_before + Duration::days(days))
    }

    pub fn issue_between(
        &self,
        names: &[&str],
        key_type: KeyType,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> String {
        let key = generate_key(key_type).unwrap();
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.not_before = not_before;
        params.not_after = not_after;
        // As every public CA does; ARI ids are made from it.
        params.use_authority_key_identifier_extension = true;
        let leaf = params.signed_by(&key, &self.issuer).unwrap();
        format!("{}{}{}", leaf.pem(), self.intermediate_pem, key.serialize_pem())
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Splits a combined PEM made by `TestCa::issue` into (leaf, chain, key), each with its trailing newline.
pub fn leaf_pem_parts(combined: &str) -> (String, String, String) {
    let blocks: Vec<String> = combined
        .split_inclusive("-----\n")
        .collect::<String>()
        .split("-----BEGIN ")
        .filter(|b| !b.is_empty())
        .map(|b| format!("-----BEGIN {b}"))
        .collect();
    let key = blocks.iter().find(|b| b.contains("PRIVATE KEY")).unwrap().clone();
    let certs: Vec<&String> = blocks
        .iter()
        .filter(|b| b.starts_with("-----BEGIN CERTIFICATE"))
        .collect();
    (certs[0].clone(), certs[1..].iter().map(|s| s.as_str()).collect(), key)
}

/// Re-encodes a PKCS#8 P-256 key as SEC1 ("EC PRIVATE KEY"), the form `openssl ecparam -genkey` writes.
pub fn pkcs8_to_sec1_pem(pkcs8_pem: &str) -> String {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    let der = pem::parse(pkcs8_pem).unwrap().into_contents();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der).unwrap();
    let sec1 = pair.private_key().as_der().unwrap();
    pem::encode_config(
        &pem::Pem::new("EC PRIVATE KEY", sec1.as_ref().to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// A certificate as the config would describe it: "www" for example.com and www.example.com, ECDSA P-256, in
/// /etc/haproxy/certs/www.pem; tests change what they are about with struct update syntax.
pub fn www_spec() -> crate::core::config::CertificateSpec {
    use crate::core::config::{CertificateSpec, DomainName, Located, Position};
    CertificateSpec {
        name: "www".into(),
        group: "www".into(),
        domains: ["example.com", "www.example.com"]
            .map(|d| DomainName::parse(d).unwrap())
            .to_vec(),
        key_type: KeyType::EcdsaP256,
        file: Located {
            value: "/etc/haproxy/certs/www.pem".into(),
            at: Position::default(),
            key: String::new(),
        },
        renew_before: None,
        verify: vec!["127.0.0.1:443".into()],
        verify_key: "[haproxy] verify".into(),
        profile: None,
        preferred_chain: None,
        hooks: Default::default(),
        challenge: crate::core::config::ChallengeKind::Http01,
        dns_provider: None,
    }
}
