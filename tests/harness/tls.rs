//! Blocking TLS client (rustls over std::net) for looking at what HAProxy and Pebble serve.

use std::io;
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the sandbox's servers listen unless told otherwise.
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

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
    // hapcert's own probe client: accepts any certificate, never resumes a session.
    Arc::new(hapcert::edge::probe::observing_config(
        hapcert::edge::probe::ClientKind::Any,
    ))
}

/// Connects to 127.0.0.1:`port`, completes a handshake for `server_name` (sent as SNI when it is a
/// DNS name) and returns the certificate chain the server sent.
pub fn handshake(
    port: u16,
    server_name: ServerName<'static>,
    config: Arc<ClientConfig>,
) -> io::Result<Vec<CertificateDer<'static>>> {
    handshake_at(LOOPBACK, port, server_name, config)
}

/// [`handshake`] with a server on another address (a fleet node listens on its own 127.0.0.x).
pub fn handshake_at(
    addr: IpAddr,
    port: u16,
    server_name: ServerName<'static>,
    config: Arc<ClientConfig>,
) -> io::Result<Vec<CertificateDer<'static>>> {
    let (conn, _sock) = connect_at(addr, port, server_name, config)?;
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
    connect_at(LOOPBACK, port, server_name, config)
}

/// [`connect`] to `addr`:`port`.
pub fn connect_at(
    addr: IpAddr,
    port: u16,
    server_name: ServerName<'static>,
    config: Arc<ClientConfig>,
) -> io::Result<(ClientConnection, TcpStream)> {
    let mut conn = ClientConnection::new(config, server_name).map_err(io::Error::other)?;
    let mut sock = TcpStream::connect((addr, port))?;
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
