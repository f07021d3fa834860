//! Which partition a keyed producer writes an event to, so that an offline run
//! split into partitions puts each service where production would.
//!
//! Two hash partitioners cover the producers forewarn meets: librdkafka's default
//! (`consistent_random`: CRC-32 of the key; forewarn's own `simulate --kafka` and
//! most non-Java clients) and the Java client's default (murmur2, also
//! librdkafka's `murmur2_random`).

/// A producer's key-to-partition rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Partitioner {
    /// librdkafka's default: CRC-32 (IEEE) of the key, modulo the partition count.
    #[default]
    Crc32,
    /// The Java client's default: murmur2 of the key, made positive, modulo the count.
    Murmur2,
}

impl Partitioner {
    /// The partition of `key` among `partitions` (at least 1).
    pub fn partition(self, key: &[u8], partitions: u32) -> u32 {
        let n = partitions.max(1);
        match self {
            Partitioner::Crc32 => crc32(key) % n,
            Partitioner::Murmur2 => (murmur2(key) & 0x7fff_ffff) % n,
        }
    }
}

/// CRC-32 with the IEEE polynomial (zlib's, librdkafka's `rd_crc32`).
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = crc32_table();
    let mut crc = !0u32;
    for &b in bytes {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const fn crc32_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// Kafka's murmur2 (seed 0x9747b28c), as the Java client's `Utils.murmur2`.
pub fn murmur2(bytes: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const SEED: u32 = 0x9747_b28c;
    let mut h = SEED ^ bytes.len() as u32;
    let mut chunks = bytes.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h ^= u32::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn murmur2_matches_the_java_clients_values() {
        // Kafka's own UtilsTest vectors (as signed ints there).
        for (key, want) in [
            ("21", -973_932_308i32),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(key.as_bytes()) as i32, want, "{key}");
        }
    }

    #[test]
    fn every_key_lands_in_range_and_a_single_partition_takes_all() {
        for p in [Partitioner::Crc32, Partitioner::Murmur2] {
            for key in ["checkout", "cart", "", "pricing-eu"] {
                assert!(p.partition(key.as_bytes(), 7) < 7);
                assert_eq!(p.partition(key.as_bytes(), 1), 0);
                assert_eq!(p.partition(key.as_bytes(), 0), 0);
            }
        }
    }
}
