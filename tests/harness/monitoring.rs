//! For the monitor's tests (`check`, metrics): a small CA whose certificates HAProxy serves from the sandbox's cert
//! directory, the `[check]` config pointing at the sandbox, and a doctored `state.json`.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use time::OffsetDateTime;

use super::{Sandbox, ports};

/// A throwaway root CA that signs leaves directly.
pub struct MonitorCa {
    pub root_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// One certificate as HAProxy loads it.
pub struct MonitorCert {
    /// Leaf and key: a combined PEM.
    pub pem: String,
    /// The leaf alone, as a CA file holds it.
    pub cert_pem: String,
    pub leaf_der: Vec<u8>,
}

impl MonitorCa {
    /// `name` goes into the root's common name; give each CA of a test its own, as real CAs have.
    pub fn new(name: &str) -> MonitorCa {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("generate CA key");
        let root_pem = params.self_signed(&key).expect("self-sign CA").pem();
        MonitorCa {
            root_pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A P-256 certificate for `names`, valid from `not_before` to `not_after` (either may be in the past).
    pub fn issue(&self, names: &[&str], not_before: OffsetDateTime, not_after: OffsetDateTime) -> MonitorCert {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("valid names");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.not_before = not_before;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("generate leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        MonitorCert {
            // No root in the file, as a CA delivers it: `check` warns on a served chain that carries its root.
            pem: [cert.pem().as_str(), key.serialize_pem().as_str()]
                .map(str::trim_end)
                .join("\n")
                + "\n",
            cert_pem: cert.pem(),
            leaf_der: cert.der().to_vec(),
        }
    }

    /// A CRL of this CA that revokes nothing, issued at `this_update`, due again at `next_update`.
    pub fn crl(&self, this_update: OffsetDateTime, next_update: OffsetDateTime) -> String {
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer)
            .expect("sign CRL")
            .pem()
            .expect("CRL as PEM")
    }
}

/// A port on 127.0.0.1 nothing listens on: connecting to it is refused.
pub fn closed_port() -> u16 {
    ports::free_port()
}

impl Sandbox {
    /// Writes `<cert_dir>/<file>` (0600), as hapcert would. HAProxy serves it after its next reload.
    pub fn put_cert(&self, file: &str, cert: &MonitorCert) -> PathBuf {
        let path = self.cert_dir().join(file);
        fs::write(&path, &cert.pem).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod 0600");
        path
    }

    /// The base config, a `[check]` table probing `endpoints` with `ca_bundle` as its roots, `extra` tables, and one
    /// `[[certificate]]` per (name, domain) whose file is `<cert_dir>/<name>.pem`.
    pub fn check_config(&self, endpoints: &[String], ca_bundle: &str, extra: &str, certs: &[(&str, &str)]) -> String {
        let quoted: Vec<String> = endpoints.iter().map(|e| toml_string(e)).collect();
        let mut text = format!(
            "{}\n[check]\nendpoints = [{}]\nca_bundle = {}\n{extra}\n",
            self.base_config(),
            quoted.join(", "),
            toml_string(ca_bundle)
        );
        for (name, domain) in certs {
            text += &format!(
                "\n[[certificate]]\nname = {}\ndomains = [{}]\n",
                toml_string(name),
                toml_string(domain)
            );
        }
        text
    }

    /// `127.0.0.1:<https port>`: HAProxy's TLS frontend.
    pub fn https_endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.https_port())
    }

    /// Writes `<state dir>/state.json` as a run would leave it (the directory 0700, the file 0600).
    pub fn write_state(&self, state: &serde_json::Value) {
        let dir = self.state_dir();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .expect("create state dir");
        let path = dir.join("state.json");
        fs::write(&path, serde_json::to_vec_pretty(state).expect("JSON")).expect("write state.json");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    }

    /// `<state dir>/monitor.json`, parsed.
    pub fn monitor_json(&self) -> serde_json::Value {
        let path = self.state_dir().join("monitor.json");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {text}", path.display()))
    }
}

/// A TOML basic string (serde_json's escaping is valid TOML for these).
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// RFC 3339, as state.json holds times.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .expect("format time")
}
