//! TLS handshakes to the endpoints that serve the certificates: which leaf (and chain) does `host:port` send for a name?
//! This is the proof on the wire that a deploy took effect, and what `check` judges. The only module that opens TLS
//! connections to HAProxy, and to the `[[watch]]` endpoints (some after a STARTTLS dialogue, `starttls.rs`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::core::config::{CertificateSpec, Config, KeyType, StartTls};

mod starttls;

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What kind of client to be. HAProxy picks the ECDSA or the RSA certificate by the signature algorithms a client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Any,
    EcdsaOnly,
    RsaOnly,
}

impl ClientKind {
    /// The client that must be handed a certificate of `key_type` when the name also has one of the other kind.
    pub fn for_key(key_type: KeyType) -> ClientKind {
        match key_type.kind() {
            "ecdsa" => ClientKind::EcdsaOnly,
            _ => ClientKind::RsaOnly,
        }
    }

    /// The client `spec` is asked for by: one of its own kind when it has a sibling of the other key kind (`key_types`),
    /// any client when it is alone.
    pub fn for_certificate(config: &Config, spec: &CertificateSpec) -> ClientKind {
        let has_sibling = config
            .certificates
            .iter()
            .any(|c| c.group == spec.group && c.name != spec.name);
        if has_sibling {
            ClientKind::for_key(spec.key_type)
        } else {
            ClientKind::Any
        }
    }

    fn schemes(self) -> Vec<SignatureScheme> {
        let ecdsa = [
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::ECDSA_NISTP384_SHA384,
        ];
        let rsa = [
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA512,
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::RSA_PKCS1_SHA512,
        ];
        match self {
            ClientKind::Any => ecdsa.iter().chain(rsa.iter()).copied().collect(),
            ClientKind::EcdsaOnly => ecdsa.to_vec(),
            ClientKind::RsaOnly => rsa.to_vec(),
        }
    }
}

/// A TLS client that takes whatever certificate the server presents (the caller judges it) and never resumes a
/// session: a resumed session reports the certificate of its first handshake, not the one served now.
pub fn observing_config(kind: ClientKind) -> rustls::ClientConfig {
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("the aws-lc-rs provider supports the default versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Observer(kind)))
            .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config
}

/// Connects to `endpoint` (`host:port`), sends `server_name` as SNI, and returns the leaf the server sends. The chain is
/// not judged here: the caller compares the leaf with the one it deployed, byte for byte.
pub async fn served_leaf(
    endpoint: &str,
    server_name: &str,
    kind: ClientKind,
) -> anyhow::Result<CertificateDer<'static>> {
    let chain = served_chain(endpoint, server_name, kind).await?;
    Ok(chain
        .into_iter()
        .next()
        .expect("served_chain returns at least the leaf"))
}

/// Like [`served_leaf`], but returns every certificate the server sends, leaf first, so that `check` can verify the
/// chain itself (with the roots it is told to trust) and still say what was served when it does not verify.
pub async fn served_chain(
    endpoint: &str,
    server_name: &str,
    kind: ClientKind,
) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    served_chain_over(endpoint, server_name, kind, None).await
}

/// [`served_chain`] for an endpoint that speaks `starttls`'s plain-text protocol first (a mail server, PostgreSQL):
/// the dialogue up to the upgrade ([`starttls`]), then the handshake on the same connection. `None` is TLS from the
/// first byte. One timeout covers the connection, the dialogue and the handshake.
pub async fn served_chain_over(
    endpoint: &str,
    server_name: &str,
    kind: ClientKind,
    starttls: Option<StartTls>,
) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let config = observing_config(kind);
    let sni = sni_for(server_name);
    let server_name = sni.as_str();
    let name = ServerName::try_from(server_name.to_owned())
        .with_context(|| format!("'{server_name}' is not a server name"))?;
    let progress = starttls::Progress::default();
    let handshake = async {
        let mut tcp = TcpStream::connect(endpoint)
            .await
            .with_context(|| format!("cannot connect to {endpoint}"))?;
        let after = match starttls {
            Some(protocol) => {
                let local = tcp.local_addr().context("the probe's own address")?.ip();
                starttls::upgrade(&mut tcp, protocol, endpoint, local, &progress).await?;
                format!(" after {} STARTTLS", protocol.name())
            }
            None => String::new(),
        };
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS handshake with {endpoint} (SNI {server_name}){after} failed"))?;
        let (_, session) = tls.get_ref();
        let chain: Vec<CertificateDer<'static>> = session
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|cert| cert.clone().into_owned())
            .collect();
        anyhow::ensure!(!chain.is_empty(), "{endpoint} sent no certificate for {server_name}");
        Ok(chain)
    };
    match tokio::time::timeout(PROBE_TIMEOUT, handshake).await {
        Ok(result) => result,
        Err(elapsed) => Err(match progress.timeout_error(endpoint, PROBE_TIMEOUT) {
            Some(in_dialogue) => in_dialogue,
            None => anyhow::Error::new(elapsed).context(format!(
                "no TLS handshake with {endpoint} (SNI {server_name}) within {PROBE_TIMEOUT:?}"
            )),
        }),
    }
}

