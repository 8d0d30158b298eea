//! The import's two texts: the config (checked with the parser `hapcert` itself uses) and the report on stderr.

use std::path::Path;

use super::CertbotTree;
use super::dns::{ProviderPlan, SecretWrite};
use super::plan::{Adoption, Existing, LineagePlan, ListenChoice, Plan, PlanOptions};
use crate::core::config::{Config, LETSENCRYPT, LETSENCRYPT_STAGING};
use crate::core::time::format_time;

fn directory_alias(url: &str) -> &str {
    match url {
        LETSENCRYPT => "letsencrypt",
        LETSENCRYPT_STAGING => "letsencrypt-staging",
        other => other,
    }
}

/// A TOML string literal, escaped by the toml crate.
pub(super) fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// One line of a comment, or several when the text holds newlines.
fn comment(text: &str) -> String {
    text.lines().map(|l| format!("# {}\n", printable(l))).collect()
}

/// TOML allows no control character but the tab in a comment: the others are shown escaped (`\u{4}`).
fn printable(line: &str) -> String {
    line.chars()
        .map(|c| match c {
            '\t' => c.to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The config text: certbot's settings where hapcert has a counterpart, hapcert's defaults elsewhere, and a REVIEW
/// comment on every guess about this host.
pub(super) fn render_config(
    tree: &CertbotTree,
    lineages: &[LineagePlan],
    providers: &[ProviderPlan],
    directory: &str,
    listen: &ListenChoice,
    options: &PlanOptions,
) -> String {
    let mut out = String::new();
    out += &comment(&format!(
        "hapcert config written by `hapcert import certbot` from {} ({} lineage{}).\n\
         Lines marked REVIEW are guesses about this host: check them, then run `hapcert check-config` and\n\
         `hapcert status`. deploy/hapcert.toml in hapcert's sources explains every key.",
        tree.config_dir.display(),
        lineages.len(),
        if lineages.len() == 1 { "" } else { "s" }
    ));

    out += "\n[acme]\n";
    out += "# The CA certbot renewed from (its `server`).\n";
    out += &format!("directory = {}\n", toml_string(directory_alias(directory)));
    if !directory.starts_with("https://acme-v02.api.letsencrypt.org/")
        && !directory.starts_with("https://acme-staging-v02.api.letsencrypt.org/")
    {
        out += "# REVIEW: if this CA's HTTPS certificate is not publicly trusted, name the root that signed it:\n";
        out += "# ca_bundle = \"/etc/hapcert/ca.pem\"\n";
    }
    out += "# certbot's account is not reused (see the import report): hapcert makes its own on the first order.\n";
    let contacts: Vec<String> = tree
        .accounts
        .iter()
        .filter(|a| a.server == directory)
        .flat_map(|a| a.contact.iter().map(|c| c.trim_start_matches("mailto:").to_owned()))
        .collect();
    if contacts.is_empty() {
        out += "# REVIEW: certbot's account had no e-mail address; give one for the CA's notices, e.g. a team's:\n";
        out += "# contact = [\"ops@example.com\"]\n";
    } else {
        let list: Vec<String> = contacts.iter().map(|c| toml_string(c)).collect();
        out += "# The e-mail address of certbot's account.\n";
        out += &format!("contact = [{}]\n", list.join(", "));
    }

    out += "\n[challenge]\n";
    out += &comment(&wrap(&format!("{}.", listen.why), COMMENT_WIDTH));
    if lineages.iter().all(|l| l.dns_provider.is_some()) {
        // Nothing here validates over HTTP-01, so asking for HAProxy's forwarding would send the operator on an errand.
        out += "# Every certificate below uses DNS-01; this side port serves HTTP-01 certificates added later.\n";
    } else {
        out +=
            "# REVIEW: HAProxy's port 80 must forward /.well-known/acme-challenge/ here, before any https redirect\n";
        out += "# (`hapcert haproxy-config` prints the lines).\n";
    }
    out += &format!("listen = {}\n", toml_string(&listen.addr.to_string()));

    out += "\n[haproxy]\n";
    out += "# REVIEW: the directory HAProxy loads certificates from (bind ... ssl crt <dir>/). Each certificate is\n";
    out += "# <cert_dir>/<name>.pem, the file `cat fullchain.pem privkey.pem` scripts usually write.\n";
    out += &format!("cert_dir = {}\n", toml_string(&options.cert_dir.display().to_string()));
    out += "# REVIEW: how this host checks and reloads HAProxy.\n";
    out += "check_command = \"haproxy -c -f /etc/haproxy/haproxy.cfg\"\n";
    out += "reload_command = \"systemctl reload haproxy\"\n";
    out += "# With HAProxy's admin socket, hapcert swaps certificates in memory and closes no connection:\n";
    out += "# runtime_api = \"/run/haproxy/admin.sock\"\n";

    out += "\n[state]\n";
    out += "# hapcert's account key, backups and last results.\n";
    out += "dir = \"/var/lib/hapcert\"\n";

    for provider in providers {
        out += "\n";
        out += &provider_table(provider, lineages);
    }

    for lineage in lineages {
        out += "\n";
        let conf_name = lineage.conf.file.file_name().map_or_else(
            || lineage.conf.file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        out += &comment(&wrap(
            &format!(
                "certbot lineage {} (renewal/{conf_name}); key type from {}. Current certificate: serial {}, \
                 expires {}, from {}.",
                lineage.name,
                lineage.key_origin,
                lineage.facts.serial,
                format_time(lineage.facts.not_after),
                lineage.source.display()
            ),
            COMMENT_WIDTH,
        ));
        for (key, command) in &lineage.conf.hooks {
            out += &comment(&format!(
                "REVIEW: certbot ran {key} = {command}; hapcert runs no hooks."
            ));
        }
        for change in &lineage.changes {
            out += &comment(&wrap(&format!("REVIEW: {change}."), COMMENT_WIDTH));
        }
        out += "[[certificate]]\n";
        out += &format!("name = {}\n", toml_string(&lineage.name));
        let domains: Vec<String> = lineage.domains.iter().map(|d| toml_string(d)).collect();
        out += &format!("domains = [{}]\n", domains.join(", "));
        out += &format!("key_type = {}\n", toml_string(lineage.key_type.name()));
        if let Some(provider) = &lineage.dns_provider {
            out += "challenge = \"dns-01\"\n";
            out += &format!("dns_provider = {}\n", toml_string(provider));
        }
    }
    out
}

/// One `[[dns_provider]]` made from a certbot credentials INI. The secret itself stays out of the config.
fn provider_table(provider: &ProviderPlan, lineages: &[LineagePlan]) -> String {
    let credentials = &provider.credentials;
    let mut out = comment(&wrap(
        &format!(
            "certbot's dns-rfc2136 credentials {} (used by {}). Its secret was copied to tsig_secret_file (mode \
             0600); the config only names that file.",
            provider.ini.display(),
            provider.lineages.join(", ")
        ),
        COMMENT_WIDTH,
    ));
    let waits: Vec<&str> = lineages
        .iter()
        .filter(|l| l.dns_provider.as_deref() == Some(provider.name.as_str()))
        .filter_map(|l| l.conf.propagation_seconds.as_deref())
        .collect();
    if let Some(seconds) = waits.first() {
        out += &comment(&wrap(
            &format!(
                "certbot slept dns_rfc2136_propagation_seconds = {seconds} before asking the CA; hapcert waits instead \
                 until every authoritative server of the zone answers the record."
            ),
            COMMENT_WIDTH,
        ));
    }
    out += "# REVIEW: those servers are the zone's NS records, asked on port 53 from this host; if they answer elsewhere\n";
    out += "# (another port, or another view than the CA sees), list them: nameservers = [\"192.0.2.1:53\"]\n";
    out += "[[dns_provider]]\n";
    out += &format!("name = {}\n", toml_string(&provider.name));
    out += "kind = \"rfc2136\"\n";
    out += &format!("server = {}\n", toml_string(&credentials.server));
    out += &format!("tsig_key_name = {}\n", toml_string(&credentials.key_name));
    out += &format!("tsig_algorithm = {}\n", toml_string(credentials.algorithm.name()));
    out += &format!(
        "tsig_secret_file = {}\n",
        toml_string(&provider.secret_file.display().to_string())
    );
    out
}

/// Comments and report paragraphs are wrapped to fit the project's 120 columns with their prefix.
const COMMENT_WIDTH: usize = 116;

/// Breaks text into lines of at most `width` characters at spaces (a longer word stays whole).
fn wrap(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split(' ') {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// Checks the generated text with the parser `hapcert` itself uses, and that each certificate's file is the one the
/// import writes: a mismatch would adopt a certificate where no run looks.
pub fn validate_generated(plan: &Plan, config_path: &Path) -> Result<(), String> {
    let Some(text) = &plan.config_toml else {
        return Ok(());
    };
    let config = Config::parse(text, config_path)
        .map_err(|errors| format!("the generated config does not parse (a bug in the import):\n{errors}"))?;
    for lineage in &plan.lineages {
        let spec = config.certificates.iter().find(|c| c.name == lineage.name);
        match spec {
            Some(spec) if spec.file.value == lineage.file => {}
            _ => {
                return Err(format!(
                    "the generated config does not write {} for {} (a bug in the import)",
                    lineage.file.display(),
                    lineage.name
                ));
            }
        }
    }
    Ok(())
}

/// The report of a plan without DNS providers: for the fuzz target and the tests.
#[cfg(any(test, fuzzing))]
pub fn render_report(tree: &CertbotTree, plan: &Plan, adoptions: &[Adoption], config_target: &str) -> String {
    render_report_with_secrets(tree, plan, adoptions, &[], config_target)
}

/// The human-readable report for stderr: what was imported, what was skipped, and everything certbot did that hapcert
/// will not do. `secrets` says what became of each DNS provider's secret file, in the order of `plan.providers`.
pub fn render_report_with_secrets(
    tree: &CertbotTree,
    plan: &Plan,
    adoptions: &[Adoption],
    secrets: &[SecretWrite],
    config_target: &str,
) -> String {
    let mut out = format!(
        "hapcert import certbot: {} lineage{} in {}, {} imported, {} skipped\n",
        tree.lineages.len(),
        if tree.lineages.len() == 1 { "" } else { "s" },
        tree.config_dir.display(),
        plan.lineages.len(),
        plan.skipped.len()
    );
    for (lineage, adoption) in plan.lineages.iter().zip(adoptions) {
        let status = if adoption.ok() { "imported" } else { "NOT ADOPTED" };
        out += &format!(
            "  {status:<9} {}: {} ({})\n",
            lineage.name,
            lineage.domains.join(", "),
            lineage.key_type,
        );
        out += &format!(
            "            serial {}, expires {}, from {}\n",
            lineage.facts.serial,
            format_time(lineage.facts.not_after),
            lineage.source.display()
        );
        let what = match adoption {
            Adoption::Written => format!("written to {} (0600)", lineage.file.display()),
            Adoption::WouldWrite => format!("would be written to {} (dry run)", lineage.file.display()),
            Adoption::AlreadyThere(Existing::SameCertificate) => format!(
                "{} already holds this certificate; left as it is",
                lineage.file.display()
            ),
            Adoption::AlreadyThere(_) => format!("{} is already up to date", lineage.file.display()),
            Adoption::NotAdopted(why) => why.clone(),
        };
        out += &format!("            {what}\n");
        if let Some(provider) = &lineage.dns_provider {
            out += &format!("            DNS-01 through [[dns_provider]] {provider}\n");
        }
        for change in &lineage.changes {
            out += &format!("            note: {change}\n");
        }
    }
    for (provider, secret) in plan.providers.iter().zip(secrets) {
        let credentials = &provider.credentials;
        out += &format!(
            "  provider  {}: rfc2136 from {}: server {}, key {} ({})\n",
            provider.name,
            provider.ini.display(),
            credentials.server,
            credentials.key_name,
            credentials.algorithm.name()
        );
        let what = match secret {
            SecretWrite::Written => format!("secret written to {} (0600)", provider.secret_file.display()),
            SecretWrite::WouldWrite => format!(
                "secret would be written to {} (dry run)",
                provider.secret_file.display()
            ),
            SecretWrite::AlreadyThere => format!(
                "{} already holds this secret; left as it is",
                provider.secret_file.display()
            ),
            SecretWrite::NotWritten(why) => format!("SECRET NOT WRITTEN: {why}"),
        };
        out += &format!("            {what}\n");
    }
    if plan
        .lineages
        .iter()
        .any(|l| l.dns_provider.is_some() && l.conf.propagation_seconds.is_some())
    {
        out += "  certbot's dns_rfc2136_propagation_seconds is not carried over: hapcert waits until every authoritative \
                server answers.\n";
    }
    for skipped in &plan.skipped {
        out += &format!("  SKIPPED   {}: {}\n", skipped.name, skipped.reason);
    }
    if plan.config_toml.is_some() {
        out += &format!("  config:   {config_target}\n");
    } else {
        out += "  config:   none written: no lineage could be imported\n";
    }
    let new_files = adoptions.iter().filter(|a| **a == Adoption::Written).count();
    if new_files > 0 {
        out += &paragraph(&format!(
            "HAProxy loads the {new_files} new file{s} at its next reload; until then it serves what it loaded \
             before. Reload it once after `hapcert check-config`.",
            s = if new_files == 1 { "" } else { "s" }
        ));
    }

    out += "\nNot carried over; review before you turn certbot off:\n";
    let mut hooks = Vec::new();
    for lineage in &plan.lineages {
        for (key, command) in &lineage.conf.hooks {
            let note = if key == "renew_hook" {
                "  (certbot's --deploy-hook)"
            } else {
                ""
            };
            hooks.push(format!("{}: {key} = {command}{note}", lineage.name));
        }
    }
    for script in &tree.hook_scripts {
        hooks.push(format!(
            "{} (a {} hook for every lineage{})",
            script.path.display(),
            script.phase,
            if script.executable {
                ""
            } else {
                "; not executable, so certbot skipped it"
            }
        ));
    }
    if hooks.is_empty() {
        out += "  hooks: none in the renewal confs or renewal-hooks/.\n";
    } else {
        out += &paragraph(
            "hooks: hapcert runs none. It writes the PEM and hands it to HAProxy itself, so a script that \
             concatenates files and reloads HAProxy is no longer needed; move anything else it does elsewhere.",
        );
        for hook in hooks {
            out += &format!("    {hook}\n");
        }
    }
    out += &paragraph(
        "Hooks given on certbot's command line (`certbot renew --deploy-hook ...` in a crontab or systemd unit) are \
         not stored in the renewal confs: look at `crontab -l`, /etc/cron.d/certbot and `systemctl cat certbot.service`.",
    );

    let mut authenticators = Vec::new();
    for lineage in &plan.lineages {
        let conf = &lineage.conf;
        let name = &lineage.name;
        match conf.authenticator.as_deref() {
            Some("standalone") if conf.http01_port.is_none() || conf.http01_port == Some(80) => {
                authenticators.push(format!(
                    "{name}: standalone on port 80: certbot took port 80 itself (with HAProxy stopped or moved); \
                     hapcert never does, HAProxy keeps port 80 and forwards the challenge path"
                ));
            }
            Some("standalone") => {}
            Some("webroot") => authenticators.push(format!(
                "{name}: webroot ({}): hapcert does not write into a web root",
                if conf.webroot.is_empty() {
                    "no path recorded".to_owned()
                } else {
                    conf.webroot.join(", ")
                }
            )),
            Some("manual") => {
                let hooks: Vec<String> = conf.manual_hooks.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                authenticators.push(format!(
                    "{name}: manual{}",
                    if hooks.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", hooks.join("; "))
                    }
                ));
            }
            // Carried over as a DNS provider, listed above.
            Some("dns-rfc2136") if lineage.dns_provider.is_some() => {}
            Some(other) => authenticators.push(format!("{name}: {other}")),
            None => authenticators.push(format!("{name}: no authenticator recorded")),
        }
        if let Some(installer) = &conf.installer {
            authenticators.push(format!(
                "{name}: installer {installer}: hapcert installs into HAProxy only"
            ));
        }
    }
    let all_dns = !plan.lineages.is_empty() && plan.lineages.iter().all(|l| l.dns_provider.is_some());
    if authenticators.is_empty() && all_dns {
        out += &paragraph("authenticators: every lineage is validated with DNS-01 through the providers above.");
    } else if authenticators.is_empty() {
        out += &paragraph(
            "authenticators: every HTTP-01 lineage used certbot's standalone server on a side port, as hapcert does.",
        );
    } else {
        out += &paragraph(&format!(
            "authenticators: hapcert answers HTTP-01 itself on {} (see [challenge] in the config); HAProxy must \
             forward /.well-known/acme-challenge/ there (`hapcert haproxy-config` prints the lines).",
            plan.listen.addr
        ));
        for line in authenticators {
            out += &format!("    {line}\n");
        }
    }

    if tree.accounts.is_empty() {
        out += &paragraph("account: none found under accounts/; hapcert makes a new account on its first order.");
    }
    for account in &tree.accounts {
        let kind = match &account.key_kind {
            Ok(kty) if kty == "RSA" => "an RSA key, and hapcert signs with P-256 ECDSA only".to_owned(),
            Ok(kty) => format!("a {kty} key, which hapcert does not import"),
            Err(why) => format!("a key that could not be read ({why})"),
        };
        out += &paragraph(&format!(
            "account: certbot's account {} at {} has {kind}. It is not reused: a new account will be made on the \
             first `hapcert run` that orders a certificate (`hapcert account show` shows it). certbot's account stays \
             valid; `certbot unregister` deactivates it once certbot is gone.",
            account.id, account.server
        ));
    }
    out
}

/// A report paragraph: indented by two, wrapped.
fn paragraph(text: &str) -> String {
    wrap(text, COMMENT_WIDTH)
        .lines()
        .map(|line| format!("  {line}\n"))
        .collect()
}
