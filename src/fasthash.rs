//! A fast, non-cryptographic hash for the maps keyed by message file
//! names (tens of bytes, hundreds of thousands per folder). The standard
//! SipHash costs more than the lookups it serves there; flooding is no
//! concern because those names are made by the local delivery agent and
//! mail clients, not by senders. The mixing step is FxHash's (rustc's).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub struct FastHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub type FastBuild = BuildHasherDefault<FastHasher>;
pub type FastMap<K, V> = HashMap<K, V, FastBuild>;
pub type FastSet<K> = HashSet<K, FastBuild>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_work_and_names_spread() {
        let mut m: FastMap<String, u32> = FastMap::default();
        for i in 0..10_000u32 {
            m.insert(format!("1700000000.M{i}P42.host,S=1000,W=1020"), i);
        }
        for i in 0..10_000u32 {
            assert_eq!(m[&format!("1700000000.M{i}P42.host,S=1000,W=1020")], i);
        }
        let mut tops = FastSet::default();
        for i in 0..1000u32 {
            let mut h = FastHasher::default();
            h.write(format!("1700000000.M{i}P42.host").as_bytes());
            tops.insert(h.finish() >> 54);
        }
        // Top bits (what hashbrown's control bytes use) are well spread.
        assert!(tops.len() > 500, "{}", tops.len());
    }
}