/// Each distinct `verify` endpoint of `specs`, once, and whether something speaks TLS there ([`answers_tls`]), with the
/// first name and the `verify` key of the first certificate that lists it. What a run checks before it orders, and
/// `check-config` and `doctor` report.
pub async fn verify_endpoints<'a>(
    specs: impl IntoIterator<Item = &'a CertificateSpec>,
) -> Vec<(String, Result<(), NoTls>, &'a str)> {
    let mut targets: Vec<(&str, &str, &str)> = Vec::new();
    for spec in specs {
        let Some(first) = spec.domains.first() else { continue };
        for endpoint in &spec.verify {
            if !targets.iter().any(|(e, ..)| e == endpoint) {
                targets.push((endpoint, first.as_str(), &spec.verify_key));
            }
        }
    }
    let mut out = Vec::new();
    for (endpoint, name, key) in targets {
        out.push((endpoint.to_owned(), answers_tls(endpoint, name).await, key));
    }
    out
}

/// What to do when nothing answers TLS on a verify endpoint: `check-config` and `doctor` say it alike.
pub const VERIFY_FIX: &str =
    "set `verify` (or [haproxy] verify) to an address HAProxy's TLS frontend binds, or start HAProxy";

/// Why nothing speaks TLS on an endpoint.
#[derive(Debug, Clone)]
pub struct NoTls {
    pub endpoint: String,
    /// The connection was refused: nothing listens there, the commonest case (HAProxy binds another address).
    pub refused: bool,
    /// The error, with its causes.
    pub why: String,
}

impl NoTls {
    /// The finding, for an endpoint that `key` set: a refused connection names the key to change, as the one fix
    /// that helps when HAProxy runs on another address; anything else gives its cause.
    pub fn message(&self, key: &str) -> String {
        match self.refused {
            true => not_listening(&self.endpoint, key),
            false => format!("nothing answers TLS on {} ({})", self.endpoint, self.why),
        }
    }
}

/// What a refused connection to one of hapcert's endpoints says.
pub fn not_listening(endpoint: &str, key: &str) -> String {
    format!("HAProxy is not listening on {endpoint}; if it binds another address, set {key}")
}

/// Whether `err` comes from a refused connection.
pub fn refused(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// Whether something speaks TLS on `endpoint`: a handshake that gets as far as the server's first answer. A server that
/// turns this name away with an alert (HAProxy's `strict-sni`, for a name it has no certificate for yet) still answers;
/// only no connection, no answer in time, or an answer that is not TLS is an error, with its cause.
pub async fn answers_tls(endpoint: &str, server_name: &str) -> Result<(), NoTls> {
    match served_chain(endpoint, server_name, ClientKind::Any).await {
        Ok(_) => Ok(()),
        Err(err) if alert_received(&err) => Ok(()),
        Err(err) => Err(NoTls {
            endpoint: endpoint.to_owned(),
            refused: refused(&err),
            why: format!("{err:#}"),
        }),
    }
}

/// Whether a failed handshake ended with the server's TLS alert.
fn alert_received(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .filter_map(|io| io.get_ref()?.downcast_ref::<rustls::Error>())
        .any(|tls| matches!(tls, rustls::Error::AlertReceived(_)))
}

/// The SNI a handshake for `name` sends. `*` is no label a client sends: for a wildcard, a random label under its base
/// stands in, one that no other certificate is likely to name, so that only the wildcard can answer for it.
fn sni_for(name: &str) -> String {
    match name.strip_prefix("*.") {
        Some(base) => {
            let mut bytes = [0u8; 6];
            aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG works");
            let label: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("probe-{label}.{base}")
        }
        None => name.to_owned(),
    }
}

/// Accepts whatever the server presents, so that a wrong or expired certificate is reported as "served X" rather than
/// as a handshake failure. It still checks the handshake signature, so the server proves it holds the key.
#[derive(Debug)]
struct Observer(ClientKind);

impl ServerCertVerifier for Observer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_is_probed_with_a_fresh_random_label_under_its_base() {
        assert_eq!(sni_for("www.example.com"), "www.example.com");
        let first = sni_for("*.example.com");
        let (label, base) = first.split_once('.').unwrap();
        assert_eq!(base, "example.com");
        assert!(label.starts_with("probe-") && label.len() == 18, "{label}");
        assert_ne!(first, sni_for("*.example.com"));
    }
}
