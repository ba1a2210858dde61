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

use hmac::Mac;

use crate::secret::HmacKey;
pub use crate::secret::MIN_SECRET_BYTES;

/// Length of a signature in hex digits.
pub const SIGNATURE_HEX_LEN: usize = 64;

/// The shared secret (`IDENTITY_SECRET`): its text used as bytes, as the customer's backend uses
/// it, at least [`MIN_SECRET_BYTES`] ([`HmacKey::new`]).
pub type IdentitySecret = HmacKey;

/// The signature the site's backend gives the page for `lead_id`.
pub fn sign(secret: &IdentitySecret, lead_id: &str) -> String {
    let mut mac = secret.mac();
    mac.update(lead_id.as_bytes());
    crate::hex::encode(&mac.finalize().into_bytes())
}

/// Whether `signature` (hex, either case) signs `lead_id`; the comparison is constant-time.
pub fn verify(secret: &IdentitySecret, lead_id: &str, signature: &str) -> bool {
    if !is_signature_shaped(signature) {
        return false;
    }
    let Some(tag) = crate::hex::decode(signature) else {
        return false;
    };
    let mut mac = secret.mac();
    mac.update(lead_id.as_bytes());
    mac.verify_slice(&tag).is_ok()
}

/// Whether `s` has the shape of a signature (64 hex digits); the event parser checks this.
pub fn is_signature_shaped(s: &str) -> bool {
    s.len() == SIGNATURE_HEX_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_any_hmac_sha256() {
        let s = IdentitySecret::new("key-for-identity-tests").unwrap();
        let sig = sign(&s, "ceo@bigcorp.example");
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"key-for-identity-tests",
        //   b"ceo@bigcorp.example",hashlib.sha256).hexdigest())'
        assert_eq!(
            sig,
            "6924940cba64513d3b5981324f20eda312892ded3cd2544da232bb73177290dc"
        );
        assert!(verify(&s, "ceo@bigcorp.example", &sig));
        assert!(verify(&s, "ceo@bigcorp.example", &sig.to_uppercase()));
        assert!(!verify(&s, "ceo@bigcorp.example.", &sig));
        assert!(!verify(&s, "ceo@bigcorp.example", &sig[..62]));
        let mut flipped = sig.clone().into_bytes();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        assert!(!verify(
            &s,
            "ceo@bigcorp.example",
            std::str::from_utf8(&flipped).unwrap()
        ));
        assert!(!verify(&s, "ceo@bigcorp.example", &"zz".repeat(32)));
        let other = IdentitySecret::new("another-secret-of-16+").unwrap();
        assert!(!verify(&other, "ceo@bigcorp.example", &sig));
    }

    #[test]
    fn refuses_short_secrets() {
        assert!(IdentitySecret::new("short").is_err());
        assert!(IdentitySecret::new(&"k".repeat(MIN_SECRET_BYTES)).is_ok());
    }
}
