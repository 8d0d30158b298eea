//! Requests that hapcert signs itself rather than through instant-acme: a JWS (RFC 7515, flattened JSON) with the
//! account's ES256 key (RFC 8555 §6.2), for what instant-acme cannot do: keyChange with a key stored before the CA
//! sees it (`account`), and the POST-as-GET of an alternate chain (`alternates`). The signature is aws-lc-rs's
//! fixed-size r||s form, which is what JWS wants for ES256 (RFC 7518 §3.4), not DER.

use anyhow::Context;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Method;
use instant_acme::{BodyWrapper, HttpClient};
use rustls_pki_types::PrivatePkcs8KeyDer;

use super::describe;
use super::http::CaHttp;

/// One request through `http` (so it is counted, traced and timed out like instant-acme's); the answer's head and
/// whole body, whatever its status, for the caller to judge.
pub(super) async fn send(
    http: &CaHttp,
    method: Method,
    url: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<(http::response::Parts, bytes::Bytes)> {
    let mut request = http::Request::builder().method(method.clone()).uri(url);
    if body.is_some() {
        request = request.header(http::header::CONTENT_TYPE, "application/jose+json");
    }
    let request = request.body(BodyWrapper::from(body.unwrap_or_default()))?;
    let mut response = http
        .request(request)
        .await
        .map_err(describe)
        .with_context(|| format!("{method} {url}"))?;
    let bytes = response
        .body
        .into_bytes()
        .await
        .map_err(|e| anyhow::anyhow!("{method} {url}: {e}"))?;
    Ok((response.parts, bytes))
}

/// The answer's `Replay-Nonce`: what the next signed request must carry.
pub(super) fn nonce_of(parts: &http::response::Parts) -> anyhow::Result<String> {
    parts
        .headers
        .get("replay-nonce")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .context("the CA sent no Replay-Nonce")
}

/// An account key ready to sign: instant-acme makes every account key ECDSA P-256.
pub(super) fn signing_key(der: &PrivatePkcs8KeyDer<'_>) -> anyhow::Result<EcdsaKeyPair> {
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.secret_pkcs8_der())
        .map_err(|e| anyhow::anyhow!("the account key is not an ECDSA P-256 key: {e}"))
}

/// The CA's directory, as JSON: where keyChange and newNonce are.
pub(super) async fn directory(http: &CaHttp, url: &str) -> anyhow::Result<serde_json::Value> {
    serde_json::from_slice(&send(http, Method::GET, url, None).await?.1)
        .with_context(|| format!("the ACME directory {url} is not JSON"))
}

/// A fresh nonce: a HEAD to the directory's `newNonce`.
pub(super) async fn fresh_nonce(http: &CaHttp, directory: &serde_json::Value, url: &str) -> anyhow::Result<String> {
    let new_nonce = directory["newNonce"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the ACME directory {url} names no newNonce"))?;
    nonce_of(&send(http, Method::HEAD, new_nonce, None).await?.0)
}

pub(super) fn jwk(key: &EcdsaKeyPair) -> serde_json::Value {
    // Uncompressed point: 0x04, x, y.
    let point = key.public_key().as_ref();
    serde_json::json!({
        "crv": "P-256",
        "kty": "EC",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    })
}

pub(super) fn jws(
    key: &EcdsaKeyPair,
    rng: &aws_lc_rs::rand::SystemRandom,
    protected: &serde_json::Value,
    payload: &[u8],
) -> anyhow::Result<serde_json::Value> {
    let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(protected)?);
    let payload = URL_SAFE_NO_PAD.encode(payload);
    let signature = key
        .sign(rng, format!("{protected}.{payload}").as_bytes())
        .map_err(|_| anyhow::anyhow!("signing a request to the CA failed"))?;
    Ok(serde_json::json!({
        "protected": protected,
        "payload": payload,
        "signature": URL_SAFE_NO_PAD.encode(signature.as_ref()),
    }))
}
