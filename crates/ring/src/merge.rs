//! Gossip CRDT merge of ring descriptors (spec/ring.md §3.8).
//!
//! Every instance entry is versioned by its heartbeat `timestamp`: a strictly newer entry
//! replaces the whole older one (there is no per-field versioning), and at equal timestamps a
//! LEFT tombstone beats a live entry, so deletions win ties. Gossip deltas and push/pull full
//! states are both merged with [`merge`]; a local CAS passes `local_cas = true`, which turns
//! every instance the CAS callback removed into a LEFT tombstone stamped `now`.
//!
//! When a merge changes some token list and two live instances then claim the same token,
//! [`resolve_token_conflicts`] settles every conflict in the map with a rule that depends only
//! on the instances involved, never on iteration order: a LEAVING instance loses to a
//! non-LEAVING one, otherwise the lexicographically lower instance ID keeps the token.
//!
//! ## What the merge guarantees
//!
//! With `local_cas = false`, and as long as two entries with the same ID, timestamp and
//! LEFT-ness are identical (each instance is written by a single owner), the choice of entry
//! per instance is a join: commutative, associative and idempotent. Token lists follow that
//! join exactly while no two instances ever claim the same token. Once conflict resolution
//! strips tokens from a loser, the loser's entry differs from the "same version" elsewhere, so
//! token lists can depend on the order merges happened in; every other field still converges,
//! and token lists only ever shrink relative to what the owner wrote. The integration tests in
//! `tests/merge_props.rs` check exactly these statements.
//!
//! Quirks kept from dskit on purpose, for wire compatibility:
//! - a missing local instance counts as timestamp 0 and not LEFT, so an incoming live entry
//!   with timestamp `<= 0` is never added;
//! - a CAS tombstone is stamped `now`, even if the local entry carried a later timestamp (a
//!   lagging local clock): peers holding that later entry then ignore the tombstone, and gossip
//!   older than the entry but newer than `now` brings the instance back locally (see the test
//!   `cas_tombstone_from_a_lagging_clock_can_be_undone_by_older_gossip`). Stamping
//!   `max(now, entry timestamp)` would close this, at the cost of diverging from dskit.

use crate::model::{Desc, InstanceDesc, InstanceState};

const LEFT: i32 = InstanceState::Left as i32;
const LEAVING: i32 = InstanceState::Leaving as i32;

/// How far in the future Cortex lets an incoming heartbeat be (30 minutes) before refusing it.
pub const CORTEX_MAX_FUTURE_SKEW_SECS: i64 = 30 * 60;

/// Knobs for [`merge_with_options`]; the default merges exactly as dskit does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeOptions {
    /// Guard against far-future timestamps (dskit#942): an incoming instance whose timestamp
    /// is greater than `now + skew` is ignored, so one peer with a broken clock cannot pin an
    /// entry that no correct heartbeat could ever replace. `None` (the default) accepts any
    /// timestamp, as dskit does.
    ///
    /// Only the offending instance is skipped, not the whole message (Cortex fails the whole
    /// merge instead): a push/pull full state carries every instance, and refusing all of it
    /// because of one bad entry would stop state sync for the healthy ones. A skipped instance
    /// still counts as present for `local_cas`, so it is never turned into a tombstone.
    pub max_future_skew_secs: Option<i64>,
}

impl MergeOptions {
    /// Cortex's guard: refuse heartbeats more than 30 minutes ahead of `now`.
    pub const CORTEX: MergeOptions = MergeOptions {
        max_future_skew_secs: Some(CORTEX_MAX_FUTURE_SKEW_SECS),
    };
}

/// Result of [`merge_with_options`]: the change to gossip on, plus what the guard skipped so
/// the caller can log or count it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeOutcome {
    /// The instances this merge updated, as they now are in the local descriptor (after
    /// conflict resolution); `None` when nothing changed.
    pub change: Option<Desc>,
    /// IDs of incoming instances ignored because their timestamp was too far in the future.
    pub ignored_future: Vec<String>,
    /// The change is exactly the incoming descriptor as given: every incoming instance was
    /// accepted unmodified (no normalisation, no conflict resolution, no tombstones added).
    /// A gossip layer holding the incoming bytes may then forward them instead of encoding
    /// the change again.
    pub change_is_incoming: bool,
}

/// Merges `incoming` into `local` and returns the change (only the updated instances, as
/// merged), or `None` when nothing changed. This is dskit's `Desc.Merge`, with time passed in.
///
/// `local` must be normalised (see [`normalize`]) and stays normalised; `incoming` need not be.
/// `local_cas` is true only when `incoming` is the full state a local CAS callback produced:
/// then every live local instance missing from `incoming` becomes a LEFT tombstone stamped
/// `now`. Received gossip and push/pull always use `false`.
pub fn merge(local: &mut Desc, incoming: Desc, local_cas: bool, now: i64) -> Option<Desc> {
    merge_with_options(local, incoming, local_cas, now, &MergeOptions::default()).change
}

