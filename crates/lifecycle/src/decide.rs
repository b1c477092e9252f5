//! The lifecycler's decisions as pure functions over the ring descriptor.
//!
//! Each function runs inside a KV compare-and-swap: it gets the current descriptor, changes
//! it in place and says whether anything changed (so the caller writes or skips). Time is an
//! argument (Unix seconds, as the descriptor stores it) and randomness is injected, so every
//! rule is table-tested here without a store, clock or task (style.md §12).
//!
//! ringkit follows dskit's lifecycler (spec/ring.md §4.1) with one deliberate difference,
//! the seed's order: an instance always registers **before** it loads its data and only
//! claims tokens (goes ACTIVE) afterwards. A restarted instance that still owns tokens
//! registers as JOINING: it keeps its ranges (no reshuffle) while writes extend past it
//! and reads skip it, until its load step is done.

use rand::Rng;
use rand::seq::SliceRandom;
use ringkit_ring::model::{Desc, InstanceDesc, InstanceState};
use ringkit_ring::tokens::{GenerateError, TokenGenerator};

/// What this instance believes about itself; written into the ring on every change and
/// heartbeat, so it can re-insert itself if the store is wiped or it was forgotten.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Instance id (ring map key).
    pub id: String,
    /// Address clients dial.
    pub addr: String,
    /// Availability zone.
    pub zone: String,
    /// Current state.
    pub state: InstanceState,
    /// Tokens owned (sorted).
    pub tokens: Vec<u32>,
    /// First registration time (Unix seconds); kept across restarts.
    pub registered_at: i64,
    /// Read-only flag and the time it last changed.
    pub read_only: bool,
    /// Time `read_only` last changed (Unix seconds, 0 = never).
    pub read_only_updated_at: i64,
}

impl Instance {
    /// A new instance that is not registered yet.
    pub fn new(id: &str, addr: &str, zone: &str) -> Instance {
        Instance {
            id: id.to_owned(),
            addr: addr.to_owned(),
            zone: zone.to_owned(),
            state: InstanceState::Pending,
            tokens: Vec::new(),
            registered_at: 0,
            read_only: false,
            read_only_updated_at: 0,
        }
    }

    /// The ring entry for this instance with heartbeat `now`.
    pub fn to_desc(&self, now: i64) -> InstanceDesc {
        InstanceDesc {
            addr: self.addr.clone(),
            timestamp: now,
            state: self.state as i32,
            tokens: self.tokens.clone().into(),
            zone: self.zone.clone(),
            registered_timestamp: self.registered_at,
            id: self.id.clone(),
            read_only_updated_timestamp: self.read_only_updated_at,
            read_only: self.read_only,
            versions: Default::default(),
        }
    }

    fn write(&self, desc: &mut Desc, now: i64) {
        desc.ingesters.insert(self.id.clone(), self.to_desc(now));
    }
}

/// Why a lifecycle step could not be taken. The descriptor is left unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// The token generator could not produce enough tokens.
    #[error("failed to pick tokens: {0}")]
    Tokens(#[from] GenerateError),
    /// The requested state change is not allowed.
    #[error("changing instance state from {from} -> {to} is disallowed")]
    Transition {
        /// Current state.
        from: InstanceState,
        /// Requested state.
        to: InstanceState,
    },
}

/// Registers the instance at start-up, before its data is loaded.
///
/// - Absent from the ring: registered now, PENDING, **no tokens** (peers see it at once;
///   it owns nothing yet).
/// - Present (a restart, or the store survived a crash): registration time and read-only
///   state are adopted from the ring; tokens the ring still holds for it are kept; the state
///   becomes JOINING if it holds tokens, PENDING otherwise (dskit: a JOINING entry restarts
///   from PENDING; a LEAVING one is revived). Address and zone are refreshed.
///
/// Always returns `true`: the entry is (re)written with a fresh heartbeat.
pub fn register(desc: &mut Desc, me: &mut Instance, now: i64) -> bool {
    match desc.ingesters.get(&me.id) {
        None => {
            me.registered_at = now;
            me.read_only = false;
            me.read_only_updated_at = 0;
            me.tokens.clear();
            me.state = InstanceState::Pending;
        }
        Some(existing) => {
            me.registered_at = existing.registered_timestamp;
            me.read_only = existing.read_only;
            me.read_only_updated_at = existing.read_only_updated_timestamp;
            me.tokens = sorted_unique(existing.tokens.to_vec());
            me.state = if me.tokens.is_empty() {
                InstanceState::Pending
            } else {
                InstanceState::Joining
            };
        }
    }
    me.write(desc, now);
    true
}

