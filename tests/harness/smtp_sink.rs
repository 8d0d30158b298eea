//! An SMTP receiver on 127.0.0.1 that keeps every message: EHLO advertises STARTTLS, the upgrade uses rustls with a
//! certificate for 127.0.0.1 and localhost signed by a throwaway CA (`ca_pem`), or with a chain the test gives
//! (`serving`, replaced by `serve`), AUTH PLAIN is offered only over TLS, and
//! a MAIL before STARTTLS is refused, so a message that arrives proves the client spoke TLS.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::certs::listener_pki;
use super::process::poll_until;
use super::starttls_sink::server_config;
use super::webhook_sink::Acceptor;

/// One message as the sink received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The DATA, dot-unstuffed, CRLF line ends as sent.
    pub data: String,
    /// STARTTLS was done before MAIL.
    pub tls: bool,
    /// The (user, password) of AUTH PLAIN, if the client authenticated.
    pub auth: Option<(String, String)>,
}

impl Mail {
    /// A header's value, unfolded (RFC 5322 2.2.3); the first of that name.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.data.split_once("\r\n\r\n")?;
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", "\t");
        unfolded.split("\r\n").find_map(|line| {
            let (n, value) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    }

    /// The body as a mail reader shows it: decoded per its Content-Transfer-Encoding, with LF line ends.
    pub fn body(&self) -> String {
        let raw = self
            .data
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or_default();
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let decoded = match encoding.as_str() {
            "quoted-printable" => quoted_printable_decode(raw),
            "base64" => {
                let compact: String = raw.split_whitespace().collect();
                let bytes = STANDARD.decode(compact).expect("a base64 body");
                String::from_utf8(bytes).expect("a UTF-8 body")
            }
            _ => raw.to_owned(),
        };
        decoded.replace("\r\n", "\n")
    }
}

/// RFC 2045 6.7: `=` at a line end is a soft break, `=XX` a byte.
fn quoted_printable_decode(text: &str) -> String {
    let text = text.replace("=\r\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (byte, hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'=', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("a UTF-8 body")
}

struct Shared {
    mails: Mutex<Vec<Mail>>,
    /// Replaced by [`SmtpSink::serve`].
    tls: Mutex<Arc<ServerConfig>>,
}

pub struct SmtpSink {
    acceptor: Acceptor,
    ca_pem: String,
    shared: Arc<Shared>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let pki = listener_pki();
        SmtpSink::start_with(&format!("{}\n{}", pki.cert_pem, pki.key_pem), pki.ca_pem)
    }

    /// A sink whose STARTTLS serves `pem` (its certificates, leaf first, and its key) instead of the listener PKI's;
    /// its [`SmtpSink::ca_pem`] is then empty.
    pub fn serving(pem: &str) -> SmtpSink {
        SmtpSink::start_with(pem, String::new())
    }

    /// Serves `pem` from the next connection on, as a mail server whose certificate was renewed.
    pub fn serve(&self, pem: &str) {
        *self.shared.tls.lock().unwrap_or_else(PoisonError::into_inner) = server_config(pem);
    }

    fn start_with(pem: &str, ca_pem: String) -> SmtpSink {
        let shared = Arc::new(Shared {
            mails: Mutex::new(Vec::new()),
            tls: Mutex::new(server_config(pem)),
        });
        let acceptor = {
            let shared = shared.clone();
            Acceptor::start("SMTP sink", move |stream| {
                if let Err(err) = session(stream, &shared) {
                    eprintln!("smtp sink: session ended: {err}");
                }
            })
        };
        SmtpSink {
            acceptor,
            ca_pem,
            shared,
        }
    }

    pub fn port(&self) -> u16 {
        self.acceptor.port()
    }

    /// The CA that signed the sink's certificate, for the client's `ca_bundle`.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.shared.mails.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until at least `count` messages have arrived; panics after `timeout`.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Mail> {
        let arrived = poll_until(timeout, || self.mails().len() >= count);
        let mails = self.mails();
        assert!(
            arrived,
            "the SMTP sink got {} message(s), expected {count}",
            mails.len()
        );
        mails
    }
}

/// How a conversation on one stream ended.
enum Next<S> {
    /// The client asked for TLS: go on over it with the same TCP stream.
    StartTls(S),
    Closed,
}

/// What a session knows across the STARTTLS upgrade.
#[derive(Default)]
struct Envelope {
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    auth: Option<(String, String)>,
}