/// [`merge`] with [`MergeOptions`], reporting which incoming instances the options skipped.
pub fn merge_with_options(
    local: &mut Desc,
    incoming: Desc,
    local_cas: bool,
    now: i64,
    options: &MergeOptions,
) -> MergeOutcome {
    let mut outcome = MergeOutcome::default();
    let future_limit = options
        .max_future_skew_secs
        .map(|skew| now.saturating_add(skew));

    // Decided before `incoming` is consumed: live local instances the CAS callback removed.
    let removed_by_cas: Vec<String> = if local_cas {
        local
            .ingesters
            .iter()
            .filter(|(id, d)| d.state != LEFT && !incoming.ingesters.contains_key(*id))
            .map(|(id, _)| id.clone())
            .collect()
    } else {
        Vec::new()
    };

    // The incoming map becomes the change: accepted entries stay in it, everything else is
    // taken out. This reuses the decoded message's allocations instead of building a new map.
    let mut change = incoming.ingesters;
    let incoming_len = change.len();
    let mut modified = false;
    let mut tokens_changed = false;
    let ignored_future = &mut outcome.ignored_future;
    change.retain(|id, theirs| {
        if future_limit.is_some_and(|limit| theirs.timestamp > limit) {
            ignored_future.push(id.clone());
            return false;
        }
        // Normalising only what is accepted keeps duplicate gossip (the common case: every
        // update is retransmitted by several peers) as cheap as a lookup.
        match local.ingesters.get_mut(id) {
            Some(ours) => {
                if !supersedes(theirs, ours.timestamp, ours.state == LEFT) {
                    return false;
                }
                modified |= normalize_instance(theirs);
                let same_tokens = ours.tokens == theirs.tokens;
                tokens_changed |= !same_tokens;
                assign(ours, theirs, same_tokens);
            }
            None => {
                if !supersedes(theirs, 0, false) {
                    return false;
                }
                modified |= normalize_instance(theirs);
                tokens_changed |= !theirs.tokens.is_empty();
                local.ingesters.insert(id.clone(), theirs.clone());
            }
        }
        true
    });

    modified |= change.len() != incoming_len || !removed_by_cas.is_empty();
    for id in removed_by_cas {
        if let Some(ours) = local.ingesters.get_mut(&id) {
            ours.set_state(InstanceState::Left);
            ours.tokens.clear();
            ours.timestamp = now;
            change.insert(id, ours.clone());
        }
    }

    if change.is_empty() {
        return outcome;
    }

    // Only a changed token list can introduce a new conflict; dropping tokens (LEFT) cannot.
    if tokens_changed && resolve_token_conflicts(local) {
        for (id, entry) in &mut change {
            if let Some(ours) = local.ingesters.get(id)
                && entry.tokens != ours.tokens
            {
                entry.tokens.clone_from(&ours.tokens);
                modified = true;
            }
        }
    }

    outcome.change_is_incoming = !modified;
    outcome.change = Some(Desc { ingesters: change });
    outcome
}

/// Whether an incoming entry wins over a local one with the given version: strictly newer, or
/// a tombstone against a live entry of the same timestamp.
#[inline]
fn supersedes(theirs: &InstanceDesc, our_timestamp: i64, ours_left: bool) -> bool {
    theirs.timestamp > our_timestamp
        || (theirs.timestamp == our_timestamp && theirs.state == LEFT && !ours_left)
}

/// Overwrites every field of `dst` with `src`, reusing `dst`'s allocations (a heartbeat keeps
/// the same address, zone and tokens, so this copies without allocating). `same_tokens` says
/// the token lists are already known to be equal, which skips copying them.
fn assign(dst: &mut InstanceDesc, src: &InstanceDesc, same_tokens: bool) {
    // Destructured so that a field added to the proto cannot be forgotten here.
    let InstanceDesc {
        addr,
        timestamp,
        state,
        tokens,
        zone,
        registered_timestamp,
        id,
        read_only_updated_timestamp,
        read_only,
        versions,
    } = src;
    dst.addr.clone_from(addr);
    dst.timestamp = *timestamp;
    dst.state = *state;
    if !same_tokens {
        dst.tokens.clone_from(tokens);
    }
    dst.zone.clone_from(zone);
    dst.registered_timestamp = *registered_timestamp;
    dst.id.clone_from(id);
    dst.read_only_updated_timestamp = *read_only_updated_timestamp;
    dst.read_only = *read_only;
    if dst.versions != *versions {
        dst.versions.clone_from(versions);
    }
}

/// Puts a descriptor in the form [`merge`] expects of its receiver: LEFT instances hold no
/// tokens, and every token list is sorted without duplicates.
pub fn normalize(desc: &mut Desc) {
    for d in desc.ingesters.values_mut() {
        normalize_instance(d);
    }
}

/// Returns whether it changed anything.
fn normalize_instance(d: &mut InstanceDesc) -> bool {
    if d.state == LEFT {
        let had = !d.tokens.is_empty();
        d.tokens.clear();
        had
    } else {
        d.tokens.normalize()
    }
}

