//! The e-mail channel: a plain-text message whose subject is the notice's one line, through the local sendmail (like
//! cron's mail) or an SMTP relay, with STARTTLS required unless the config turns it off. The SMTP password is read
//! from its file at each delivery and never logged.

use std::fs;
use std::path::Path;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSendmailTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Notice;
use crate::core::config::{EmailConfig, EmailTransport, Located};

/// The plain-text body: the line, then every field on its own line, then the message in full.
pub fn body(notice: &Notice) -> String {
    let event = &notice.event;
    let or_dash = |value: Option<&str>| value.unwrap_or("-").to_owned();
    let fields = [
        ("event", event.kind.name().to_owned()),
        ("status", notice.status.name().to_owned()),
        ("certificate", or_dash(event.certificate.as_deref())),
        ("source", event.source.name().to_owned()),
        (
            "names",
            if event.names.is_empty() {
                "-".to_owned()
            } else {
                event.names.join(", ")
            },
        ),
        ("served serial", or_dash(event.served_serial.as_deref())),
        ("expected serial", or_dash(event.expected_serial.as_deref())),
        (
            "days left",
            event.days_left.map_or_else(|| "-".to_owned(), |d| format!("{d:.1}")),
        ),
        ("host", notice.host.clone()),
        ("at", notice.at_rfc3339()),
    ];
    let mut text = format!("{}\n\n", notice.text());
    for (name, value) in fields {
        text.push_str(&format!("{:<16} {value}\n", format!("{name}:")));
    }
    text.push_str(&format!("\n{}\n\n-- \nhapcert on {}\n", event.message, notice.host));
    text
}

fn message(email: &EmailConfig, notice: &Notice) -> Result<Message, String> {
    let mailbox = |address: &str| {
        address
            .parse::<Mailbox>()
            .map_err(|err| format!("'{address}' is not an address lettre accepts: {err}"))
    };
    let mut builder = Message::builder()
        .from(mailbox(&email.from)?)
        .subject(notice.text())
        .header(ContentType::TEXT_PLAIN);
    for to in &email.to {
        builder = builder.to(mailbox(to)?);
    }
    builder
        .body(body(notice))
        .map_err(|err| format!("cannot build the message: {err}"))
}

pub async fn send(email: &EmailConfig, notice: &Notice, timeout: Duration) -> Result<(), String> {
    let message = message(email, notice)?;
    let sending = async {
        match &email.transport {
            EmailTransport::Sendmail { command } => AsyncSendmailTransport::<Tokio1Executor>::new_with_command(command)
                .send(message)
                .await
                .map(drop)
                .map_err(|err| format!("{command}: {}", err.to_string().trim())),
            EmailTransport::Smtp {
                host,
                port,
                starttls,
                username,
                password_file,
                ca_bundle,
            } => {
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                    .port(*port)
                    .timeout(Some(timeout));
                builder = if *starttls {
                    builder.tls(Tls::Required(tls_parameters(host, ca_bundle.as_ref())?))
                } else {
                    builder.tls(Tls::None)
                };
                if let (Some(username), Some(password_file)) = (username, password_file) {
                    builder = builder.credentials(Credentials::new(username.clone(), password(password_file)?));
                }
                builder
                    .build()
                    .send(message)
                    .await
                    .map(drop)
                    .map_err(|err| format!("SMTP {host}:{port}: {}", without_repeats(&err.to_string())))
            }
        }
    };
    match tokio::time::timeout(timeout, sending).await {
        Ok(result) => result,
        Err(_) => Err(format!("not sent within {}", humantime::format_duration(timeout))),
    }
}

/// The system's roots, and those of `ca_bundle` for a relay with a private CA.
fn tls_parameters(host: &str, ca_bundle: Option<&Located<std::path::PathBuf>>) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(bundle) = ca_bundle {
        let pem = read(&bundle.value, "CA bundle")?;
        let roots = Certificate::from_pem(&pem)
            .map_err(|err| format!("the CA bundle {} is not PEM: {err}", bundle.value.display()))?;
        builder = builder.add_root_certificate(roots);
    }
    builder
        .build_rustls()
        .map_err(|err| format!("TLS setup for {host}: {err}"))
}

