//! The fleet key, and secrets sealed under it before they go into etcd (issue 13: private keys, the account key
//! included, never enter etcd in clear).
//!
//! - `FleetKey`: 256 random bits every node of a fleet shares, written by `hapcert fleet keygen` as one line,
//!   `hapcert-fleet-key-v1:<base64>`, so that a wrong file is recognised as such.
//! - `seal(key, etcd_key, secret)`: AES-256-GCM from aws-lc-rs, a fresh random nonce for every seal (aws-lc-rs draws
//!   it: the only randomness here, like the keys of `core/keys.rs`), and the etcd key the value is written under as
//!   associated data, so an envelope copied to another key does not open. The envelope is text, versioned:
//!   `hapcert-sealed.v1.<nonce>.<ciphertext and tag>`, both base64url without padding; the version and the etcd key
//!   are both authenticated.
//! - `open(key, etcd_key, envelope)`: the secret, or an `OpenError` that says what to check. Never a panic.
//!
//! Pure apart from the nonce: no I/O, no clock. The key's bytes are never printed (`Debug` shows its id only).

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// How a fleet key file starts; the version names the encoding and the algorithm.
pub const KEY_PREFIX: &str = "hapcert-fleet-key-v1:";
/// The length of a fleet key: AES-256.
pub const KEY_LEN: usize = 32;
/// How a sealed value starts, and its version.
const ENVELOPE_TAG: &str = "hapcert-sealed";
const ENVELOPE_VERSION: &str = "v1";

/// The secret every node of a fleet shares. Not `Clone` on purpose: one copy, in the config.
pub struct FleetKey {
    key: RandomizedNonceKey,
    id: String,
}

impl fmt::Debug for FleetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// A key file that is not a fleet key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("is not a hapcert fleet key (it must be one line starting with {KEY_PREFIX})")]
    NotAFleetKey,
    #[error("holds a damaged fleet key (not {KEY_LEN} bytes of base64 after {KEY_PREFIX})")]
    Damaged,
}

impl FleetKey {
    /// A new random key from aws-lc-rs, in the file's encoding: the text `hapcert fleet keygen` writes.
    pub fn generate_encoded() -> Result<String, aws_lc_rs::error::Unspecified> {
        let mut bytes = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut bytes)?;
        Ok(format!("{KEY_PREFIX}{}\n", STANDARD.encode(bytes)))
    }

    /// The key in a key file's text (surrounding whitespace ignored).
    pub fn decode(text: &str) -> Result<FleetKey, KeyError> {
        let encoded = text.trim().strip_prefix(KEY_PREFIX).ok_or(KeyError::NotAFleetKey)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| KeyError::Damaged)?;
        if bytes.len() != KEY_LEN {
            return Err(KeyError::Damaged);
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, &bytes).map_err(|_| KeyError::Damaged)?;
        // A fingerprint an operator compares across nodes; a one-way hash of the key, with a label of its own.
        let hash = digest::digest(
            &digest::SHA256,
            &[b"hapcert fleet key id\0".as_slice(), &bytes].concat(),
        );
        let id = hash.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect();
        Ok(FleetKey { key, id })
    }

    /// A short fingerprint of the key, the same on every node that has the same key; reveals nothing of the key.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The tag did not verify: another key, a changed byte, or an envelope copied from another etcd key.
    #[error("{etcd_key}: sealed under another fleet key, or changed: check [fleet] key_file on this node")]
    Rejected { etcd_key: String },
    #[error("{etcd_key}: not a sealed value, or a damaged one ({why}); check what wrote it")]
    Malformed { etcd_key: String, why: &'static str },
    #[error("{etcd_key}: sealed in format {version}, which this hapcert does not read; upgrade hapcert on this node")]
    NewerFormat { etcd_key: String, version: String },
}

/// `secret` sealed under `key` for the etcd key `etcd_key`, with a fresh random nonce.
pub fn seal(key: &FleetKey, etcd_key: &str, secret: &[u8]) -> String {
    let mut in_out = secret.to_vec();
    let nonce = key
        .key
        .seal_in_place_append_tag(Aad::from(associated_data(ENVELOPE_VERSION, etcd_key)), &mut in_out)
        // aws-lc-rs fails only for inputs of more than 64 GiB, or when the system's randomness fails.
        .expect("AES-256-GCM seals a secret");
    format!(
        "{ENVELOPE_TAG}.{ENVELOPE_VERSION}.{}.{}",
        URL_SAFE_NO_PAD.encode(nonce.as_ref()),
        URL_SAFE_NO_PAD.encode(&in_out)
    )
}

