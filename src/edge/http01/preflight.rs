//! The preflight: before asking the CA to validate, fetch a test token the way the CA will, through the public path
//! (`http://<name>/.well-known/acme-challenge/<token>` on port 80, that is HAProxy's plain frontend). A broken route fails
//! here, in a second, with its cause, instead of as a failed authorization that counts against the CA's limits.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(5);
/// A key authorization is under 200 bytes; anything much longer is some other page.
const MAX_BODY: usize = 4096;

/// Why the public path does not deliver a token.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "http://{domain}{path} answered {status} with a redirect to {location}: a redirect rule shadows the challenge path; give it `unless {{ path_beg /.well-known/acme-challenge/ }}` (see `hapcert haproxy-config`)"
    )]
    Redirect {
        domain: String,
        path: String,
        status: u16,
        location: String,
    },
    #[error(
        "http://{domain}{path} answered 503: HAProxy has no server up for the challenge path; if its backend has a health check, remove `check` from that server (hapcert listens only while it orders)"
    )]
    Unavailable { domain: String, path: String },
    #[error("http://{domain}{path} answered {status} instead of the token; the challenge path does not reach hapcert")]
    Status { domain: String, path: String, status: u16 },
    #[error(
        "http://{domain}{path} answered 200 with the wrong body ({body:?}); the challenge path reaches something other than hapcert"
    )]
    WrongBody { domain: String, path: String, body: String },
    #[error("http://{domain}{path} via {address}: {reason}")]
    Unreachable {
        domain: String,
        path: String,
        address: String,
        reason: String,
    },
}

/// A fresh random token, base64url like the CA's.
pub fn random_token() -> String {
    let mut bytes = [0u8; 24];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG works");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Fetches the challenge path for `token` as the CA would for `domain`, and checks that the body is `expected`.
/// `address` replaces the name's own port-80 address; the domain still goes in the Host header.
pub async fn fetch_token(
    domain: &str,
    address: Option<SocketAddr>,
    token: &str,
    expected: &str,
) -> Result<(), PreflightError> {
    let path = format!("/.well-known/acme-challenge/{token}");
    let target = address.map_or_else(|| format!("{domain}:80"), |a| a.to_string());
    let unreachable = |reason: String| PreflightError::Unreachable {
        domain: domain.to_owned(),
        path: path.clone(),
        address: target.clone(),
        reason,
    };
    let (status, location, body) = match tokio::time::timeout(TIMEOUT, fetch(&target, domain, &path)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(err)) => return Err(unreachable(format!("{err:#}"))),
        Err(_) => return Err(unreachable(format!("no answer within {}s", TIMEOUT.as_secs()))),
    };
    let (domain, path) = (domain.to_owned(), path.clone());
    match status {
        s if s.is_redirection() => Err(PreflightError::Redirect {
            domain,
            path,
            status: s.as_u16(),
            location,
        }),
        StatusCode::SERVICE_UNAVAILABLE => Err(PreflightError::Unavailable { domain, path }),
        StatusCode::OK if body.trim_end() == expected => Ok(()),
        StatusCode::OK => Err(PreflightError::WrongBody {
            domain,
            path,
            body: body.chars().take(80).collect(),
        }),
        s => Err(PreflightError::Status {
            domain,
            path,
            status: s.as_u16(),
        }),
    }
}

async fn fetch(target: &str, host: &str, path: &str) -> anyhow::Result<(StatusCode, String, String)> {
    let stream = TcpStream::connect(target).await.context("cannot connect")?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let request = Request::get(path)
        .header("host", host)
        .header("user-agent", "hapcert-preflight")
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await.context("no HTTP answer")?;
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_owned();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the answer: {e}"))?
        .to_bytes();
    driver.abort();
    Ok((status, location, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP server that answers every connection with `reply`.
    async fn answering(reply: &'static str) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(reply.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn each_broken_route_is_named() {
        let ok = answering("HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\ntok.abc").await;
        fetch_token("a.example.com", Some(ok), "tok", "tok.abc").await.unwrap();

        let redirect =
            answering("HTTP/1.1 301 Moved\r\nlocation: https://a.example.com/\r\ncontent-length: 0\r\n\r\n").await;
        let err = fetch_token("a.example.com", Some(redirect), "tok", "tok.abc")
            .await
            .unwrap_err();
        assert!(matches!(err, PreflightError::Redirect { status: 301, .. }), "{err}");
        assert!(err.to_string().contains("redirect to https://a.example.com/"), "{err}");

        let down = answering("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
        let err = fetch_token("a.example.com", Some(down), "tok", "tok.abc")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("remove `check`"), "{err}");

        let other = answering("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
        assert!(matches!(
            fetch_token("a.example.com", Some(other), "tok", "tok.abc").await,
            Err(PreflightError::WrongBody { .. })
        ));

        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = fetch_token("a.example.com", Some(closed), "tok", "tok.abc")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cannot connect"), "{err}");
    }

    #[test]
    fn tokens_are_base64url() {
        let token = random_token();
        assert_eq!(token.len(), 32);
        assert!(token.bytes().all(crate::core::config::is_base64url));
        assert_ne!(token, random_token());
    }
}
