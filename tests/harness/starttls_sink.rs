//! A TLS server behind a plain-text upgrade on 127.0.0.1, for the probe's STARTTLS tests: an IMAP or POP3 greeting
//! and STARTTLS/STLS, or PostgreSQL's SSLRequest, then a TLS handshake with the certificate chain the test gives (and
//! may replace while the sink runs). Two servers that turn the upgrade down stand beside them: an SMTP server whose
//! EHLO offers no STARTTLS, and a PostgreSQL server without TLS, which answers `N`. The SMTP sink (smtp_sink.rs) does
//! SMTP's upgrade itself.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::crypto::aws_lc_rs;
use rustls::{ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::webhook_sink::Acceptor;

/// What the sink speaks before TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    /// `* OK` greeting, `<tag> STARTTLS`, `<tag> OK` (RFC 9051).
    Imap,
    /// `+OK` greeting, `STLS`, `+OK` (RFC 2595).
    Pop3,
    /// The 8-byte SSLRequest, answered `S`.
    Postgres,
    /// A multi-line 220 greeting and an EHLO answer without STARTTLS; STARTTLS itself is answered 502. Never TLS.
    SmtpWithoutStartTls,
    /// The SSLRequest answered `N`. Never TLS.
    PostgresWithoutTls,
}

pub struct StartTlsSink {
    acceptor: Acceptor,
    tls: Arc<Mutex<Arc<ServerConfig>>>,
}

impl StartTlsSink {
    /// A sink that speaks `upgrade`, then TLS with `pem`: its CERTIFICATE blocks (leaf first) and its key, like a
    /// `MonitorCert`'s PEM.
    pub fn start(upgrade: Upgrade, pem: &str) -> StartTlsSink {
        let tls = Arc::new(Mutex::new(server_config(pem)));
        let acceptor = {
            let tls = tls.clone();
            Acceptor::start("STARTTLS sink", move |stream| {
                let config = tls.lock().unwrap_or_else(PoisonError::into_inner).clone();
                if let Err(err) = session(stream, upgrade, config) {
                    eprintln!("starttls sink ({upgrade:?}): session ended: {err}");
                }
            })
        };
        StartTlsSink { acceptor, tls }
    }

    /// Serves `pem` from the next connection on, as a server whose certificate was renewed.
    pub fn serve(&self, pem: &str) {
        *self.tls.lock().unwrap_or_else(PoisonError::into_inner) = server_config(pem);
    }

    pub fn port(&self) -> u16 {
        self.acceptor.port()
    }

    /// `127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }
}

/// A rustls server that sends `pem`'s certificates (leaf first) with its private key.
pub(super) fn server_config(pem: &str) -> Arc<ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("the sink's certificate PEM");
    assert!(!chain.is_empty(), "no CERTIFICATE in the sink's PEM");
    let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("the sink's key PEM");
    let config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("the sink's certificate and key");
    Arc::new(config)
}

fn session(mut stream: TcpStream, upgrade: Upgrade, tls: Arc<ServerConfig>) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let upgraded = match upgrade {
        Upgrade::Imap => imap(&mut stream)?,
        Upgrade::Pop3 => pop3(&mut stream)?,
        Upgrade::Postgres | Upgrade::PostgresWithoutTls => postgres(&mut stream, upgrade == Upgrade::Postgres)?,
        Upgrade::SmtpWithoutStartTls => smtp_without_starttls(&mut stream)?,
    };
    if !upgraded {
        return Ok(());
    }
    let mut connection = ServerConnection::new(tls).map_err(io::Error::other)?;
    while connection.is_handshaking() {
        connection.complete_io(&mut stream)?;
    }
    // Whatever the server owes after the handshake (TLS 1.3 tickets); the probe hangs up without reading it.
    let _ = connection.complete_io(&mut stream);
    Ok(())
}

/// One command line, without its line end; `None` when the client hung up. The client says nothing after a command
/// until it has the answer, so nothing past the line is read away from the TLS handshake that may follow.
fn command(stream: &TcpStream) -> io::Result<Option<String>> {
    let mut line = String::new();
    let mut reader = BufReader::new(stream);
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    assert!(
        reader.buffer().is_empty(),
        "the client sent more than one line: {line:?}"
    );
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

fn say(stream: &mut TcpStream, text: &str) -> io::Result<()> {
    stream.write_all(text.as_bytes())?;
    stream.flush()
}

/// Whether the client asked for TLS and was told to go ahead.
fn imap(stream: &mut TcpStream) -> io::Result<bool> {
    say(
        stream,
        "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hapcert test IMAP sink ready\r\n",
    )?;
    while let Some(line) = command(stream)? {
        let (tag, verb) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        if verb.eq_ignore_ascii_case("STARTTLS") {
            say(stream, &format!("{tag} OK Begin TLS negotiation now\r\n"))?;
            return Ok(true);
        }
        say(stream, &format!("{tag} BAD only STARTTLS here\r\n"))?;
    }
    Ok(false)
}

fn pop3(stream: &mut TcpStream) -> io::Result<bool> {
    say(stream, "+OK hapcert test POP3 sink ready\r\n")?;
    while let Some(line) = command(stream)? {
        if line.eq_ignore_ascii_case("STLS") {
            say(stream, "+OK Begin TLS negotiation\r\n")?;
            return Ok(true);
        }
        say(stream, "-ERR only STLS here\r\n")?;
    }
    Ok(false)
}

fn postgres(stream: &mut TcpStream, with_tls: bool) -> io::Result<bool> {
    let mut request = [0u8; 8];
    stream.read_exact(&mut request)?;
    assert_eq!(
        request,
        [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f],
        "not PostgreSQL's SSLRequest (length 8, code 80877103)"
    );
    say(stream, if with_tls { "S" } else { "N" })?;
    if !with_tls {
        // A real server would now wait for a StartupMessage in plain text; the probe hangs up instead.
        let _ = stream.read(&mut [0u8; 64]);
    }
    Ok(with_tls)
}

fn smtp_without_starttls(stream: &mut TcpStream) -> io::Result<bool> {
    say(
        stream,
        "220-localhost ESMTP hapcert test sink\r\n220 no TLS on this one\r\n",
    )?;
    while let Some(line) = command(stream)? {
        let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let answer = match verb.as_str() {
            "EHLO" => "250-localhost greets you\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
            "STARTTLS" => "502 5.5.1 STARTTLS not offered\r\n",
            "QUIT" => {
                say(stream, "221 2.0.0 bye\r\n")?;
                return Ok(false);
            }
            _ => "503 5.5.1 not now\r\n",
        };
        say(stream, answer)?;
    }
    Ok(false)
}
