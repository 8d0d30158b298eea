//! Notifications delivered to real receivers on loopback: a webhook listener, an SMTP server that requires STARTTLS,
//! a sendmail stand-in and an exec command. `hapcert notify test` is run as the binary; the repeat rules are driven
//! through the library's `notify` with chosen clocks against the same receivers. No Pebble or HAProxy is needed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use hapcert::core::config::Config;
use hapcert::core::state::monitor::{Event, Source};
use hapcert::edge::store::StateDir;
use hapcert::notify::{EventKind, Scope, notify};
use tempfile::TempDir;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;

use crate::harness::{SmtpSink, WebhookSink, assert_exit, free_port, run_echoed, stdout};

const WAIT: Duration = Duration::from_secs(10);
const T0: OffsetDateTime = datetime!(2025-06-01 12:00 UTC);
const HOUR: time::Duration = time::Duration::HOUR;

/// A directory with a config that parses (a CA that is never asked, one certificate) and the given `[[notify]]` tables.
struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            dir: tempfile::Builder::new()
                .prefix("hapcert-it-notify-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config_text(&self, notify_tables: &str) -> String {
        format!(
            r#"[acme]
directory = "https://127.0.0.1:1/dir"

[state]
dir = {state}

[[certificate]]
name = "www"
domains = ["www.example.com", "example.com"]

{notify_tables}"#,
            state = toml_string(&self.path("state"))
        )
    }

    fn write_config(&self, notify_tables: &str) -> PathBuf {
        let path = self.path("hapcert.toml");
        fs::write(&path, self.config_text(notify_tables)).expect("write the config");
        path
    }

    fn config(&self, notify_tables: &str) -> Config {
        let path = self.write_config(notify_tables);
        Config::parse(&self.config_text(notify_tables), &path).unwrap_or_else(|e| panic!("config: {e}"))
    }

    fn state(&self) -> StateDir {
        StateDir::create(&self.path("state")).expect("state dir")
    }

    /// `hapcert --config <config> [--log-level trace] notify test`.
    fn notify_test(&self, notify_tables: &str, trace: bool) -> Output {
        let config = self.write_config(notify_tables);
        let mut args = vec!["--config", config.to_str().expect("UTF-8 path")];
        if trace {
            args.extend(["--log-level", "trace"]);
        }
        args.extend(["notify", "test"]);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hapcert"));
        cmd.args(&args)
            .env_remove("HAPCERT_CONFIG")
            .env_remove("HAPCERT_LOG")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        run_echoed(
            "hapcert",
            &args,
            cmd,
            &self.path("notify-test"),
            Duration::from_secs(60),
        )
    }
}

fn toml_string(path: &Path) -> String {
    serde_json::to_string(path.to_str().expect("UTF-8 path")).expect("a string serializes")
}

fn webhook_table(url: &str, extra: &str) -> String {
    format!(
        "[[notify]]\nkind = \"webhook\"\nurl = {}\n{extra}\n",
        serde_json::to_string(url).unwrap()
    )
}

fn exec_table(command: &str, extra: &str) -> String {
    format!(
        "[[notify]]\nkind = \"exec\"\ncommand = {}\n{extra}\n",
        serde_json::to_string(command).unwrap()
    )
}

fn critical() -> Event {
    Event {
        kind: EventKind::Critical,
        certificate: Some("www".to_owned()),
        source: Source::Managed,
        names: vec!["www.example.com".to_owned(), "example.com".to_owned()],
        served_serial: Some("0a1b".to_owned()),
        expected_serial: Some("0a1b".to_owned()),
        days_left: Some(3.0),
        message: "expires in 3.0 days".to_owned(),
    }
}

fn check_www() -> Scope {
    Scope::Check {
        certificates: vec!["www".to_owned()],
        watched: Vec::new(),
        inventory: false,
    }
}

/// The `host` field, checked to be a short host name, and the `text` line checked to start with it.
fn host_of(body: &serde_json::Value) -> String {
    let host = body["host"].as_str().expect("host is a string").to_owned();
    assert!(!host.is_empty() && !host.contains('.'), "{body}");
    host
}

