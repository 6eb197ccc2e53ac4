//! HMAC-SHA256 signatures over opaque payloads, separated by purpose.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::Result;

const TAG_BYTES: usize = 32;

/// Signs and verifies payloads with one key. Each payload is signed for a purpose
/// (`"ticket"`, `"token"`, ...), so a signature for one purpose is worthless for another.
///
/// Keys rotate: [`Signer::with_previous_keys`] keeps accepting what older keys signed while
/// everything new is signed with the current key.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
    previous: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            previous: Vec::new(),
        }
    }

    /// Also accepts signatures made with `keys` (keys being rotated out).
    pub fn with_previous_keys(mut self, keys: impl IntoIterator<Item = Vec<u8>>) -> Self {
        self.previous.extend(keys);
        self
    }

    /// A signer with a random key: what it signs is valid in this process only.
    pub fn random() -> Self {
        let key: [u8; 32] = rand::random();
        Self::new(key.to_vec())
    }

    /// From `server.signing_key` and `server.previous_signing_keys`: literals, or `env:NAME` to
    /// read an environment variable.
    pub fn from_settings(current: Option<&str>, previous: &[String]) -> Result<Self> {
        let signer = match current {
            None => Self::random(),
            Some(s) => Self::new(resolve(s)?),
        };
        let previous = previous
            .iter()
            .map(|p| resolve(p))
            .collect::<Result<Vec<_>>>()?;
        Ok(signer.with_previous_keys(previous))
    }

    fn mac(&self, purpose: &str) -> Hmac<Sha256> {
        Self::mac_with(&self.key, purpose)
    }

    fn mac_with(key: &[u8], purpose: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac
    }

    /// `payload` followed by its signature.
    pub fn sign(&self, purpose: &str, payload: &[u8]) -> Vec<u8> {
        let mut mac = self.mac(purpose);
        mac.update(payload);
        let mut out = payload.to_vec();
        out.extend_from_slice(&mac.finalize().into_bytes());
        out
    }

    /// The payload of `signed` if its signature is valid for `purpose`.
    pub fn verify<'a>(&self, purpose: &str, signed: &'a [u8]) -> Option<&'a [u8]> {
        if signed.len() < TAG_BYTES {
            return None;
        }
        let (payload, tag) = signed.split_at(signed.len() - TAG_BYTES);
        std::iter::once(&self.key)
            .chain(&self.previous)
            .any(|key| {
                let mut mac = Self::mac_with(key, purpose);
                mac.update(payload);
                mac.verify_slice(tag).is_ok()
            })
            .then_some(payload)
    }
}

/// A key setting: a literal, or `env:NAME`.
fn resolve(setting: &str) -> Result<Vec<u8>> {
    crate::spec::settings::literal_or_env(setting, "a signing key").map(String::into_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_key_purpose_and_payload() {
        let s = Signer::new(b"key".to_vec());
        let signed = s.sign("ticket", b"SELECT 1");
        assert_eq!(s.verify("ticket", &signed), Some(&b"SELECT 1"[..]));
        assert_eq!(s.verify("token", &signed), None);
        assert_eq!(
            Signer::new(b"other".to_vec()).verify("ticket", &signed),
            None
        );
        let mut altered = signed.clone();
        altered[0] ^= 1;
        assert_eq!(s.verify("ticket", &altered), None);
        assert_eq!(s.verify("ticket", b"short"), None);
    }

    #[test]
    fn keys_from_settings_and_a_missing_environment_variable() {
        let literal = Signer::from_settings(Some("abc"), &[]).unwrap();
        assert!(
            Signer::new(b"abc".to_vec())
                .verify("t", &literal.sign("t", b"x"))
                .is_some()
        );
        let err = Signer::from_settings(Some("env:MESHQL_TEST_SURELY_UNSET_KEY"), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a signing key names environment variable `MESHQL_TEST_SURELY_UNSET_KEY`, which is not set"
        );
    }

    #[test]
    fn rotated_keys_keep_verifying_until_dropped() {
        let old = Signer::new(b"old".to_vec());
        let signed = old.sign("token", b"claims");
        let rotated = Signer::new(b"new".to_vec()).with_previous_keys([b"old".to_vec()]);
        assert_eq!(rotated.verify("token", &signed), Some(&b"claims"[..]));
        let fresh = rotated.sign("token", b"claims");
        assert_eq!(
            Signer::new(b"new".to_vec()).verify("token", &fresh),
            Some(&b"claims"[..])
        );
        assert_eq!(Signer::new(b"new".to_vec()).verify("token", &signed), None);
    }
}
