//! One DNS exchange: a message out and its answer back, over UDP, or TCP when the answer did not fit. With a TSIG key
//! the message is signed and the answer's signature checked; an answer that carries a TSIG error (BADSIG, BADKEY,
//! BADTIME) is reported as such, since that is what an operator must fix.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::TSigner;
use hickory_proto::rr::rdata::tsig::TsigError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one server is given to answer one message.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// Sends `message` to `server` and returns its answer. `signer` signs it with TSIG and checks the answer's signature.
pub async fn exchange(server: SocketAddr, mut message: Message, signer: Option<&TSigner>) -> anyhow::Result<Message> {
    let mut verifier = match signer {
        Some(signer) => message
            .finalize(signer, unix_now())
            .map_err(|err| anyhow::anyhow!("cannot sign the message with TSIG: {err}"))?,
        None => None,
    };
    let request = message
        .to_vec()
        .map_err(|err| anyhow::anyhow!("cannot encode the message: {err}"))?;
    let over_udp = tokio::time::timeout(ANSWER_TIMEOUT, udp(server, &request, message.id))
        .await
        .map_err(|_| anyhow::anyhow!("{server} did not answer within {}s (UDP)", ANSWER_TIMEOUT.as_secs()))??;
    let bytes = match Message::from_vec(&over_udp) {
        Ok(answer) if answer.truncation => tokio::time::timeout(ANSWER_TIMEOUT, tcp(server, &request))
            .await
            .map_err(|_| anyhow::anyhow!("{server} did not answer within {}s (TCP)", ANSWER_TIMEOUT.as_secs()))??,
        _ => over_udp,
    };
    let answer =
        Message::from_vec(&bytes).map_err(|err| anyhow::anyhow!("{server} sent an answer that is not DNS: {err}"))?;
    if let (Some(signer), Some(tsig)) = (signer, answer.signature())
        && let Some(error) = &tsig.data.error
    {
        bail!(
            "{server} rejected the TSIG key '{}': {}",
            key_name(signer),
            tsig_error(error, signer)
        );
    }
    if let Some(signer) = signer
        && answer.response_code == ResponseCode::NotAuth
        && answer.signature().is_none()
    {
        bail!(
            "{server} answered NOTAUTH without a signature: it does not know the TSIG key '{}' ({}), or is not \
             authoritative for the zone",
            key_name(signer),
            signer.algorithm()
        );
    }
    if signer.is_some() && answer.signature().is_none() {
        // A spoofed answer would be unsigned: what it says about the update cannot be trusted.
        bail!(
            "{server} answered {} without the TSIG signature it owes a signed request",
            answer.response_code
        );
    }
    if let Some(verifier) = verifier.as_mut() {
        verifier.verify(&bytes).map_err(|err| {
            anyhow::anyhow!("{server}'s answer carries a TSIG signature that does not check out: {err}")
        })?;
    }
    Ok(answer)
}

/// The key's name as the operator wrote it (without the root dot).
fn key_name(signer: &TSigner) -> String {
    signer.signer_name().to_string().trim_end_matches('.').to_owned()
}

/// What a TSIG error means, and what to do about it.
fn tsig_error(error: &TsigError, signer: &TSigner) -> String {
    match error {
        TsigError::BadSig => "BADSIG: the secret is wrong; copy the key's secret from the server's config into \
                              tsig_secret_file"
            .to_owned(),
        TsigError::BadKey => format!(
            "BADKEY: the server knows no key of that name with algorithm {}; check tsig_key_name and tsig_algorithm \
             against the server's `key` statement",
            signer.algorithm()
        ),
        TsigError::BadTime => "BADTIME: this host's clock and the server's differ by more than the allowed fudge; \
                               fix the clock (NTP) on one of them"
            .to_owned(),
        TsigError::BadTrunc => "BADTRUNC: the server refused the signature's length".to_owned(),
        TsigError::Unknown(code) => format!("TSIG error {code}"),
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

async fn udp(server: SocketAddr, request: &[u8], id: u16) -> anyhow::Result<Vec<u8>> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.context("cannot open a UDP socket")?;
    socket
        .connect(server)
        .await
        .with_context(|| format!("cannot reach {server}"))?;
    socket
        .send(request)
        .await
        .with_context(|| format!("cannot send to {server}"))?;
    let mut buffer = vec![0u8; 65_535];
    loop {
        let len = socket
            .recv(&mut buffer)
            .await
            .with_context(|| format!("no answer from {server}"))?;
        // A late answer to an earlier message on a reused port is not this one's.
        if len >= 2 && u16::from_be_bytes([buffer[0], buffer[1]]) == id {
            buffer.truncate(len);
            return Ok(buffer);
        }
    }
}

async fn tcp(server: SocketAddr, request: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(server)
        .await
        .with_context(|| format!("cannot reach {server} over TCP"))?;
    let len = u16::try_from(request.len()).context("the message is too long for DNS")?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    stream
        .write_all(&framed)
        .await
        .with_context(|| format!("cannot send to {server}"))?;
    let len = stream
        .read_u16()
        .await
        .with_context(|| format!("no answer from {server}"))?;
    let mut answer = vec![0u8; usize::from(len)];
    stream
        .read_exact(&mut answer)
        .await
        .with_context(|| format!("{server} closed the connection mid-answer"))?;
    Ok(answer)
}
