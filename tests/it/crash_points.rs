//! Issue 12: hapcert killed (SIGKILL) at every step of a renewal, on both deploy paths, and the run after it.
//!
//! The kill points:
//! - every rename, fsync, fchmod and unlink of the deploy, killed by strace at that system call (`-e inject=<syscall>:
//!   signal=KILL:when=N`); the occurrences are enumerated once from a trace of a whole renewal;
//! - every Runtime API command, before HAProxy gets it and after HAProxy answered it, killed by a relay that stands
//!   between hapcert and the admin socket (strace cannot tell one socket write from another);
//! - the config check and the reload command, before and after each, killed by the command itself (`kill -9 $PPID`:
//!   the shell's parent is hapcert).
//!
//! After each kill, the next `hapcert run` must leave HAProxy serving a whole certificate equal to the file on disk, whose
//! key matches; no temp file may be left, and every state file must parse.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hapcert::core::pem::Bundle;

use crate::harness::tools::find;
use crate::harness::{Sandbox, assert_exit, leaf_der_from_pem_file, serial_hex, show, stderr};

const SITE: &str = "[[certificate]]\nname = \"site\"\ndomains = [\"a.example.com\"]\n";
const OTHER: &str = "[[certificate]]\nname = \"other\"\ndomains = [\"b.example.com\"]\n";
/// The system calls a kill is injected at: the atomic writer's (`fchmod` before the first byte, `fsync` of the temp
/// file and of the directory, `rename`), and a removal's.
const FILE_SYSCALLS: &str = "fchmod,fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat";

fn strace() -> PathBuf {
    find(
        "strace",
        Some("HAPCERT_STRACE"),
        &[Path::new("/usr/bin")],
        crate::harness::tools::FindIn::EnvPathThenDirs,
        "install it with `apt-get install strace` (scripts/test does)",
    )
}

/// The site's file, and what the sandbox's HAProxy serves for it.
fn disk_serial(sandbox: &Sandbox) -> String {
    serial_hex(&leaf_der_from_pem_file(&sandbox.cert_dir().join("site.pem")))
}

/// The config with the Runtime API at `api` (no master socket: its fallback is the reload command).
fn runtime_config(sandbox: &Sandbox, api: &Path, certs: &str) -> String {
    let sockets = format!("[haproxy]\nruntime_api = \"{}\"\n", api.display());
    format!(
        "{}\n{certs}",
        sandbox.base_config().replacen("[haproxy]\n", &sockets, 1)
    )
}

/// What must hold after a kill and one more `hapcert run`.
fn assert_converged(sandbox: &Sandbox, point: &str) {
    assert_certificate_converged(sandbox, point, "site", "a.example.com");
}

/// What must hold of certificate `name` (served for `sni`) after a kill and one more `hapcert run`.
fn assert_certificate_converged(sandbox: &Sandbox, point: &str, name: &str, sni: &str) {
    let file = sandbox.cert_dir().join(format!("{name}.pem"));
    let bytes = fs::read(&file).unwrap_or_else(|e| panic!("{point}: {} ({e})", file.display()));
    let facts = Bundle::parse(&bytes)
        .and_then(|b| b.facts())
        .unwrap_or_else(|e| panic!("{point}: {name}.pem is not a whole PEM: {e}"));
    assert!(
        facts.key_matches,
        "{point}: the key in {name}.pem does not match its leaf"
    );
    let served = sandbox.served_leaf(sni);
    assert_eq!(
        serial_hex(&served),
        facts.serial,
        "{point}: HAProxy serves another certificate than the file"
    );
    assert_eq!(
        served,
        leaf_der_from_pem_file(&file),
        "{point}: served leaf != disk leaf"
    );
    for dir in [
        sandbox.cert_dir(),
        sandbox.state_dir(),
        sandbox.state_dir().join("backup"),
    ] {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                !(name.starts_with('.') && name.ends_with(".tmp")),
                "{point}: temp file {name} left in {}",
                dir.display()
            );
        }
    }
    for dir in [sandbox.state_dir(), sandbox.state_dir().join("accounts")] {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = fs::read(&path).unwrap();
                serde_json::from_slice::<serde_json::Value>(&text)
                    .unwrap_or_else(|e| panic!("{point}: {} does not parse: {e}", path.display()));
            }
        }
    }
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(sandbox.state_dir().join("state.json")).unwrap()).unwrap();
    assert!(
        state["certificates"][name].get("deploying").is_none(),
        "{point}: a deploy is still recorded as under way: {state}"
    );
}