/// The secret in `envelope`, read from the etcd key `etcd_key`.
pub fn open(key: &FleetKey, etcd_key: &str, envelope: &str) -> Result<Vec<u8>, OpenError> {
    let malformed = |why| OpenError::Malformed {
        etcd_key: etcd_key.to_owned(),
        why,
    };
    let mut parts = envelope.trim().split('.');
    if parts.next() != Some(ENVELOPE_TAG) {
        return Err(malformed("it does not start with hapcert-sealed"));
    }
    let version = parts.next().unwrap_or_default();
    if version != ENVELOPE_VERSION {
        return Err(OpenError::NewerFormat {
            etcd_key: etcd_key.to_owned(),
            version: version.to_owned(),
        });
    }
    let (Some(nonce), Some(sealed), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed("it does not have four parts"));
    };
    let nonce = URL_SAFE_NO_PAD
        .decode(nonce)
        .ok()
        .and_then(|n| Nonce::try_assume_unique_for_key(&n).ok())
        .ok_or_else(|| malformed("its nonce is not 12 bytes of base64url"))?;
    let mut in_out = URL_SAFE_NO_PAD
        .decode(sealed)
        .map_err(|_| malformed("its ciphertext is not base64url"))?;
    let plain = key
        .key
        .open_in_place(nonce, Aad::from(associated_data(version, etcd_key)), &mut in_out)
        .map_err(|_| OpenError::Rejected {
            etcd_key: etcd_key.to_owned(),
        })?;
    Ok(plain.to_vec())
}

/// What the tag covers besides the secret: the envelope's version and the etcd key.
fn associated_data(version: &str, etcd_key: &str) -> Vec<u8> {
    format!("{ENVELOPE_TAG}.{version}\0{etcd_key}").into_bytes()
}

const _: () = assert!(NONCE_LEN == 12);

#[cfg(test)]
mod tests {
    use super::*;

    const ETCD_KEY: &str = "/hapcert/default/certs/www/key";
    const SECRET: &[u8] = b"-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n";

    fn new_key() -> FleetKey {
        FleetKey::decode(&FleetKey::generate_encoded().unwrap()).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_under_its_key_and_etcd_key() {
        let key = new_key();
        let envelope = seal(&key, ETCD_KEY, SECRET);
        assert!(envelope.starts_with("hapcert-sealed.v1."), "{envelope}");
        assert_eq!(open(&key, ETCD_KEY, &envelope).unwrap(), SECRET);
        assert!(!envelope.contains("PRIVATE"), "no clear text: {envelope}");
        assert_eq!(open(&key, ETCD_KEY, &seal(&key, ETCD_KEY, b"")).unwrap(), b"");
    }

    #[test]
    fn two_seals_of_the_same_secret_differ() {
        let key = new_key();
        let (a, b) = (seal(&key, ETCD_KEY, SECRET), seal(&key, ETCD_KEY, SECRET));
        assert_ne!(a, b);
        let nonce = |e: &str| e.split('.').nth(2).unwrap().to_owned();
        assert_ne!(nonce(&a), nonce(&b), "a fresh nonce for every seal");
    }

    #[test]
    fn another_fleet_key_is_refused_with_what_to_check() {
        let envelope = seal(&new_key(), ETCD_KEY, SECRET);
        let err = open(&new_key(), ETCD_KEY, &envelope).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{ETCD_KEY}: sealed under another fleet key, or changed: check [fleet] key_file on this node")
        );
    }

    #[test]
    fn an_envelope_moved_to_another_etcd_key_is_refused() {
        let key = new_key();
        let envelope = seal(&key, ETCD_KEY, SECRET);
        let other = "/hapcert/default/certs/api/key";
        assert_eq!(
            open(&key, other, &envelope).unwrap_err(),
            OpenError::Rejected {
                etcd_key: other.to_owned()
            }
        );
        assert!(open(&key, "/hapcert/other/certs/www/key", &envelope).is_err());
    }

