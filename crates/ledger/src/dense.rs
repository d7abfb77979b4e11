//! `DenseMap`: the ledger's three largest tables, the accounts, the bets and the idempotency
//! records, as entries packed in fixed-size chunks and a hash table of their positions.
//!
//! Why not a `BTreeMap`, as everywhere else in the state: the bet path looks up an account
//! among a million and an idempotency record among millions, and settlement a bet among
//! millions. A B-tree lookup there visits about eight nodes, each a likely cache miss, and ids
//! inserted in ascending order leave its nodes half full. Here a lookup hashes the key, probes a
//! table of 8-byte slots and reads one entry; the entries lie packed in chunks that are never
//! moved or copied as the table grows. The slot table itself still doubles all at once (its
//! rehash reads no entry, but it is the longest pause left when a table grows).
//!
//! The price: a `BTreeMap` is walked in key order for free, while encoding a `DenseMap` sorts
//! its keys first (about 0.35 s more for the state hash of a book of 1M accounts, 1M bets and
//! 3M idempotency records, BENCHMARKS.md).
//!
//! Determinism: the hasher is FxHash with no random seed, so every replica and every run
//! probes alike. The order of the entries depends on the history of inserts and removals (a
//! replica restored from a snapshot holds them in key order, one that applied the log holds
//! them as they came), so that order must never reach the state hash, a snapshot or an answer.
//! The type shows no other order than the keys': [`DenseMap::sorted`], which serialization
//! uses (the bytes are those a `BTreeMap` of the same entries encodes to, so the snapshot format
//! did not change), and [`DenseMap::values_any_order`], for folds whose result cannot depend on
//! order (sums).
//!
//! The keys hashed here are bet ids (numbered by the ledger), the first 128 bits of a SHA-256
//! of an idempotency key (a client would have to grind hashes to aim them), and account ids,
//! which operators and services choose. The hash is fixed, so a caller who wanted to could
//! compute ids that collide; the hash mixes every bit of an id, so ids with structure in them
//! (a timestamp, a worker number) spread as well as sequential ones do
//! (`structured_ids_spread_over_the_slots`).

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

/// Entries per chunk. A chunk is allocated once at this size, so a growing table never copies
/// its entries (a vector that doubles copies all of them, stalling the one apply that grows
/// it) and holds at most one chunk of spare room (a doubled vector up to half of itself).
const CHUNK: usize = 4096;

/// A map with O(1) lookups whose only visible order is its keys' (see the module doc).
pub struct DenseMap<K, V> {
    /// Entry `p` is `chunks[p / CHUNK][p % CHUNK]`; positions `0..len` are all taken.
    chunks: Vec<Vec<(K, V)>>,
    len: usize,
    /// Where each entry is, by its key's hash.
    slots: HashTable<Slot>,
}

/// A table slot: an entry's position and 32 bits of its key's hash. The table's own 64-bit
/// hash is derived from those 32 bits ([`spread`]), so growing the table moves slots without
/// reading a single entry.
#[derive(Clone, Copy)]
struct Slot {
    position: u32,
    hash: u32,
}

/// FxHash, then MurmurHash3's 64-bit finaliser. FxHash alone is a multiply, whose low bits
/// depend only on the key's low bits: account ids that differ only in their high bits (ids
/// with a timestamp or a worker number in them) would share their hash and pile into a few
/// slots. The finaliser lets every bit of the key move every bit of the hash.
fn hash32<K: Hash>(key: &K) -> u32 {
    let mut h = FxBuildHasher.hash_one(key);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h >> 32) as u32
}

