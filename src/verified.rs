//! What passed its signature check once, remembered by its text: a bounded cache of two
//! generations, so that a token or JWT seen again (a client reconnecting) is not verified
//! again. Only successes go in; what a value still needs at each use (the clock) is checked
//! by the caller every time.

use std::collections::HashMap;
use std::sync::Mutex;

/// Entries per generation by default; at most twice as many are kept.
pub const VERIFIED_CACHE_GENERATION: usize = 8192;

/// Verified values by their text: two generations, the older dropped whole when the newer
/// fills up (a hit moves an entry to the newer).
pub struct VerifiedCache<V> {
    generation: usize,
    generations: Mutex<[HashMap<Box<str>, V>; 2]>,
}

impl<V: Clone> Default for VerifiedCache<V> {
    fn default() -> Self {
        Self::with_generation(VERIFIED_CACHE_GENERATION)
    }
}

impl<V: Clone> VerifiedCache<V> {
    /// A cache keeping at most `2 * generation` entries.
    pub fn with_generation(generation: usize) -> Self {
        VerifiedCache {
            generation: generation.max(1),
            generations: Mutex::default(),
        }
    }

    pub fn get(&self, text: &str) -> Option<V> {
        let mut g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = g[0].get(text) {
            return Some(v.clone());
        }
        let (key, v) = g[1].remove_entry(text)?;
        let out = v.clone();
        self.put(&mut g, key, v);
        Some(out)
    }

    pub fn insert(&self, text: &str, v: &V) {
        let mut g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        self.put(&mut g, text.into(), v.clone());
    }

    fn put(&self, g: &mut [HashMap<Box<str>, V>; 2], text: Box<str>, v: V) {
        if g[0].len() >= self.generation {
            g[1] = std::mem::take(&mut g[0]);
        }
        g[0].insert(text, v);
    }

    /// How many entries are kept.
    pub fn len(&self) -> usize {
        let g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        g[0].len() + g[1].len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_keeps_recent_hits() {
        const N: usize = 64;
        let cache = VerifiedCache::with_generation(N);
        cache.insert("hot", &0usize);
        for i in 1..3 * N {
            cache.insert(&format!("t{i}"), &i);
            if i % (N / 2) == 0 {
                assert_eq!(cache.get("hot"), Some(0), "after {i}");
            }
            assert!(cache.len() <= 2 * N);
        }
        assert!(cache.get("t1").is_none(), "old entries are dropped");
        assert_eq!(cache.get(&format!("t{}", 3 * N - 1)), Some(3 * N - 1));
    }
}