#[test]
fn notify_test_posts_the_test_event_to_a_webhook() {
    let setup = Setup::new();
    let sink = WebhookSink::start();
    let out = setup.notify_test(&webhook_table(&sink.url(), ""), false);
    assert_exit(&out, 0);
    // The secret part of the URL stays out of the output.
    assert_eq!(
        stdout(&out),
        format!("ok     webhook http://127.0.0.1:{}/...\n", sink.port())
    );

    let requests = sink.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/T000/B000/secret-token");
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    let host = host_of(&body);
    assert_eq!(body["event"], "test");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["certificate"], serde_json::Value::Null);
    assert_eq!(body["names"], serde_json::json!([]));
    assert_eq!(body["days_left"], serde_json::Value::Null);
    assert_eq!(
        body["message"],
        "a test notification from `hapcert notify test`; this channel works"
    );
    assert_eq!(
        body["text"],
        format!("[hapcert {host}] TEST hapcert: a test notification from `hapcert notify test`; this channel works")
    );
    let at = OffsetDateTime::parse(body["at"].as_str().expect("at is a string"), &Rfc3339).expect("at is RFC 3339");
    assert!(
        (OffsetDateTime::now_utc() - at).abs() < time::Duration::minutes(5),
        "{at}"
    );
}

#[test]
fn notify_test_mails_through_smtp_with_starttls_and_authenticates() {
    let setup = Setup::new();
    let sink = SmtpSink::start();
    fs::write(setup.path("smtp-ca.pem"), sink.ca_pem()).unwrap();
    fs::write(setup.path("smtp-password"), "s3cret-pw\n").unwrap();
    let table = format!(
        r#"[[notify]]
kind = "email"
to = ["ops@example.com", "mailto:sec@example.com"]
from = "hapcert@lb1.example.com"
smtp_host = "127.0.0.1"
smtp_port = {port}
username = "hapcert"
password_file = "smtp-password"
ca_bundle = "smtp-ca.pem"
"#,
        port = sink.port()
    );
    let out = setup.notify_test(&table, true);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "ok     email ops@example.com,sec@example.com\n");
    let everything = format!("{}{}", stdout(&out), crate::harness::stderr(&out));
    assert!(!everything.contains("s3cret-pw"), "the SMTP password was printed");

    let mails = sink.wait_for(1, WAIT);
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert!(mail.tls, "the message did not come over TLS");
    assert_eq!(mail.auth, Some(("hapcert".to_owned(), "s3cret-pw".to_owned())));
    assert_eq!(mail.mail_from, "hapcert@lb1.example.com");
    assert_eq!(mail.rcpt_to, ["ops@example.com", "sec@example.com"]);
    assert_eq!(mail.header("From").as_deref(), Some("hapcert@lb1.example.com"));
    assert_eq!(mail.header("To").as_deref(), Some("ops@example.com, sec@example.com"));
    assert_eq!(
        mail.header("Content-Type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    let subject = mail.header("Subject").expect("a Subject");
    assert!(
        subject.starts_with("[hapcert ") && subject.contains("] TEST hapcert: a test notification"),
        "{subject}"
    );
    let body = mail.body();
    assert!(body.starts_with(&format!("{subject}\n\n")), "{body}");
    for line in [
        "event:           test\n",
        "status:          firing\n",
        "certificate:     -\n",
        "days left:       -\n",
        "\na test notification from `hapcert notify test`; this channel works\n",
    ] {
        assert!(body.contains(line), "no {line:?} in\n{body}");
    }
}

#[test]
fn smtp_is_refused_when_the_server_certificate_is_not_trusted() {
    let setup = Setup::new();
    let sink = SmtpSink::start();
    // No ca_bundle: the sink's throwaway CA is not among the system's roots.
    let table = format!(
        "[[notify]]\nkind = \"email\"\nto = [\"ops@example.com\"]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n",
        sink.port()
    );
    let out = setup.notify_test(&table, false);
    assert_exit(&out, 1);
    let printed = stdout(&out);
    assert!(
        printed.starts_with(&format!(
            "FAILED email ops@example.com: SMTP 127.0.0.1:{}: ",
            sink.port()
        )),
        "{printed}"
    );
    assert!(printed.contains("invalid peer certificate: UnknownIssuer"), "{printed}");
    assert!(sink.mails().is_empty());
}

#[test]
fn a_webhook_that_does_not_answer_fails_after_its_timeout() {
    let setup = Setup::new();
    // Connections are accepted by the kernel into the backlog, and never read.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let out = setup.notify_test(
        &webhook_table(&format!("http://127.0.0.1:{port}/hook"), "timeout = \"1s\""),
        false,
    );
    assert_exit(&out, 1);
    assert_eq!(
        stdout(&out),
        format!("FAILED webhook http://127.0.0.1:{port}/...: no answer within 1s\n")
    );
}

