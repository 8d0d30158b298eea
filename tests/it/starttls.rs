//! The probe's handshakes after a STARTTLS dialogue (`hapcert::edge::probe::served_chain_over`), against servers on
//! real TCP with real TLS: the leaf served after each of the four upgrades, and again after the server's certificate was
//! replaced; servers that turn the upgrade down, named by the step; plain TLS against the sandbox's HAProxy, and a
//! dialogue mistakenly aimed at that TLS port.

use hapcert::core::config::StartTls;
use hapcert::edge::probe::{ClientKind, served_chain, served_chain_over};
use time::{Duration, OffsetDateTime};

use crate::harness::{MonitorCa, MonitorCert, Sandbox, SmtpSink, StartTlsSink, Upgrade};

/// A certificate for `name` that expires in 3 days, and the fresh one that replaces it.
fn expiring_and_renewed(name: &str) -> (MonitorCert, MonitorCert) {
    let ca = MonitorCa::new("hapcert starttls test CA");
    let now = OffsetDateTime::now_utc();
    let day = Duration::days(1);
    let expiring = ca.issue(&[name], now - 87 * day, now + 3 * day);
    let renewed = ca.issue(&[name], now - day, now + 89 * day);
    (expiring, renewed)
}

/// The chain `endpoint` serves for `name` after `starttls`; panics with the probe's error.
async fn chain(endpoint: &str, name: &str, starttls: StartTls) -> Vec<Vec<u8>> {
    served_chain_over(endpoint, name, ClientKind::Any, Some(starttls))
        .await
        .unwrap_or_else(|err| panic!("{} STARTTLS with {endpoint}: {err:#}", starttls.name()))
        .iter()
        .map(|cert| cert.to_vec())
        .collect()
}

/// The probe's whole error message for a dialogue that must fail.
async fn failure(endpoint: &str, starttls: Option<StartTls>) -> String {
    match served_chain_over(endpoint, "db.example.com", ClientKind::Any, starttls).await {
        Ok(chain) => panic!("{starttls:?} with {endpoint} was served {} certificate(s)", chain.len()),
        Err(err) => format!("{err:#}"),
    }
}

/// The sink speaks `upgrade` and serves a certificate expiring in 3 days; the probe reads that leaf, and the fresh one
/// once the sink serves it.
async fn leaf_then_renewal(upgrade: Upgrade, starttls: StartTls) {
    let name = format!("{}.example.com", starttls.name());
    let (expiring, renewed) = expiring_and_renewed(&name);
    let sink = StartTlsSink::start(upgrade, &expiring.pem);
    let endpoint = sink.endpoint();
    assert_eq!(
        chain(&endpoint, &name, starttls).await,
        vec![expiring.leaf_der.clone()],
        "the leaf served after {} STARTTLS, alone as the PEM holds it",
        starttls.name()
    );
    sink.serve(&renewed.pem);
    assert_eq!(
        chain(&endpoint, &name, starttls).await,
        vec![renewed.leaf_der],
        "the renewed leaf, on a new connection"
    );
}

#[tokio::test]
async fn smtp_starttls_reads_the_mail_servers_leaf_and_then_its_renewal() {
    let (expiring, renewed) = expiring_and_renewed("mail.example.com");
    let sink = SmtpSink::serving(&expiring.pem);
    let endpoint = format!("127.0.0.1:{}", sink.port());
    assert_eq!(
        chain(&endpoint, "mail.example.com", StartTls::Smtp).await,
        vec![expiring.leaf_der]
    );
    sink.serve(&renewed.pem);
    assert_eq!(
        chain(&endpoint, "mail.example.com", StartTls::Smtp).await,
        vec![renewed.leaf_der]
    );
    assert!(sink.mails().is_empty(), "the probe sends no mail");
}

#[tokio::test]
async fn imap_starttls_reads_the_leaf_and_then_its_renewal() {
    leaf_then_renewal(Upgrade::Imap, StartTls::Imap).await;
}

#[tokio::test]
async fn pop3_stls_reads_the_leaf_and_then_its_renewal() {
    leaf_then_renewal(Upgrade::Pop3, StartTls::Pop3).await;
}

