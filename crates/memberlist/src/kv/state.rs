//! [`KvState`]: the gossip store's data and rules, sans I/O (`spec/memberlist.md`
//! §2.6–2.10).
//!
//! Time is passed in; nothing here locks, sleeps or sends. The async client wraps one
//! `KvState` in a mutex and turns its answers into broadcasts and watch notifications.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringkit_kv::{EncodedMerge, MergeScratch};

use super::ops::{AnyValue, ValueOps};
use crate::swim::Cover;
use crate::wire::kv::{KeyValuePair, KeyValuePairRef, decode_user_state};

/// Store settings with dskit's defaults (§2.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvConfig {
    /// dskit `-memberlist.left-ingesters-timeout` (5 min): LEFT tombstones older than
    /// this are purged when values merge. Zero keeps them.
    pub left_ingesters_timeout: Duration,
    /// dskit `-memberlist.obsolete-entries-timeout` (30 s): deleted keys are dropped
    /// once their deletion is this old.
    pub obsolete_entries_timeout: Duration,
    /// dskit `-memberlist.notify-interval` (0 = at once): a watcher is told about
    /// changes at most once per interval; changes in between are read together.
    pub notify_interval: Duration,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            left_ingesters_timeout: Duration::from_secs(300),
            obsolete_entries_timeout: Duration::from_secs(30),
            notify_interval: Duration::ZERO,
        }
    }
}

/// A stored value: decoded through its codec's ops, or raw bytes written by a client
/// that has no merge (tools copying values) or that no registered codec decodes.
pub(crate) enum Stored {
    Decoded(AnyValue),
    Raw(Arc<[u8]>),
}

/// One key of the store (dskit `ValueDesc`).
pub(crate) struct Entry {
    pub(crate) value: Stored,
    pub(crate) codec_id: String,
    /// Local change counter of this key (never sent); the CAS version.
    pub(crate) version: u64,
    /// Store-wide revision of the last change, for watchers.
    pub(crate) revision: u64,
    pub(crate) deleted: bool,
    /// Unix milliseconds of the last update (0 = unknown).
    pub(crate) update_time_ms: i64,
    /// Unix milliseconds of the last purge of expired tombstones from the value.
    pub(crate) last_purge_ms: i64,
    /// The codec's working memory for [`ValueOps::merge_encoded`] on this value.
    pub(crate) scratch: MergeScratch,
    /// Shortcut changes left before the next look for expired tombstones.
    pub(crate) purge_countdown: u32,
    /// Tombstones in the value as of its last purge, and how many purges removed
    /// (dskit's per-key `kv_store_value_tombstones{,_removed_total}`).
    pub(crate) tombstones: TombstoneStats,
}

/// Per-key tombstone counts, refreshed by each purge of expired tombstones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TombstoneStats {
    /// Tombstones left in the value after the last purge.
    pub present: u64,
    /// Tombstones removed by purges since the key was created here.
    pub removed: u64,
}

impl Entry {
    /// A live (not deleted) entry; its per-key working state (purge time, codec
    /// scratch, purge countdown) starts empty.
    fn new(
        value: Stored,
        codec_id: &str,
        version: u64,
        revision: u64,
        update_time_ms: i64,
    ) -> Entry {
        Entry {
            value,
            codec_id: codec_id.to_owned(),
            version,
            revision,
            deleted: false,
            update_time_ms,
            last_purge_ms: 0,
            scratch: MergeScratch::default(),
            purge_countdown: 0,
            tombstones: TombstoneStats::default(),
        }
    }
}

/// How often (at most) a key's value is scanned for expired tombstones.
const PURGE_EVERY_MS: i64 = 1000;

/// Drops tombstones older than `limit` from `value` unless the key was purged less than
/// [`PURGE_EVERY_MS`] ago; returns how many were removed. Purging scans the whole value
/// and tombstones live for minutes, so once a second per key is as good as on every
/// merge (dskit purges on every merge).
fn purge_if_due(
    ops: &Arc<dyn ValueOps>,
    value: &mut AnyValue,
    last_purge_ms: &mut i64,
    stats: &mut TombstoneStats,
    limit: SystemTime,
    now: SystemTime,
) -> u64 {
    let now_ms = unix_millis(now);
    if now_ms.saturating_sub(*last_purge_ms) < PURGE_EVERY_MS {
        return 0;
    }
    *last_purge_ms = now_ms;
    let count = ops.remove_tombstones(value, Some(limit));
    let removed = count.removed as u64;
    stats.present = (count.total as u64).saturating_sub(removed);
    stats.removed = stats.removed.saturating_add(removed);
    removed
}

