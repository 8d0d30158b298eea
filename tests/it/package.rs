//! The Debian package from scripts/package: what it holds, lintian's verdict, `--version`, the units as systemd reads
//! them, the config keys its hapcert.toml(5) documents, and the package installed, used, removed and purged in Debian
//! bookworm and trixie trees.
//!
//! The trees are built once under target/tools/pkgtest-<suite> (`scripts/lib/tools.sh ensure_package_tree <suite>`)
//! and never written to: each test mounts an overlay over one, so whatever dpkg does lands in a scratch directory
//! and the next test starts from the same tree. Mounts and chroot need root, as the HAProxy 3.x trees do. A tool that
//! is missing fails the test with the command that installs it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::harness::{Sandbox, SandboxOptions, leaf_der_from_pem_file, serial_hex};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const HAPCERT: &str = env!("CARGO_BIN_EXE_hapcert");

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must start; its outcome is the caller's to judge.
fn output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// Runs a command that must succeed, and returns its stdout.
fn ok(command: &mut Command) -> String {
    let out = output(command);
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Fails the test, with how to install it, when `tool` is not on PATH.
fn need(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(found, "{tool} is missing: apt-get install {package}");
}

/// The .deb, built by scripts/package once per test binary (cargo's builds inside it are incremental).
fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        need("dpkg-deb", "dpkg");
        need("dpkg-shlibdeps", "dpkg-dev");
        let stdout = ok(Command::new("bash").arg("scripts/package").current_dir(REPO));
        let deb = Path::new(REPO).join(stdout.trim());
        assert!(deb.is_file(), "scripts/package printed {stdout:?}, which is no file");
        deb
    })
}

/// What `hapcert --version` must print: the crate's version and the commit checked out.
fn expected_version() -> String {
    let commit = ok(Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(REPO));
    format!("hapcert {} (commit {})", env!("CARGO_PKG_VERSION"), commit.trim())
}

/// The subcommands `hapcert --help` lists (without `help`).
fn subcommands() -> Vec<String> {
    let help = ok(Command::new(HAPCERT).arg("--help"));
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        // A description that wraps goes on under its command, indented further.
        .filter(|line| !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn version_names_the_commit() {
    let out = ok(Command::new(HAPCERT).arg("--version"));
    assert_eq!(out.trim(), expected_version());
}

#[test]
fn deb_holds_binary_units_docs_man_pages_and_completions() {
    let listing = ok(Command::new("dpkg-deb").arg("--contents").arg(deb()));
    // `drwx------ root/root 0 2026-... ./var/lib/hapcert/` -> ("./var/lib/hapcert/", "drwx------")
    let entries: BTreeMap<String, String> = listing
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some((fields.get(5)?.to_string(), fields.first()?.to_string()))
        })
        .collect();
    let mode = |path: &str| {
        entries
            .get(path)
            .unwrap_or_else(|| panic!("the .deb has no {path}; it holds:\n{listing}"))
            .as_str()
    };
    assert_eq!(mode("./usr/bin/hapcert"), "-rwxr-xr-x");
    for unit in ["hapcert.service", "hapcert.timer", "hapcert-daemon.service"] {
        assert_eq!(mode(&format!("./lib/systemd/system/{unit}")), "-rw-r--r--");
    }
    assert_eq!(mode("./etc/hapcert/"), "drwxr-xr-x");
    assert_eq!(
        mode("./var/lib/hapcert/"),
        "drwx------",
        "the state directory holds the account key"
    );
    for doc in [
        "examples/hapcert.toml",
        "haproxy-snippet.cfg",
        "haproxy-debian.cfg",
        "hapcert-alerts.yml",
        "copyright",
        "changelog.gz",
    ] {
        mode(&format!("./usr/share/doc/hapcert/{doc}"));
    }
    mode("./usr/share/man/man1/hapcert.1.gz");
    mode("./usr/share/man/man5/hapcert.toml.5.gz");
    for command in subcommands() {
        mode(&format!("./usr/share/man/man1/hapcert-{command}.1.gz"));
    }
    mode("./usr/share/bash-completion/completions/hapcert");
    mode("./usr/share/zsh/vendor-completions/_hapcert");
    mode("./usr/share/fish/vendor_completions.d/hapcert.fish");
    // Nothing of HAProxy's: its directory is the operator's, and purge must not own it.
    let haproxy: Vec<&String> = entries.keys().filter(|path| path.contains("haproxy/")).collect();
    assert!(
        haproxy.is_empty(),
        "the .deb ships files in HAProxy's directories: {haproxy:?}"
    );

    let units = tempfile::tempdir().unwrap();
    ok(Command::new("dpkg-deb").arg("-x").arg(deb()).arg(units.path()));
    for unit in ["hapcert.service", "hapcert.timer", "hapcert-daemon.service"] {
        let body = fs::read_to_string(units.path().join("lib/systemd/system").join(unit)).unwrap();
        assert!(
            body.contains("\nConditionPathExists=/etc/hapcert/hapcert.toml\n"),
            "{unit} must not start without a config:\n{body}"
        );
        assert!(
            !body.contains("/usr/local/bin"),
            "{unit} runs another binary than the package's:\n{body}"
        );
    }
    let control = ok(Command::new("dpkg-deb").arg("--field").arg(deb()));
    assert!(control.contains("Depends: libc6"), "{control}");
    assert!(
        control.contains("Purging"),
        "the description says what purge removes: {control}"
    );
}

