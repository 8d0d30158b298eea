//! The JSON of etcd's gateway: base64 keys and values, int64 numbers as strings, and zero or false fields left out
//! (no `kvs` on a miss, no `succeeded` on a failed transaction). Only this file knows that shape.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::Deserializer;
use serde::{Deserialize, Serialize};

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn unb64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    STANDARD.decode(text).map_err(serde::de::Error::custom)
}

/// An int64 as the gateway writes it (a string), or as a plain number.
fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Text(String),
        Number(i64),
    }
    match Int::deserialize(d)? {
        Int::Number(n) => Ok(n),
        Int::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Deserialize, Default, Debug)]
pub struct Header {
    #[serde(default, deserialize_with = "int")]
    pub revision: i64,
}

#[derive(Deserialize, Debug)]
pub struct Kv {
    #[serde(deserialize_with = "unb64")]
    pub key: Vec<u8>,
    #[serde(default, deserialize_with = "unb64")]
    pub value: Vec<u8>,
    #[serde(default, deserialize_with = "int")]
    pub create_revision: i64,
    #[serde(default, deserialize_with = "int")]
    pub mod_revision: i64,
    #[serde(default, deserialize_with = "int")]
    pub version: i64,
    #[serde(default, deserialize_with = "int")]
    pub lease: i64,
}

#[derive(Serialize, Default)]
pub struct RangeRequest {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

#[derive(Deserialize, Default, Debug)]
pub struct RangeResponse {
    #[serde(default)]
    pub header: Header,
    #[serde(default)]
    pub kvs: Vec<Kv>,
}

#[derive(Serialize)]
pub struct PutRequest {
    pub key: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
}

#[derive(Deserialize, Default, Debug)]
pub struct PutResponse {
    #[serde(default)]
    pub header: Header,
}

#[derive(Serialize)]
pub struct DeleteRequest {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_end: Option<String>,
}

#[derive(Deserialize, Default, Debug)]
pub struct DeleteResponse {
    #[serde(default, deserialize_with = "int")]
    pub deleted: i64,
}

#[derive(Serialize)]
pub struct CompareJson {
    pub target: &'static str,
    pub key: String,
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mod_revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Serialize)]
pub enum RequestOp {
    #[serde(rename = "request_range")]
    Range(RangeRequest),
    #[serde(rename = "request_put")]
    Put(PutRequest),
    #[serde(rename = "request_delete_range")]
    Delete(DeleteRequest),
}

#[derive(Serialize)]
pub struct TxnRequest {
    pub compare: Vec<CompareJson>,
    pub success: Vec<RequestOp>,
    pub failure: Vec<RequestOp>,
}

#[derive(Deserialize, Debug)]
pub enum ResponseOp {
    #[serde(rename = "response_range")]
    Range(RangeResponse),
    #[serde(rename = "response_put")]
    Put(serde::de::IgnoredAny),
    #[serde(rename = "response_delete_range")]
    Delete(DeleteResponse),
}

#[derive(Deserialize, Default, Debug)]
pub struct TxnResponse {
    #[serde(default)]
    pub header: Header,
    #[serde(default)]
    pub succeeded: bool,
    #[serde(default)]
    pub responses: Vec<ResponseOp>,
}

#[derive(Serialize)]
pub struct LeaseGrantRequest {
    #[serde(rename = "TTL")]
    pub ttl: String,
}

#[derive(Serialize)]
pub struct LeaseIdRequest {
    #[serde(rename = "ID")]
    pub id: String,
}

#[derive(Deserialize, Default, Debug)]
pub struct LeaseResponse {
    #[serde(default, rename = "ID", deserialize_with = "int")]
    pub id: i64,
    #[serde(default, rename = "TTL", deserialize_with = "int")]
    pub ttl: i64,
    #[serde(default)]
    pub error: String,
}

/// One line of a stream (keep-alive, watch): `{"result": ...}`, or `{"error": ...}` when the stream failed.
#[derive(Deserialize, Debug)]
pub struct StreamLine<T> {
    pub result: Option<T>,
    pub error: Option<serde_json::Value>,
}

#[derive(Serialize)]
pub struct AuthRequest<'a> {
    pub name: &'a str,
    pub password: &'a str,
}

#[derive(Deserialize, Debug)]
pub struct AuthResponse {
    #[serde(default)]
    pub token: String,
}

#[derive(Serialize)]
pub struct WatchCreate {
    pub create_request: WatchCreateRequest,
}

#[derive(Serialize)]
pub struct WatchCreateRequest {
    pub key: String,
    pub range_end: String,
    pub start_revision: String,
}

#[derive(Deserialize, Debug)]
pub struct WatchResponse {
    #[serde(default)]
    pub canceled: bool,
    #[serde(default, deserialize_with = "int")]
    pub compact_revision: i64,
    #[serde(default)]
    pub cancel_reason: String,
    #[serde(default)]
    pub events: Vec<Event>,
}

#[derive(Deserialize, Debug)]
pub struct Event {
    /// Absent for a put (the enum's zero value), "DELETE" for a delete.
    #[serde(default, rename = "type")]
    pub kind: String,
    pub kv: Kv,
}

/// An error answer: `{"error": "...", "message": "...", "code": N}` (a gRPC status code).
#[derive(Deserialize, Debug, Default)]
pub struct ErrorAnswer {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: i64,
}

impl ErrorAnswer {
    pub fn text(&self) -> &str {
        if self.message.is_empty() {
            &self.error
        } else {
            &self.message
        }
    }
}