/// The 64-bit hash the table places a slot by: low bits for its bucket, high bits for its tag.
fn spread(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl<K, V> Default for DenseMap<K, V> {
    fn default() -> Self {
        DenseMap { chunks: Vec::new(), len: 0, slots: HashTable::new() }
    }
}

impl<K: Clone, V: Clone> Clone for DenseMap<K, V> {
    /// Each chunk of the copy has the full chunk's room, as in the original.
    fn clone(&self) -> Self {
        let chunks = self
            .chunks
            .iter()
            .map(|chunk| {
                let mut copy = Vec::with_capacity(CHUNK);
                copy.extend(chunk.iter().cloned());
                copy
            })
            .collect();
        DenseMap { chunks, len: self.len, slots: self.slots.clone() }
    }
}

impl<K: Hash + Eq + Ord, V> DenseMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    fn entry(&self, position: u32) -> &(K, V) {
        let p = position as usize;
        &self.chunks[p / CHUNK][p % CHUNK]
    }

    fn entry_mut(&mut self, position: usize) -> &mut (K, V) {
        &mut self.chunks[position / CHUNK][position % CHUNK]
    }

    fn slot(&self, key: &K) -> Option<Slot> {
        let hash = hash32(key);
        self.slots.find(spread(hash), |s| s.hash == hash && self.entry(s.position).0 == *key).copied()
    }

    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.slot(key).map(|s| &self.entry(s.position).1)
    }

    /// The value under `key`, to change it.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let slot = self.slot(key)?;
        Some(&mut self.entry_mut(slot.position as usize).1)
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &K) -> bool {
        self.slot(key).is_some()
    }

    /// Puts `value` under `key`; returns the value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some(slot) = self.slot(&key) {
            return Some(std::mem::replace(&mut self.entry_mut(slot.position as usize).1, value));
        }
        let position = u32::try_from(self.len).expect("a ledger table holds fewer than 2^32 entries");
        let hash = hash32(&key);
        self.slots.insert_unique(spread(hash), Slot { position, hash }, |s| spread(s.hash));
        if self.len == self.chunks.len() * CHUNK {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks[self.len / CHUNK].push((key, value));
        self.len += 1;
        None
    }

    /// Takes the value under `key` out. The last entry moves into its place.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let hash = hash32(key);
        let chunks = &self.chunks;
        let found = self
            .slots
            .find_entry(spread(hash), |s| {
                let p = s.position as usize;
                s.hash == hash && chunks[p / CHUNK][p % CHUNK].0 == *key
            })
            .ok()?;
        let (slot, _) = found.remove();
        let (position, last) = (slot.position as usize, self.len - 1);
        let (moved_key, moved_value) = self.chunks[last / CHUNK].pop().expect("the last position is taken");
        self.len -= 1;
        let value = if position == last {
            moved_value
        } else {
            let moved_hash = hash32(&moved_key);
            self.slots
                .find_mut(spread(moved_hash), |s| s.position as usize == last)
                .expect("every entry has a slot")
                .position = slot.position;
            let (_, value) = std::mem::replace(self.entry_mut(position), (moved_key, moved_value));
            value
        };
        // An emptied last chunk is let go once the one before it is half empty too, so a table
        // that hovers at a chunk's edge does not take and free a chunk on every change.
        if self.chunks.len() >= 2 && self.len + CHUNK / 2 <= (self.chunks.len() - 1) * CHUNK {
            self.chunks.pop();
        }
        // A table that held a burst (idempotency records expiring) gives most of its room back.
        if self.slots.capacity() > 4 * self.len + 1024 {
            self.slots.shrink_to(2 * self.len, |s| spread(s.hash));
        }
        Some(value)
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
        self.slots.clear();
    }

    fn entries(&self) -> impl Iterator<Item = &(K, V)> {
        self.chunks.iter().flatten()
    }

    /// Every entry in key order: what snapshots, the state hash and listings see. The keys are
    /// copied beside the references, so the sort compares them without a trip to the entries.
    pub fn sorted(&self) -> Vec<(K, &V)>
    where
        K: Copy,
    {
        let mut out: Vec<(K, &V)> = self.entries().map(|(k, v)| (*k, v)).collect();
        out.sort_unstable_by_key(|entry| entry.0);
        out
    }

    /// Every value in an order that depends on the table's history: only for a fold whose
    /// result is the same in every order (a sum), never for anything kept or shown.
    pub fn values_any_order(&self) -> impl Iterator<Item = &V> {
        self.entries().map(|(_, v)| v)
    }
}

impl<K: Hash + Eq + Ord, V> std::ops::Index<&K> for DenseMap<K, V> {
    type Output = V;

    fn index(&self, key: &K) -> &V {
        self.get(key).expect("the key is in the table")
    }
}

/// Equal when they hold the same entries, in whatever order they hold them.
impl<K: Hash + Eq + Ord, V: PartialEq> PartialEq for DenseMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.entries().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl<K: Hash + Eq + Ord, V: Eq> Eq for DenseMap<K, V> {}

impl<K: Hash + Eq + Ord + Copy + fmt::Debug, V: fmt::Debug> fmt::Debug for DenseMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.sorted()).finish()
    }
}

/// Encoded as a map in key order: the same bytes as a `BTreeMap` of the same entries.
impl<K: Hash + Eq + Ord + Copy + Serialize, V: Serialize> Serialize for DenseMap<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.sorted())
    }
}

impl<'de, K: Hash + Eq + Ord + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for DenseMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<K, V>(PhantomData<(K, V)>);

        impl<'de, K: Hash + Eq + Ord + Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for Entries<K, V> {
            type Value = DenseMap<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut map = DenseMap::new();
                // As a `BTreeMap` decodes: a key given twice keeps its last value.
                while let Some((key, value)) = access.next_entry()? {
                    map.insert(key, value);
                }
                Ok(map)
            }
        }

        deserializer.deserialize_map(Entries(PhantomData))
    }
}

