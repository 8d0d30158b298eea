//! Issue 15, the chain clients need: `preferred_chain` against Pebble's alternate roots (PEBBLE_ALTERNATE_ROOTS=2), seen
//! on the wire through HAProxy.

use std::fs;

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use crate::harness::{
    CaMode, HostileCa, Sandbox, SandboxOptions, assert_exit, leaf_der_from_pem_file, show, stderr, stdout,
};

const NAME: &str = "chain.example.com";

/// A sandbox whose Pebble offers every certificate with chains to three roots, all of them trusted by hapcert; the
/// roots' PEMs, root 0 (the default chain's) first.
fn three_roots() -> (Sandbox, Vec<String>) {
    let sandbox = Sandbox::start_with(SandboxOptions {
        alternate_roots: 2,
        ..Default::default()
    });
    let roots: Vec<String> = (0..3)
        .map(|i| sandbox.pebble_management_text(&format!("/roots/{i}")))
        .collect();
    // `[acme] trust_roots` of the base config: every chain must be deployable.
    fs::write(sandbox.pebble_roots_file(), roots.concat()).unwrap();
    (sandbox, roots)
}

fn subject_cn(der: &[u8]) -> String {
    cn(der, |cert| cert.subject())
}

fn issuer_cn(der: &[u8]) -> String {
    cn(der, |cert| cert.issuer())
}

/// The common name of the subject or issuer `which` picks.
fn cn(der: &[u8], which: impl for<'a> Fn(&'a X509Certificate<'a>) -> &'a X509Name<'a>) -> String {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    which(&cert)
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

fn root_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
}

fn write_config(sandbox: &Sandbox, preferred: &str) {
    sandbox.write_config_text(&format!(
        "{}\n[[certificate]]\nname = \"site\"\ndomains = [\"{NAME}\"]\npreferred_chain = {preferred:?}\n",
        sandbox.base_config()
    ));
}

/// Certificate downloads Pebble answered: each is a POST-as-GET to `/certZ/...` (the default chain at `/certZ/<serial>`,
/// alternate N at `/certZ/<serial>/alternate/N`); Pebble logs the route, not the whole path.
fn downloads(sandbox: &Sandbox) -> usize {
    sandbox
        .pebble_log()
        .matches("POST /certZ/ -> calling handler()")
        .count()
}

/// The URLs of the certificate downloads hapcert sent and the CA answered with 200, in order, from its trace log.
fn downloaded_ok(logs: &str) -> Vec<String> {
    logs.lines()
        .filter(|line| line.contains("CA answered status=200 OK"))
        .filter_map(|line| line.split("uri=").nth(1))
        .map(|uri| uri.trim().to_owned())
        .filter(|uri| uri.contains("/certZ/"))
        .collect()
}

#[test]
fn preferred_chain_serves_the_alternate_chain_to_that_root_on_the_wire() {
    let (sandbox, roots) = three_roots();
    let cns: Vec<String> = roots.iter().map(|pem| subject_cn(&root_der(pem))).collect();
    assert!(cns[0] != cns[1] && cns[1] != cns[2], "three distinct roots: {cns:?}");

    // Root 2: the default chain (root 0) and the first alternate (root 1) do not lead to it, the second does.
    write_config(&sandbox, &cns[2]);
    let out = sandbox.hapcert(&["--log-level", "trace", "run"]);
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("serving the CA's alternate chain to the preferred root"),
        "{}",
        show(&out)
    );

    let served = sandbox.served_chain_unverified(NAME);
    let disk = leaf_der_from_pem_file(&sandbox.cert_dir().join("site.pem"));
    assert_eq!(served[0].as_ref(), disk.as_slice(), "the new certificate is served");
    let top = served.last().unwrap();
    assert!(served.len() >= 2, "a chain beyond the leaf is served");
    assert_eq!(issuer_cn(top), cns[2], "the served chain leads to root 2");
    // And it really is root 2's signature on it, not only its name.
    let root2 = root_der(&roots[2]);
    let (_, root2) = X509Certificate::from_der(&root2).unwrap();
    let (_, top) = X509Certificate::from_der(top).unwrap();
    top.verify_signature(Some(root2.public_key()))
        .expect("the topmost certificate is signed by root 2");

    // Pebble answered three downloads: the default chain, then alternates 1 and 2 in its order, each a POST-as-GET
    // hapcert signed (its trace shows the empty payload and Pebble's 200 for each).
    assert_eq!(downloads(&sandbox), 3, "{}", sandbox.pebble_log());
    let logs = stderr(&out);
    let ok = downloaded_ok(&logs);
    assert_eq!(ok.len(), 3, "{ok:?}");
    let default = &ok[0];
    assert_eq!(ok[1], format!("{default}/alternate/1"));
    assert_eq!(ok[2], format!("{default}/alternate/2"));
    assert!(
        logs.contains(&format!(
            "request to the CA method=POST uri={default}/alternate/2 payload="
        )),
        "{logs}"
    );

    served_chain_flaws_are_reported_by_check(&sandbox, &roots[2], &cns[2]);
}

