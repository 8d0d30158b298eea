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
    pub profile: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChallenge {
    pub listen: Option<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
    pub preflight: Option<bool>,
    pub preflight_address: Option<Spanned<String>>,
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
}