#[test]
fn lintian_reports_no_error() {
    need("lintian", "lintian");
    let out = output(Command::new("lintian").args(["--info", "--display-info"]).arg(deb()));
    let report = text(&out.stdout);
    // Written where the test runner shows it, so that the warnings can be read (and listed) from a passing run too.
    eprintln!("lintian {}:\n{report}{}", deb().display(), text(&out.stderr));
    let errors: Vec<&str> = report.lines().filter(|line| line.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
    // lintian exits 2 on its own failure (not on tags).
    assert!(
        out.status.code() != Some(2),
        "lintian did not run: {}",
        text(&out.stderr)
    );
}

/// `systemd-analyze verify` reads the units as systemd would on this host, with the packaged binary at
/// /usr/bin/hapcert (it checks that every command exists): an overlay over /usr/bin, in a mount namespace of its own,
/// holds it, so the host's /usr/bin is not written to. MANPATH points at the package's pages, which verify opens for
/// each Documentation=man:... of a unit.
#[test]
fn units_pass_systemd_analyze_verify() {
    need("systemd-analyze", "systemd");
    need("unshare", "util-linux");
    let root = tempfile::tempdir().unwrap();
    ok(Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb())
        .arg(root.path().join("deb")));
    for dir in ["upper", "work"] {
        fs::create_dir(root.path().join(dir)).unwrap();
    }
    let dir = root.path().join("deb/lib/systemd/system");
    for unit in ["hapcert.service", "hapcert.timer", "hapcert-daemon.service"] {
        let out = output(
            Command::new("unshare")
                .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                .arg(
                    r#"mount -t overlay overlay -o "lowerdir=/usr/bin,upperdir=$1/upper,workdir=$1/work" /usr/bin &&
                       cp "$1/deb/usr/bin/hapcert" /usr/bin/hapcert && exec systemd-analyze verify "$2""#,
                )
                .arg("sh")
                .arg(root.path())
                .arg(dir.join(unit))
                .env("MANPATH", root.path().join("deb/usr/share/man")),
        );
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        // A unit these order themselves after (haproxy.service) may be missing here; that is no fault of theirs.
        let problems: Vec<&str> = said
            .lines()
            .filter(|line| !line.trim().is_empty() && !line.contains("haproxy.service"))
            .collect();
        assert!(
            out.status.success() && problems.is_empty(),
            "systemd-analyze verify {unit}:\n{said}"
        );
    }
}

/// The keys of hapcert.toml(5), per table: `.SH [table]` or `.SH [[table]]`, then `.TP` and `.B key` per key. The
/// bool is whether the table is an array of tables.
fn documented_keys() -> BTreeMap<(String, bool), BTreeSet<String>> {
    let page = fs::read_to_string(Path::new(REPO).join("docs/man/hapcert.toml.5")).unwrap();
    let mut keys: BTreeMap<(String, bool), BTreeSet<String>> = BTreeMap::new();
    let mut table: Option<(String, bool)> = None;
    let mut after_tp = false;
    for line in page.lines() {
        if let Some(heading) = line.strip_prefix(".SH ") {
            table = match heading.strip_prefix("[[").and_then(|h| h.strip_suffix("]]")) {
                Some(name) => Some((name.to_owned(), true)),
                None => heading
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .map(|name| (name.to_owned(), false)),
            };
            if let Some(table) = &table {
                keys.entry(table.clone()).or_default();
            }
        } else if let (Some(table), true, Some(key)) = (&table, after_tp, line.strip_prefix(".B ")) {
            keys.entry(table.clone()).or_default().insert(key.trim().to_owned());
        }
        after_tp = line == ".TP";
    }
    keys
}

