//! One HTTP/1.1 request and response on a connection that stays open for the next one: just enough
//! HTTP for the load generator (load.rs), which must tell a connection the server closed from other
//! failures. (http.rs speaks HTTP/1.0, one request per connection.)

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use rustls::{ClientConnection, StreamOwned};

pub type Conn = BufReader<StreamOwned<ClientConnection, TcpStream>>;

pub struct Response {
    pub status: u16,
    /// The server said `Connection: close`.
    pub close: bool,
}

pub struct ExchangeError {
    pub text: String,
    /// The server closed or reset the connection (rather than, say, timing out or sending garbage).
    pub closed: bool,
}

impl ExchangeError {
    fn io(what: &str, e: &io::Error) -> ExchangeError {
        let closed = matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        );
        ExchangeError {
            text: format!("{what}: {e}"),
            closed,
        }
    }

    fn eof(when: &str) -> ExchangeError {
        ExchangeError {
            text: format!("the server closed the connection {when}"),
            closed: true,
        }
    }

    fn bad(text: String) -> ExchangeError {
        ExchangeError { text, closed: false }
    }
}

/// Sends one `GET /` and reads the whole response, which must have a Content-Length (HAProxy's
/// `http-request return` has one). Leaves the connection ready for the next request.
pub fn exchange(stream: &mut Conn, host: &str, close: bool) -> Result<Response, ExchangeError> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hapcert-tests-load\r\n{connection}\r\n");
    let writer = stream.get_mut();
    (writer.write_all(request.as_bytes()).and_then(|()| writer.flush()))
        .map_err(|e| ExchangeError::io("write request", &e))?;

    let mut line = String::new();
    match stream.read_line(&mut line) {
        Ok(0) => return Err(ExchangeError::eof("before the response")),
        Ok(_) => {}
        Err(e) => return Err(ExchangeError::io("read status line", &e)),
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ExchangeError::bad(format!("bad status line {line:?}")))?;
    let (mut length, mut close) = (None, false);
    loop {
        line.clear();
        match stream.read_line(&mut line) {
            Ok(0) => return Err(ExchangeError::eof("in the response headers")),
            Ok(_) => {}
            Err(e) => return Err(ExchangeError::io("read headers", &e)),
        }
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break; // the empty line (anything else without a colon is not HTTP)
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.to_ascii_lowercase().contains("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ExchangeError::bad(format!("unexpected Transfer-Encoding: {value}")));
        }
    }
    let length = length.ok_or_else(|| ExchangeError::bad(format!("status {status} without Content-Length")))?;
    // HAProxy's answers here are tiny; a cap keeps a garbled length from allocating much.
    let mut body = vec![0; length.min(1 << 20)];
    stream
        .read_exact(&mut body)
        .map_err(|e| ExchangeError::io("read body", &e))?;
    Ok(Response { status, close })
}
