//! A minimal blocking HTTP/1.0 GET, plain or over TLS. HTTP/1.0 keeps it simple: servers answer
//! without chunked encoding and close the connection at the end of the body.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;

use rustls::StreamOwned;

use super::tls;

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Status line and header lines, as received.
    pub head: String,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// GET `url` (`http://127.0.0.1:<port>/path`). Panics on transport errors.
pub fn http_get(url: &str) -> HttpResponse {
    try_http_get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

pub fn try_http_get(url: &str) -> io::Result<HttpResponse> {
    let (host, port, path) = split_url(url, "http://")?;
    let mut sock = TcpStream::connect((host, port))?;
    sock.set_read_timeout(Some(tls::IO_TIMEOUT))?;
    exchange(&mut sock, &format!("{host}:{port}"), path)
}

/// GET `url` (`https://<host>:<port>/path`), trusting only the CA in the PEM file `ca_pem`. Panics on
/// transport or TLS errors.
pub fn https_get(url: &str, ca_pem: &Path) -> HttpResponse {
    try_https_get(url, ca_pem).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

pub fn try_https_get(url: &str, ca_pem: &Path) -> io::Result<HttpResponse> {
    let (host, port, path) = split_url(url, "https://")?;
    let roots = std::fs::read_to_string(ca_pem)?;
    let (conn, sock) = tls::connect(port, tls::server_name(host), tls::verifying_config(&roots))?;
    exchange(&mut StreamOwned::new(conn, sock), &format!("{host}:{port}"), path)
}

/// `authority` is `host:port`, sent whole as Host: servers that build URLs from it (Pebble's directory does) then
/// build ones that lead back to them.
fn exchange(stream: &mut impl ReadWrite, authority: &str, path: &str) -> io::Result<HttpResponse> {
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: hapcert-tests\r\n\r\n"
    )?;
    stream.flush()?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // Some TLS servers close without close_notify; what we got is still the whole response.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    parse(&raw)
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn parse(raw: &[u8]) -> io::Result<HttpResponse> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status code"))?;
    Ok(HttpResponse {
        status,
        head,
        body: raw[end + 4..].to_vec(),
    })
}

/// ("host", port, "/path") from `<scheme>host:port/path`.
fn split_url<'a>(url: &'a str, scheme: &str) -> io::Result<(&'a str, u16, &'a str)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidInput, format!("unsupported URL {url:?}"));
    let rest = url.strip_prefix(scheme).ok_or_else(bad)?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
    Ok((host, port.parse().map_err(|_| bad())?, path))
}