/// `check` on the chain hapcert deployed: nothing to say. Then with the root in the file, then out of order: a
/// WARNING each, with the fix, seen through a real handshake with HAProxy.
fn served_chain_flaws_are_reported_by_check(sandbox: &Sandbox, root_pem: &str, root_cn: &str) {
    let https = format!("127.0.0.1:{}", sandbox.https_port());
    let roots = sandbox.pebble_roots_file().display().to_string();
    sandbox.write_config_text(&sandbox.check_config(std::slice::from_ref(&https), &roots, "", &[("site", NAME)]));
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 0);

    let path = sandbox.cert_dir().join("site.pem");
    let deployed = fs::read_to_string(&path).unwrap();
    let blocks = pem::parse_many(&deployed).unwrap();
    assert_eq!(blocks.len(), 3, "leaf, intermediate, key");
    let encode = |block: &pem::Pem| pem::encode(block);
    let (leaf, intermediate, key) = (encode(&blocks[0]), encode(&blocks[1]), encode(&blocks[2]));

    fs::write(&path, format!("{leaf}{intermediate}{root_pem}{key}")).unwrap();
    sandbox.reload_haproxy();
    assert_eq!(
        sandbox.served_chain_unverified(NAME).len(),
        3,
        "HAProxy sends the root too"
    );
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 1);
    let said = stdout(&out);
    assert!(
        said.contains(&format!(
            "WARNING: {https} (SNI {NAME}): the served chain includes its root (certificate 3, CN={root_cn}, \
             self-signed)"
        )) && said.contains("remove the root from the certificate file"),
        "{}",
        show(&out)
    );

    fs::write(&path, format!("{leaf}{root_pem}{intermediate}{key}")).unwrap();
    sandbox.reload_haproxy();
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 1);
    let said = stdout(&out);
    assert!(
        said.contains(&format!(
            "WARNING: {https} (SNI {NAME}): the served chain is out of order: certificate 1"
        )) && said.contains("put the certificates in the file leaf first, then each one's issuer in turn")
            && said.contains("chain verifies"),
        "{}",
        show(&out)
    );
}

#[test]
fn the_chosen_chain_is_the_one_verified_before_the_deploy() {
    let (sandbox, roots) = three_roots();
    let cns: Vec<String> = roots.iter().map(|pem| subject_cn(&root_der(pem))).collect();
    // Only the default chain's root is trusted: the chain to root 2, chosen, must not reach HAProxy.
    fs::write(sandbox.pebble_roots_file(), &roots[0]).unwrap();
    write_config(&sandbox, &cns[2]);
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 1);
    let said = show(&out);
    assert!(
        said.contains("serving the CA's alternate chain to the preferred root")
            && said.contains("failed verification, so it was not deployed")
            && said.contains(&format!(
                "it leads to {}, which is not in the system roots and trust_roots {}: a test or private CA? set \
                 [acme] trust_roots",
                cns[2],
                sandbox.pebble_roots_file().display()
            )),
        "{said}"
    );
    assert!(!sandbox.cert_dir().join("site.pem").exists(), "nothing deployed");
}

