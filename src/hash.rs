//! FNV-1a, the one non-cryptographic hash: stable across builds, platforms and languages (unlike
//! `std`'s hasher), because its values persist (state de-duplication, dataset shards) or must
//! match JavaScript's (experiment buckets).

/// 64-bit FNV-1a over the UTF-8 bytes.
pub fn fnv1a64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// 32-bit FNV-1a over UTF-16 code units, as JavaScript's `charCodeAt` reads a string (each
/// code unit folded in as one value, which is FNV-1a over bytes for ASCII).
pub fn fnv1a32(s: &str) -> u32 {
    s.encode_utf16().fold(0x811c_9dc5u32, |h, c| {
        (h ^ u32::from(c)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published FNV-1a test vectors (draft-eastlake-fnv).
    #[test]
    fn reference_vectors() {
        assert_eq!(fnv1a64(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64("foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a32(""), 0x811c_9dc5);
        assert_eq!(fnv1a32("a"), 0xe40c_292c);
        assert_eq!(fnv1a32("foobar"), 0xbf9c_f968);
    }
}