/// Claims tokens after the load step and goes ACTIVE (or JOINING when an observe period
/// follows).
///
/// Tokens, in order of preference: those the ring still holds for this instance, then those
/// from the tokens file that nobody else holds, then fresh ones from `generator` that nobody
/// holds, until `num_tokens`; a surplus is trimmed at random (as dskit does for a revived
/// LEAVING entry). If the entry vanished meanwhile it is re-added, registered now.
#[allow(clippy::too_many_arguments)] // one CAS step's full input; a struct would only rename it
pub fn claim_tokens(
    desc: &mut Desc,
    me: &mut Instance,
    num_tokens: usize,
    file_tokens: &[u32],
    observe: bool,
    generator: &dyn TokenGenerator,
    rng: &mut dyn Rng,
    now: i64,
) -> Result<bool, LifecycleError> {
    let mine: Vec<u32> = match desc.ingesters.get(&me.id) {
        Some(d) => d.tokens.to_vec(),
        None => {
            me.registered_at = now;
            Vec::new()
        }
    };
    let taken = tokens_of_others(desc, &me.id);
    let mut tokens = sorted_unique(mine);
    for &t in file_tokens {
        if tokens.len() >= num_tokens {
            break;
        }
        if taken.binary_search(&t).is_err() && tokens.binary_search(&t).is_err() {
            let at = tokens.partition_point(|&x| x < t);
            tokens.insert(at, t);
        }
    }
    if tokens.len() < num_tokens {
        let mut avoid = taken;
        avoid.extend_from_slice(&tokens);
        avoid.sort_unstable();
        let fresh = generator.generate_tokens(num_tokens - tokens.len(), &avoid, rng)?;
        tokens.extend(fresh);
        tokens.sort_unstable();
        tokens.dedup();
    } else if tokens.len() > num_tokens {
        tokens.shuffle(rng);
        tokens.truncate(num_tokens);
        tokens.sort_unstable();
    }
    me.tokens = tokens;
    me.state = if observe {
        InstanceState::Joining
    } else {
        InstanceState::Active
    };
    me.write(desc, now);
    Ok(true)
}

/// Observe-period check: if the ring still holds exactly our tokens we are done (ACTIVE);
/// otherwise another instance won some of them in a conflict, so keep the survivors, top up
/// with fresh tokens and observe again (stay JOINING). Returns whether we are done.
pub fn verify_tokens(
    desc: &mut Desc,
    me: &mut Instance,
    num_tokens: usize,
    generator: &dyn TokenGenerator,
    rng: &mut dyn Rng,
    now: i64,
) -> Result<bool, LifecycleError> {
    let in_ring = desc
        .ingesters
        .get(&me.id)
        .map(|d| sorted_unique(d.tokens.to_vec()))
        .unwrap_or_default();
    if in_ring == me.tokens && in_ring.len() >= num_tokens {
        me.state = InstanceState::Active;
        me.write(desc, now);
        return Ok(true);
    }
    let mut taken = tokens_of_others(desc, &me.id);
    let survivors: Vec<u32> = in_ring
        .into_iter()
        .filter(|t| taken.binary_search(t).is_err())
        .collect();
    let need = num_tokens.saturating_sub(survivors.len());
    taken.extend_from_slice(&survivors);
    taken.sort_unstable();
    let fresh = generator.generate_tokens(need, &taken, rng)?;
    let mut tokens = survivors;
    tokens.extend(fresh);
    me.tokens = sorted_unique(tokens);
    me.state = InstanceState::Joining;
    me.write(desc, now);
    Ok(false)
}

/// Heartbeat: rewrites the whole entry with the local state and `timestamp = now`. If the
/// entry is missing (store wiped, or forgotten by an operator or auto-forget) it is re-added
/// with `registered_at = now` and the local tokens. If merge resolved a token conflict
/// against us, the ring's (smaller) token list is adopted. Returns `true` (always writes).
pub fn heartbeat(desc: &mut Desc, me: &mut Instance, now: i64) -> bool {
    match desc.ingesters.get(&me.id) {
        None => me.registered_at = now,
        Some(d) => {
            let ring = sorted_unique(d.tokens.to_vec());
            if !ring.is_empty() && ring.len() < me.tokens.len() {
                me.tokens = ring;
            }
        }
    }
    adopt_read_only(desc, me);
    me.write(desc, now);
    true
}