#[test]
fn notify_test_mails_through_sendmail() {
    let setup = Setup::new();
    let script = setup.path("sendmail");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {args}\ncat > {message}\n",
            args = setup.path("sendmail.args").display(),
            message = setup.path("sendmail.message").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let table = format!(
        "[[notify]]\nkind = \"email\"\nto = [\"ops@example.com\"]\nfrom = \"hapcert@lb1.example.com\"\nsendmail = {}\n",
        toml_string(&script)
    );
    let out = setup.notify_test(&table, false);
    assert_exit(&out, 0);

    let args = fs::read_to_string(setup.path("sendmail.args")).expect("sendmail was run");
    assert_eq!(args, "-i\n-f\nhapcert@lb1.example.com\n--\nops@example.com\n");
    let message = fs::read_to_string(setup.path("sendmail.message")).expect("sendmail got the message");
    let (head, body) = message.split_once("\r\n\r\n").expect("headers, a blank line, a body");
    let head = head.replace("\r\n ", " ");
    assert!(
        head.contains("\r\nTo: ops@example.com\r\n") || head.starts_with("To: "),
        "{head}"
    );
    assert!(head.contains("Subject: [hapcert "), "{head}");
    assert!(body.contains("event:           test\r\n"), "{body}");
}

#[test]
fn notify_test_runs_the_exec_command_with_the_event_in_its_environment() {
    let setup = Setup::new();
    let out_file = setup.path("env.out");
    let command = format!("env | grep ^HAPCERT_ | sort > {}", out_file.display());
    let out = setup.notify_test(&exec_table(&command, ""), false);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), format!("ok     exec {command}\n"));

    let env = fs::read_to_string(&out_file).expect("the command ran");
    let get = |name: &str| {
        env.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in\n{env}"))
            .to_owned()
    };
    assert_eq!(get("HAPCERT_EVENT"), "test");
    assert_eq!(get("HAPCERT_STATUS"), "firing");
    for empty in [
        "HAPCERT_CERTIFICATE",
        "HAPCERT_NAMES",
        "HAPCERT_SERVED_SERIAL",
        "HAPCERT_EXPECTED_SERIAL",
        "HAPCERT_DAYS_LEFT",
    ] {
        assert_eq!(get(empty), "", "{empty}");
    }
    assert_eq!(
        get("HAPCERT_MESSAGE"),
        "a test notification from `hapcert notify test`; this channel works"
    );
    let host = get("HAPCERT_HOST");
    assert!(!host.is_empty());
    assert_eq!(
        get("HAPCERT_TEXT"),
        format!("[hapcert {host}] TEST hapcert: a test notification from `hapcert notify test`; this channel works")
    );
    OffsetDateTime::parse(&get("HAPCERT_AT"), &Rfc3339).expect("HAPCERT_AT is RFC 3339");
}

