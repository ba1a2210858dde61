//! The one HMAC-SHA256 key type: the identity secret, the HubSpot app's client secret and the
//! webhook signing secret are each an [`HmacKey`], and differ only in how their text is read and
//! what they sign (see [`crate::identity`], [`crate::outcome::hubspot`], [`crate::webhook`]).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Shortest accepted key (bytes): 128 bits at the least, as for any HMAC key.
pub const MIN_SECRET_BYTES: usize = 16;

/// A key shorter than its minimum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the secret must be at least {min} bytes")]
pub struct WeakSecret {
    /// The minimum it missed.
    pub min: usize,
}

/// An HMAC-SHA256 key, kept as its keyed state (built once, cloned per message) and never
/// printed.
#[derive(Clone)]
pub struct HmacKey(Hmac<Sha256>);

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(…)") // never print key material
    }
}

impl HmacKey {
    /// A key from a secret's text, used as its UTF-8 bytes (surrounding whitespace, such as a
    /// trailing newline in a variable, is dropped): at least [`MIN_SECRET_BYTES`].
    pub fn new(text: &str) -> Result<HmacKey, WeakSecret> {
        HmacKey::from_bytes(text.trim().as_bytes(), MIN_SECRET_BYTES)
    }

    /// A key from its bytes, at least `min` of them.
    pub fn from_bytes(key: &[u8], min: usize) -> Result<HmacKey, WeakSecret> {
        if key.len() < min.max(1) {
            return Err(WeakSecret { min });
        }
        Hmac::<Sha256>::new_from_slice(key)
            .map(HmacKey)
            .map_err(|_| WeakSecret { min })
    }

    /// A fresh MAC under this key, to `update` with the signed content, then `finalize` or
    /// `verify_slice` (constant time).
    pub fn mac(&self) -> Hmac<Sha256> {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_enough_and_never_printed() {
        assert_eq!(
            HmacKey::new(" short \n").unwrap_err(),
            WeakSecret {
                min: MIN_SECRET_BYTES
            }
        );
        let k = HmacKey::new("0123456789abcdef\n").unwrap();
        assert_eq!(format!("{k:?}"), "HmacKey(…)");
        assert!(HmacKey::from_bytes(&[7; 24], 24).is_ok());
        assert!(HmacKey::from_bytes(&[7; 23], 24).is_err());
        // RFC 4231 test case 2 ("Jefe").
        let mut mac = HmacKey::from_bytes(b"Jefe", 1).unwrap().mac();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            crate::hex::encode(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