/// A first-in, first-out queue in fixed-size chunks: the idempotency records' expiry order.
/// Like [`DenseMap`], it never copies its items as it grows (a `VecDeque` that doubles copies
/// all of them in one apply) and keeps at most about one chunk of spare room. Encoded as a
/// sequence, front first: the bytes of a `VecDeque` of the same items.
pub struct ChunkedQueue<T> {
    chunks: std::collections::VecDeque<Vec<T>>,
    /// Items of the front chunk already taken.
    head: usize,
    len: usize,
}

impl<T> Default for ChunkedQueue<T> {
    fn default() -> Self {
        ChunkedQueue { chunks: std::collections::VecDeque::new(), head: 0, len: 0 }
    }
}

impl<T: Copy> ChunkedQueue<T> {
    /// Adds an item at the back.
    pub fn push_back(&mut self, item: T) {
        if self.chunks.back().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push_back(Vec::with_capacity(CHUNK));
        }
        self.chunks.back_mut().expect("a chunk with room").push(item);
        self.len += 1;
    }

    /// The front item.
    pub fn front(&self) -> Option<&T> {
        self.chunks.front().and_then(|c| c.get(self.head))
    }

    /// Takes the front item.
    pub fn pop_front(&mut self) -> Option<T> {
        let item = *self.front()?;
        self.head += 1;
        self.len -= 1;
        let front_len = self.chunks.front().map_or(0, Vec::len);
        if self.head == front_len && (front_len == CHUNK || self.len == 0) {
            // A used-up chunk goes; so does the last one when the queue is empty.
            self.chunks.pop_front();
            self.head = 0;
        }
        Some(item)
    }

    /// Removes every item.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.head = 0;
        self.len = 0;
    }

    fn items(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten().skip(self.head)
    }
}

/// The copy is chunked afresh, each chunk with a full chunk's room.
impl<T: Copy> Clone for ChunkedQueue<T> {
    fn clone(&self) -> Self {
        let mut copy = ChunkedQueue::default();
        for item in self.items() {
            copy.push_back(*item);
        }
        copy
    }
}

/// Equal when they hold the same items in the same order, however chunked.
impl<T: Copy + PartialEq> PartialEq for ChunkedQueue<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.items().eq(other.items())
    }
}

impl<T: Copy + Eq> Eq for ChunkedQueue<T> {}

impl<T: Copy + fmt::Debug> fmt::Debug for ChunkedQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.items()).finish()
    }
}

impl<T: Copy + Serialize> Serialize for ChunkedQueue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        for item in self.items() {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

impl<'de, T: Copy + Deserialize<'de>> Deserialize<'de> for ChunkedQueue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items<T>(PhantomData<T>);