#[test]
fn a_failing_channel_is_named_and_does_not_stop_the_others() {
    let setup = Setup::new();
    let closed = free_port();
    let refusing = WebhookSink::start();
    refusing.answer_with(500);
    let good = WebhookSink::start();
    let marker = setup.path("exec-ran");
    let tables = [
        webhook_table(&format!("http://127.0.0.1:{closed}/hook"), "timeout = \"5s\""),
        webhook_table(&refusing.url(), ""),
        exec_table(&format!("touch {}", marker.display()), ""),
        exec_table("echo 'no pager here' >&2; exit 3", ""),
        webhook_table(&good.url(), ""),
    ]
    .concat();
    let out = setup.notify_test(&tables, false);
    assert_exit(&out, 1);

    let printed = stdout(&out);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 5, "{printed}");
    let refused_prefix = format!("FAILED webhook http://127.0.0.1:{closed}/...: ");
    assert!(
        lines[0].starts_with(&refused_prefix) && lines[0].contains("Connection refused"),
        "{printed}"
    );
    assert_eq!(
        lines[1],
        format!(
            "FAILED webhook http://127.0.0.1:{}/...: the server answered 500 Internal Server Error: the sink was told to refuse",
            refusing.port()
        )
    );
    assert_eq!(lines[2], format!("ok     exec touch {}", marker.display()));
    assert_eq!(
        lines[3],
        "FAILED exec echo 'no pager here' >&2; exit 3: exited with status 3: no pager here"
    );
    assert_eq!(lines[4], format!("ok     webhook http://127.0.0.1:{}/...", good.port()));
    assert!(marker.exists());
    assert_eq!(good.requests().len(), 1);
    assert_eq!(refusing.requests().len(), 1);
}

#[test]
fn notify_test_without_a_channel_says_so_and_fails() {
    let setup = Setup::new();
    let out = setup.notify_test("", false);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).starts_with("no [[notify]] channel is configured in "),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn repeats_are_suppressed_and_recovery_is_announced() {
    let setup = Setup::new();
    let sink = WebhookSink::start();
    let config = setup.config(&webhook_table(&sink.url(), "repeat = \"6h\""));
    let state = setup.state();

    notify(&config, &state, vec![critical()], check_www(), T0).await;
    let bodies = sink.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let first = &bodies[0];
    let host = host_of(first);
    assert_eq!(
        first,
        &serde_json::json!({
            "event": "critical",
            "status": "firing",
            "certificate": "www",
            "source": "managed",
            "names": ["www.example.com", "example.com"],
            "served_serial": "0a1b",
            "expected_serial": "0a1b",
            "days_left": 3.0,
            "message": "expires in 3.0 days",
            "host": host,
            "at": "2025-06-01T12:00:00Z",
            "text": format!("[hapcert {host}] CRITICAL www: expires in 3.0 days"),
        })
    );

    // The same condition an hour later, and five hours later: said already.
    notify(&config, &state, vec![critical()], check_www(), T0 + HOUR).await;
    notify(&config, &state, vec![critical()], check_www(), T0 + HOUR * 5).await;
    assert_eq!(sink.requests().len(), 1);

    // Once `repeat` has passed, once more.
    notify(&config, &state, vec![critical()], check_www(), T0 + HOUR * 6).await;
    let bodies = sink.bodies();
    assert_eq!(bodies.len(), 2);
    assert_eq!(
        (&bodies[1]["event"], &bodies[1]["status"]),
        (&"critical".into(), &"firing".into())
    );

    // A check of another certificate says nothing about www.
    let other = Scope::Check {
        certificates: vec!["api".to_owned()],
        watched: Vec::new(),
        inventory: false,
    };
    notify(&config, &state, vec![], other, T0 + HOUR * 7).await;
    assert_eq!(sink.requests().len(), 2);

    // The check finds www fine: resolved, once.
    notify(&config, &state, vec![], check_www(), T0 + HOUR * 7).await;
    let bodies = sink.bodies();
    assert_eq!(bodies.len(), 3);
    let resolved = &bodies[2];
    assert_eq!(resolved["event"], "critical");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["certificate"], "www");
    assert_eq!(resolved["days_left"], serde_json::Value::Null);
    assert_eq!(
        resolved["text"],
        format!("[hapcert {host}] RESOLVED www: critical has cleared (it was: expires in 3.0 days)")
    );

    notify(&config, &state, vec![], check_www(), T0 + HOUR * 8).await;
    notify(&config, &state, vec![], check_www(), T0 + HOUR * 40).await;
    assert_eq!(sink.requests().len(), 3);
    let monitor = state.load_monitor().unwrap();
    assert!(monitor.notifications.conditions.is_empty(), "{monitor:?}");
}

