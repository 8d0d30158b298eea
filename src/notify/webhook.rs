//! The webhook channel: one JSON POST. The `text` field is what Slack's and Mattermost's incoming webhooks show; the
//! other fields are for anything that reads JSON (Alertmanager-style receivers, a ticket system, a script).

use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::Notice;
use crate::edge::shell::with_tail;

/// How much of a refusing server's answer goes into the error.
const BODY_TAIL: usize = 300;

/// The JSON body.
pub fn payload(notice: &Notice) -> serde_json::Value {
    let event = &notice.event;
    serde_json::json!({
        "event": event.kind.name(),
        "status": notice.status.name(),
        "certificate": event.certificate,
        "source": event.source.name(),
        "names": event.names,
        "served_serial": event.served_serial,
        "expected_serial": event.expected_serial,
        "days_left": event.days_left,
        "message": event.message,
        "host": notice.host,
        "at": notice.at_rfc3339(),
        "text": notice.text(),
    })
}

/// POSTs the notice to `url`; a 2xx answer within `timeout` is success.
pub async fn send(url: &str, notice: &Notice, timeout: Duration) -> Result<(), String> {
    let connector = HttpsConnectorBuilder::new()
        .try_with_platform_verifier()
        .map_err(|err| format!("cannot load the system's root certificates: {err}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let body = serde_json::to_vec(&payload(notice)).map_err(|err| format!("cannot encode the payload: {err}"))?;
    let request = Request::post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, concat!("hapcert/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(Bytes::from(body)))
        .map_err(|err| format!("cannot make a request of the URL: {err}"))?;

    let exchange = async {
        let response = client.request(request).await.map_err(|err| error_chain(&err))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        let answer = format!("the server answered {status}");
        Err(with_tail(answer, &String::from_utf8_lossy(&body), BODY_TAIL))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {}", humantime::format_duration(timeout))),
    }
}

/// hyper's errors say little at the top ("client error (Connect)"): the cause is further down.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::core::state::monitor::{Event, Source};
    use crate::notify::{EventKind, Phase};

    #[test]
    fn the_payload_carries_every_field_and_the_text() {
        let notice = Notice {
            event: Event {
                kind: EventKind::DeployUnverified,
                certificate: Some("www".to_owned()),
                source: Source::Managed,
                names: vec!["example.com".to_owned(), "www.example.com".to_owned()],
                served_serial: Some("0a".to_owned()),
                expected_serial: Some("0b".to_owned()),
                days_left: Some(12.5),
                message: "HAProxy serves 0a, not the new 0b; the previous certificate is back".to_owned(),
            },
            status: Phase::Firing,
            host: "lb1".to_owned(),
            at: datetime!(2025-06-01 12:00 UTC),
        };
        assert_eq!(
            payload(&notice),
            serde_json::json!({
                "event": "deploy-unverified",
                "status": "firing",
                "certificate": "www",
                "source": "managed",
                "names": ["example.com", "www.example.com"],
                "served_serial": "0a",
                "expected_serial": "0b",
                "days_left": 12.5,
                "message": "HAProxy serves 0a, not the new 0b; the previous certificate is back",
                "host": "lb1",
                "at": "2025-06-01T12:00:00Z",
                "text": "[hapcert lb1] DEPLOY-UNVERIFIED www: HAProxy serves 0a, not the new 0b; the previous certificate is back",
            })
        );
    }
}