/// Takes the ring's read-only flag when it changed later than ours did, so a change an
/// operator made in the store (`ringkit ring read-only`) survives our next write.
fn adopt_read_only(desc: &Desc, me: &mut Instance) {
    if let Some(d) = desc.ingesters.get(&me.id)
        && d.read_only_updated_timestamp > me.read_only_updated_at
    {
        me.read_only = d.read_only;
        me.read_only_updated_at = d.read_only_updated_timestamp;
    }
}

/// Sets or clears read-only (dskit's `ChangeReadOnlyState`): a change stamps
/// `read_only_updated_at = now` and writes the entry; asking for the current value changes
/// nothing, so the timestamp keeps saying when the instance became read-only. Returns
/// whether it wrote.
pub fn set_read_only(desc: &mut Desc, me: &mut Instance, read_only: bool, now: i64) -> bool {
    adopt_read_only(desc, me);
    if me.read_only == read_only {
        return false;
    }
    me.read_only = read_only;
    me.read_only_updated_at = now;
    me.write(desc, now);
    true
}

/// Applies a state change with dskit's allowed transitions (PENDING→JOINING,
/// JOINING→PENDING, JOINING→ACTIVE, PENDING→ACTIVE, ACTIVE→LEAVING); a no-op change is
/// allowed. Writes the entry with a fresh heartbeat.
pub fn change_state(
    desc: &mut Desc,
    me: &mut Instance,
    to: InstanceState,
    now: i64,
) -> Result<bool, LifecycleError> {
    use InstanceState::*;
    let from = me.state;
    let allowed = from == to
        || matches!(
            (from, to),
            (Pending, Joining)
                | (Joining, Pending)
                | (Joining, Active)
                | (Pending, Active)
                | (Active, Leaving)
        );
    if !allowed {
        return Err(LifecycleError::Transition { from, to });
    }
    me.state = to;
    me.write(desc, now);
    Ok(true)
}

/// Removes this instance's entry (a LEFT tombstone once merged under gossip). Returns
/// whether there was an entry.
pub fn unregister(desc: &mut Desc, id: &str) -> bool {
    desc.ingesters.remove(id).is_some()
}

/// Auto-forget (mimir#2869): removes every other instance whose last heartbeat is older
/// than `forget_after_secs`. Two guards keep a node that is itself cut off from wiping the
/// ring: nothing happens if our own entry's heartbeat is stale, or if every other instance
/// looks stale (we are more likely partitioned than they are all dead). Returns the ids
/// removed, sorted.
pub fn auto_forget(
    desc: &mut Desc,
    self_id: &str,
    forget_after_secs: i64,
    now: i64,
) -> Vec<String> {
    let stale = |d: &InstanceDesc| now.saturating_sub(d.timestamp) > forget_after_secs;
    if desc.ingesters.get(self_id).is_some_and(stale) {
        return Vec::new();
    }
    let others: Vec<(&String, bool)> = desc
        .ingesters
        .iter()
        .filter(|(id, d)| id.as_str() != self_id && d.state != InstanceState::Left as i32)
        .map(|(id, d)| (id, stale(d)))
        .collect();
    if others.len() > 1 && others.iter().all(|(_, s)| *s) {
        return Vec::new();
    }
    let forget: Vec<String> = others
        .into_iter()
        .filter(|(_, s)| *s)
        .map(|(id, _)| id.clone())
        .collect();
    for id in &forget {
        desc.ingesters.remove(id);
    }
    forget
}

/// Readiness as dskit defines it (spec/ring.md §4.1 `CheckReady`), without the
/// `min_ready_duration` latch (the caller times that): this instance owns tokens and is
/// ACTIVE and healthy; with `check_ring_health`, every instance is ACTIVE and healthy and
/// the ring holds tokens.
pub fn check_ready(
    desc: &Desc,
    self_id: &str,
    heartbeat_timeout_secs: i64,
    check_ring_health: bool,
    now: i64,
) -> Result<(), String> {
    let Some(me) = desc.ingesters.get(self_id) else {
        return Err(format!("instance {self_id} not found in the ring"));
    };
    if me.tokens.is_empty() {
        return Err("this instance owns no tokens".to_owned());
    }
    if check_ring_health {
        desc.is_ready(now, heartbeat_timeout_secs)
    } else {
        let mut only_me = Desc::new();
        only_me.ingesters.insert(self_id.to_owned(), me.clone());
        only_me.is_ready(now, heartbeat_timeout_secs)
    }
}

