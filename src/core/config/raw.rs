//! The config file as written: serde structs that mirror the TOML one to one. Every value that validation may complain about
//! is `Spanned`, so the complaint can name its line and column. Unknown keys are rejected here, by serde.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub acme: Spanned<RawAcme>,
    #[serde(default)]
    pub challenge: RawChallenge,
    #[serde(default)]
    pub haproxy: RawHaproxy,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub certificate: Vec<Spanned<RawCertificate>>,
    #[serde(default)]
    pub check: RawCheck,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub hooks: RawHooks,
    #[serde(default)]
    pub notify: Vec<Spanned<RawNotify>>,
    pub fleet: Option<Spanned<RawFleet>>,
    #[serde(default)]
    pub dns_provider: Vec<Spanned<super::dns::RawDnsProvider>>,
    #[serde(default)]
    pub watch: Vec<Spanned<RawWatch>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    pub directory: Spanned<String>,
    #[serde(default)]
    pub contact: Vec<Spanned<String>>,
    pub ca_bundle: Option<Spanned<String>>,
    pub eab_kid: Option<Spanned<String>>,
    pub eab_hmac_key: Option<Spanned<String>>,
    pub eab_hmac_key_file: Option<Spanned<String>>,
    pub profile: Option<Spanned<String>>,
    pub preferred_chain: Option<Spanned<String>>,
    pub trust_roots: Option<Spanned<String>>,
    pub request_timeout: Option<Spanned<String>>,
    pub order_deadline: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChallenge {
    pub listen: Option<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
    pub preflight: Option<bool>,
    pub preflight_address: Option<Spanned<String>>,
    /// `"http-01"` (the default) or `"dns-01"`: the challenge of a certificate that names none.
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHaproxy {
    pub cert_dir: Option<Spanned<String>>,
    pub check_command: Option<Spanned<String>>,
    pub reload_command: Option<Spanned<String>>,
    pub mode: Option<Spanned<RawMode>>,
    pub owner: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    pub runtime_api: Option<Spanned<String>>,
    pub master_socket: Option<Spanned<String>>,
    pub crt_list: Option<Spanned<String>>,
    pub verify: Option<Spanned<Vec<Spanned<String>>>>,
    pub reload_timeout: Option<Spanned<String>>,
}

/// A file mode may be written as the string `"0600"` or as the TOML octal integer `0o600`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawMode {
    Text(String),
    Number(i64),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub dir: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub name: Spanned<String>,
    pub domains: Spanned<Vec<Spanned<String>>>,
    pub key_type: Option<Spanned<String>>,
    pub key_types: Option<Spanned<Vec<Spanned<String>>>>,
    pub file: Option<Spanned<String>>,
    pub renew_before: Option<Spanned<String>>,
    pub verify: Option<Spanned<Vec<Spanned<String>>>>,
    pub profile: Option<Spanned<String>>,
    pub preferred_chain: Option<Spanned<String>>,
    pub pre_hook: Option<Spanned<String>>,
    pub post_hook: Option<Spanned<String>>,
    pub deploy_hook: Option<Spanned<String>>,
    pub challenge: Option<Spanned<String>>,
    pub dns_provider: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub endpoints: Option<Spanned<Vec<Spanned<String>>>>,
    pub warn_days: Option<Spanned<f64>>,
    pub crit_days: Option<Spanned<f64>>,
    pub max_run_age: Option<Spanned<String>>,
    pub ca_bundle: Option<Spanned<String>>,
    pub unmanaged: Option<Spanned<String>>,
    pub ignore_paths: Option<Spanned<Vec<Spanned<String>>>>,
    pub route: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub textfile: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    pub listen: Option<Spanned<String>>,
    pub control: Option<Spanned<String>>,
    pub probe_interval: Option<Spanned<String>>,
    pub recheck_interval: Option<Spanned<String>>,
    pub jitter: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHooks {
    pub pre_hook: Option<Spanned<String>>,
    pub post_hook: Option<Spanned<String>>,
    pub deploy_hook: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

/// One `[[notify]]` table; which keys apply depends on `kind`, which validation checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub kind: Spanned<String>,
    pub events: Option<Spanned<Vec<Spanned<String>>>>,
    pub repeat: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    // webhook
    pub url: Option<Spanned<String>>,
    // email
    pub to: Option<Spanned<Vec<Spanned<String>>>>,
    pub from: Option<Spanned<String>>,
    pub smtp_host: Option<Spanned<String>>,
    pub smtp_port: Option<Spanned<i64>>,
    pub starttls: Option<bool>,
    pub username: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub sendmail: Option<Spanned<String>>,
    pub ca_bundle: Option<Spanned<String>>,
    // exec
    pub command: Option<Spanned<String>>,
}

/// `[fleet]`: several load balancers sharing their certificates through etcd.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    pub etcd: Option<Spanned<Vec<Spanned<String>>>>,
    pub prefix: Option<Spanned<String>>,
    pub node: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    pub lease_ttl: Option<Spanned<String>>,
    pub converge_timeout: Option<Spanned<String>>,
    pub ca_bundle: Option<Spanned<String>>,
    pub client_cert: Option<Spanned<String>>,
    pub client_key: Option<Spanned<String>>,
    pub username: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub advertise: Option<Spanned<String>>,
    pub emergency_days: Option<Spanned<f64>>,
}

/// One `[[watch]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {
    pub name: Option<Spanned<String>>,
    pub endpoint: Option<Spanned<String>>,
    pub sni: Option<Spanned<String>>,
    pub starttls: Option<Spanned<String>>,
    pub ca_bundle: Option<Spanned<String>>,
    pub warn_days: Option<Spanned<f64>>,
    pub crit_days: Option<Spanned<f64>>,
}