        impl<'de, T: Copy + Deserialize<'de>> Visitor<'de> for Items<T> {
            type Value = ChunkedQueue<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut queue = ChunkedQueue::default();
                while let Some(item) = access.next_element()? {
                    queue.push_back(item);
                }
                Ok(queue)
            }
        }

        deserializer.deserialize_seq(Items(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::DenseMap;
    use std::collections::BTreeMap;

    /// A pseudo-random but fixed sequence of operations, checked against a `BTreeMap`.
    fn shuffled(n: u64) -> impl Iterator<Item = u64> {
        (0..n).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48)
    }

    #[test]
    fn it_holds_what_a_btreemap_holds_through_inserts_replacements_and_removals() {
        let mut dense = DenseMap::new();
        let mut tree = BTreeMap::new();
        for (step, key) in shuffled(20_000).enumerate() {
            if step % 3 == 2 {
                assert_eq!(dense.remove(&key), tree.remove(&key), "removing {key} at step {step}");
            } else {
                assert_eq!(dense.insert(key, step), tree.insert(key, step), "inserting {key} at step {step}");
            }
            assert_eq!(dense.len(), tree.len());
        }
        for key in 0..70_000u64 {
            assert_eq!(dense.get(&key), tree.get(&key), "looking up {key}");
        }
        let sorted: Vec<(u64, usize)> = dense.sorted().into_iter().map(|(k, v)| (k, *v)).collect();
        let expected: Vec<(u64, usize)> = tree.into_iter().collect();
        assert_eq!(sorted, expected);
    }

    #[test]
    fn it_encodes_to_the_bytes_of_a_btreemap_with_the_same_entries_whatever_its_history() {
        let mut forwards = DenseMap::new();
        let mut backwards = DenseMap::new();
        let mut tree = BTreeMap::new();
        for key in 0..1000u64 {
            forwards.insert(key, key * 7);
            backwards.insert(999 - key, (999 - key) * 7);
            tree.insert(key, key * 7);
        }
        // A removal moves the last entry into the hole: the order inside differs, the bytes not.
        forwards.insert(5000, 1);
        forwards.remove(&5000);
        forwards.remove(&10);
        forwards.insert(10, 70);
        let bytes = postcard::to_stdvec(&tree).unwrap();
        assert_eq!(postcard::to_stdvec(&forwards).unwrap(), bytes);
        assert_eq!(postcard::to_stdvec(&backwards).unwrap(), bytes);
        assert_eq!(forwards, backwards);
        let decoded: DenseMap<u64, u64> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, forwards);
    }

    /// The longest run of keys that share a 32-bit hash, over ids of a given shape.
    fn most_sharing_one_hash(ids: impl Iterator<Item = u64>) -> usize {
        let mut counts = std::collections::BTreeMap::new();
        for id in ids {
            *counts.entry(super::hash32(&crate::ids::AccountId(id))).or_insert(0usize) += 1;
        }
        counts.into_values().max().unwrap_or(0)
    }

    #[test]
    fn structured_ids_spread_over_the_slots() {
        // Sequential, high bits only, a timestamp beside a worker number, a prefix and a count.
        assert!(most_sharing_one_hash(0..100_000) <= 2);
        assert!(most_sharing_one_hash((0..100_000).map(|k| k << 38)) <= 2);
        assert!(
            most_sharing_one_hash((0..100_000).map(|k| ((1_700_000_000_000 + k / 8) << 22) | ((k % 8) << 12))) <= 2
        );
        assert!(most_sharing_one_hash((0..100_000).map(|k| ((k / 1000) << 32) | (k % 1000))) <= 2);
        // And the slots a table of 2^17 starts its probes at are filled about evenly.
        let mut starts = vec![0u32; 1 << 17];
        for k in 0..100_000u64 {
            let slot = super::spread(super::hash32(&crate::ids::AccountId(k << 38))) as usize & ((1 << 17) - 1);
            starts[slot] += 1;
        }
        assert!(starts.iter().max().copied().unwrap_or(0) <= 12, "a start slot shared by too many ids");
    }

    #[test]
    fn the_queue_keeps_first_in_first_out_order_and_encodes_as_a_vecdeque_does() {
        let mut queue = super::ChunkedQueue::default();
        let mut model = std::collections::VecDeque::new();
        for step in 0..30_000u64 {
            // Bursts of pushes, then of pops, across chunk edges and down to empty.
            if (step / 5_000) % 2 == 0 || step % 7 == 0 {
                queue.push_back(step);
                model.push_back(step);
            } else {
                assert_eq!(queue.pop_front(), model.pop_front(), "popping at step {step}");
            }
            assert_eq!(queue.len, model.len());
            assert_eq!(queue.front(), model.front());
            if step % 4_999 == 0 {
                assert_eq!(postcard::to_stdvec(&queue).unwrap(), postcard::to_stdvec(&model).unwrap());
            }
        }
        while let Some(item) = model.pop_front() {
            assert_eq!(queue.pop_front(), Some(item));
        }
        assert_eq!(queue.pop_front(), None);
        assert!(queue.chunks.is_empty(), "an empty queue holds no chunk");
        for item in 0..10_000u64 {
            queue.push_back(item);
        }
        let bytes = postcard::to_stdvec(&queue).unwrap();
        let decoded: super::ChunkedQueue<u64> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, queue);
        // Chunked differently (the original's front chunk is part-taken), equal all the same.
        queue.pop_front();
        let mut other = super::ChunkedQueue::default();
        for item in 1..10_000u64 {
            other.push_back(item);
        }
        assert_eq!(queue, other);
        assert_eq!(queue.clone(), other);
    }

    #[test]
    fn a_table_that_drained_gives_its_room_back_and_still_finds_what_is_left() {
        let mut map = DenseMap::new();
        for key in 0..100_000u64 {
            map.insert(key, key);
        }
        for key in 0..99_000u64 {
            assert_eq!(map.remove(&key), Some(key));
        }
        assert_eq!(map.chunks.len(), 1, "1,000 entries left in chunks of 4,096");
        assert!(map.slots.capacity() <= 4 * map.len() + 1024, "slot capacity {}", map.slots.capacity());
        for key in 99_000..100_000u64 {
            assert_eq!(map[&key], key);
        }
        assert_eq!(map.get(&5), None);
        // And it takes entries again, across chunk edges, finding old and new alike.
        for key in 0..20_000u64 {
            map.insert(key, key + 1);
        }
        for key in 0..20_000u64 {
            assert_eq!(map[&key], key + 1);
        }
        assert_eq!(map[&99_500], 99_500);
        assert_eq!(map.len(), 21_000);
    }
}