fn sorted_unique(mut tokens: Vec<u32>) -> Vec<u32> {
    tokens.sort_unstable();
    tokens.dedup();
    tokens
}

fn tokens_of_others(desc: &Desc, self_id: &str) -> Vec<u32> {
    let mut taken: Vec<u32> = desc
        .ingesters
        .iter()
        .filter(|(id, _)| id.as_str() != self_id)
        .flat_map(|(_, d)| d.tokens.iter().copied())
        .collect();
    taken.sort_unstable();
    taken
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceState::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use ringkit_ring::tokens::RandomTokenGenerator;

    const NOW: i64 = 1_800_000_000;

    fn rng() -> SmallRng {
        SmallRng::seed_from_u64(1)
    }

    fn other(desc: &mut Desc, id: &str, tokens: Vec<u32>, state: InstanceState, ts: i64) {
        desc.add_instance(id, &format!("{id}:9095"), "z", tokens, state, 100, ts);
    }

    #[test]
    fn new_instance_registers_pending_with_no_tokens() {
        let mut desc = Desc::new();
        let mut me = Instance::new("ing-1", "10.0.0.1:9095", "a");
        assert!(register(&mut desc, &mut me, NOW));
        let e = &desc.ingesters["ing-1"];
        assert_eq!(e.state(), Pending);
        assert!(e.tokens.is_empty());
        assert_eq!(e.registered_timestamp, NOW);
        assert_eq!(e.timestamp, NOW);
        assert_eq!(e.zone, "a");
    }

    #[test]
    fn restarted_instance_with_tokens_registers_joining_and_keeps_registration_time() {
        let mut desc = Desc::new();
        other(&mut desc, "ing-1", vec![5, 1], Active, NOW - 30);
        desc.ingesters.get_mut("ing-1").unwrap().read_only = true;
        let mut me = Instance::new("ing-1", "10.0.0.9:9095", "a");
        register(&mut desc, &mut me, NOW);
        let e = &desc.ingesters["ing-1"];
        assert_eq!(
            e.state(),
            Joining,
            "keeps ranges, takes no writes until loaded"
        );
        assert_eq!(e.tokens, vec![1, 5]);
        assert_eq!(
            e.registered_timestamp, 100,
            "never refreshed for a known instance"
        );
        assert!(e.read_only);
        assert_eq!(e.addr, "10.0.0.9:9095", "address refreshed");
    }

    #[test]
    fn leaving_or_joining_entries_without_tokens_restart_from_pending() {
        for state in [Leaving, Joining] {
            let mut desc = Desc::new();
            other(&mut desc, "ing-1", vec![], state, NOW - 30);
            let mut me = Instance::new("ing-1", "a:1", "");
            register(&mut desc, &mut me, NOW);
            assert_eq!(desc.ingesters["ing-1"].state(), Pending);
        }
    }

    #[test]
    fn claim_generates_tokens_nobody_holds_and_goes_active() {
        let mut desc = Desc::new();
        let taken: Vec<u32> = (0..1000).map(|i| i * 4_000_000).collect();
        other(&mut desc, "ing-0", taken.clone(), Active, NOW);
        let mut me = Instance::new("ing-1", "a:1", "");
        register(&mut desc, &mut me, NOW);
        let g = RandomTokenGenerator::new();
        claim_tokens(&mut desc, &mut me, 128, &[], false, &g, &mut rng(), NOW + 1).unwrap();
        let e = &desc.ingesters["ing-1"];
        assert_eq!(e.state(), Active);
        assert_eq!(e.tokens.len(), 128);
        assert!(e.tokens.iter().all(|t| taken.binary_search(t).is_err()));
        assert_eq!(e.registered_timestamp, NOW);
        assert_eq!(me.tokens, e.tokens);
    }

    #[test]
    fn claim_reuses_ring_tokens_then_file_tokens_not_held_by_others() {
        let mut desc = Desc::new();
        other(&mut desc, "ing-0", vec![30], Active, NOW);
        other(&mut desc, "ing-1", vec![10], Joining, NOW);
        let mut me = Instance::new("ing-1", "a:1", "");
        register(&mut desc, &mut me, NOW);
        let g = RandomTokenGenerator::new();
        claim_tokens(
            &mut desc,
            &mut me,
            3,
            &[20, 30, 40],
            false,
            &g,
            &mut rng(),
            NOW,
        )
        .unwrap();
        assert_eq!(
            desc.ingesters["ing-1"].tokens,
            vec![10, 20, 40],
            "30 belongs to ing-0"
        );
    }

    #[test]
    fn claim_trims_a_surplus_to_num_tokens() {
        let mut desc = Desc::new();
        other(&mut desc, "ing-1", (1..=10).collect(), Leaving, NOW);
        let mut me = Instance::new("ing-1", "a:1", "");
        register(&mut desc, &mut me, NOW);
        let g = RandomTokenGenerator::new();
        claim_tokens(&mut desc, &mut me, 4, &[], false, &g, &mut rng(), NOW).unwrap();
        let e = &desc.ingesters["ing-1"];
        assert_eq!(e.tokens.len(), 4);
        assert!(e.tokens.iter().all(|t| (1..=10).contains(t)));
        assert!(e.tokens.is_sorted());
    }

    #[test]
    fn claim_with_observe_period_stays_joining_until_verified() {
        let mut desc = Desc::new();
        let mut me = Instance::new("ing-1", "a:1", "");
        register(&mut desc, &mut me, NOW);
        let g = RandomTokenGenerator::new();
        claim_tokens(&mut desc, &mut me, 16, &[], true, &g, &mut rng(), NOW).unwrap();
        assert_eq!(desc.ingesters["ing-1"].state(), Joining);
        // Nobody interfered: verification succeeds.
        assert!(verify_tokens(&mut desc, &mut me, 16, &g, &mut rng(), NOW + 5).unwrap());
        assert_eq!(desc.ingesters["ing-1"].state(), Active);
    }

    #[test]
    fn verify_regenerates_tokens_lost_in_a_conflict() {
        let mut desc = Desc::new();
        let mut me = Instance::new("ing-1", "a:1", "");
        register(&mut desc, &mut me, NOW);
        let g = RandomTokenGenerator::new();
        claim_tokens(&mut desc, &mut me, 8, &[], true, &g, &mut rng(), NOW).unwrap();
        // Another instance claimed two of our tokens and won the conflict.
        let stolen = vec![me.tokens[0], me.tokens[1]];
        other(&mut desc, "ing-0", stolen.clone(), Active, NOW);
        desc.ingesters
            .get_mut("ing-1")
            .unwrap()
            .tokens
            .make_mut()
            .retain(|t| !stolen.contains(t));
        assert!(!verify_tokens(&mut desc, &mut me, 8, &g, &mut rng(), NOW + 5).unwrap());
        let e = &desc.ingesters["ing-1"];
        assert_eq!(e.state(), Joining);
        assert_eq!(e.tokens.len(), 8);
        assert!(e.tokens.iter().all(|t| !stolen.contains(t)));
        assert!(verify_tokens(&mut desc, &mut me, 8, &g, &mut rng(), NOW + 10).unwrap());
    }

    #[test]
    fn heartbeat_refreshes_timestamp_and_re_adds_a_forgotten_instance() {
        let mut desc = Desc::new();
        let mut me = Instance::new("ing-1", "a:1", "");
        register(&mut desc, &mut me, NOW);
        heartbeat(&mut desc, &mut me, NOW + 5);
        assert_eq!(desc.ingesters["ing-1"].timestamp, NOW + 5);
        desc.ingesters.clear();
        heartbeat(&mut desc, &mut me, NOW + 10);
        assert_eq!(desc.ingesters["ing-1"].registered_timestamp, NOW + 10);
    }

    #[test]
    fn state_changes_follow_dskits_allowed_transitions() {
        let mut desc = Desc::new();
        let mut me = Instance::new("ing-1", "a:1", "");
        register(&mut desc, &mut me, NOW);
        assert!(change_state(&mut desc, &mut me, Leaving, NOW).is_err());
        change_state(&mut desc, &mut me, Active, NOW).unwrap();
        let err = change_state(&mut desc, &mut me, Pending, NOW).unwrap_err();
        assert_eq!(
            err.to_string(),
            "changing instance state from ACTIVE -> PENDING is disallowed"
        );
        change_state(&mut desc, &mut me, Leaving, NOW).unwrap();
        assert_eq!(desc.ingesters["ing-1"].state(), Leaving);
        assert!(unregister(&mut desc, "ing-1"));
        assert!(!unregister(&mut desc, "ing-1"));
    }

    #[test]
    fn auto_forget_removes_long_unhealthy_members_only() {
        let mut desc = Desc::new();
        other(&mut desc, "me", vec![1], Active, NOW);
        other(&mut desc, "fresh", vec![2], Active, NOW - 30);
        other(&mut desc, "dead", vec![3], Active, NOW - 700);
        let forgotten = auto_forget(&mut desc, "me", 600, NOW);
        assert_eq!(forgotten, vec!["dead".to_string()]);
        assert!(desc.ingesters.contains_key("fresh"));
    }

    #[test]
    fn auto_forget_does_nothing_when_we_look_cut_off() {
        // Our own heartbeat is stale: we may be the one partitioned away.
        let mut desc = Desc::new();
        other(&mut desc, "me", vec![1], Active, NOW - 700);
        other(&mut desc, "dead", vec![3], Active, NOW - 700);
        assert!(auto_forget(&mut desc, "me", 600, NOW).is_empty());
        // Everyone else looks stale at once: more likely a partition than mass death.
        let mut desc = Desc::new();
        other(&mut desc, "me", vec![1], Active, NOW);
        other(&mut desc, "a", vec![2], Active, NOW - 700);
        other(&mut desc, "b", vec![3], Active, NOW - 700);
        assert!(auto_forget(&mut desc, "me", 600, NOW).is_empty());
        assert_eq!(desc.ingesters.len(), 3);
    }

    #[test]
    fn readiness_follows_dskit() {
        let mut desc = Desc::new();
        let mut me = Instance::new("me", "me:1", "");
        register(&mut desc, &mut me, NOW);
        assert_eq!(
            check_ready(&desc, "me", 60, true, NOW),
            Err("this instance owns no tokens".into())
        );
        let g = RandomTokenGenerator::new();
        claim_tokens(&mut desc, &mut me, 4, &[], false, &g, &mut rng(), NOW).unwrap();
        assert_eq!(check_ready(&desc, "me", 60, true, NOW), Ok(()));
        other(&mut desc, "sick", vec![7], Active, NOW - 300);
        assert!(check_ready(&desc, "me", 60, true, NOW).is_err());
        assert_eq!(
            check_ready(&desc, "me", 60, false, NOW),
            Ok(()),
            "only self checked"
        );
    }

    #[test]
    fn read_only_set_stamps_once_and_clear_stamps_again() {
        let mut desc = Desc::new();
        let mut me = Instance::new("ing-1", "a:1", "z");
        register(&mut desc, &mut me, NOW);
        assert!(set_read_only(&mut desc, &mut me, true, NOW + 5));
        let e = &desc.ingesters["ing-1"];
        assert!(e.read_only);
        assert_eq!(e.read_only_updated_timestamp, NOW + 5);
        assert!(
            !set_read_only(&mut desc, &mut me, true, NOW + 9),
            "setting it again writes nothing and keeps the first timestamp"
        );
        assert_eq!(desc.ingesters["ing-1"].read_only_updated_timestamp, NOW + 5);
        assert!(set_read_only(&mut desc, &mut me, false, NOW + 20));
        let e = &desc.ingesters["ing-1"];
        assert!(!e.read_only);
        assert_eq!(e.read_only_updated_timestamp, NOW + 20);
    }

    #[test]
    fn heartbeat_adopts_a_newer_read_only_change_from_the_store_and_ignores_an_older_one() {
        let mut desc = Desc::new();
        let mut me = Instance::new("ing-1", "a:1", "z");
        register(&mut desc, &mut me, NOW);
        // An operator set read-only in the store after our last change.
        let e = desc.ingesters.get_mut("ing-1").unwrap();
        e.read_only = true;
        e.read_only_updated_timestamp = NOW + 3;
        heartbeat(&mut desc, &mut me, NOW + 10);
        assert!(me.read_only && desc.ingesters["ing-1"].read_only);
        assert_eq!(me.read_only_updated_at, NOW + 3);
        // A stale flag (older than our own change) is overwritten by ours.
        assert!(set_read_only(&mut desc, &mut me, false, NOW + 20));
        let e = desc.ingesters.get_mut("ing-1").unwrap();
        e.read_only = true;
        e.read_only_updated_timestamp = NOW + 15;
        heartbeat(&mut desc, &mut me, NOW + 30);
        assert!(!desc.ingesters["ing-1"].read_only);
        assert_eq!(
            desc.ingesters["ing-1"].read_only_updated_timestamp,
            NOW + 20
        );
    }
}
