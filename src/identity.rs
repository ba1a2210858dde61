//! Identity verification: a browser's claim "I am lead L" is trusted only with L's signature.
//!
//! The site key is public (it is in every page), so anyone can send `identify` for any lead id.
//! As chat and CRM widgets do with a "user hash", the site's backend — which knows who is logged
//! in — signs the lead id with a secret it shares only with the worker (`IDENTITY_SECRET`), the
//! page passes the signature along (`identify(id, traits, {signature})`), and the worker checks
//! it in constant time. Only a verified identify may join a lead's directory, merge the lead's
//! other devices or change what `GET /v1/score/{lead}` answers; an unverified one (a form fill) only
//! tags its own visitor, and webhooks say `"verified": false`.
//!
//! Signature: lowercase hex of HMAC-SHA256(key = the secret's UTF-8 bytes, message = the lead id).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Shortest accepted secret (bytes): 128 bits at the least, as for any HMAC key.
pub const MIN_SECRET_BYTES: usize = 16;
/// Length of a signature in hex digits.
pub const SIGNATURE_HEX_LEN: usize = 64;

/// Errors of the identity secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// Too short to be a secret.
    #[error("IDENTITY_SECRET must be at least {MIN_SECRET_BYTES} bytes")]
    WeakSecret,
}

/// The shared secret, kept as its keyed HMAC.
#[derive(Clone)]
pub struct IdentitySecret(Hmac<Sha256>);

impl std::fmt::Debug for IdentitySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentitySecret(…)") // never print key material
    }
}

impl IdentitySecret {
    /// A secret from its text (used as bytes, as the customer's backend uses it).
    pub fn new(text: &str) -> Result<IdentitySecret, IdentityError> {
        let key = text.trim().as_bytes();
        if key.len() < MIN_SECRET_BYTES {
            return Err(IdentityError::WeakSecret);
        }
        Hmac::<Sha256>::new_from_slice(key)
            .map(IdentitySecret)
            .map_err(|_| IdentityError::WeakSecret)
    }

    /// The signature the site's backend gives the page for `lead_id`.
    pub fn sign(&self, lead_id: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(lead_id.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `signature` (hex, either case) signs `lead_id`; the comparison is constant-time.
    pub fn verify(&self, lead_id: &str, signature: &str) -> bool {
        let Some(tag) = decode_hex(signature) else {
            return false;
        };
        let mut mac = self.0.clone();
        mac.update(lead_id.as_bytes());
        mac.verify_slice(&tag).is_ok()
    }
}

/// Whether `s` has the shape of a signature (64 hex digits); the event parser checks this.
pub fn is_signature_shaped(s: &str) -> bool {
    s.len() == SIGNATURE_HEX_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !is_signature_shaped(s) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_any_hmac_sha256() {
        let s = IdentitySecret::new("key-for-identity-tests").unwrap();
        let sig = s.sign("ceo@bigcorp.example");
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"key-for-identity-tests",
        //   b"ceo@bigcorp.example",hashlib.sha256).hexdigest())'
        assert_eq!(
            sig,
            "6924940cba64513d3b5981324f20eda312892ded3cd2544da232bb73177290dc"
        );
        assert!(s.verify("ceo@bigcorp.example", &sig));
        assert!(s.verify("ceo@bigcorp.example", &sig.to_uppercase()));
        assert!(!s.verify("ceo@bigcorp.example.", &sig));
        assert!(!s.verify("ceo@bigcorp.example", &sig[..62]));
        let mut flipped = sig.clone().into_bytes();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        assert!(!s.verify(
            "ceo@bigcorp.example",
            std::str::from_utf8(&flipped).unwrap()
        ));
        assert!(!s.verify("ceo@bigcorp.example", &"zz".repeat(32)));
        let other = IdentitySecret::new("another-secret-of-16+").unwrap();
        assert!(!other.verify("ceo@bigcorp.example", &sig));
    }

    #[test]
    fn refuses_short_secrets() {
        assert_eq!(
            IdentitySecret::new("short").unwrap_err(),
            IdentityError::WeakSecret
        );
    }
}
