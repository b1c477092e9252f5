//! Property tests of the gossip merge (spec/ring.md §3.8).
//!
//! Descriptors are built from *versions* `(instance, timestamp, left?)` of a small universe.
//! The content of a version (state, tokens, address, ...) is a pure function of the version,
//! because in a real cluster each instance is written by its single owner: two replicas that
//! hold the same version of an instance hold the same entry. Without that, equal timestamps
//! with different contents keep whichever side is local and no merge can be commutative.
//!
//! What is claimed, and why no more:
//! - If no two instances ever claim the same token, merge (with `local_cas = false`) is
//!   exactly the last-writer-wins join: commutative, associative, idempotent.
//! - With shared tokens, conflict resolution strips tokens from losers without bumping their
//!   timestamp. A binary merge of two conflict-free replicas is still commutative (both sides
//!   resolve the same joined map), but associativity fails in general: a loser stripped in one
//!   grouping can keep the token in another where the winner's newer version (without that
//!   token) arrived first. `every_grouping_agrees_on_all_but_lost_tokens` pins down what still
//!   holds, and `conflict_resolution_breaks_associativity_of_token_lists` shows the failure.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use ringkit_ring::merge::{has_token_conflicts, merge, normalize, resolve_token_conflicts};
use ringkit_ring::{Desc, InstanceDesc, InstanceState};

const IDS: [&str; 4] = ["a", "b", "c", "d"];
const LEFT: i32 = InstanceState::Left as i32;
const LEAVING: i32 = InstanceState::Leaving as i32;
/// Timestamps of generated versions lie in `1..=MAX_TS`; CAS steps use later `now` values.
const MAX_TS: i64 = 5;

/// One version of one instance.
#[derive(Clone, Copy, Debug)]
struct Version {
    id: usize,
    ts: i64,
    left: bool,
}