fn session(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut plain = stream.try_clone()?;
    write!(plain, "220 localhost hapcert test SMTP sink\r\n")?;
    let mut envelope = Envelope::default();
    match converse(stream, false, &mut envelope, shared)? {
        Next::Closed => Ok(()),
        Next::StartTls(stream) => {
            let tls = shared.tls.lock().unwrap_or_else(PoisonError::into_inner).clone();
            let connection = ServerConnection::new(tls).map_err(io::Error::other)?;
            // A new session after the upgrade (RFC 3207 4.2): nothing said before it counts.
            let mut envelope = Envelope::default();
            match converse(StreamOwned::new(connection, stream), true, &mut envelope, shared)? {
                Next::Closed => Ok(()),
                Next::StartTls(_) => Err(io::Error::other("STARTTLS twice")),
            }
        }
    }
}

fn converse<S: Read + Write>(stream: S, tls: bool, envelope: &mut Envelope, shared: &Shared) -> io::Result<Next<S>> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(Next::Closed);
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let argument = line.get(verb.len()..).unwrap_or("").trim();
        let reply = |reader: &mut BufReader<S>, text: &str| -> io::Result<()> {
            let out = reader.get_mut();
            out.write_all(text.as_bytes())?;
            out.flush()
        };
        match verb.as_str() {
            "EHLO" | "HELO" => {
                let offer = if tls { "250-AUTH PLAIN\r\n" } else { "250-STARTTLS\r\n" };
                reply(&mut reader, &format!("250-localhost\r\n{offer}250 8BITMIME\r\n"))?;
            }
            "STARTTLS" if !tls => {
                reply(&mut reader, "220 2.0.0 ready to start TLS\r\n")?;
                // The client says nothing more until the handshake, so the reader has nothing buffered.
                return Ok(Next::StartTls(reader.into_inner()));
            }
            "AUTH" if tls => {
                let Some(encoded) = argument.strip_prefix("PLAIN ") else {
                    reply(&mut reader, "504 5.5.4 only AUTH PLAIN with an initial response\r\n")?;
                    continue;
                };
                let decoded = STANDARD.decode(encoded.trim()).unwrap_or_default();
                let parts: Vec<String> = decoded
                    .split(|b| *b == 0)
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                if let [_, user, password] = parts.as_slice() {
                    envelope.auth = Some((user.clone(), password.clone()));
                    reply(&mut reader, "235 2.7.0 authenticated\r\n")?;
                } else {
                    reply(&mut reader, "501 5.5.2 malformed AUTH PLAIN\r\n")?;
                }
            }
            "MAIL" if !tls => reply(&mut reader, "530 5.7.0 must issue a STARTTLS command first\r\n")?,
            "MAIL" => {
                envelope.mail_from = Some(address(argument));
                envelope.rcpt_to.clear();
                reply(&mut reader, "250 2.1.0 ok\r\n")?;
            }
            "RCPT" if envelope.mail_from.is_some() => {
                envelope.rcpt_to.push(address(argument));
                reply(&mut reader, "250 2.1.5 ok\r\n")?;
            }
            "DATA" if !envelope.rcpt_to.is_empty() => {
                reply(&mut reader, "354 end data with <CR><LF>.<CR><LF>\r\n")?;
                let mut data = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line)? == 0 {
                        return Err(io::Error::other("connection closed in DATA"));
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                shared.mails.lock().unwrap_or_else(PoisonError::into_inner).push(Mail {
                    mail_from: envelope.mail_from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut envelope.rcpt_to),
                    data,
                    tls,
                    auth: envelope.auth.clone(),
                });
                reply(&mut reader, "250 2.0.0 queued\r\n")?;
            }
            "RSET" => {
                envelope.mail_from = None;
                envelope.rcpt_to.clear();
                reply(&mut reader, "250 2.0.0 ok\r\n")?;
            }
            "NOOP" => reply(&mut reader, "250 2.0.0 ok\r\n")?,
            "QUIT" => {
                reply(&mut reader, "221 2.0.0 bye\r\n")?;
                return Ok(Next::Closed);
            }
            _ => reply(&mut reader, "503 5.5.1 not now, or not at all\r\n")?,
        }
    }
}

/// `FROM:<a@b> SIZE=1` → `a@b`.
fn address(argument: &str) -> String {
    let start = argument.find('<').map_or(0, |i| i + 1);
    let end = argument[start..].find('>').map_or(argument.len(), |i| start + i);
    argument[start..end].to_owned()
}