/// The fields the config parser takes at one place, read from its answer to an unknown key: serde's
/// ``unknown field `bogus`, expected one of `a`, `b` `` (or ``expected `a` `` when there is one).
fn parser_fields(dir: &Path, config: &str) -> Result<BTreeSet<String>, String> {
    let path = dir.join("probe.toml");
    fs::write(&path, config).unwrap();
    let out = output(Command::new(HAPCERT).arg("--config").arg(&path).arg("check-config"));
    let said = text(&out.stderr);
    let Some(list) = said
        .split("unknown field `bogus`, expected ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
    else {
        return Err(said);
    };
    Ok(list.split('`').skip(1).step_by(2).map(str::to_owned).collect())
}

/// Every key the parser takes is in hapcert.toml(5) under its table, and the page names no key the parser refuses. The
/// parser's keys are asked of the binary itself: its serde structs refuse unknown keys and name the ones they take, so
/// a key added to src/core/config/raw.rs without a line in the page fails here.
#[test]
fn man_page_documents_every_config_key() {
    let dir = tempfile::tempdir().unwrap();
    let tables = parser_fields(dir.path(), "bogus = 1\n").expect("the parser's top-level keys");
    let mut parsed: BTreeMap<(String, bool), BTreeSet<String>> = BTreeMap::new();
    for table in tables {
        let (is_array, fields) = match parser_fields(dir.path(), &format!("[{table}]\nbogus = 1\n")) {
            Ok(fields) => (false, fields),
            // An array of tables refuses a single table.
            Err(said) if said.contains("expected a sequence") => (
                true,
                parser_fields(dir.path(), &format!("[[{table}]]\nbogus = 1\n"))
                    .unwrap_or_else(|said| panic!("cannot read the keys of [[{table}]]: {said}")),
            ),
            Err(said) => panic!("cannot read the keys of [{table}]: {said}"),
        };
        parsed.insert((table, is_array), fields);
    }
    let documented = documented_keys();
    let name = |(table, is_array): &(String, bool)| match is_array {
        true => format!("[[{table}]]"),
        false => format!("[{table}]"),
    };
    let mut problems = Vec::new();
    for (table, fields) in &parsed {
        match documented.get(table) {
            None => problems.push(format!("{} is not in hapcert.toml(5)", name(table))),
            Some(keys) => {
                for missing in fields.difference(keys) {
                    problems.push(format!("{} {missing} is not in hapcert.toml(5)", name(table)));
                }
                for extra in keys.difference(fields) {
                    problems.push(format!(
                        "{} {extra} is in hapcert.toml(5), but the parser refuses it",
                        name(table)
                    ));
                }
            }
        }
    }
    for table in documented.keys().filter(|table| !parsed.contains_key(*table)) {
        problems.push(format!(
            "{} is in hapcert.toml(5), but the parser has no such table",
            name(table)
        ));
    }
    assert!(
        problems.is_empty(),
        "docs/man/hapcert.toml.5 and the config parser disagree:\n{}",
        problems.join("\n")
    );
    // The check above would pass on two empty lists.
    assert!(parsed.values().map(BTreeSet::len).sum::<usize>() > 80, "{parsed:?}");
}

/// A Debian tree with the package's scratch layer over it.
struct Tree {
    suite: &'static str,
    lower: PathBuf,
    scratch: tempfile::TempDir,
}

impl Tree {
    fn new(suite: &'static str) -> Tree {
        need("unshare", "util-linux");
        need("debootstrap", "debootstrap");
        // Tests run at once may ask for the same tree: two builds of one tree would each remove the other's half.
        static BUILDING: Mutex<()> = Mutex::new(());
        let _one_build_at_a_time = BUILDING.lock().unwrap_or_else(PoisonError::into_inner);
        let out = output(
            Command::new("bash")
                .args(["scripts/lib/tools.sh", "ensure_package_tree", suite])
                .current_dir(REPO),
        );
        assert!(
            out.status.success(),
            "cannot build the {suite} tree (scripts/lib/tools.sh ensure_package_tree {suite}):\n{}",
            text(&out.stderr)
        );
        let lower = Path::new(REPO).join(format!("target/tools/pkgtest-{suite}/root"));
        let scratch = tempfile::tempdir().unwrap();
        for dir in ["upper", "work", "merged"] {
            fs::create_dir(scratch.path().join(dir)).unwrap();
        }
        Tree { suite, lower, scratch }
    }

    /// Puts a file into the tree (into the overlay's upper layer, while nothing is mounted) at a path of its own.
    fn put(&self, from: &Path, to: &str) {
        let dest = self.scratch.path().join("upper").join(to.trim_start_matches('/'));
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(from, &dest).unwrap();
    }

    /// Runs `script` with /bin/sh in the tree, as root, with a clean environment. The overlay and /proc are mounted in
    /// a mount namespace of the command's own, so they go away with it.
    fn sh(&self, script: &str) -> Output {
        self.run(script, false)
    }

    /// `sh`, with the host's /tmp bound over the tree's: a test sandbox (its config, sockets and certificate
    /// directory) lives there, and HAProxy, run from the HAProxy 3.0 tree's wrapper, sees the same /tmp.
    fn sh_with_host_tmp(&self, script: &str) -> Output {
        self.run(script, true)
    }

    fn run(&self, script: &str, host_tmp: bool) -> Output {
        let dir = |name: &str| self.scratch.path().join(name);
        output(
            Command::new("unshare")
                .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                .arg(
                    r#"mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4" &&
                       mount -t proc proc "$4/proc" &&
                       { [ "$6" = no ] || mount --bind /tmp "$4/tmp"; } &&
                       exec chroot "$4" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
                         TERM=dumb /bin/sh -c "$5""#,
                )
                .arg("sh")
                .arg(&self.lower)
                .arg(dir("upper"))
                .arg(dir("work"))
                .arg(dir("merged"))
                .arg(script)
                .arg(if host_tmp { "yes" } else { "no" }),
        )
    }

    /// Like `sh`, but the script must succeed; returns its stdout.
    fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "in the {} tree, `{script}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.suite,
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

/// Installs the .deb into a fresh `suite` tree and checks it there: dpkg is content, the binary runs and names its
/// commit, every man page renders without a warning, bash completes `hapcert re<TAB>`, the timer is enabled and the
/// daemon not, `remove` keeps the config and the state, and `purge` removes both but leaves the certificates in
/// HAProxy's directory (and any under /etc/hapcert).
fn install_use_and_purge(suite: &'static str) {
    let tree = Tree::new(suite);
    tree.put(deb(), "/hapcert-test/hapcert.deb");
    let roots = Path::new(REPO).join("data/letsencrypt-staging-roots.pem");
    tree.put(&roots, "/hapcert-test/served.pem");

    let install = tree.sh("dpkg -i /hapcert-test/hapcert.deb");
    let said = format!("{}{}", text(&install.stdout), text(&install.stderr));
    assert!(install.status.success(), "dpkg -i in the {suite} tree:\n{said}");
    assert!(!said.contains("dependency problems"), "{said}");
    assert_eq!(tree.ok("dpkg-query -W -f='${Status}' hapcert"), "install ok installed");

    assert_eq!(tree.ok("hapcert --version").trim(), expected_version());

    // Each page by its path (`man -l`), with groff's warnings on: a page that renders with warnings fails.
    let pages = tree.ok("ls /usr/share/man/man1/hapcert*.1.gz /usr/share/man/man5/hapcert.toml.5.gz");
    let pages: Vec<&str> = pages.lines().collect();
    assert!(pages.len() > subcommands().len(), "{pages:?}");
    for page in &pages {
        let out = tree.sh(&format!("MANWIDTH=100 man --warnings -l {page}"));
        assert!(
            out.status.success() && out.stdout.len() > 200 && out.stderr.is_empty(),
            "man -l {page} in the {suite} tree ({}):\n{}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    // And by name, as an operator types it.
    let found = tree.ok("man -w hapcert && man -w hapcert.toml && man -w hapcert-renew");
    assert!(found.contains("/usr/share/man/man5/hapcert.toml.5.gz"), "{found}");

    // bash-completion loads the package's file on demand (its default completion), as on the first <TAB>; then the
    // function it registered is called as bash would for `hapcert re<TAB>`.
    let completion = tree.ok(r#"exec bash -c '
        . /usr/share/bash-completion/bash_completion
        loader=$(complete -p -D | sed -n "s/.*-F \([^ ]*\).*/\1/p")
        "$loader" hapcert re hapcert || true
        fn=$(complete -p hapcert | sed -n "s/.*-F \([^ ]*\).*/\1/p")
        COMP_WORDS=(hapcert re); COMP_CWORD=1; COMP_LINE="hapcert re"; COMP_POINT=${#COMP_LINE}
        "$fn" hapcert re hapcert
        printf "%s\n" "${COMPREPLY[@]}"'"#);
    let mut offered: Vec<&str> = completion.split_whitespace().collect();
    offered.sort_unstable();
    assert_eq!(
        offered,
        ["renew", "revoke"],
        "bash completion of `hapcert re` in the {suite} tree"
    );

    assert!(
        tree.sh("test -L /etc/systemd/system/timers.target.wants/hapcert.timer")
            .status
            .success()
    );
    assert!(
        !tree
            .sh("test -e /etc/systemd/system/multi-user.target.wants/hapcert-daemon.service")
            .status
            .success(),
        "the daemon must stay disabled until the operator picks it over the timer"
    );
    assert_eq!(tree.ok("stat -c %a /var/lib/hapcert").trim(), "700");

    // What an operator's host has by the time the package is removed: a config and its secrets, state, the served
    // PEM in HAProxy's directory, and a private CA's roots an operator kept in /etc/hapcert.
    tree.ok(
        "cp /usr/share/doc/hapcert/examples/hapcert.toml /etc/hapcert/hapcert.toml &&
         echo secret > /etc/hapcert/fleet.key && cp /hapcert-test/served.pem /etc/hapcert/private-ca.pem &&
         echo '{}' > /var/lib/hapcert/state.json &&
         mkdir -p /etc/haproxy/certs && cp /hapcert-test/served.pem /etc/haproxy/certs/www.pem",
    );
    tree.ok("dpkg -r hapcert");
    tree.ok("test ! -e /usr/bin/hapcert && test -f /etc/hapcert/hapcert.toml && test -f /var/lib/hapcert/state.json");
    tree.ok("dpkg -P hapcert");
    tree.ok("test ! -e /etc/hapcert/hapcert.toml && test ! -e /etc/hapcert/fleet.key && test ! -e /var/lib/hapcert");
    tree.ok("cmp /hapcert-test/served.pem /etc/haproxy/certs/www.pem && cmp /hapcert-test/served.pem /etc/hapcert/private-ca.pem");
    let status = text(&tree.sh("dpkg-query -W -f='${Status}' hapcert").stdout);
    assert!(
        status.is_empty() || status.ends_with("not-installed"),
        "after purge, dpkg says: {status}"
    );
}

#[test]
fn installs_and_purges_in_bookworm() {
    install_use_and_purge("bookworm");
}

#[test]
fn installs_and_purges_in_trixie() {
    install_use_and_purge("trixie");
}

/// The installed binary at work in the trixie tree: it issues a certificate from Pebble and deploys it into the
/// tree's own HAProxy 3.0 (run through the tree's wrapper, with a hot update over the Runtime API), and HAProxy serves
/// it. Then `dpkg --purge` leaves that PEM in HAProxy's directory, still served.
#[test]
fn issues_in_trixie_with_its_haproxy_and_purge_keeps_the_pem() {
    let tree = Tree::new("trixie");
    let sandbox = Sandbox::start_with(SandboxOptions {
        haproxy: Some(Path::new(REPO).join("target/tools/haproxy-3.0/haproxy")),
        ..Default::default()
    });
    assert!(
        master_cli(&sandbox.haproxy_master_sock(), "show version").starts_with("3.0."),
        "the sandbox runs another HAProxy than the trixie tree's 3.0"
    );
    tree.put(deb(), "/hapcert-test/hapcert.deb");
    tree.ok("dpkg -i /hapcert-test/hapcert.deb");

    // The sandbox's check command names the host's HAProxy; inside the tree, its own is the one.
    let check = format!("/usr/sbin/haproxy -c -q -f {}", sandbox.haproxy_cfg().display());
    let config = sandbox
        .runtime_config("[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n")
        .replace(&sandbox.check_command(), &check);
    let path = sandbox.write_config_text(&config);
    let out = tree.sh_with_host_tmp(&format!("hapcert --config {} run", path.display()));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "hapcert run in the trixie tree:\n{said}");
    assert!(text(&out.stdout).contains("renewed   www"), "{said}");

    let pem = sandbox.cert_dir().join("www.pem");
    let deployed = leaf_der_from_pem_file(&pem);
    // served_leaf verifies the chain to Pebble's root.
    assert_eq!(
        serial_hex(&sandbox.served_leaf("www.example.com")),
        serial_hex(&deployed)
    );

    let before = fs::read(&pem).unwrap();
    tree.ok("dpkg -P hapcert");
    assert_eq!(fs::read(&pem).unwrap(), before, "purge changed {}", pem.display());
    assert_eq!(
        serial_hex(&sandbox.served_leaf("www.example.com")),
        serial_hex(&deployed)
    );
}

/// One command on HAProxy's master socket; the whole reply.
fn master_cli(sock: &Path, command: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(sock).unwrap();
    stream.write_all(format!("{command}\n").as_bytes()).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}