#[tokio::test]
async fn postgres_ssl_request_reads_the_leaf_and_then_its_renewal() {
    leaf_then_renewal(Upgrade::Postgres, StartTls::Postgres).await;
}

#[tokio::test]
async fn an_smtp_server_without_starttls_is_named_at_the_ehlo_step() {
    let (cert, _) = expiring_and_renewed("mail.example.com");
    let sink = StartTlsSink::start(Upgrade::SmtpWithoutStartTls, &cert.pem);
    let endpoint = sink.endpoint();
    assert_eq!(
        failure(&endpoint, Some(StartTls::Smtp)).await,
        format!(
            "{endpoint} does not offer STARTTLS after EHLO (250-localhost greets you 250-PIPELINING 250 8BITMIME): is \
             this the mail server's SMTP port (25) or submission port (587), and is TLS set up in it?"
        )
    );
}

#[tokio::test]
async fn a_postgres_server_without_tls_answers_n_and_the_message_says_where_to_turn_it_on() {
    let (cert, _) = expiring_and_renewed("db.example.com");
    let sink = StartTlsSink::start(Upgrade::PostgresWithoutTls, &cert.pem);
    let endpoint = sink.endpoint();
    assert_eq!(
        failure(&endpoint, Some(StartTls::Postgres)).await,
        format!(
            "{endpoint} answered PostgreSQL's SSLRequest with N: the server has no TLS; set ssl = on, with \
             ssl_cert_file and ssl_key_file, in its postgresql.conf"
        )
    );
}

#[tokio::test]
async fn a_protocol_spoken_to_the_wrong_server_names_what_it_heard() {
    // IMAP's dialogue to a POP3 server: the greeting is not IMAP's.
    let (cert, _) = expiring_and_renewed("pop3.example.com");
    let pop3 = StartTlsSink::start(Upgrade::Pop3, &cert.pem);
    let endpoint = pop3.endpoint();
    assert_eq!(
        failure(&endpoint, Some(StartTls::Imap)).await,
        format!(
            "{endpoint} did not answer the IMAP greeting in IMAP ('+OK hapcert test POP3 sink ready'): is this a port \
             where IMAP offers STARTTLS (143)? Where TLS starts with the connection (993), leave starttls out"
        )
    );
    // A STARTTLS port probed as TLS from the first byte: the server's greeting is no TLS record.
    let smtp = SmtpSink::serving(&cert.pem);
    let endpoint = format!("127.0.0.1:{}", smtp.port());
    let message = failure(&endpoint, None).await;
    assert!(
        message.starts_with(&format!("TLS handshake with {endpoint} (SNI db.example.com) failed")),
        "{message}"
    );
}

#[tokio::test]
async fn plain_tls_reads_haproxy_and_a_dialogue_aimed_at_its_tls_port_names_the_greeting_it_waited_for() {
    let sandbox = Sandbox::start();
    let (cert, _) = expiring_and_renewed("plain.example.com");
    sandbox.put_cert("plain.pem", &cert);
    sandbox.reload_haproxy();
    let https = sandbox.https_endpoint();

    let over = served_chain_over(&https, "plain.example.com", ClientKind::Any, None)
        .await
        .unwrap_or_else(|err| panic!("TLS with HAProxy at {https}: {err:#}"));
    assert_eq!(
        over[0].as_ref(),
        cert.leaf_der.as_slice(),
        "HAProxy's leaf for the name"
    );
    let plain = served_chain(&https, "plain.example.com", ClientKind::Any)
        .await
        .unwrap();
    assert_eq!(plain, over, "served_chain is served_chain_over without STARTTLS");

    // HAProxy waits for a ClientHello and says nothing, so an SMTP greeting never comes: the timeout says so.
    let started = std::time::Instant::now();
    assert_eq!(
        failure(&https, Some(StartTls::Smtp)).await,
        format!(
            "{https} did not answer within 5s while hapcert waited for the SMTP greeting (220): is this a port where \
             SMTP offers STARTTLS (25, 587)? Where TLS starts with the connection (465), leave starttls out"
        )
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(7),
        "one timeout for the whole probe"
    );
}
