//! [`fnv1a`]: the one stable hash of eventsock, for names and ids that must be the same in every
//! process and Rust version (the standard library's hasher may change between versions).

/// FNV-1a's usual 64-bit offset basis.
pub const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a (64 bits) of `bytes`, from `basis` ([`FNV_BASIS`], or another for a second,
/// independent hash of the same bytes).
pub fn fnv1a(basis: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(basis, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published test vectors of 64-bit FNV-1a.
    #[test]
    fn known_values() {
        assert_eq!(fnv1a(FNV_BASIS, *b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_BASIS, *b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_BASIS, *b"foobar"), 0x8594_4171_f739_67e8);
    }
}
