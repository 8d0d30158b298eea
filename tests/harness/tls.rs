//! Blocking TLS client (rustls over std::net) for looking at what HAProxy and Pebble serve.

use std::io;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs, verify_tls12_signature, verify_tls13_signature};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<CryptoProvider> {
    // Explicit, so it does not matter which providers other crates switch on.
    Arc::new(aws_lc_rs::default_provider())
}

/// A client that trusts only the CA certificates in `roots_pem`.
pub fn verifying_config(roots_pem: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots.add(cert.expect("PEM trust anchor")).expect("usable trust anchor");
    }
    assert!(!roots.is_empty(), "no CERTIFICATE in the trust anchor PEM");
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A client that accepts any certificate (handshake signatures are still checked).
pub fn unverified_config() -> Arc<ClientConfig> {
    let provider = provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    // No session resumption: a resumed session reports the certificate of the session it resumes, not the one the
    // server would send now, and these handshakes exist to see what is served now.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// Connects to 127.0.0.1:`port`, completes a handshake for `server_name` (sent as SNI when it is a
/// DNS name) and returns the certificate chain the server sent.
pub fn handshake(
    port: u16,
    server_name: ServerName<'static>,
    config: Arc<ClientConfig>,
) -> io::Result<Vec<CertificateDer<'static>>> {
    let (conn, _sock) = connect(port, server_name, config)?;
    let chain = conn.peer_certificates().unwrap_or_default();
    Ok(chain.iter().map(|c| c.clone().into_owned()).collect())
}

/// The leaf certificate served on 127.0.0.1:`port` for `sni`, without any verification. Panics if the
/// handshake fails.
pub fn leaf_unverified(port: u16, sni: &str) -> Vec<u8> {
    let chain = handshake(port, server_name(sni), unverified_config())
        .unwrap_or_else(|e| panic!("TLS handshake with HAProxy for SNI {sni:?}: {e}"));
    chain.first().expect("server sent no certificate").to_vec()
}

/// A TCP connection to 127.0.0.1:`port` with a completed TLS handshake.
pub fn connect(
    port: u16,
    server_name: ServerName<'static>,
    config: Arc<ClientConfig>,
) -> io::Result<(ClientConnection, TcpStream)> {
    let mut conn = ClientConnection::new(config, server_name).map_err(io::Error::other)?;
    let mut sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    Ok((conn, sock))
}

/// Parses `name` as a DNS name or IP address for rustls, panicking with a clear message if it is neither.
pub fn server_name(name: &str) -> ServerName<'static> {
    ServerName::try_from(name.to_owned()).unwrap_or_else(|e| panic!("{name:?} is not a valid TLS server name: {e}"))
}

#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