/// Runs hapcert to completion or to its death; with `pid` set to its process id while it runs.
fn hapcert_killable(mut cmd: Command, pid: &AtomicU32) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn hapcert");
    pid.store(child.id(), Ordering::SeqCst);
    let out = child.wait_with_output().expect("wait for hapcert");
    pid.store(0, Ordering::SeqCst);
    eprintln!("$ hapcert (killable)\n{}", show(&out));
    out
}

/// One command on a HAProxy CLI socket, and its whole reply.
fn cli(socket: &Path, command: &str) -> String {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(format!("{command}\n").as_bytes()).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

fn killed(out: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    // strace exits as its tracee did: killed by SIGKILL, or with 128 + 9 when it reports it.
    out.status.signal() == Some(9) || out.status.code() == Some(137)
}

/// One renewal under strace, listing each file system call the deploy makes: (syscall, its ordinal in its thread, the
/// line strace printed).
fn enumerate(sandbox: &Sandbox, trace: &Path) -> Vec<(String, usize, String)> {
    let dirs = [sandbox.cert_dir(), sandbox.state_dir()];
    enumerate_run(sandbox, trace, &["renew", "--force", "site"], &dirs)
}

/// `hapcert <args>` under strace: each file system call on a path under one of `dirs`, with its ordinal in its thread.
fn enumerate_run(sandbox: &Sandbox, trace: &Path, args: &[&str], dirs: &[PathBuf]) -> Vec<(String, usize, String)> {
    let out = under_strace(sandbox, trace, &[format!("trace={FILE_SYSCALLS}")], args);
    assert_exit(&out, 0);
    let mut seen: std::collections::HashMap<(String, String), usize> = Default::default();
    let mut steps = Vec::new();
    for line in fs::read_to_string(trace).unwrap().lines() {
        let Some((tid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let Some((name, _)) = rest.split_once('(') else {
            continue;
        };
        if rest.contains("resumed>") {
            continue;
        }
        let ordinal = seen.entry((tid.to_owned(), name.to_owned())).or_default();
        *ordinal += 1;
        // The deploy's own steps: what touches the cert dir or the state dir (the run lock and logs aside).
        let ours = dirs.iter().any(|dir| rest.contains(&dir.display().to_string()));
        if ours {
            steps.push((name.to_owned(), *ordinal, rest.to_owned()));
        }
    }
    steps
}

/// `hapcert <args>` under strace with the given `-e` expressions, traced to `trace`, on one tokio worker (strace counts
/// system calls per thread, so one worker makes the counts repeatable).
fn under_strace(sandbox: &Sandbox, trace: &Path, expressions: &[String], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(strace());
    cmd.args(["-f", "-qq", "-y"]);
    for expression in expressions {
        cmd.arg("-e").arg(expression);
    }
    cmd.arg("-o")
        .arg(trace)
        .arg(env!("CARGO_BIN_EXE_hapcert"))
        .args(hapcert_args(sandbox, args))
        .env("TOKIO_WORKER_THREADS", "1")
        .current_dir(sandbox.dir());
    cmd.output().unwrap()
}

fn hapcert_args(sandbox: &Sandbox, args: &[&str]) -> Vec<String> {
    let mut all = vec!["--config".to_owned(), sandbox.config_path().display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

/// Kills a forced renewal at each file step, then checks the next run; returns how many points were covered.
fn kill_at_each_file_step(sandbox: &Sandbox, label: &str) -> usize {
    let steps = enumerate(sandbox, &sandbox.dir().join(format!("enumerate-{label}.trace")));
    assert!(steps.len() >= 8, "{label}: too few steps found: {steps:#?}");
    let mut covered = 0;
    for (n, (name, ordinal, line)) in steps.iter().enumerate() {
        let trace = sandbox.dir().join(format!("kill-{label}-{n}.trace"));
        let kill = [
            format!("trace={name}"),
            format!("inject={name}:signal=KILL:when={ordinal}"),
        ];
        let out = under_strace(sandbox, &trace, &kill, &["renew", "--force", "site"]);
        let point = format!("{label} file step {n} ({line})");
        // Another thread may reach the same count first; that is a kill too, at another step, and is checked the same.
        if !killed(&out) {
            eprintln!("{point}: not killed (the renewal finished):\n{}", show(&out));
        } else {
            covered += 1;
            let text = fs::read_to_string(&trace).unwrap_or_default();
            let at = text
                .lines()
                .rev()
                .find(|l| l.contains(&format!("{name}(")))
                .unwrap_or("?");
            eprintln!("{point}: killed at {at}");
        }
        let next = sandbox.hapcert(&["run"]);
        assert_exit(&next, 0);
        assert_converged(sandbox, &point);
    }
    covered
}

/// Stands between hapcert and HAProxy's admin socket: forwards each command whole, and kills hapcert before the
/// command numbered `kill_before`, or after HAProxy answered the one numbered `kill_after` (counted from 1).
struct Relay {
    path: PathBuf,
    pid: Arc<AtomicU32>,
    commands: Arc<Mutex<Vec<String>>>,
    kill_before: Arc<AtomicUsize>,
    kill_after: Arc<AtomicUsize>,
}

impl Relay {
    fn start(sandbox: &Sandbox) -> Relay {
        let path = sandbox.dir().join("relay.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let upstream = sandbox.haproxy_admin_sock();
        let relay = Relay {
            path,
            pid: Arc::default(),
            commands: Arc::default(),
            kill_before: Arc::default(),
            kill_after: Arc::default(),
        };
        let (pid, commands) = (relay.pid.clone(), relay.commands.clone());
        let (before, after) = (relay.kill_before.clone(), relay.kill_after.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut client) = stream else { return };
                let mut request = Vec::new();
                if client.read_to_end(&mut request).is_err() {
                    continue;
                }
                let number = {
                    let mut list = commands.lock().unwrap();
                    list.push(
                        String::from_utf8_lossy(&request)
                            .lines()
                            .next()
                            .unwrap_or("")
                            .to_owned(),
                    );
                    list.len()
                };
                let kill = || {
                    let target = pid.load(Ordering::SeqCst);
                    if target != 0 {
                        unsafe { libc::kill(target as i32, libc::SIGKILL) };
                    }
                };
                if before.load(Ordering::SeqCst) == number {
                    kill();
                    continue;
                }
                let mut server = UnixStream::connect(&upstream).unwrap();
                server.write_all(&request).unwrap();
                server.shutdown(std::net::Shutdown::Write).unwrap();
                let mut reply = Vec::new();
                server.read_to_end(&mut reply).unwrap();
                if after.load(Ordering::SeqCst) == number {
                    kill();
                    continue;
                }
                let _ = client.write_all(&reply);
            }
        });
        relay
    }

    fn arm(&self, before: usize, after: usize) {
        self.commands.lock().unwrap().clear();
        self.kill_before.store(before, Ordering::SeqCst);
        self.kill_after.store(after, Ordering::SeqCst);
    }

    fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }
}

/// Kills a forced renewal before and after each Runtime API command; returns how many points were covered.
fn kill_at_each_runtime_api_step(sandbox: &Sandbox, relay: &Relay) -> usize {
    relay.arm(0, 0);
    assert_exit(&sandbox.hapcert(&["renew", "--force", "site"]), 0);
    let commands = relay.commands();
    assert!(
        commands.iter().any(|c| c.starts_with("set ssl cert"))
            && commands.iter().any(|c| c.starts_with("commit ssl cert")),
        "the renewal went through the relay: {commands:?}"
    );
    let mut covered = 0;
    for number in 1..=commands.len() {
        for (before, after) in [(number, 0), (0, number)] {
            relay.arm(before, after);
            let point = format!(
                "runtime API: kill {} `{}`",
                if before > 0 { "before" } else { "after" },
                commands[number - 1]
            );
            let out = hapcert_killable(sandbox.hapcert_cmd(&["renew", "--force", "site"]), &relay.pid);
            assert!(killed(&out), "{point}: hapcert was not killed:\n{}", show(&out));
            eprintln!("{point}: killed");
            covered += 1;
            relay.arm(0, 0);
            let next = sandbox.hapcert(&["run"]);
            assert_exit(&next, 0);
            assert_converged(sandbox, &point);
            let open = cli(&sandbox.haproxy_admin_sock(), "show ssl cert");
            assert!(
                !open.contains("# transaction"),
                "{point}: a transaction is left open:\n{open}"
            );
        }
    }
    covered
}

/// Kills a forced renewal before and after the check and the reload command; returns how many points were covered.
fn kill_around_the_commands(sandbox: &Sandbox, config: &str) -> usize {
    let (check, reload) = (sandbox.check_command(), sandbox.reload_command());
    let die = "kill -9 $PPID; exit 1";
    let points = [
        ("before the config check", die.to_owned(), reload.clone()),
        ("after the config check", format!("{check} && {die}"), reload.clone()),
        ("before the reload", check.clone(), die.to_owned()),
        ("after the reload", check.clone(), format!("{reload} && {die}")),
    ];
    let mut covered = 0;
    for (what, check_command, reload_command) in points {
        let edited = config
            .replace(&toml(&check), &toml(&check_command))
            .replace(&toml(&reload), &toml(&reload_command));
        assert_ne!(edited, config);
        sandbox.write_config_text(&edited);
        let out = sandbox.hapcert(&["renew", "--force", "site"]);
        sandbox.write_config_text(config);
        let point = format!("command: kill {what}");
        assert!(killed(&out), "{point}: hapcert was not killed:\n{}", show(&out));
        eprintln!("{point}: killed");
        covered += 1;
        let next = sandbox.hapcert(&["run"]);
        assert_exit(&next, 0);
        assert_converged(sandbox, &point);
    }
    covered
}

fn toml(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

#[test]
fn every_kill_during_a_reload_deploy_is_finished_or_undone_by_the_next_run() {
    let started = Instant::now();
    let sandbox = Sandbox::start();
    let config = format!("{}\n{SITE}", sandbox.base_config());
    sandbox.write_config_text(&config);
    assert_exit(&sandbox.hapcert(&["run"]), 0);

    let files = kill_at_each_file_step(&sandbox, "reload");
    let commands = kill_around_the_commands(&sandbox, &config);
    eprintln!(
        "crash points on the reload path: {files} file steps + {commands} command steps = {} in {:?}",
        files + commands,
        started.elapsed()
    );
    assert!(files >= 8, "{files}");
}

/// Kills the first issuance of a new certificate (`new ssl cert`, `set`, `commit`, `add ssl crt-list`) before and after
/// each Runtime API command; each point gets a certificate of its own. Returns how many points were covered.
fn kill_at_each_step_of_a_new_certificate(sandbox: &Sandbox, relay: &Relay, config: &str) -> usize {
    let with = |n: usize| {
        let mut text = config.to_owned();
        for k in 0..=n {
            text += &format!("\n[[certificate]]\nname = \"new{k}\"\ndomains = [\"n{k}.example.com\"]\n");
        }
        text
    };
    relay.arm(0, 0);
    sandbox.write_config_text(&with(0));
    assert_exit(&sandbox.hapcert(&["run"]), 0);
    let commands = relay.commands();
    assert!(
        commands.iter().any(|c| c.starts_with("new ssl cert"))
            && commands.iter().any(|c| c.starts_with("add ssl crt-list")),
        "a new certificate is added at runtime: {commands:?}"
    );
    let mut covered = 0;
    let mut n = 0;
    for number in 1..=commands.len() {
        for (before, after) in [(number, 0), (0, number)] {
            n += 1;
            sandbox.write_config_text(&with(n));
            relay.arm(before, after);
            let point = format!(
                "runtime API, new certificate new{n}: kill {} `{}`",
                if before > 0 { "before" } else { "after" },
                commands[number - 1]
            );
            let out = hapcert_killable(sandbox.hapcert_cmd(&["run"]), &relay.pid);
            assert!(killed(&out), "{point}: hapcert was not killed:\n{}", show(&out));
            eprintln!("{point}: killed");
            covered += 1;
            relay.arm(0, 0);
            let next = sandbox.hapcert(&["run"]);
            assert_exit(&next, 0);
            assert_certificate_converged(sandbox, &point, &format!("new{n}"), &format!("n{n}.example.com"));
            let open = cli(&sandbox.haproxy_admin_sock(), "show ssl cert");
            assert!(
                !open.contains("# transaction"),
                "{point}: a transaction is left open:\n{open}"
            );
        }
    }
    sandbox.write_config_text(config);
    covered
}

#[test]
fn every_kill_during_a_hot_update_is_finished_or_undone_by_the_next_run() {
    let started = Instant::now();
    let sandbox = Sandbox::start();
    let relay = Relay::start(&sandbox);
    let config = runtime_config(&sandbox, &relay.path, SITE);
    sandbox.write_config_text(&config);
    assert_exit(&sandbox.hapcert(&["run"]), 0);
    assert_eq!(sandbox.reload_count(), 0);

    let files = kill_at_each_file_step(&sandbox, "runtime");
    let api = kill_at_each_runtime_api_step(&sandbox, &relay);
    let added = kill_at_each_step_of_a_new_certificate(&sandbox, &relay, &config);
    eprintln!(
        "crash points on the Runtime API path: {files} file steps + {api} Runtime API steps of a renewal + {added} of a \
         new certificate = {} in {:?}",
        files + api + added,
        started.elapsed()
    );
    assert!(files >= 8 && api >= 8, "{files} {api}");
}

/// Item 6: a crash between writing the PEM and reloading left disk = new and served = old, and the next run did nothing.
#[test]
fn a_crash_between_the_write_and_the_reload_is_deployed_by_the_next_run() {
    let sandbox = Sandbox::start();
    let roots = sandbox.dir().join("pebble-root.pem");
    fs::write(&roots, sandbox.pebble_root_pem()).unwrap();
    let endpoints = [sandbox.https_endpoint()];
    let config = sandbox.check_config(
        &endpoints,
        &roots.display().to_string(),
        "",
        &[("site", "a.example.com")],
    );
    sandbox.write_config_text(&config);
    assert_exit(&sandbox.hapcert(&["run"]), 0);
    let old = disk_serial(&sandbox);

    let dying = config.replace(&toml(&sandbox.reload_command()), &toml("kill -9 $PPID; exit 1"));
    sandbox.write_config_text(&dying);
    let out = sandbox.hapcert(&["renew", "--force", "site"]);
    assert!(killed(&out), "{}", show(&out));
    sandbox.write_config_text(&config);
    let new = disk_serial(&sandbox);
    assert_ne!(new, old, "the new file was written before the kill");
    assert_eq!(serial_hex(&sandbox.served_leaf("a.example.com")), old);

    // `check` tells the truth about it, and its advice works.
    let check = sandbox.hapcert(&["check"]);
    assert!(
        stdout_of(&check).contains("`hapcert run` finishes that deploy and verifies it"),
        "{}",
        show(&check)
    );
    let next = sandbox.hapcert(&["run"]);
    assert_exit(&next, 0);
    assert!(stderr(&next).contains("a deploy was interrupted"), "{}", show(&next));
    assert_eq!(serial_hex(&sandbox.served_leaf("a.example.com")), new);
    assert_converged(&sandbox, "killed before the reload");
    let status = sandbox.hapcert(&["status", "--long"]);
    assert!(
        stdout_of(&status).contains(&format!("served:    {new} (last verified on the wire)")),
        "{}",
        show(&status)
    );
    // And a file someone else put there is not hapcert's to deploy: the advice says to reload.
    let other = sandbox.dir().join("other.pem");
    fs::copy(sandbox.cert_dir().join("site.pem"), &other).unwrap();
    let out = sandbox.hapcert(&["renew", "--force", "site"]);
    assert_exit(&out, 0);
    fs::copy(&other, sandbox.cert_dir().join("site.pem")).unwrap();
    let quiet = sandbox.hapcert(&["run"]);
    assert_exit(&quiet, 0);
    assert!(stderr(&quiet).contains("hapcert did not write it"), "{}", show(&quiet));
    assert_eq!(
        serial_hex(&sandbox.served_leaf("a.example.com")),
        verified_serial(&sandbox)
    );
    let check = sandbox.hapcert(&["check"]);
    assert!(
        stdout_of(&check).contains("no deploy of it by hapcert is unfinished; reload HAProxy"),
        "{}",
        show(&check)
    );
}

fn verified_serial(sandbox: &Sandbox) -> String {
    // What HAProxy serves: the certificate hapcert deployed last, not the file put back by hand.
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(sandbox.state_dir().join("state.json")).unwrap()).unwrap();
    state["certificates"]["site"]["last"]["verified_serial"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Item 1: a transaction left open on a file hapcert manages (a crash between `set` and `commit`) is aborted at the next
/// deploy; one on a file hapcert does not manage is still refused.
#[test]
fn an_open_transaction_on_a_managed_file_is_aborted_and_one_on_another_file_refused() {
    let sandbox = Sandbox::start();
    let config = runtime_config(&sandbox, &sandbox.haproxy_admin_sock(), &format!("{SITE}\n{OTHER}"));
    sandbox.write_config_text(&config);
    assert_exit(&sandbox.hapcert(&["run"]), 0);
    let admin = sandbox.haproxy_admin_sock();
    let cli = |command: &str| cli(&admin, command);

    let site = sandbox.cert_dir().join("site.pem");
    let pem = fs::read_to_string(&site).unwrap();
    let reply = cli(&format!("set ssl cert {} <<\n{pem}", site.display()));
    assert!(reply.starts_with("Transaction created"), "{reply}");

    assert_exit(&sandbox.hapcert(&["run"]), 0);
    let renew = sandbox.hapcert(&["renew", "--force", "other"]);
    assert_exit(&renew, 0);
    let text = stderr(&renew);
    assert!(
        text.contains("aborted an open transaction on a file hapcert manages")
            && text.contains(&site.display().to_string()),
        "{}",
        show(&renew)
    );
    assert!(
        !cli("show ssl cert").contains("# transaction"),
        "no transaction is left"
    );
    assert_eq!(
        serial_hex(&sandbox.served_leaf("b.example.com")),
        serial_hex(&leaf_der_from_pem_file(&sandbox.cert_dir().join("other.pem")))
    );

    // HAProxy's default certificate is not hapcert's: its transaction is someone else's, and is left to them.
    let default = sandbox.dir().join("haproxy").join("default.pem");
    let pem = fs::read_to_string(&default).unwrap();
    let reply = cli(&format!(
        "set ssl cert {} <<\n{}",
        default.display(),
        pem.replace("\n\n", "\n")
    ));
    assert!(reply.starts_with("Transaction created"), "{reply}");
    let refused = sandbox.hapcert(&["renew", "--force", "other"]);
    assert_exit(&refused, 1);
    assert!(
        show(&refused).contains("someone else is changing certificates"),
        "{}",
        show(&refused)
    );
    assert!(
        cli("show ssl cert").contains(&format!("*{}", default.display())),
        "still open"
    );
    cli(&format!("abort ssl cert {}", default.display()));
}

/// Item 2: `account rollover` killed at each of its steps (the pending key stored, then sent to the CA as keyChange,
/// then the account file replaced). Whatever the CA had taken, the next run that orders finds the account's key.
#[test]
fn every_kill_during_an_account_rollover_leaves_a_key_the_ca_accepts() {
    let started = Instant::now();
    let sandbox = Sandbox::start();
    sandbox.write_config_text(&format!("{}\n{SITE}", sandbox.base_config()));
    assert_exit(&sandbox.hapcert(&["run"]), 0);
    let accounts = sandbox.state_dir().join("accounts");
    let account_url = || -> String {
        let files: Vec<PathBuf> = fs::read_dir(&accounts)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        assert_eq!(files.len(), 1, "one account file: {files:?}");
        let file: serde_json::Value = serde_json::from_slice(&fs::read(&files[0]).unwrap()).unwrap();
        file["url"].as_str().unwrap().to_owned()
    };
    let url = account_url();

    let steps = enumerate_run(
        &sandbox,
        &sandbox.dir().join("enumerate-rollover.trace"),
        &["account", "rollover"],
        std::slice::from_ref(&accounts),
    );
    let mut covered = 0;
    for (n, (name, ordinal, line)) in steps.iter().enumerate() {
        let trace = sandbox.dir().join(format!("kill-rollover-{n}.trace"));
        let kill = [
            format!("trace={name}"),
            format!("inject={name}:signal=KILL:when={ordinal}"),
        ];
        let out = under_strace(&sandbox, &trace, &kill, &["account", "rollover"]);
        let point = format!("rollover step {n} ({line})");
        assert!(killed(&out), "{point}: not killed:\n{}", show(&out));
        let text = fs::read_to_string(&trace).unwrap_or_default();
        let at = text
            .lines()
            .rev()
            .find(|l| l.contains(&format!("{name}(")))
            .unwrap_or("?");
        eprintln!("{point}: killed at {at}");
        covered += 1;

        // A run that orders uses the account: it must find the key the CA has, and no new account.
        let next = sandbox.hapcert(&["renew", "--force", "site"]);
        assert_exit(&next, 0);
        assert!(
            !stderr(&next).contains("created an ACME account"),
            "{point}:\n{}",
            show(&next)
        );
        assert_eq!(account_url(), url, "{point}: the same account");
        for entry in fs::read_dir(&accounts).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                !name.ends_with(".tmp") && !name.contains("rollover-pending"),
                "{point}: {name} is left in {}",
                accounts.display()
            );
        }
        assert_eq!(
            crate::harness::file_mode(
                &accounts.join(fs::read_dir(&accounts).unwrap().next().unwrap().unwrap().file_name())
            ),
            0o600
        );
    }
    // The pending file's write (fchmod, fsync, rename, fsync), keyChange, then the rename over the account file.
    let pending_renamed = steps
        .iter()
        .position(|(name, _, line)| name.starts_with("rename") && line.ends_with("rollover-pending\") = 0"))
        .unwrap_or_else(|| panic!("the pending file is written: {steps:#?}"));
    assert!(
        steps[pending_renamed + 1..]
            .iter()
            .any(|(name, _, line)| name.starts_with("rename") && line.contains("rollover-pending\", ")),
        "then it replaces the account file: {steps:#?}"
    );
    eprintln!(
        "crash points of the account rollover: {covered} in {:?}",
        started.elapsed()
    );
    assert!(covered >= 7, "{covered}");
}

/// Item 6, the other way out: the interrupted deploy's certificate is not seen served (verification points at a second
/// HAProxy that keeps the old one), so the next run puts the previous file back, with its mode, and fails.
#[test]
fn an_interrupted_deploy_that_is_not_served_is_undone_by_the_next_run() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::start();
    let config = format!("{}\n{SITE}", sandbox.base_config());
    sandbox.write_config_text(&config);
    assert_exit(&sandbox.hapcert(&["run"]), 0);
    let file = sandbox.cert_dir().join("site.pem");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    let (old, old_bytes) = (disk_serial(&sandbox), fs::read(&file).unwrap());
    let stale = sandbox.start_second_haproxy();

    let dying = config.replace(&toml(&sandbox.reload_command()), &toml("kill -9 $PPID; exit 1"));
    sandbox.write_config_text(&dying);
    let out = sandbox.hapcert(&["renew", "--force", "site"]);
    assert!(killed(&out), "{}", show(&out));
    assert_ne!(disk_serial(&sandbox), old);

    let elsewhere = format!(
        "{}\n{SITE}verify = [\"127.0.0.1:{}\"]\n",
        sandbox.base_config(),
        stale.https_port
    );
    sandbox.write_config_text(&elsewhere);
    let next = sandbox.hapcert(&["run"]);
    assert_exit(&next, 1);
    assert!(
        crate::harness::stdout(&next).contains(
            "FAILED    site: a deploy a crash interrupted: the interrupted deploy's certificate was not served"
        ),
        "{}",
        show(&next)
    );
    assert_eq!(fs::read(&file).unwrap(), old_bytes, "the previous file is back");
    assert_eq!(crate::harness::file_mode(&file), 0o640, "with its mode");
    sandbox.write_config_text(&config);
    assert_converged(&sandbox, "undone");
    assert_eq!(serial_hex(&sandbox.served_leaf("a.example.com")), old);
}