/// Whether two live (non-LEFT) instances claim the same token: a ring in that state gives
/// lookups an ambiguous owner, so callers and tests use this to check that resolution ran.
/// Expects a normalised descriptor; a duplicate inside one instance's list also counts.
pub fn has_token_conflicts(desc: &Desc) -> bool {
    let mut all: Vec<u32> = Vec::with_capacity(live_token_count(desc));
    for d in desc.ingesters.values().filter(|d| d.state != LEFT) {
        all.extend_from_slice(&d.tokens);
    }
    all.sort_unstable();
    all.windows(2).any(|w| w[0] == w[1])
}

fn live_token_count(desc: &Desc) -> usize {
    desc.ingesters
        .values()
        .filter(|d| d.state != LEFT)
        .map(|d| d.tokens.len())
        .sum()
}

/// Gives every token claimed by several live instances to exactly one of them, so that all
/// replicas agree on ownership whatever order they saw the claims in. [`merge`] calls it when
/// a token list changed; it is public for descriptors that arrive without a merge (another
/// KV store, a file) and for tests. LEFT instances are
/// ignored (and lose any tokens); a LEAVING claimant loses to a non-LEAVING one; otherwise the
/// lexicographically lower instance ID wins. Losers drop the token. The descriptor is
/// normalised first. Returns whether any token list changed.
pub fn resolve_token_conflicts(desc: &mut Desc) -> bool {
    normalize(desc);

    // One u64 per claim: token in the high half, tie-break rank in the low half (LEAVING bit
    // above the position in ID order), so the smallest value of a token's group is its winner.
    let mut claims: Vec<u64> = Vec::with_capacity(live_token_count(desc));
    for (index, d) in desc.ingesters.values().enumerate() {
        if d.state == LEFT {
            continue;
        }
        let Some(rank) = claim_rank(index, d.state == LEAVING) else {
            // More than 2^31 instances cannot be decoded from one message; never reached.
            return false;
        };
        claims.extend(
            d.tokens
                .iter()
                .map(|&t| (u64::from(t) << 32) | u64::from(rank)),
        );
    }
    sort_by_token(&mut claims);

    // (loser position, token) for every claim of a contested token but the best-ranked one.
    let mut losses: Vec<(u32, u32)> = Vec::new();
    for group in claims.chunk_by(|a, b| a >> 32 == b >> 32) {
        if group.len() < 2 {
            continue;
        }
        let rank_of = |claim: u64| claim as u32;
        let best = group.iter().map(|&c| rank_of(c)).min();
        for &claim in group {
            if Some(rank_of(claim)) != best {
                losses.push((rank_of(claim) & !LEAVING_RANK_BIT, (claim >> 32) as u32));
            }
        }
    }
    if losses.is_empty() {
        return false;
    }
    losses.sort_unstable();

    let mut losses = losses.as_slice();
    for (index, d) in desc.ingesters.values_mut().enumerate() {
        let Ok(index) = u32::try_from(index) else {
            break;
        };
        let lost_here = losses.partition_point(|&(i, _)| i == index);
        if lost_here == 0 {
            continue;
        }
        let (mine, rest) = losses.split_at(lost_here);
        losses = rest;
        // Both lists are sorted: walk them together.
        let mut lost = mine.iter().map(|&(_, t)| t).peekable();
        d.tokens.make_mut().retain(|&t| {
            while lost.next_if(|&l| l < t).is_some() {}
            lost.next_if_eq(&t).is_none()
        });
    }
    true
}

const LEAVING_RANK_BIT: u32 = 1 << 31;

/// Groups claims by token (the high 32 bits); the order inside a group is unspecified. An LSD
/// radix sort over the four token bytes: conflict detection sorts every token of the ring on
/// each token-changing merge (77k for 600 × 128), where this is several times faster than a
/// comparison sort.
fn sort_by_token(claims: &mut Vec<u64>) {
    if claims.len() < 1024 {
        claims.sort_unstable();
        return;
    }
    let mut scratch = vec![0u64; claims.len()];
    for shift in [32u32, 40, 48, 56] {
        let digit = |claim: u64| ((claim >> shift) & 0xff) as usize;
        let mut offsets = [0usize; 256];
        for &claim in claims.iter() {
            offsets[digit(claim)] += 1;
        }
        if offsets.contains(&claims.len()) {
            continue; // every claim has the same digit here: this pass would not move anything
        }
        let mut start = 0;
        for slot in offsets.iter_mut() {
            let count = *slot;
            *slot = start;
            start += count;
        }
        for &claim in claims.iter() {
            let slot = &mut offsets[digit(claim)];
            scratch[*slot] = claim;
            *slot += 1;
        }
        std::mem::swap(claims, &mut scratch);
    }
}

fn claim_rank(index: usize, leaving: bool) -> Option<u32> {
    let index = u32::try_from(index)
        .ok()
        .filter(|&i| i < LEAVING_RANK_BIT)?;
    Some(if leaving {
        index | LEAVING_RANK_BIT
    } else {
        index
    })
}