/// The entry of `key` as received (bytes). A store holds a handful of keys (one per
/// ring), where comparing bytes costs less than checking the key for UTF-8; a key that
/// is not UTF-8 matches none.
fn find_entry<'e>(entries: &'e mut BTreeMap<String, Entry>, key: &[u8]) -> Option<&'e mut Entry> {
    if entries.len() <= 8 {
        entries
            .iter_mut()
            .find(|(k, _)| k.as_bytes() == key)
            .map(|(_, e)| e)
    } else {
        entries.get_mut(std::str::from_utf8(key).ok()?)
    }
}

/// The ops of `codec_id` among the registered ones (a handful: a list beats hashing).
fn find_ops<'o>(ops: &'o [Arc<dyn ValueOps>], codec_id: &str) -> Option<&'o Arc<dyn ValueOps>> {
    ops.iter().find(|o| o.id() == codec_id)
}

/// [`KvState::left_limit`] for a caller that holds other parts of the state.
fn left_limit(config: &KvConfig, now: SystemTime) -> Option<SystemTime> {
    (!config.left_ingesters_timeout.is_zero())
        .then(|| now.checked_sub(config.left_ingesters_timeout))
        .flatten()
}

/// The heartbeat shortcut looks for expired tombstones on every this many changes of a
/// key (and still at most once a second): a quiet key is scanned on its next change, a
/// busy one about once a second, and the clock is not read for the changes between.
pub(crate) const PURGE_CHECK_EVERY: u32 = 16;

/// Why a received pair was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Empty key.
    EmptyKey,
    /// No codec registered under the pair's codec id.
    UnknownCodec,
    /// The value did not decode.
    Undecodable,
    /// The message is not a `KeyValuePair`.
    InvalidPair,
}

/// What a received pair or a local write did to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Nothing changed (old news).
    Unchanged,
    /// The key changed; `broadcast` is the pair to gossip on (only the change), `None`
    /// when the change left nothing worth sending (only expired tombstones).
    Changed {
        /// Store revision of the change.
        revision: u64,
        /// The change to gossip on.
        broadcast: Option<Broadcast>,
        /// What the change covers in the broadcast queue: its key, the items it
        /// carries (the codec's `merge_content`) and the key's version after it.
        cover: Option<Cover>,
    },
}

/// A change made by the receive fast path: the received pair with the key's
/// deletion mark and update time.
struct Forward<'a> {
    revision: u64,
    pair: KeyValuePairRef<'a>,
    cover: Cover,
}

/// A change to gossip on, as a pair or already encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broadcast {
    /// Built by the store.
    Pair(KeyValuePair),
    /// Encoded already: the receive fast path forwards what it received without
    /// building an owned pair.
    Encoded(Vec<u8>),
}

impl Broadcast {
    /// The bytes of the broadcast message.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Broadcast::Pair(p) => p.encode_bytes(),
            Broadcast::Encoded(b) => b,
        }
    }

    /// The change as a pair (decoding an encoded one).
    pub fn to_pair(&self) -> Result<KeyValuePair, crate::wire::kv::KvError> {
        match self {
            Broadcast::Pair(p) => Ok(p.clone()),
            Broadcast::Encoded(b) => KeyValuePair::decode_bytes(b),
        }
    }
}

/// Counters of the store's work, exported by the client as dskit metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvCounts {
    /// Tombstones removed at merge time (`kv_store_value_tombstones_removed_total`).
    pub tombstones_removed: u64,
}

/// The gossip store's content and merge rules.
pub struct KvState {
    config: KvConfig,
    pub(crate) entries: BTreeMap<String, Entry>,
    /// Registered codecs: a handful, so a list beats hashing the id on every receive.
    ops: Vec<Arc<dyn ValueOps>>,
    revision: u64,
    counts: KvCounts,
}