#[tokio::test]
async fn a_channel_that_failed_is_tried_again_and_the_others_are_not_repeated() {
    let setup = Setup::new();
    let good = WebhookSink::start();
    let flaky = WebhookSink::start();
    flaky.answer_with(503);
    let config = setup.config(&[webhook_table(&good.url(), ""), webhook_table(&flaky.url(), "")].concat());
    let state = setup.state();

    notify(&config, &state, vec![critical()], check_www(), T0).await;
    assert_eq!((good.requests().len(), flaky.requests().len()), (1, 1));

    flaky.answer_with(200);
    notify(
        &config,
        &state,
        vec![critical()],
        check_www(),
        T0 + time::Duration::MINUTE,
    )
    .await;
    assert_eq!((good.requests().len(), flaky.requests().len()), (1, 2));
    assert_eq!(flaky.bodies()[1]["event"], "critical");

    notify(
        &config,
        &state,
        vec![critical()],
        check_www(),
        T0 + time::Duration::MINUTE * 2,
    )
    .await;
    assert_eq!((good.requests().len(), flaky.requests().len()), (1, 2));
}

#[tokio::test]
async fn a_run_that_renews_resolves_its_failure_and_announces_the_renewal_through_exec() {
    let setup = Setup::new();
    let log = setup.path("events.log");
    let command = format!(
        "echo \"$HAPCERT_STATUS $HAPCERT_EVENT $HAPCERT_CERTIFICATE $HAPCERT_NAMES\" >> {}",
        log.display()
    );
    let config = setup.config(&exec_table(
        &command,
        "events = [\"renewal-failed\", \"rollback\", \"renewed\"]",
    ));
    let state = setup.state();
    let run_www = || Scope::Run {
        certificates: vec!["www".to_owned()],
    };
    let event = |kind| Event {
        kind,
        certificate: Some("www".to_owned()),
        source: Source::Managed,
        names: vec!["www.example.com".to_owned()],
        served_serial: None,
        expected_serial: None,
        days_left: Some(20.0),
        message: format!("{kind} in this run"),
    };

    notify(&config, &state, vec![event(EventKind::RenewalFailed)], run_www(), T0).await;
    // Escalation is news, even within the repeat interval.
    notify(&config, &state, vec![event(EventKind::Rollback)], run_www(), T0 + HOUR).await;
    // A critical is not wanted by this channel: nothing.
    notify(&config, &state, vec![critical()], check_www(), T0 + HOUR).await;
    notify(
        &config,
        &state,
        vec![event(EventKind::Renewed)],
        run_www(),
        T0 + HOUR * 2,
    )
    .await;

    let lines = fs::read_to_string(&log).expect("the command ran");
    let mut lines: Vec<&str> = lines.lines().collect();
    // The last call's two deliveries ran concurrently.
    lines[2..].sort();
    assert_eq!(
        lines,
        [
            "firing renewal-failed www www.example.com",
            "firing rollback www www.example.com",
            "firing renewed www www.example.com",
            "resolved rollback www www.example.com",
        ]
    );
}

#[tokio::test]
async fn a_damaged_ledger_does_not_silence_the_alerts() {
    let setup = Setup::new();
    let sink = WebhookSink::start();
    let config = setup.config(&webhook_table(&sink.url(), ""));
    let state = setup.state();
    let monitor = setup.path("state").join("monitor.json");
    fs::write(&monitor, "{ damaged").unwrap();

    notify(&config, &state, vec![critical()], check_www(), T0).await;
    notify(&config, &state, vec![critical()], check_www(), T0 + HOUR).await;
    // Without the ledger nothing is held back; and the damaged file is left for the operator, as its error says.
    assert_eq!(sink.requests().len(), 2);
    assert_eq!(sink.bodies()[1]["event"], "critical");
    assert_eq!(fs::read_to_string(&monitor).unwrap(), "{ damaged");
}