/// Deletes LEFT tombstones whose timestamp is before `limit` (all of them when `limit` is 0),
/// as memberlist does after each merge with `now - left-ingesters-timeout`; tombstones must
/// live long enough to reach every peer, but not forever. Returns `(kept, removed)`, the
/// numbers of tombstones left in place and deleted.
pub fn remove_tombstones(desc: &mut Desc, limit: i64) -> (usize, usize) {
    let before = desc.ingesters.len();
    let mut kept = 0;
    desc.ingesters.retain(|_, d| {
        if d.state != LEFT {
            return true;
        }
        let keep = limit != 0 && d.timestamp >= limit;
        kept += usize::from(keep);
        keep
    });
    (kept, before - desc.ingesters.len())
}

/// Deletes every LEFT tombstone: ring readers must never see instances that left, only the
/// gossip layer needs them. Returns how many were deleted.
pub fn strip_tombstones(desc: &mut Desc) -> usize {
    remove_tombstones(desc, 0).1
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use InstanceState::{Active, Joining, Leaving, Left, Pending};

    const NOW: i64 = 1_700_000_000;

    fn inst(ts: i64, state: InstanceState, tokens: &[u32]) -> InstanceDesc {
        InstanceDesc {
            addr: format!("10.0.0.1:{ts}"),
            timestamp: ts,
            state: state as i32,
            tokens: tokens.into(),
            zone: "z1".to_owned(),
            registered_timestamp: 1,
            ..Default::default()
        }
    }

    fn ring(entries: &[(&str, InstanceDesc)]) -> Desc {
        Desc {
            ingesters: entries
                .iter()
                .map(|(id, d)| ((*id).to_owned(), d.clone()))
                .collect(),
        }
    }

    fn tokens_of<'a>(d: &'a Desc, id: &str) -> &'a [u32] {
        &d.ingesters[id].tokens
    }

    #[test]
    fn normalize_sorts_dedups_and_empties_left_instances() {
        let mut d = ring(&[
            ("a", inst(NOW, Active, &[50, 40, 40, 30])),
            ("b", inst(NOW, Left, &[1, 2])),
            ("c", inst(NOW, Pending, &[])),
        ]);
        normalize(&mut d);
        assert_eq!(tokens_of(&d, "a"), [30, 40, 50]);
        assert!(tokens_of(&d, "b").is_empty());
        assert!(tokens_of(&d, "c").is_empty());
    }

    #[test]
    fn newer_incoming_entry_replaces_every_local_field() {
        let mut local = ring(&[("a", inst(NOW, Joining, &[1, 2]))]);
        let mut newer = inst(NOW + 5, Active, &[1, 2]);
        newer.addr = "10.9.9.9:1".into();
        newer.zone = "z2".into();
        newer.read_only = true;
        newer.read_only_updated_timestamp = NOW + 4;
        newer.versions.insert(1, 7);
        let incoming = ring(&[("a", newer.clone())]);

        let change = merge(&mut local, incoming.clone(), false, NOW);

        assert_eq!(local.ingesters["a"], newer);
        assert_eq!(change, Some(incoming));
    }

    #[test]
    fn older_incoming_entry_is_ignored_and_nothing_changes() {
        let mut local = ring(&[("a", inst(NOW, Active, &[1]))]);
        let before = local.clone();
        let change = merge(
            &mut local,
            ring(&[("a", inst(NOW - 1, Leaving, &[9]))]),
            false,
            NOW,
        );
        assert_eq!(change, None);
        assert_eq!(local, before);
    }

    #[test]
    fn equal_timestamp_live_entry_keeps_the_local_one_even_if_fields_differ() {
        let mut local = ring(&[("a", inst(NOW, Active, &[1]))]);
        let before = local.clone();
        let mut same_ts = inst(NOW, Leaving, &[2]);
        same_ts.addr = "elsewhere:1".into();
        assert_eq!(merge(&mut local, ring(&[("a", same_ts)]), false, NOW), None);
        assert_eq!(local, before);
    }

    #[test]
    fn equal_timestamp_left_beats_live_local_entry_and_drops_its_tokens() {
        let mut local = ring(&[
            ("a", inst(NOW, Active, &[1])),
            ("b", inst(NOW, Active, &[2])),
        ]);
        let change = merge(
            &mut local,
            ring(&[("a", inst(NOW, Left, &[1]))]),
            false,
            NOW,
        );

        let tombstone = inst(NOW, Left, &[]);
        assert_eq!(local.ingesters["a"], tombstone);
        assert_eq!(change, Some(ring(&[("a", tombstone)])));
        assert_eq!(tokens_of(&local, "b"), [2]);
    }

    #[test]
    fn equal_timestamp_left_does_not_replace_a_local_tombstone() {
        let mut local = ring(&[("a", inst(NOW, Left, &[]))]);
        let mut other = inst(NOW, Left, &[]);
        other.addr = "other:1".into();
        assert_eq!(merge(&mut local, ring(&[("a", other)]), false, NOW), None);
    }

    #[test]
    fn newer_live_entry_resurrects_an_older_tombstone() {
        let mut local = ring(&[("a", inst(NOW, Left, &[]))]);
        let change = merge(
            &mut local,
            ring(&[("a", inst(NOW + 1, Active, &[3]))]),
            false,
            NOW,
        );
        assert_eq!(local.ingesters["a"].state(), Active);
        assert_eq!(change.map(|c| c.ingesters.len()), Some(1));
    }

    #[test]
    fn older_or_equal_live_entry_never_resurrects_a_tombstone() {
        for ts in [NOW - 10, NOW] {
            let mut local = ring(&[("a", inst(NOW, Left, &[]))]);
            let change = merge(
                &mut local,
                ring(&[("a", inst(ts, Active, &[3]))]),
                false,
                NOW,
            );
            assert_eq!(change, None);
            assert_eq!(local.ingesters["a"].state(), Left);
        }
    }

    #[test]
    fn unknown_instance_is_added_and_is_the_whole_change() {
        let mut local = ring(&[("a", inst(NOW, Active, &[1]))]);
        let incoming = ring(&[("b", inst(NOW - 100, Pending, &[]))]);
        let change = merge(&mut local, incoming.clone(), false, NOW);
        assert_eq!(change, Some(incoming));
        assert_eq!(local.ingesters.len(), 2);
    }

    #[test]
    fn incoming_is_normalised_before_it_is_merged_or_returned() {
        let mut local = Desc::new();
        let incoming = ring(&[
            ("a", inst(NOW, Active, &[9, 3, 3, 5])),
            ("b", inst(NOW, Left, &[7, 8])),
        ]);
        let change = merge(&mut local, incoming, false, NOW).expect("both are new");
        assert_eq!(tokens_of(&local, "a"), [3, 5, 9]);
        assert!(tokens_of(&local, "b").is_empty());
        assert_eq!(change, local);
    }

    #[test]
    fn missing_local_counts_as_timestamp_zero_so_live_zero_entries_are_never_added() {
        let mut local = Desc::new();
        let incoming = ring(&[("a", inst(0, Active, &[1])), ("n", inst(-5, Active, &[2]))]);
        assert_eq!(merge(&mut local, incoming, false, NOW), None);
        assert!(local.ingesters.is_empty());

        // ...but a LEFT entry at timestamp 0 wins the tie against the implicit live zero entry.
        let change = merge(&mut local, ring(&[("z", inst(0, Left, &[]))]), false, NOW);
        assert_eq!(change.map(|c| c.ingesters.len()), Some(1));
        assert_eq!(local.ingesters["z"].state(), Left);
    }

    #[test]
    fn empty_incoming_is_no_change() {
        let mut local = ring(&[("a", inst(NOW, Active, &[1]))]);
        assert_eq!(merge(&mut local, Desc::new(), false, NOW), None);
    }

    #[test]
    fn without_local_cas_instances_missing_from_incoming_are_kept() {
        let mut local = ring(&[
            ("a", inst(NOW, Active, &[1])),
            ("b", inst(NOW, Active, &[2])),
        ]);
        let change = merge(
            &mut local,
            ring(&[("a", inst(NOW + 1, Active, &[1]))]),
            false,
            NOW,
        );
        assert_eq!(change.map(|c| c.ingesters.len()), Some(1));
        assert_eq!(local.ingesters["b"].state(), Active);
    }

    #[test]
    fn local_cas_turns_missing_live_instances_into_tombstones_stamped_now() {
        let full = ring(&[
            ("a", inst(NOW, Active, &[30, 40, 50])),
            ("b", inst(NOW, Joining, &[5, 10, 20])),
            ("c", inst(NOW, Leaving, &[100, 200])),
        ]);
        let mut local = full.clone();
        // The CAS callback removed "c" and heartbeated "b".
        let cas_result = ring(&[
            ("a", inst(NOW, Active, &[30, 40, 50])),
            ("b", inst(NOW + 5, Active, &[5, 10, 20])),
        ]);

        let change = merge(&mut local, cas_result, true, NOW + 3);

        let mut tombstone = inst(NOW, Left, &[]);
        tombstone.timestamp = NOW + 3;
        let expected_change = ring(&[
            ("b", inst(NOW + 5, Active, &[5, 10, 20])),
            ("c", tombstone.clone()),
        ]);
        assert_eq!(change, Some(expected_change));
        assert_eq!(local.ingesters["c"], tombstone);
        assert_eq!(local.ingesters["a"], full.ingesters["a"]);
    }

    #[test]
    fn local_cas_is_idempotent_even_when_time_advances() {
        let mut local = ring(&[
            ("a", inst(NOW, Active, &[1])),
            ("c", inst(NOW, Active, &[2])),
        ]);
        let cas_result = ring(&[("a", inst(NOW + 5, Active, &[1]))]);
        assert!(merge(&mut local, cas_result.clone(), true, NOW + 3).is_some());
        let after_first = local.clone();
        assert_eq!(merge(&mut local, cas_result, true, NOW + 10), None);
        assert_eq!(local, after_first);
    }

    #[test]
    fn local_cas_leaves_existing_tombstones_untouched() {
        let mut local = ring(&[
            ("a", inst(NOW, Active, &[1])),
            ("gone", inst(NOW, Left, &[])),
        ]);
        let change = merge(
            &mut local,
            ring(&[("a", inst(NOW + 10, Active, &[1]))]),
            true,
            NOW + 10,
        )
        .expect("a is newer");
        assert_eq!(change.ingesters.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(local.ingesters["gone"], inst(NOW, Left, &[]));
    }

    #[test]
    fn cas_tombstone_from_a_lagging_clock_can_be_undone_by_older_gossip() {
        // dskit stamps a CAS tombstone with `now` even when the entry it deletes is newer (the
        // local clock lags). Kept for parity; documented in the module docs.
        let mut local = ring(&[
            ("a", inst(NOW, Active, &[1])),
            ("x", inst(NOW + 50, Active, &[2])),
        ]);
        merge(
            &mut local,
            ring(&[("x", inst(NOW + 40, Left, &[]))]),
            false,
            NOW,
        );
        assert_eq!(local.ingesters["x"].state(), Active, "the older LEFT lost");

        let change = merge(
            &mut local,
            ring(&[("a", inst(NOW, Active, &[1]))]),
            true,
            NOW + 10,
        )
        .expect("x removed");
        assert_eq!(change.ingesters["x"].timestamp, NOW + 10);

        merge(
            &mut local,
            ring(&[("x", inst(NOW + 20, Active, &[2]))]),
            false,
            NOW + 10,
        );
        assert_eq!(
            local.ingesters["x"].state(),
            Active,
            "resurrected by older gossip"
        );
    }

    #[test]
    fn non_leaving_instance_takes_a_contested_token_from_a_leaving_one() {
        let mut local = ring(&[
            ("a", inst(NOW, Active, &[30, 40, 50])),
            ("b", inst(NOW, Joining, &[5, 10, 20])),
        ]);
        let incoming = ring(&[
            ("b", inst(NOW + 5, Active, &[5, 10, 20])),
            ("c", inst(NOW + 5, Leaving, &[5, 10, 20, 100, 200])),
        ]);
        let change = merge(&mut local, incoming, false, NOW);

        // Hand-over in progress: the LEAVING "c" gives up what "b" already took. (The ID rule
        // alone would agree here; `leaving_instance_loses_even_with_the_lower_id` separates them.)
        assert_eq!(tokens_of(&local, "b"), [5, 10, 20]);
        assert_eq!(tokens_of(&local, "c"), [100, 200]);
        let change = change.expect("b and c are newer");
        assert_eq!(
            tokens_of(&change, "c"),
            [100, 200],
            "the change holds resolved tokens"
        );
        assert_eq!(tokens_of(&change, "b"), [5, 10, 20]);
    }

    #[test]
    fn leaving_instance_loses_even_with_the_lower_id() {
        let mut local = ring(&[("b", inst(NOW, Active, &[1, 2]))]);
        let change = merge(
            &mut local,
            ring(&[("a", inst(NOW, Leaving, &[2, 3]))]),
            false,
            NOW,
        );
        assert_eq!(tokens_of(&local, "a"), [3]);
        assert_eq!(tokens_of(&local, "b"), [1, 2]);
        assert_eq!(
            change.map(|c| c.ingesters["a"].tokens.to_vec()),
            Some(vec![3])
        );
    }

    #[test]
    fn lower_instance_id_wins_between_two_non_leaving_claimants() {
        for (local_id, incoming_id) in [("a", "b"), ("b", "a")] {
            let mut local = ring(&[(local_id, inst(NOW, Active, &[1, 2]))]);
            let incoming = ring(&[(incoming_id, inst(NOW, Joining, &[2, 3]))]);
            merge(&mut local, incoming, false, NOW);
            assert!(tokens_of(&local, "a").contains(&2), "a wins token 2");
            assert!(!tokens_of(&local, "b").contains(&2), "b drops token 2");
            assert_eq!(
                local
                    .ingesters
                    .values()
                    .map(|i| i.tokens.len())
                    .sum::<usize>(),
                3
            );
        }
    }

    #[test]
    fn lower_instance_id_wins_between_two_leaving_claimants() {
        let mut local = ring(&[("b", inst(NOW, Leaving, &[7]))]);
        merge(
            &mut local,
            ring(&[("a", inst(NOW, Leaving, &[7]))]),
            false,
            NOW,
        );
        assert_eq!(tokens_of(&local, "a"), [7]);
        assert!(tokens_of(&local, "b").is_empty());
    }

    #[test]
    fn three_way_conflict_goes_to_the_lowest_non_leaving_id() {
        let mut local = ring(&[
            ("a", inst(NOW, Leaving, &[9])),
            ("c", inst(NOW, Active, &[9])),
        ]);
        let mut d = local.clone();
        d.ingesters.insert("b".into(), inst(NOW, Pending, &[9]));
        assert!(resolve_token_conflicts(&mut d));
        assert!(d.ingesters.values().filter(|i| i.tokens == [9]).count() == 1);
        assert_eq!(tokens_of(&d, "b"), [9]);

        // Through merge, with the winner arriving last.
        merge(
            &mut local,
            ring(&[("b", inst(NOW, Pending, &[9]))]),
            false,
            NOW,
        );
        assert_eq!(local, d);
    }

    #[test]
    fn unknown_states_count_as_non_leaving_in_conflicts() {
        let mut d = ring(&[
            ("a", inst(NOW, Leaving, &[4])),
            ("b", inst(NOW, Active, &[4])),
        ]);
        d.ingesters.get_mut("b").expect("present").state = 5; // Cortex READONLY
        assert!(resolve_token_conflicts(&mut d));
        assert_eq!(tokens_of(&d, "b"), [4]);
        assert!(tokens_of(&d, "a").is_empty());
    }

    #[test]
    fn large_rings_resolve_like_a_naive_winner_search() {
        // Big enough for the radix sort path, with a token space small enough for many
        // three- and four-way conflicts.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..4 {
            let mut d = Desc::new();
            for i in 0..60 {
                let state = InstanceState::ALL[(next() % 5) as usize];
                let tokens: Vec<u32> = (0..64)
                    .map(|_| {
                        let small = (next() % 3000) as u32;
                        match round {
                            0 => small,
                            // Spread over all four bytes, so that every radix pass matters.
                            1 => small.wrapping_mul(0x9E37_79B1),
                            2 => small | ((next() % 4) as u32) << 16 | ((next() % 2) as u32) << 31,
                            _ => small.wrapping_mul(0x0101_0101) ^ ((next() % 2) as u32) << 24,
                        }
                    })
                    .collect();
                d.ingesters
                    .insert(format!("i{:02}", 59 - i), inst(NOW, state, &tokens));
            }
            normalize(&mut d);

            let mut winner: BTreeMap<u32, (bool, &str)> = BTreeMap::new();
            for (id, e) in d.ingesters.iter().filter(|(_, e)| e.state() != Left) {
                for &t in &e.tokens {
                    let candidate = (e.state() == Leaving, id.as_str());
                    let best = winner.entry(t).or_insert(candidate);
                    *best = (*best).min(candidate);
                }
            }
            let mut resolved = d.clone();
            assert!(resolve_token_conflicts(&mut resolved));
            for (id, e) in &resolved.ingesters {
                let expected: Vec<u32> = d.ingesters[id]
                    .tokens
                    .iter()
                    .copied()
                    .filter(|t| e.state() != Left && winner[t].1 == id)
                    .collect();
                assert_eq!(e.tokens, expected, "round {round}, {id}");
            }
            assert!(!has_token_conflicts(&resolved));
        }
    }

    #[test]
    fn left_instances_take_no_part_in_conflict_resolution() {
        let mut d = ring(&[
            ("a", inst(NOW, Left, &[1])),
            ("b", inst(NOW, Leaving, &[1])),
        ]);
        assert!(!has_token_conflicts(&d));
        resolve_token_conflicts(&mut d);
        assert!(
            tokens_of(&d, "a").is_empty(),
            "LEFT loses its tokens on normalisation"
        );
        assert_eq!(tokens_of(&d, "b"), [1]);
    }

    #[test]
    fn losers_that_were_not_updated_are_not_in_the_change() {
        let mut local = ring(&[("b", inst(NOW, Active, &[1, 2]))]);
        let change = merge(
            &mut local,
            ring(&[("a", inst(NOW, Active, &[2]))]),
            false,
            NOW,
        )
        .expect("a is new");
        assert_eq!(tokens_of(&local, "b"), [1]);
        assert_eq!(change.ingesters.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn heartbeat_with_unchanged_tokens_does_not_run_conflict_resolution() {
        // A conflict already present in the receiver is left alone by a merge that changes no
        // token list (as in dskit: detection only runs when some token list changed).
        let mut local = ring(&[
            ("a", inst(NOW, Active, &[1])),
            ("b", inst(NOW, Active, &[1])),
        ]);
        let change = merge(
            &mut local,
            ring(&[("b", inst(NOW + 1, Active, &[1]))]),
            false,
            NOW,
        );
        assert!(change.is_some());
        assert!(has_token_conflicts(&local));
        // Any token change settles it.
        merge(
            &mut local,
            ring(&[("c", inst(NOW, Active, &[2]))]),
            false,
            NOW,
        );
        assert!(!has_token_conflicts(&local));
        assert_eq!(tokens_of(&local, "a"), [1]);
        assert!(tokens_of(&local, "b").is_empty());
    }

    #[test]
    fn conflict_resolution_normalises_an_unnormalised_receiver() {
        let mut local = ring(&[
            ("ing1", inst(NOW, Active, &[50, 40, 40, 30])),
            (
                "ing2",
                inst(123_456, Leaving, &[100, 5, 5, 100, 100, 200, 20, 10]),
            ),
            ("ing3", inst(NOW, Left, &[100, 200, 300])),
            ("ing4", inst(NOW, Leaving, &[30, 40, 50])),
            ("unknown", inst(0, Active, &[100])),
        ]);
        let incoming = ring(&[("unknown", inst(NOW + 10, Active, &[2000, 1000]))]);
        let change = merge(&mut local, incoming, false, NOW).expect("unknown is newer");

        assert_eq!(tokens_of(&local, "ing1"), [30, 40, 50]);
        assert_eq!(tokens_of(&local, "ing2"), [5, 10, 20, 100, 200]);
        assert!(tokens_of(&local, "ing3").is_empty());
        assert!(tokens_of(&local, "ing4").is_empty());
        assert_eq!(tokens_of(&local, "unknown"), [1000, 2000]);
        assert_eq!(
            change,
            ring(&[("unknown", inst(NOW + 10, Active, &[1000, 2000]))])
        );
    }

    #[test]
    fn default_options_accept_far_future_timestamps() {
        let mut local = Desc::new();
        let far = NOW + 365 * 24 * 3600;
        assert!(
            merge(
                &mut local,
                ring(&[("a", inst(far, Active, &[1]))]),
                false,
                NOW
            )
            .is_some()
        );
        assert_eq!(local.ingesters["a"].timestamp, far);
    }

    #[test]
    fn future_guard_skips_only_the_offending_instances_and_reports_them() {
        let mut local = ring(&[("a", inst(NOW, Active, &[1]))]);
        let skew = CORTEX_MAX_FUTURE_SKEW_SECS;
        let incoming = ring(&[
            ("a", inst(NOW + skew + 1, Active, &[1])),
            ("b", inst(NOW + skew, Active, &[2])),
        ]);
        let out = merge_with_options(&mut local, incoming, false, NOW, &MergeOptions::CORTEX);
        assert_eq!(out.ignored_future, ["a"]);
        assert_eq!(local.ingesters["a"].timestamp, NOW);
        let change = out.change.expect("b is at the limit, which is allowed");
        assert_eq!(change.ingesters.keys().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn future_guard_never_tombstones_a_skipped_instance_under_local_cas() {
        let mut local = ring(&[("a", inst(NOW, Active, &[1]))]);
        let incoming = ring(&[("a", inst(NOW + 10_000, Active, &[1]))]);
        let out = merge_with_options(&mut local, incoming, true, NOW, &MergeOptions::CORTEX);
        assert_eq!(out.change, None);
        assert_eq!(local.ingesters["a"].state(), Active);
    }

    #[test]
    fn extreme_timestamps_and_skews_do_not_panic() {
        for skew in [None, Some(i64::MIN), Some(-1), Some(0), Some(i64::MAX)] {
            let options = MergeOptions {
                max_future_skew_secs: skew,
            };
            for now in [i64::MIN, -1, 0, i64::MAX] {
                let mut local = ring(&[("a", inst(i64::MIN, Active, &[u32::MAX]))]);
                let incoming = ring(&[
                    ("a", inst(i64::MAX, Leaving, &[u32::MAX, 0])),
                    ("b", inst(i64::MAX, Active, &[u32::MAX])),
                ]);
                let out = merge_with_options(&mut local, incoming, true, now, &options);
                assert!(!has_token_conflicts(&local));
                if skew.is_none() {
                    assert_eq!(tokens_of(&local, "b"), [u32::MAX]);
                    assert_eq!(tokens_of(&local, "a"), [0]);
                } else {
                    let accepted = out.change.map_or(0, |c| c.ingesters.len());
                    assert_eq!(accepted + out.ignored_future.len(), 2);
                }
            }
        }
    }

    #[test]
    fn remove_tombstones_deletes_only_tombstones_older_than_the_limit() {
        let mut d = ring(&[
            ("live", inst(NOW - 1000, Active, &[1])),
            ("old", inst(NOW - 301, Left, &[])),
            ("edge", inst(NOW - 300, Left, &[])),
            ("new", inst(NOW, Left, &[])),
        ]);
        assert_eq!(remove_tombstones(&mut d, NOW - 300), (2, 1));
        assert_eq!(
            d.ingesters.keys().collect::<Vec<_>>(),
            ["edge", "live", "new"]
        );
    }

    #[test]
    fn remove_tombstones_with_zero_limit_deletes_all_of_them() {
        let mut d = ring(&[
            ("live", inst(NOW, Active, &[1])),
            ("x", inst(NOW + 5, Left, &[])),
        ]);
        assert_eq!(remove_tombstones(&mut d, 0), (0, 1));
        assert_eq!(d.ingesters.keys().collect::<Vec<_>>(), ["live"]);
    }

    #[test]
    fn strip_tombstones_leaves_readers_only_live_instances() {
        let mut d = ring(&[
            ("a", inst(NOW, Active, &[1])),
            ("b", inst(NOW, Left, &[])),
            ("c", inst(NOW, Leaving, &[2])),
        ]);
        assert_eq!(strip_tombstones(&mut d), 1);
        assert!(d.ingesters.values().all(|i| i.state() != Left));
        assert_eq!(d.ingesters.len(), 2);
    }
}