/// Unix milliseconds of `t` (0 before the epoch).
pub(crate) fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl KvState {
    /// An empty store.
    pub fn new(config: KvConfig) -> Self {
        KvState {
            config,
            entries: BTreeMap::new(),
            ops: Vec::new(),
            revision: 0,
            counts: KvCounts::default(),
        }
    }

    /// Settings.
    pub fn config(&self) -> &KvConfig {
        &self.config
    }

    /// Registers the ops of a codec id. A second registration of the same id must be of
    /// the same value type (else `false`, nothing changes).
    pub fn register(&mut self, ops: Arc<dyn ValueOps>) -> bool {
        match self.ops(ops.id()) {
            Some(existing) => existing.type_id() == ops.type_id(),
            None => {
                self.ops.push(ops);
                true
            }
        }
    }

    /// The ops registered for `codec_id`.
    pub fn ops(&self, codec_id: &str) -> Option<&Arc<dyn ValueOps>> {
        find_ops(&self.ops, codec_id)
    }

    /// Latest store revision (0 = nothing ever stored).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Work counters.
    pub fn counts(&self) -> KvCounts {
        self.counts
    }

    /// Per-key tombstone counts as of each key's last purge, sorted by key.
    pub fn tombstones(&self) -> Vec<(String, TombstoneStats)> {
        self.entries
            .iter()
            .map(|(k, e)| (k.clone(), e.tombstones))
            .collect()
    }

    /// Number of keys (deleted ones included until they expire).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys, sorted, with their local version, codec, deleted flag, update time and
    /// encoded size: what the `/memberlist` page lists.
    pub fn describe(&self) -> Vec<KeyInfo> {
        self.entries
            .iter()
            .map(|(k, e)| KeyInfo {
                key: k.clone(),
                version: e.version,
                codec: e.codec_id.clone(),
                deleted: e.deleted,
                update_time_ms: e.update_time_ms,
                size: self.encode_entry(e).len(),
            })
            .collect()
    }

    /// The full encoded value of `key` (what `?downloadKey=` serves).
    pub fn encoded(&self, key: &str) -> Option<(String, Vec<u8>)> {
        let e = self.entries.get(key)?;
        Some((e.codec_id.clone(), self.encode_entry(e)))
    }

    /// The items of a stored value (none for raw bytes).
    fn entry_content(&self, e: &Entry) -> Vec<String> {
        match &e.value {
            Stored::Raw(_) => Vec::new(),
            Stored::Decoded(v) => self
                .ops(&e.codec_id)
                .map(|o| o.merge_content(v))
                .unwrap_or_default(),
        }
    }

    pub(crate) fn encode_entry(&self, e: &Entry) -> Vec<u8> {
        match &e.value {
            Stored::Raw(b) => b.to_vec(),
            Stored::Decoded(v) => self
                .ops(&e.codec_id)
                .map(|o| o.encode(v))
                .unwrap_or_default(),
        }
    }

    fn next_revision(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    /// Applies a pair received in a broadcast or in push/pull state (dskit
    /// `mergeValueForKey` with `localCAS = false`).
    pub fn receive(&mut self, pair: KeyValuePair, now: SystemTime) -> Result<Applied, Rejected> {
        let borrowed = KeyValuePairRef {
            key: pair.key.as_bytes(),
            value: &pair.value,
            codec: &pair.codec,
            deleted: pair.deleted,
            update_time_millis: pair.update_time_millis,
        };
        match self.receive_encoded(&borrowed, &|| now) {
            None => self.receive_decoded(pair, now),
            Some(None) => Ok(Applied::Unchanged),
            Some(Some(forward)) => Ok(Applied::Changed {
                revision: forward.revision,
                broadcast: Some(Broadcast::Encoded(forward.pair.encode())),
                cover: Some(forward.cover),
            }),
        }
    }

    /// [`KvState::receive`] of a broadcast message as it arrived: the gossip hot path.
    /// The pair is read in place and copied only when the codec's shortcut does not
    /// apply; when the change to gossip on is exactly the message, its bytes are
    /// forwarded without re-encoding.
    pub fn receive_message(&mut self, raw: Vec<u8>, now: SystemTime) -> Result<Applied, Rejected> {
        self.receive_message_clocked(raw, &|| now)
    }

    /// [`KvState::receive_message`] reading the time from `clock` only when it is needed:
    /// the heartbeat shortcut needs it only to look for expired tombstones, which it does
    /// on every [`PURGE_CHECK_EVERY`]th change of a key.
    pub(crate) fn receive_message_clocked(
        &mut self,
        raw: Vec<u8>,
        clock: &dyn Fn() -> SystemTime,
    ) -> Result<Applied, Rejected> {
        let Some((pair, canonical)) = KeyValuePairRef::parse_checked(&raw) else {
            // Unusual encodings: prost decides, and rejects what is broken.
            let pair = KeyValuePair::decode_bytes(&raw).map_err(|_| Rejected::InvalidPair)?;
            return self.receive(pair, clock());
        };
        let forward = match self.receive_encoded(&pair, clock) {
            None => {
                let pair = pair.to_owned_pair().ok_or(Rejected::InvalidPair)?;
                return self.receive_decoded(pair, clock());
            }
            Some(None) => return Ok(Applied::Unchanged),
            Some(Some(forward)) => forward,
        };
        let Forward {
            revision,
            pair: fwd,
            cover,
        } = forward;
        // Key, value and codec are the message's own; only the metadata can differ.
        let same = fwd.deleted == pair.deleted && fwd.update_time_millis == pair.update_time_millis;
        let bytes = if same && canonical { raw } else { fwd.encode() };
        Ok(Applied::Changed {
            revision,
            broadcast: Some(Broadcast::Encoded(bytes)),
            cover: Some(cover),
        })
    }

    /// The general path: decode the value and merge it.
    fn receive_decoded(
        &mut self,
        pair: KeyValuePair,
        now: SystemTime,
    ) -> Result<Applied, Rejected> {
        if pair.key.is_empty() {
            return Err(Rejected::EmptyKey);
        }
        let ops = self
            .ops(&pair.codec)
            .cloned()
            .ok_or(Rejected::UnknownCodec)?;
        let incoming = ops.decode(&pair.value).map_err(|_| Rejected::Undecodable)?;
        Ok(self.merge_value(
            &ops,
            Incoming {
                key: pair.key,
                value: incoming,
                bytes: Some(pair.value),
                deleted: pair.deleted,
                update_time_ms: pair.update_time_millis,
            },
            None,
            now,
        ))
    }

    /// The codec's shortcut ([`ValueOps::merge_encoded`]) for a key we hold decoded;
    /// `None` when it does not apply and the general path must run, `Some(None)` for
    /// old news, else the change to gossip on.
    fn receive_encoded<'a>(
        &mut self,
        pair: &KeyValuePairRef<'a>,
        clock: &dyn Fn() -> SystemTime,
    ) -> Option<Option<Forward<'a>>> {
        if pair.deleted || pair.key.is_empty() {
            return None;
        }
        let entry = find_entry(&mut self.entries, pair.key)?;
        if entry.codec_id != pair.codec {
            return None;
        }
        // The field, not `self.ops()`: `entries` is borrowed.
        let ops = find_ops(&self.ops, pair.codec)?;
        let Stored::Decoded(cur) = &mut entry.value else {
            return None;
        };
        match ops.merge_encoded(cur, pair.value, &mut entry.scratch)? {
            EncodedMerge::Unchanged => Some(None),
            EncodedMerge::AppliedVerbatim { content } => {
                if entry.purge_countdown == 0 {
                    entry.purge_countdown = PURGE_CHECK_EVERY;
                    let now = clock();
                    if let Some(limit) = left_limit(&self.config, now) {
                        self.counts.tombstones_removed += purge_if_due(
                            ops,
                            cur,
                            &mut entry.last_purge_ms,
                            &mut entry.tombstones,
                            limit,
                            now,
                        );
                    }
                } else {
                    entry.purge_countdown -= 1;
                }
                if pair.update_time_millis > entry.update_time_ms {
                    entry.update_time_ms = pair.update_time_millis;
                }
                entry.version += 1;
                self.revision += 1;
                entry.revision = self.revision;
                // The key is the message's own, so valid UTF-8 once it matched.
                let key = String::from_utf8_lossy(pair.key).into_owned();
                Some(Some(Forward {
                    cover: Cover::new(key, content, entry.version),
                    revision: self.revision,
                    pair: KeyValuePairRef {
                        deleted: entry.deleted,
                        update_time_millis: entry.update_time_ms,
                        ..*pair
                    },
                }))
            }
        }
    }

    /// Tombstones older than this are purged (`None`: the timeout is disabled).
    fn left_limit(&self, now: SystemTime) -> Option<SystemTime> {
        left_limit(&self.config, now)
    }

    /// Applies a whole push/pull user state; returns the broadcasts to gossip on and the
    /// number of pairs rejected.
    pub fn receive_state(&mut self, state: &[u8], now: SystemTime) -> (Vec<Applied>, usize) {
        let mut changes = Vec::new();
        let mut rejected = 0;
        for pair in decode_user_state(state) {
            match pair.map_err(|_| Rejected::Undecodable) {
                Ok(p) => match self.receive(p, now) {
                    Ok(a @ Applied::Changed { .. }) => changes.push(a),
                    Ok(Applied::Unchanged) => {}
                    Err(_) => rejected += 1,
                },
                // A broken length prefix ends the state: nothing after it can be framed.
                Err(_) => {
                    rejected += 1;
                    break;
                }
            }
        }
        (changes, rejected)
    }

    /// The merge step shared by received values and local CAS.
    fn merge_value(
        &mut self,
        ops: &Arc<dyn ValueOps>,
        inc: Incoming,
        local_cas: Option<SystemTime>,
        now: SystemTime,
    ) -> Applied {
        let Incoming {
            key,
            value: incoming,
            bytes: incoming_bytes,
            deleted,
            update_time_ms,
        } = inc;
        let left_limit = self.left_limit(now);
        let mut content = None;
        let (mut change, mut verbatim, deleted_changed) = match self.entries.get_mut(&key) {
            None => {
                if deleted {
                    // Never resurrect a key we do not have from a deletion.
                    return Applied::Unchanged;
                }
                let Some(change) = ops.clone_value(&incoming) else {
                    return Applied::Unchanged;
                };
                self.entries.insert(
                    key.clone(),
                    Entry::new(Stored::Decoded(incoming), ops.id(), 0, 0, update_time_ms),
                );
                (Some(change), true, false)
            }
            Some(entry) => {
                if entry.codec_id != ops.id() {
                    // Another type under the same key: the newer write wins as a whole.
                    if update_time_ms <= entry.update_time_ms {
                        return Applied::Unchanged;
                    }
                    entry.codec_id = ops.id().to_owned();
                    entry.value = Stored::Raw(Arc::from(Vec::new()));
                }
                let (change, verbatim) = match &mut entry.value {
                    Stored::Decoded(cur) => ops.merge(cur, incoming, local_cas),
                    Stored::Raw(bytes) => match ops.decode(bytes) {
                        Ok(mut cur) => {
                            let c = ops.merge(&mut cur, incoming, local_cas);
                            entry.value = Stored::Decoded(cur);
                            c
                        }
                        // Undecodable local bytes: the decodable incoming value replaces them.
                        Err(_) => {
                            let c = ops.clone_value(&incoming);
                            entry.value = Stored::Decoded(incoming);
                            (c, true)
                        }
                    },
                };
                let mut deleted_changed = false;
                if deleted && update_time_ms != 0 && update_time_ms > entry.update_time_ms {
                    deleted_changed = !entry.deleted;
                    entry.deleted = true;
                    entry.update_time_ms = update_time_ms;
                }
                (change, verbatim, deleted_changed)
            }
        };
        if change.is_none() && !deleted_changed {
            return Applied::Unchanged;
        }
        let entry = self.entries.get_mut(&key).expect("entry inserted above");
        if let Some(limit) = left_limit {
            if let Stored::Decoded(v) = &mut entry.value {
                self.counts.tombstones_removed += purge_if_due(
                    ops,
                    v,
                    &mut entry.last_purge_ms,
                    &mut entry.tombstones,
                    limit,
                    now,
                );
            }
            if let Some(c) = &mut change {
                verbatim &= ops.remove_tombstones(c, Some(limit)).removed == 0;
                let items = ops.merge_content(c);
                if items.is_empty() {
                    change = None;
                } else {
                    content = Some(items);
                }
            }
            if change.is_none() && !deleted_changed {
                return Applied::Unchanged;
            }
        }
        if local_cas.is_some() {
            entry.update_time_ms = unix_millis(now);
        } else if update_time_ms > entry.update_time_ms {
            entry.update_time_ms = update_time_ms;
        }
        entry.version += 1;
        let (deleted, update_time_ms) = (entry.deleted, entry.update_time_ms);
        let revision = self.next_revision();
        self.entries.get_mut(&key).expect("present").revision = revision;
        // A change of the deleted flag alone travels with the full value, so receivers
        // always get something their codec decodes.
        let version = self.entries[&key].version;
        // The change's items; a deletion mark alone carries the whole value.
        let content = match (content, &change) {
            (Some(c), _) => c,
            (None, Some(c)) => ops.merge_content(c),
            (None, None) => self.entry_content(&self.entries[&key]),
        };
        let value = match (&change, incoming_bytes) {
            // The change is what we received: forward its bytes, no re-encoding.
            (Some(_), Some(bytes)) if verbatim => bytes,
            (Some(c), _) => ops.encode(c),
            (None, _) => self.encode_entry(&self.entries[&key]),
        };
        Applied::Changed {
            revision,
            cover: Some(Cover::new(key.clone(), content, version)),
            broadcast: Some(Broadcast::Pair(KeyValuePair {
                key,
                value,
                codec: ops.id().to_owned(),
                deleted,
                update_time_millis: update_time_ms,
            })),
        }
    }

    /// The value a client reads: a copy with every tombstone removed (dskit `get`),
    /// or the raw bytes; `None` when absent or deleted. Also returns the CAS version.
    pub(crate) fn read(&self, key: &str) -> Option<(ReadValue, u64)> {
        let e = self.entries.get(key)?;
        if e.deleted {
            return None;
        }
        let v = match &e.value {
            Stored::Raw(b) => ReadValue::Raw(e.codec_id.clone(), b.clone()),
            Stored::Decoded(v) => {
                let ops = self.ops(&e.codec_id)?;
                let mut copy = ops.clone_value(v)?;
                ops.remove_tombstones(&mut copy, None);
                ReadValue::Decoded(e.codec_id.clone(), copy)
            }
        };
        Some((v, e.version))
    }

    /// The CAS version of `key` (0 when absent).
    pub fn version(&self, key: &str) -> u64 {
        self.entries.get(key).map_or(0, |e| e.version)
    }

    /// A local CAS write of a mergeable value (dskit: merge with `localCAS = true`).
    /// `None` when the key changed since version `seen` was read.
    pub(crate) fn cas_merge(
        &mut self,
        key: &str,
        seen: u64,
        ops: &Arc<dyn ValueOps>,
        value: AnyValue,
        now: SystemTime,
    ) -> Option<Applied> {
        if self.version(key) != seen {
            return None;
        }
        let was_deleted = self.entries.get(key).is_some_and(|e| e.deleted);
        if was_deleted {
            // Writing a deleted key starts it afresh (its version keeps counting).
            self.entries.remove(key);
        }
        let applied = self.merge_value(
            ops,
            Incoming {
                key: key.to_owned(),
                value,
                bytes: None,
                deleted: false,
                update_time_ms: unix_millis(now),
            },
            Some(now),
            now,
        );
        if was_deleted && let Some(e) = self.entries.get_mut(key) {
            e.version = seen + 1;
        }
        Some(applied)
    }

    /// A local write of raw bytes (a client without merge): replaces the value.
    pub(crate) fn cas_raw(
        &mut self,
        key: &str,
        seen: u64,
        codec_id: &str,
        bytes: Vec<u8>,
        now: SystemTime,
    ) -> Option<Applied> {
        if self.version(key) != seen {
            return None;
        }
        let revision = self.next_revision();
        let update_time_ms = unix_millis(now);
        let version = seen + 1;
        let bytes: Arc<[u8]> = bytes.into();
        self.entries.insert(
            key.to_owned(),
            Entry::new(
                Stored::Raw(bytes.clone()),
                codec_id,
                version,
                revision,
                update_time_ms,
            ),
        );
        Some(Applied::Changed {
            revision,
            // Whole raw values: a newer one replaces this one, and nothing else.
            cover: Some(Cover::new(key, Vec::new(), version)),
            broadcast: Some(Broadcast::Pair(KeyValuePair {
                key: key.to_owned(),
                value: bytes.to_vec(),
                codec: codec_id.to_owned(),
                deleted: false,
                update_time_millis: update_time_ms,
            })),
        })
    }

    /// Marks `key` deleted (dskit `Delete`): the value stays, flagged, until it
    /// expires; the full value is broadcast with the flag.
    pub fn delete(&mut self, key: &str, now: SystemTime) -> Applied {
        let revision = self.revision + 1;
        let Some(e) = self.entries.get_mut(key) else {
            return Applied::Unchanged;
        };
        if e.deleted {
            return Applied::Unchanged;
        }
        e.deleted = true;
        // The peer-chosen time may be i64::MAX: the tombstone's time saturates there.
        e.update_time_ms = unix_millis(now).max(e.update_time_ms.saturating_add(1));
        e.version += 1;
        e.revision = revision;
        self.revision = revision;
        let e = &self.entries[key];
        let pair = KeyValuePair {
            key: key.to_owned(),
            value: self.encode_entry(e),
            codec: e.codec_id.clone(),
            deleted: true,
            update_time_millis: e.update_time_ms,
        };
        Applied::Changed {
            revision,
            cover: Some(Cover::new(key, self.entry_content(e), e.version)),
            broadcast: Some(Broadcast::Pair(pair)),
        }
    }

    /// Drops deleted keys whose deletion is older than the obsolete-entries timeout;
    /// returns how many.
    pub fn expire(&mut self, now: SystemTime) -> usize {
        let limit = unix_millis(now) - self.config.obsolete_entries_timeout.as_millis() as i64;
        let before = self.entries.len();
        self.entries
            .retain(|_, e| !(e.deleted && e.update_time_ms < limit));
        before - self.entries.len()
    }

    /// dskit `LocalState`: every key with its full value, each as a 4-byte big-endian
    /// length and a `KeyValuePair`. Keys whose codec we cannot encode are skipped.
    pub fn local_state(&self) -> Vec<u8> {
        let pairs: Vec<KeyValuePair> = self
            .entries
            .iter()
            .filter_map(|(k, e)| {
                let value = self.encode_entry(e);
                if value.is_empty() && matches!(e.value, Stored::Decoded(_)) {
                    return None;
                }
                Some(KeyValuePair {
                    key: k.clone(),
                    value,
                    codec: e.codec_id.clone(),
                    deleted: e.deleted,
                    update_time_millis: e.update_time_ms,
                })
            })
            .collect();
        crate::wire::kv::encode_user_state(&pairs)
    }

    /// Keys changed after revision `seen`, with their revision (watchers).
    pub(crate) fn changed_since(&self, seen: u64) -> Vec<(String, u64)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.revision > seen)
            .map(|(k, e)| (k.clone(), e.revision))
            .collect()
    }
}

/// A value arriving at the merge step, with its encoded bytes when it came from a peer.
struct Incoming {
    key: String,
    value: AnyValue,
    bytes: Option<Vec<u8>>,
    deleted: bool,
    update_time_ms: i64,
}

/// A value read from the store.
pub(crate) enum ReadValue {
    Decoded(String, AnyValue),
    Raw(String, Arc<[u8]>),
}

/// One row of [`KvState::describe`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    /// Store key.
    pub key: String,
    /// Local version (changes applied to this key here).
    pub version: u64,
    /// Codec id.
    pub codec: String,
    /// Marked deleted.
    pub deleted: bool,
    /// Unix milliseconds of the last update.
    pub update_time_ms: i64,
    /// Encoded size of the full value in bytes.
    pub size: usize,
}