/// The first line of the password file. The error names the file, never its content.
fn password(file: &Located<std::path::PathBuf>) -> Result<String, String> {
    let bytes = read(&file.value, "SMTP password file")?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("the SMTP password file {} is not UTF-8", file.value.display()))?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(format!(
            "the SMTP password file {} has an empty first line",
            file.value.display()
        ));
    }
    Ok(line.to_owned())
}

/// lettre nests its error kinds: "Connection error: Connection error: invalid peer certificate" says it once.
fn without_repeats(text: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|err| format!("cannot read the {what} {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use time::macros::datetime;

    use super::*;
    use crate::core::config::Position;
    use crate::core::state::monitor::{Event, Source};
    use crate::notify::{EventKind, Phase};

    fn notice() -> Notice {
        Notice {
            event: Event {
                kind: EventKind::Critical,
                certificate: Some("www".to_owned()),
                source: Source::Managed,
                names: vec!["example.com".to_owned(), "www.example.com".to_owned()],
                served_serial: Some("0a".to_owned()),
                expected_serial: None,
                days_left: Some(2.96),
                message: "expires in 3.0 days; renewals keep failing".to_owned(),
            },
            status: Phase::Firing,
            host: "lb1".to_owned(),
            at: datetime!(2025-06-01 12:00 UTC),
        }
    }

    #[test]
    fn the_body_lists_every_field() {
        assert_eq!(
            body(&notice()),
            "[hapcert lb1] CRITICAL www: expires in 3.0 days; renewals keep failing\n\
             \n\
             event:           critical\n\
             status:          firing\n\
             certificate:     www\n\
             source:          managed\n\
             names:           example.com, www.example.com\n\
             served serial:   0a\n\
             expected serial: -\n\
             days left:       3.0\n\
             host:            lb1\n\
             at:              2025-06-01T12:00:00Z\n\
             \n\
             expires in 3.0 days; renewals keep failing\n\
             \n\
             -- \n\
             hapcert on lb1\n"
        );
    }

    #[test]
    fn the_message_has_the_line_as_subject() {
        let email = EmailConfig {
            to: vec!["ops@example.com".to_owned(), "sec@example.com".to_owned()],
            from: "hapcert@lb1.example.com".to_owned(),
            transport: EmailTransport::Sendmail {
                command: "/usr/sbin/sendmail".to_owned(),
            },
        };
        let text = String::from_utf8(message(&email, &notice()).unwrap().formatted()).unwrap();
        // A long subject is folded (RFC 5322); unfolding removes the line break before the whitespace.
        let text = text.replace("\r\n ", " ");
        assert!(text.contains("From: hapcert@lb1.example.com\r\n"), "{text}");
        assert!(text.contains("To: ops@example.com, sec@example.com\r\n"), "{text}");
        assert!(
            text.contains("Subject: [hapcert lb1] CRITICAL www: expires in 3.0 days; renewals keep failing\r\n"),
            "{text}"
        );
        assert!(text.contains("Content-Type: text/plain; charset=utf-8\r\n"), "{text}");
    }

    #[test]
    fn a_repeated_error_kind_is_said_once() {
        assert_eq!(
            without_repeats("Connection error: Connection error: invalid peer certificate: UnknownIssuer"),
            "Connection error: invalid peer certificate: UnknownIssuer"
        );
    }

    #[test]
    fn the_password_is_the_first_line_and_never_in_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let located = |path: PathBuf| Located {
            value: path,
            at: Position::default(),
            key: "notify[0].password_file".to_owned(),
        };
        let file = dir.path().join("password");
        fs::write(&file, "s3cret\r\nsecond line\n").unwrap();
        assert_eq!(password(&located(file.clone())).unwrap(), "s3cret");

        fs::write(&file, "\ns3cret\n").unwrap();
        let err = password(&located(file)).unwrap_err();
        assert!(err.contains("empty first line") && !err.contains("s3cret"), "{err}");

        let err = password(&located(dir.path().join("missing"))).unwrap_err();
        assert!(err.starts_with("cannot read the SMTP password file "), "{err}");
    }
}