#[test]
fn an_unknown_preferred_chain_keeps_the_default_chain_and_warns_with_the_offered_roots() {
    let (sandbox, roots) = three_roots();
    let cns: Vec<String> = roots.iter().map(|pem| subject_cn(&root_der(pem))).collect();

    write_config(&sandbox, "No Such Root X9");
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 0);
    let logs = stderr(&out);
    let offered = format!("\"{}\", \"{}\", \"{}\"", cns[0], cns[1], cns[2]);
    assert!(
        logs.contains("WARN")
            && logs.contains(&format!(
                "no chain the CA offers leads to \"No Such Root X9\" (offered: {offered}); serving the default chain"
            )),
        "{}",
        show(&out)
    );
    let served = sandbox.served_chain_unverified(NAME);
    assert_eq!(
        issuer_cn(served.last().unwrap()),
        cns[0],
        "the default chain, to root 0"
    );
    assert_eq!(
        downloads(&sandbox),
        3,
        "the default chain and both alternates were downloaded"
    );

    // The default chain's own root asked for: nothing more is downloaded.
    write_config(&sandbox, &cns[0]);
    let out = sandbox.hapcert(&["renew", "--force"]);
    assert_exit(&out, 0);
    assert_eq!(
        downloads(&sandbox),
        4,
        "only the default chain, which matches, was downloaded"
    );
    let served = sandbox.served_chain_unverified(NAME);
    assert_eq!(issuer_cn(served.last().unwrap()), cns[0]);
}

#[test]
fn a_bad_nonce_on_an_alternate_is_sent_again_and_alternates_that_fail_fall_back_to_the_default_chain() {
    let (sandbox, roots) = three_roots();
    let cns: Vec<String> = roots.iter().map(|pem| subject_cn(&root_der(pem))).collect();
    let ca = HostileCa::start(&sandbox);
    sandbox.write_config_text(&format!(
        "{}\n[[certificate]]\nname = \"site\"\ndomains = [\"{NAME}\"]\npreferred_chain = {:?}\n",
        ca.config(&sandbox, &[]),
        cns[2]
    ));
    let alternates_seen = || -> Vec<String> {
        ca.seen()
            .into_iter()
            .filter(|r| r.starts_with("POST ") && r.contains("/alternate/"))
            .collect()
    };

    // Each alternate's first POST-as-GET is refused with badNonce: each goes once more, with the nonce that came back.
    ca.set(CaMode::BadNonceOnAlternates);
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 0);
    let seen = alternates_seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(
        seen[0] == seen[1] && seen[2] == seen[3] && seen[1].ends_with("/alternate/1"),
        "{seen:?}"
    );
    let served = sandbox.served_chain_unverified(NAME);
    assert_eq!(issuer_cn(served.last().unwrap()), cns[2], "{}", show(&out));

    // The alternates cannot be downloaded: the run still deploys, with the default chain, and says why.
    ca.set(CaMode::AlternatesFail);
    let out = sandbox.hapcert(&["renew", "--force"]);
    assert_exit(&out, 0);
    let logs = stderr(&out);
    assert_eq!(
        logs.matches("cannot download the CA's alternate chain, skipped: the CA answered 500")
            .count(),
        2,
        "{}",
        show(&out)
    );
    assert!(
        logs.contains(&format!(
            "no chain the CA offers leads to \"{}\" (offered: \"{}\"); serving the default chain",
            cns[2], cns[0]
        )),
        "{}",
        show(&out)
    );
    let served = sandbox.served_chain_unverified(NAME);
    assert_eq!(issuer_cn(served.last().unwrap()), cns[0]);
}