    #[test]
    fn every_changed_byte_is_refused_never_a_panic() {
        let key = new_key();
        let envelope = seal(&key, ETCD_KEY, SECRET);
        let bytes = envelope.as_bytes();
        for i in 0..bytes.len() {
            for replacement in [b'A', b'x', b'.', b'-', 0xff] {
                if bytes[i] == replacement {
                    continue;
                }
                let mut changed = bytes.to_vec();
                changed[i] = replacement;
                let changed = String::from_utf8_lossy(&changed);
                assert!(
                    open(&key, ETCD_KEY, &changed).is_err(),
                    "byte {i} -> {replacement}: {changed}"
                );
            }
        }
        for cut in 0..envelope.len() {
            assert!(open(&key, ETCD_KEY, &envelope[..cut]).is_err(), "cut at {cut}");
        }
        let tampered_tag = {
            let (head, tail) = envelope.rsplit_once('.').unwrap();
            let mut raw = URL_SAFE_NO_PAD.decode(tail).unwrap();
            let last = raw.len() - 1;
            raw[last] ^= 1;
            format!("{head}.{}", URL_SAFE_NO_PAD.encode(raw))
        };
        assert!(matches!(
            open(&key, ETCD_KEY, &tampered_tag),
            Err(OpenError::Rejected { .. })
        ));
        let tampered_text = {
            let (head, tail) = envelope.rsplit_once('.').unwrap();
            let mut raw = URL_SAFE_NO_PAD.decode(tail).unwrap();
            raw[0] ^= 0x80;
            format!("{head}.{}", URL_SAFE_NO_PAD.encode(raw))
        };
        assert!(matches!(
            open(&key, ETCD_KEY, &tampered_text),
            Err(OpenError::Rejected { .. })
        ));
    }

    #[test]
    fn a_newer_format_or_something_else_says_so() {
        let key = new_key();
        let envelope = seal(&key, ETCD_KEY, SECRET).replacen(".v1.", ".v2.", 1);
        assert_eq!(
            open(&key, ETCD_KEY, &envelope).unwrap_err().to_string(),
            format!("{ETCD_KEY}: sealed in format v2, which this hapcert does not read; upgrade hapcert on this node")
        );
        for junk in [
            "",
            "{\"pem\":\"x\"}",
            "hapcert-sealed.v1",
            "hapcert-sealed.v1.AAAA.AAAA",
            "hapcert-sealed.v1.a.b.c",
        ] {
            assert!(
                matches!(open(&key, ETCD_KEY, junk), Err(OpenError::Malformed { .. })),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn key_files_are_recognised_and_their_id_is_stable_and_not_the_key() {
        let text = FleetKey::generate_encoded().unwrap();
        assert!(text.starts_with(KEY_PREFIX) && text.ends_with('\n'), "{text}");
        assert_eq!(text.trim().len(), KEY_PREFIX.len() + 44);
        let (a, b) = (
            FleetKey::decode(&text).unwrap(),
            FleetKey::decode(&format!("  {text}\n")).unwrap(),
        );
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id().len(), 12);
        assert_ne!(a.id(), new_key().id());
        let encoded = text.trim().strip_prefix(KEY_PREFIX).unwrap();
        assert!(!format!("{a:?}").contains(encoded) && !encoded.contains(a.id()));
        assert!(format!("{a:?}").contains(a.id()));
        // A key sealed with one decode opens with another: the key is the file, not the object.
        assert_eq!(open(&b, ETCD_KEY, &seal(&a, ETCD_KEY, SECRET)).unwrap(), SECRET);

        assert_eq!(FleetKey::decode("").unwrap_err(), KeyError::NotAFleetKey);
        assert_eq!(FleetKey::decode(encoded).unwrap_err(), KeyError::NotAFleetKey);
        assert_eq!(
            FleetKey::decode("-----BEGIN PRIVATE KEY-----").unwrap_err(),
            KeyError::NotAFleetKey
        );
        assert_eq!(
            FleetKey::decode(&format!("{KEY_PREFIX}{}", &encoded[..40])).unwrap_err(),
            KeyError::Damaged
        );
        assert_eq!(
            FleetKey::decode(&format!("{KEY_PREFIX}not base64!")).unwrap_err(),
            KeyError::Damaged
        );
        assert_eq!(
            FleetKey::decode(&format!("{KEY_PREFIX}{}", STANDARD.encode([7u8; 16]))).unwrap_err(),
            KeyError::Damaged
        );
    }
}