/// Maps versions to entries. `shared_tokens`: all instances draw tokens from one tiny space
/// (conflicts are frequent); otherwise each instance has a private token range.
#[derive(Clone, Copy, Debug)]
struct Universe {
    seed: u64,
    shared_tokens: bool,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Universe {
    fn entry(&self, v: Version) -> InstanceDesc {
        let key = ((v.id as u64) << 40) | ((v.ts as u64) << 1) | u64::from(v.left);
        let h = mix(self.seed ^ mix(key));
        let live_states = [
            InstanceState::Active,
            InstanceState::Leaving,
            InstanceState::Pending,
            InstanceState::Joining,
        ];
        let state = if v.left {
            InstanceState::Left
        } else {
            live_states[(h % 4) as usize]
        };
        let count = (h >> 8) % 4;
        // Deliberately unsorted, possibly duplicated, and present on LEFT entries too: merge
        // must normalise what it receives.
        let tokens = (0..count)
            .map(|i| {
                let r = (h >> (16 + 8 * i)) as u32;
                if self.shared_tokens {
                    r % 6
                } else {
                    v.id as u32 * 16 + r % 16
                }
            })
            .collect();
        InstanceDesc {
            addr: format!("10.0.0.{}:{}", v.id, h % 7),
            timestamp: v.ts,
            state: state as i32,
            tokens,
            zone: format!("zone-{}", (h >> 50) % 3),
            registered_timestamp: 1,
            id: IDS[v.id].to_owned(),
            read_only: (h >> 60) & 1 == 1,
            ..Default::default()
        }
    }

    /// A normalised replica holding, for each instance, the newest of the listed versions.
    fn replica(&self, versions: &[Version]) -> Desc {
        let mut d = Desc::new();
        for &v in versions {
            let entry = self.entry(v);
            let newer = d
                .ingesters
                .get(IDS[v.id])
                .is_none_or(|old| version_key(&entry) > version_key(old));
            if newer {
                d.ingesters.insert(IDS[v.id].to_owned(), entry);
            }
        }
        normalize(&mut d);
        d
    }

    /// Like [`Universe::replica`], then drops every instance (in ID order) whose tokens clash
    /// with one kept before it: a state a real replica can be in, with every kept entry still
    /// exactly as its owner wrote it.
    fn conflict_free_replica(&self, versions: &[Version]) -> Desc {
        let mut d = self.replica(versions);
        let mut claimed = BTreeSet::new();
        d.ingesters.retain(|_, e| {
            if e.state == LEFT {
                return true;
            }
            if e.tokens.iter().any(|t| claimed.contains(t)) {
                return false;
            }
            claimed.extend(e.tokens.iter().copied());
            true
        });
        d
    }
}

/// The merge order of versions: timestamp, then LEFT over live.
fn version_key(e: &InstanceDesc) -> (i64, bool) {
    (e.timestamp, e.state == LEFT)
}

/// Last-writer-wins join of replicas, written independently of the crate's merge.
fn join(replicas: &[&Desc]) -> Desc {
    let mut out = Desc::new();
    for r in replicas {
        for (id, e) in &r.ingesters {
            let take = out
                .ingesters
                .get(id)
                .is_none_or(|old| version_key(e) > version_key(old));
            if take {
                out.ingesters.insert(id.clone(), e.clone());
            }
        }
    }
    out
}

/// Conflict resolution written as the plain rule: a live instance keeps a token unless another
/// live instance holding it ranks better (non-LEAVING before LEAVING, then lower ID).
fn reference_resolve(d: &Desc) -> Desc {
    let rank = |id: &String, e: &InstanceDesc| (e.state == LEAVING, id.clone());
    let mut out = d.clone();
    for (id, e) in out.ingesters.iter_mut() {
        if e.state == LEFT {
            e.tokens.clear();
            continue;
        }
        let my_rank = rank(id, e);
        e.tokens.make_mut().retain(|t| {
            !d.ingesters.iter().any(|(other_id, other)| {
                other_id != id
                    && other.state != LEFT
                    && other.tokens.contains(t)
                    && rank(other_id, other) < my_rank
            })
        });
    }
    out
}

fn merged(local: &Desc, incoming: &Desc) -> Desc {
    let mut l = local.clone();
    merge(&mut l, incoming.clone(), false, MAX_TS + 1);
    l
}

fn without_tokens(d: &Desc) -> Desc {
    let mut d = d.clone();
    for e in d.ingesters.values_mut() {
        e.tokens.clear();
    }
    d
}

fn version() -> impl Strategy<Value = Version> {
    (0..IDS.len(), 1..=MAX_TS, any::<bool>()).prop_map(|(id, ts, left)| Version { id, ts, left })
}

fn versions() -> impl Strategy<Value = Vec<Version>> {
    prop::collection::vec(version(), 0..7)
}

fn universe(shared_tokens: bool) -> impl Strategy<Value = Universe> {
    any::<u64>().prop_map(move |seed| Universe {
        seed,
        shared_tokens,
    })
}

/// An arbitrary descriptor, not canonical, not normalised: any fields, any states (including
/// an unknown wire value), tokens from a tiny space so that they collide.
fn arbitrary_desc() -> impl Strategy<Value = Desc> {
    let entry = (
        any::<i64>(),
        0..6i32,
        prop::collection::vec(0u32..8, 0..5),
        any::<bool>(),
    )
        .prop_map(|(timestamp, state, tokens, read_only)| InstanceDesc {
            timestamp,
            state,
            tokens: tokens.into(),
            read_only,
            ..Default::default()
        });
    prop::collection::btree_map(prop::sample::select(IDS.to_vec()), entry, 0..5).prop_map(|m| {
        Desc {
            ingesters: m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    })
}

proptest! {
    #[test]
    fn without_shared_tokens_merge_is_the_lww_join(
        u in universe(false), va in versions(), vb in versions(), vc in versions(),
    ) {
        let (a, b, c) = (u.replica(&va), u.replica(&vb), u.replica(&vc));

        // Commutative, and exactly the join.
        let ab = merged(&a, &b);
        prop_assert_eq!(&ab, &merged(&b, &a));
        prop_assert_eq!(&ab, &join(&[&a, &b]));

        // Associative.
        let ab_c = merged(&ab, &c);
        let a_bc = merged(&a, &merged(&b, &c));
        prop_assert_eq!(&ab_c, &a_bc);
        prop_assert_eq!(&ab_c, &join(&[&a, &b, &c]));

        // Idempotent: re-merging anything already included changes nothing.
        for seen in [&a, &b, &c, &ab_c] {
            let mut again = ab_c.clone();
            prop_assert_eq!(merge(&mut again, seen.clone(), false, MAX_TS + 1), None);
            prop_assert_eq!(&again, &ab_c);
        }
    }

    #[test]
    fn merging_two_conflict_free_replicas_is_commutative_despite_conflicts(
        u in universe(true), va in versions(), vb in versions(),
    ) {
        let (a, b) = (u.conflict_free_replica(&va), u.conflict_free_replica(&vb));
        let ab = merged(&a, &b);
        let ba = merged(&b, &a);
        prop_assert_eq!(&ab, &ba);

        // Both sides resolve the same joined map with the documented rule.
        prop_assert_eq!(&ab, &reference_resolve(&join(&[&a, &b])));
        prop_assert!(!has_token_conflicts(&ab));

        // Idempotent after resolution: neither input brings anything new any more.
        for seen in [&a, &b, &ab] {
            let mut again = ab.clone();
            prop_assert_eq!(merge(&mut again, seen.clone(), false, MAX_TS + 1), None);
            prop_assert_eq!(&again, &ab);
        }
    }

    #[test]
    fn every_grouping_agrees_on_all_but_lost_tokens(
        u in universe(true), va in versions(), vb in versions(), vc in versions(),
    ) {
        let (a, b, c) = (
            u.conflict_free_replica(&va),
            u.conflict_free_replica(&vb),
            u.conflict_free_replica(&vc),
        );
        let full = join(&[&a, &b, &c]);
        let results = [
            merged(&merged(&a, &b), &c),
            merged(&merged(&a, &c), &b),
            merged(&merged(&b, &c), &a),
            merged(&a, &merged(&b, &c)),
            merged(&b, &merged(&a, &c)),
            merged(&c, &merged(&a, &b)),
        ];
        for r in &results {
            // Every field but tokens is the join, whatever the grouping.
            prop_assert_eq!(without_tokens(r), without_tokens(&full));
            // Tokens only ever shrink from what the owner wrote for that version.
            for (id, e) in &r.ingesters {
                let written = &full.ingesters[id].tokens;
                prop_assert!(e.tokens.iter().all(|t| written.contains(t)), "{id}: {e:?}");
            }
            // Resolution always leaves a conflict-free ring.
            prop_assert!(!has_token_conflicts(r));
        }
        // If no two versions anywhere ever clash, resolution never fires and the token lists
        // are the join's as well. (A clash among versions the join drops is not enough:
        // intermediate merges may still meet it, see the counterexample test below.)
        if !versions_clash(&[&a, &b, &c]) {
            for r in &results {
                prop_assert_eq!(r, &full);
            }
        }
    }

    #[test]
    fn a_tombstone_is_only_ever_replaced_by_a_strictly_newer_entry(
        u in universe(true),
        start in versions(),
        // CAS clocks are not behind any heartbeat they have seen (see the module docs of
        // `ringkit_ring::merge` for what a lagging clock does to a CAS tombstone).
        steps in prop::collection::vec((versions(), any::<bool>(), MAX_TS..=MAX_TS + 2), 1..8),
    ) {
        let mut local = u.conflict_free_replica(&start);
        // Newest tombstone timestamp ever seen per instance, by any route.
        let mut newest_left: BTreeMap<String, i64> = BTreeMap::new();
        note_tombstones(&local, &mut newest_left);

        for (vs, local_cas, now) in steps {
            let incoming = u.replica(&vs);
            note_tombstones(&incoming, &mut newest_left);
            let before = local.clone();
            let change = merge(&mut local, incoming, local_cas, now);
            if let Some(change) = &change {
                note_tombstones(change, &mut newest_left);
            }
            for (id, old) in before.ingesters.iter().filter(|(_, e)| e.state == LEFT) {
                let new = &local.ingesters[id];
                if new.state == LEFT {
                    prop_assert!(new.timestamp >= old.timestamp);
                } else {
                    prop_assert!(new.timestamp > old.timestamp, "{id} resurrected: {new:?}");
                }
            }
        }
        for (id, e) in local.ingesters.iter().filter(|(_, e)| e.state != LEFT) {
            if let Some(&left_ts) = newest_left.get(id) {
                prop_assert!(e.timestamp > left_ts, "{id} live at {} after LEFT at {left_ts}", e.timestamp);
            }
        }
    }

    #[test]
    fn replaying_the_change_on_the_old_state_gives_the_same_result(
        u in universe(true), vl in versions(), vi in versions(),
        local_cas in any::<bool>(), now in MAX_TS..=MAX_TS + 2,
    ) {
        let old = u.conflict_free_replica(&vl);
        // Incoming straight from the universe: may conflict internally, not even normalised.
        let incoming = Desc {
            ingesters: vi.iter().map(|&v| (IDS[v.id].to_owned(), u.entry(v))).collect(),
        };

        let mut full = old.clone();
        let change = merge(&mut full, incoming, local_cas, now);
        let Some(change) = change else {
            prop_assert_eq!(&full, &old);
            return Ok(());
        };

        // The change holds the updated instances exactly as they now are...
        for (id, e) in &change.ingesters {
            prop_assert_eq!(e, &full.ingesters[id]);
        }
        // ...and anything else only lost tokens to conflict resolution.
        for (id, e) in full.ingesters.iter().filter(|(id, _)| !change.ingesters.contains_key(*id)) {
            let was = &old.ingesters[id];
            prop_assert_eq!(without_tokens(&single(id, e)), without_tokens(&single(id, was)));
            prop_assert!(e.tokens.iter().all(|t| was.tokens.contains(t)));
        }

        // A peer that had our old state and receives only the change ends up where we are.
        let mut replayed = old.clone();
        let again = merge(&mut replayed, change.clone(), false, now);
        prop_assert_eq!(&replayed, &full);
        prop_assert_eq!(again.as_ref().map(|c| c.ingesters.len()), Some(change.ingesters.len()));
    }

    #[test]
    fn resolution_follows_the_reference_rule_on_any_descriptor(d in arbitrary_desc()) {
        let mut resolved = d.clone();
        let changed = resolve_token_conflicts(&mut resolved);

        let mut expected = d.clone();
        normalize(&mut expected);
        let expected = reference_resolve(&expected);
        prop_assert_eq!(&resolved, &expected);
        prop_assert!(!has_token_conflicts(&resolved));

        let mut normalised = d.clone();
        normalize(&mut normalised);
        prop_assert_eq!(changed, resolved != normalised);
        // Each contested token stays with exactly one live claimant: none is lost outright.
        let live_tokens = |x: &Desc| -> BTreeSet<u32> {
            x.ingesters.values().filter(|e| e.state != LEFT).flat_map(|e| e.tokens.to_vec()).collect()
        };
        prop_assert_eq!(live_tokens(&resolved), live_tokens(&normalised));
    }

    #[test]
    fn merge_never_panics_and_keeps_the_receiver_normalised(
        local in arbitrary_desc(), incoming in arbitrary_desc(),
        local_cas in any::<bool>(), now in any::<i64>(), skew in any::<Option<i64>>(),
    ) {
        let mut local = local;
        normalize(&mut local);
        let options = ringkit_ring::merge::MergeOptions { max_future_skew_secs: skew };
        let out = ringkit_ring::merge::merge_with_options(&mut local, incoming, local_cas, now, &options);
        let mut renormalised = local.clone();
        normalize(&mut renormalised);
        prop_assert_eq!(&renormalised, &local);
        if let Some(change) = out.change {
            for (id, e) in &change.ingesters {
                prop_assert_eq!(e, &local.ingesters[id]);
            }
        }
    }
}

/// Whether two different instances hold a common token in any live entry of any replica.
fn versions_clash(replicas: &[&Desc]) -> bool {
    let mut owner: BTreeMap<u32, &str> = BTreeMap::new();
    for r in replicas {
        for (id, e) in r.ingesters.iter().filter(|(_, e)| e.state != LEFT) {
            for &t in &e.tokens {
                if *owner.entry(t).or_insert(id.as_str()) != id.as_str() {
                    return true;
                }
            }
        }
    }
    false
}

fn note_tombstones(d: &Desc, seen: &mut BTreeMap<String, i64>) {
    for (id, e) in d.ingesters.iter().filter(|(_, e)| e.state == LEFT) {
        let ts = seen.entry(id.clone()).or_insert(e.timestamp);
        *ts = (*ts).max(e.timestamp);
    }
}

fn single(id: &str, e: &InstanceDesc) -> Desc {
    Desc {
        ingesters: BTreeMap::from([(id.to_owned(), e.clone())]),
    }
}

/// The counterexample behind the weaker three-way property: `b` loses token 1 to `a`, then
/// `a` moves on without token 1. Whether `b` still holds token 1 depends on whether it met the
/// old `a` first.
#[test]
fn conflict_resolution_breaks_associativity_of_token_lists() {
    let entry = |ts: i64, tokens: &[u32]| InstanceDesc {
        timestamp: ts,
        tokens: tokens.into(),
        ..Default::default()
    };
    let one = |id: &str, e: InstanceDesc| single(id, &e);
    let old_a = one("a", entry(5, &[1]));
    let b = one("b", entry(5, &[1]));
    let new_a = one("a", entry(6, &[]));

    let left_first = merged(&merged(&old_a, &b), &new_a);
    let right_first = merged(&old_a, &merged(&b, &new_a));

    assert!(left_first.ingesters["b"].tokens.is_empty());
    assert_eq!(right_first.ingesters["b"].tokens, [1]);
    assert_eq!(without_tokens(&left_first), without_tokens(&right_first));
}
