//! Lookups: the ring walk (plain and zone-aware), the precomputed walk tables, and the
//! caller-owned [`GetBuffer`] / borrowed [`KeyReplicas`] that keep `get` allocation-free.

use super::*;

/// How [`RingSnapshot::find_instances`] produced its set.
#[derive(Clone, Copy, Debug)]
pub(super) enum Walked {
    /// The set the full walk produces.
    Full,
    /// The full walk's set without the instances of dead zones, of which `unseen` (when
    /// known) would have been in it.
    SkippedDeadZones { unseen: Option<usize> },
}

/// For each start token, the instances the ring walk picks when none of them extends the
/// replica set (the common case: every instance met is ACTIVE). A lookup whose picks
/// indeed do not extend for its operation uses them directly instead of walking.
///
/// Built backwards in one pass, O(tokens × RF): the walk from token `i` picks `owner(i)`,
/// then the walk from `i + 1` without the picks that `owner(i)` rules out (itself, and in a
/// zone-aware ring every other instance of its zone), cut to the set size. A snapshot's
/// tables depend only on its topology and configuration, which `update` keeps.
#[derive(Debug)]
pub(super) struct PrimaryWalks {
    /// Picks per start token, `width` slots each; unused slots hold `u32::MAX`.
    pub(super) picks: Vec<InstanceIdx>,
    pub(super) width: usize,
}

/// A snapshot's precomputed walk picks, borrowed once per batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PrimaryPicks<'a> {
    pub(super) tokens: &'a [u32],
    pub(super) bucket: &'a [u32],
    pub(super) shift: u32,
    pub(super) picks: &'a [InstanceIdx],
    pub(super) width: usize,
}

impl<'a> PrimaryPicks<'a> {
    /// Slots per key (unused ones hold `u32::MAX`).
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// The picks for `key`: the set [`RingSnapshot::get`] returns when none of them
    /// extends the walk for the operation and all are healthy.
    #[inline]
    pub(crate) fn get(&self, key: u32) -> &'a [InstanceIdx] {
        let start = search_indexed(self.tokens, self.bucket, self.shift, key);
        &self.picks[start * self.width..(start + 1) * self.width]
    }
}

/// Caller-owned scratch space for [`RingSnapshot::get`], reused across calls so lookups
/// do not allocate once the buffer has grown to the ring's size.
#[derive(Debug, Default)]
pub struct GetBuffer {
    pub(super) out: Vec<InstanceIdx>,
    pub(super) seen: Vec<u64>,
    pub(super) zone_found: Vec<u32>,
    pub(super) zone_examined: Vec<u32>,
    /// Health deadline of the last call: batches look up many keys at one `now`.
    pub(super) deadline: Option<(SystemTime, Duration, i64)>,
}

impl GetBuffer {
    /// An empty buffer; it grows on first use.
    pub fn new() -> GetBuffer {
        GetBuffer::default()
    }

    /// [`min_healthy_timestamp`], remembered for repeated calls at the same `now`.
    #[inline]
    pub(super) fn min_healthy_timestamp(&mut self, now: SystemTime, timeout: Duration) -> i64 {
        match self.deadline {
            Some((n, t, ts)) if n == now && t == timeout => ts,
            _ => {
                let ts = min_healthy_timestamp(now, timeout);
                self.deadline = Some((now, timeout, ts));
                ts
            }
        }
    }

    #[inline]
    pub(super) fn is_seen(&self, i: InstanceIdx) -> bool {
        self.seen[(i >> 6) as usize] & (1u64 << (i & 63)) != 0
    }

    #[inline]
    pub(super) fn mark_seen(&mut self, i: InstanceIdx) {
        self.seen[(i >> 6) as usize] |= 1u64 << (i & 63);
    }

    pub(super) fn clear_seen(&mut self) {
        for k in 0..self.out.len() {
            let i = self.out[k];
            self.seen[(i >> 6) as usize] = 0;
        }
    }
}

/// The replicas of one key, borrowed from the snapshot and the caller's buffer.
#[derive(Clone, Copy, Debug)]
pub struct KeyReplicas<'a> {
    pub(super) ring: &'a RingSnapshot,
    pub(super) indices: &'a [InstanceIdx],
    /// How many of these replicas may fail while the operation still succeeds.
    pub max_errors: usize,
}

impl<'a> KeyReplicas<'a> {
    /// Instance indices, in ring-walk order.
    pub fn indices(&self) -> &'a [InstanceIdx] {
        self.indices
    }

    /// Number of replicas.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the set is empty (never the case for a successful lookup).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The replicas' descriptors, in ring-walk order.
    pub fn instances(&self) -> impl ExactSizeIterator<Item = &'a InstanceDesc> + 'a {
        let ring = self.ring;
        self.indices.iter().map(move |&i| ring.instance_at(i))
    }

    /// Zones that may fail while the operation still succeeds: always 0 for a key's
    /// replicas, as in dskit (its `Get` never sets `MaxUnavailableZones`; a key's set
    /// tolerates [`Self::max_errors`] failed replicas instead). Present so code written
    /// against [`ReplicationSet`] reads the same.
    pub fn max_unavailable_zones(&self) -> usize {
        0
    }

    /// Minimum number of successful replicas for the operation to succeed.
    pub fn min_success(&self) -> usize {
        self.indices.len() - self.max_errors
    }

    /// An owned replication set (allocates; the hot path uses indices).
    pub fn to_replication_set(&self) -> ReplicationSet {
        ReplicationSet {
            instances: self.instances().cloned().collect(),
            max_errors: self.max_errors,
            max_unavailable_zones: 0,
            zone_awareness_enabled: false,
        }
    }
}
/// For each set of kept picks (bit `j` = pick `j` of the next row stays, at most 4 picks),
/// the positions of the first, second, third and fourth kept pick; 4 where there is none.
const NTH_KEPT: [[u8; 4]; 16] = {
    let mut table = [[4u8; 4]; 16];
    let mut mask = 0;
    while mask < 16 {
        let mut n = 0;
        let mut bit = 0;
        while bit < 4 {
            if mask >> bit & 1 == 1 {
                table[mask][n] = bit as u8;
                n += 1;
            }
            bit += 1;
        }
        mask += 1;
    }
    table
};

impl RingSnapshot {
    /// Builds the walk table now unless it exists (it is shared by snapshots of one
    /// topology) or the ring has no tokens.
    pub(super) fn build_walks(&self) {
        if !self.table.tokens.is_empty() {
            self.table.walks.get_or_init(|| self.primary_walks());
        }
    }

    /// The replicas of `key` for `op` (dskit's `Ring.Get`): RF distinct instances walking
    /// clockwise from the first token greater than the key, one per zone when zone-aware,
    /// extended past instances whose state the operation extends on, then filtered by the
    /// replication strategy. Allocation-free once `buf` has grown.
    pub fn get<'a>(
        &'a self,
        key: u32,
        op: Operation,
        now: SystemTime,
        buf: &'a mut GetBuffer,
    ) -> Result<KeyReplicas<'a>, RingError> {
        self.get_with_replication_factor(key, op, 0, now, buf)
    }

    /// Like [`Self::get`] with a per-call replication factor (dskit's
    /// `GetWithOptions(WithReplicationFactor)`): 0 or less than configured means the
    /// configured one; more than configured needs a strategy that supports it.
    pub fn get_with_replication_factor<'a>(
        &'a self,
        key: u32,
        op: Operation,
        replication_factor: usize,
        now: SystemTime,
        buf: &'a mut GetBuffer,
    ) -> Result<KeyReplicas<'a>, RingError> {
        if self.table.tokens.is_empty() {
            return Err(RingError::EmptyRing);
        }
        let configured = self.cfg.replication_factor;
        let rf = replication_factor.max(configured);
        if rf > configured && !self.cfg.strategy.supports_expanded_replication() {
            return Err(RingError::ReplicationFactorTooLarge {
                requested: rf,
                configured,
            });
        }
        let walked = self.find_instances(key, op, rf, buf);
        let min_ts = buf.min_healthy_timestamp(now, self.cfg.heartbeat_timeout);
        if let Walked::SkippedDeadZones { unseen } = walked {
            if let Some(max_errors) = self.filter_skipped(op, rf, min_ts, &mut buf.out, unseen) {
                return Ok(KeyReplicas {
                    ring: self,
                    indices: &buf.out,
                    max_errors,
                });
            }
            // The strategy needs what was skipped (a failed lookup's message names every
            // unhealthy replica): walk again in full. Only failing lookups get here.
            buf.out.clear();
            self.walk_from(self.search_token(key), op, rf, buf, 0);
        }
        let max_errors = self.filter(op, rf, min_ts, &mut buf.out)?;
        Ok(KeyReplicas {
            ring: self,
            indices: &buf.out,
            max_errors,
        })
    }

    /// The ring walk (dskit's `findInstancesForKey`), unfiltered; result in `buf.out`.
    ///
    /// Three ways, fastest first: the precomputed picks of the start token when none of
    /// them extends the set; a zone-aware walk that leaves out *dead zones* (every instance
    /// in a state that extends the set and is unhealthy for `op`, such as a zone being
    /// rolled out with all instances LEAVING for a write) when there are some; the full walk.
    pub(super) fn find_instances(
        &self,
        key: u32,
        op: Operation,
        rf: usize,
        buf: &mut GetBuffer,
    ) -> Walked {
        buf.out.clear();
        let start = self.search_token(key);
        if rf == self.cfg.replication_factor {
            let walks = self.table.walks.get_or_init(|| self.primary_walks());
            let picks = &walks.picks[start * walks.width..(start + 1) * walks.width];
            let picks = &picks[..picks
                .iter()
                .position(|&p| p == u32::MAX)
                .unwrap_or(picks.len())];
            if picks
                .iter()
                .all(|&p| !op.extends_on(self.hot[p as usize].state))
            {
                buf.out.extend_from_slice(picks);
                return Walked::Full;
            }
        }
        let words = self.instances.len().div_ceil(64);
        if buf.seen.len() < words {
            buf.seen.resize(words, 0);
        }
        let dead = if self.cfg.zone_awareness_enabled {
            self.dead_zones(op)
        } else {
            0
        };
        let size_stop = self.walk_from(start, op, rf, buf, dead);
        if dead == 0 {
            return Walked::Full;
        }
        // Left out: the dead zones' instances the full walk would have met. It meets all
        // of them unless it stops on the set size first, and then how many is unknown.
        let unseen = (!size_stop).then(|| {
            (0..self.zones.len())
                .filter(|&z| dead >> z & 1 != 0)
                .map(|z| self.zone_tokened[z] as usize)
                .sum()
        });
        Walked::SkippedDeadZones { unseen }
    }

    /// The zones (as a bit set over zone indices) whose every instance is in a state that
    /// extends the set for `op` and is not healthy for it. A zone-aware walk meets every
    /// instance of such a zone (none is ever counted as found, so the zone only finishes
    /// when all of its instances were examined) and the strategy then drops them all;
    /// none of that changes what the walk does in the other zones. The empty zone never
    /// counts (zone awareness ignores it). Rings of more than 64 zones get none.
    pub(super) fn dead_zones(&self, op: Operation) -> u64 {
        if self.zones.len() > 64 {
            return 0;
        }
        let dead_states = (op.0 >> 16) & !op.0 & 0xffff;
        let mut dead = 0u64;
        for (z, &states) in self.zone_states.iter().enumerate() {
            if states != 0 && states & !dead_states == 0 && !self.zones[z].is_empty() {
                dead |= 1 << z;
            }
        }
        dead
    }

    /// [`Self::filter`] after a walk that left out dead zones, with `unseen` of their
    /// replicas (all unhealthy) not in `out`. `None` when the strategy fails or needs the
    /// unknown set size: the caller then walks in full, so errors are always exact.
    pub(super) fn filter_skipped(
        &self,
        op: Operation,
        rf: usize,
        min_ts: i64,
        out: &mut Vec<InstanceIdx>,
        unseen: Option<usize>,
    ) -> Option<usize> {
        let hot = &self.hot;
        let healthy = |i: &InstanceIdx| {
            let h = &hot[*i as usize];
            op.is_state_healthy(h.state) && h.timestamp >= min_ts
        };
        let healthy_count = out.iter().filter(|i| healthy(i)).count();
        let max_errors = match self.cfg.strategy {
            ReplicationStrategy::Default => {
                let set_size = out.len() + unseen?;
                healthy_count.checked_sub(rf.max(set_size) / 2 + 1)?
            }
            ReplicationStrategy::IgnoreUnhealthy => healthy_count.checked_sub(1)?,
        };
        if healthy_count != out.len() {
            out.retain(healthy);
        }
        Some(max_errors)
    }

    /// The full ring walk from token index `start` into `buf.out`, leaving out the
    /// instances of the zones in `dead` (see [`Self::dead_zones`]; 0 for none). Returns
    /// whether the walk stopped because the set reached its size.
    pub(super) fn walk_from(
        &self,
        start: usize,
        op: Operation,
        rf: usize,
        buf: &mut GetBuffer,
        dead: u64,
    ) -> bool {
        let size_stop = if !self.cfg.zone_awareness_enabled {
            self.walk_plain(start, op, rf, buf);
            false
        } else if self.zones.len() <= STACK_ZONES {
            let mut found = [0u32; STACK_ZONES];
            let mut examined = [0u32; STACK_ZONES];
            self.walk_zoned(start, op, rf, buf, &mut found, &mut examined, dead)
        } else {
            let mut found = std::mem::take(&mut buf.zone_found);
            let mut examined = std::mem::take(&mut buf.zone_examined);
            found.clear();
            found.resize(self.zones.len(), 0);
            examined.clear();
            examined.resize(self.zones.len(), 0);
            let size_stop = self.walk_zoned(start, op, rf, buf, &mut found, &mut examined, dead);
            buf.zone_found = found;
            buf.zone_examined = examined;
            size_stop
        };
        buf.clear_seen();
        size_stop
    }

    /// Walk without zone awareness: the next distinct instances clockwise.
    pub(super) fn walk_plain(&self, start: usize, op: Operation, rf: usize, buf: &mut GetBuffer) {
        let owners = &self.table.owners[..];
        let limit_instances = self.instances.len();
        let mut replica_set_size = rf;
        let mut i = start;
        for _ in 0..owners.len() {
            if buf.out.len() >= limit_instances.min(replica_set_size) {
                break;
            }
            let idx = owners[i];
            i += 1;
            if i == owners.len() {
                i = 0;
            }
            if buf.is_seen(idx) {
                continue;
            }
            buf.mark_seen(idx);
            if op.extends_on(self.hot[idx as usize].state) {
                replica_set_size += 1;
            }
            buf.out.push(idx);
        }
    }

    /// Zone-aware walk: at most `target` instances per zone; a zone is finished once it
    /// has its target or every instance of it was examined, and the walk stops when all
    /// zones are finished (a zone named "" never finishes, as in dskit). Zones in `dead`
    /// count as finished from the start and their instances are passed over. Returns
    /// whether the walk stopped because the set reached its size.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn walk_zoned(
        &self,
        start: usize,
        op: Operation,
        rf: usize,
        buf: &mut GetBuffer,
        found: &mut [u32],
        examined: &mut [u32],
        dead: u64,
    ) -> bool {
        let owners = &self.table.owners[..];
        let zones = self.zones.len();
        let total = &self.zone_instances[..];
        let target = (rf / self.cfg.replication_factor).max(1) as u32;
        let limit_instances = self.instances.len();
        let mut replica_set_size = rf;
        let mut finished = dead.count_ones() as usize;
        let mut i = start;
        for _ in 0..owners.len() {
            if buf.out.len() >= limit_instances.min(replica_set_size) {
                return true;
            }
            if finished == zones {
                break;
            }
            let idx = owners[i];
            i += 1;
            if i == owners.len() {
                i = 0;
            }
            if buf.is_seen(idx) {
                continue;
            }
            let h = &self.hot[idx as usize];
            let z = h.zone as usize;
            // `dead` is 0 for rings of more than 64 zones, so the masked shift is exact.
            if dead >> (z & 63) & 1 != 0 {
                continue;
            }
            let zoned = !h.zone_is_empty;
            if zoned {
                if found[z] >= target {
                    continue;
                }
                examined[z] += 1;
            }
            buf.mark_seen(idx);
            if op.extends_on(h.state) {
                replica_set_size += 1;
            } else if zoned {
                found[z] += 1;
            }
            buf.out.push(idx);
            // Past the `continue` above the zone was not finished: `found < target`, and
            // an unexamined instance of it existed. So this step finishes it at most once.
            if zoned && (found[z] >= target || examined[z] >= total[z]) {
                finished += 1;
            }
        }
        false
    }

    /// Builds [`PrimaryWalks`] for this snapshot's topology and configuration.
    pub(super) fn primary_walks(&self) -> PrimaryWalks {
        let owners = &self.table.owners;
        let n = owners.len();
        let rf = self.cfg.replication_factor;
        let width = rf.min(self.instances.len()).max(1);
        let mut picks = vec![u32::MAX; n * width];
        if n == 0 {
            return PrimaryWalks { picks, width };
        }
        // The last start token: an explicit walk with an operation that never extends.
        let mut buf = GetBuffer::new();
        buf.seen.resize(self.instances.len().div_ceil(64), 0);
        self.walk_from(n - 1, Operation(0), rf, &mut buf, 0);
        buf.clear_seen();
        picks[(n - 1) * width..(n - 1) * width + buf.out.len()].copy_from_slice(&buf.out);
        match width {
            1 => self.fill_walks::<1>(&mut picks),
            2 => self.fill_walks::<2>(&mut picks),
            3 => self.fill_walks::<3>(&mut picks),
            4 => self.fill_walks::<4>(&mut picks),
            _ => self.fill_walks_any(&mut picks, width, buf.out.clone()),
        }
        PrimaryWalks { picks, width }
    }

    /// [`Self::primary_walks`] for `W` (at most 4) picks per token, the last row already
    /// filled. Branch-free: in a zone-aware ring exactly one of the next token's picks
    /// shares the owner's zone, and which one is random; the picks that stay are found
    /// as a bit mask and placed through [`NTH_KEPT`].
    pub(super) fn fill_walks<const W: usize>(&self, picks: &mut [InstanceIdx]) {
        let owners = &self.table.owners;
        let zone_aware = self.cfg.zone_awareness_enabled;
        // Per instance, the key that rules out another instance with the same key: its
        // zone when zones count, else a value no other instance has. The extra last entry
        // stands for an empty pick slot.
        let no_zone = |i: usize| u32::MAX - 1 - i as u32;
        let mut key: Vec<u32> = self
            .hot
            .iter()
            .enumerate()
            .map(|(i, h)| {
                if zone_aware && !h.zone_is_empty {
                    h.zone
                } else {
                    no_zone(i)
                }
            })
            .collect();
        let empty = key.len();
        key.push(u32::MAX);
        let mut rows = picks.chunks_exact_mut(W).rev();
        let Some(last) = rows.next() else {
            return;
        };
        // The row after the current one and its keys, carried in registers: each row
        // depends on the next, so nothing on that chain goes through memory.
        let mut next = [u32::MAX; W];
        next.copy_from_slice(last);
        let mut next_key = next.map(|p| key[(p as usize).min(empty)]);
        for (row, &o) in rows.zip(owners.iter().rev().skip(1)) {
            let own_key = key[o as usize];
            // Which of the next row's picks stay (not empty, not the owner, not its
            // zone), as a bit mask; the table then names the first, second, ... kept one.
            let mut kept = 0usize;
            for (j, (&p, &k)) in next.iter().zip(&next_key).enumerate() {
                let keep = p != u32::MAX && p != o && k != own_key;
                kept |= usize::from(keep) << j;
            }
            let nth = &NTH_KEPT[kept];
            // Slots past W stand for "none": an empty pick.
            let mut vals = [u32::MAX; 5];
            let mut keys = [u32::MAX; 5];
            vals[..W].copy_from_slice(&next);
            keys[..W].copy_from_slice(&next_key);
            let mut cur = [u32::MAX; W];
            let mut cur_key = [u32::MAX; W];
            cur[0] = o;
            cur_key[0] = own_key;
            for j in 1..W {
                let from = usize::from(nth[j - 1]);
                cur[j] = vals[from];
                cur_key[j] = keys[from];
            }
            row.copy_from_slice(&cur);
            next = cur;
            next_key = cur_key;
        }
    }

    /// [`Self::fill_walks`] for any width.
    pub(super) fn fill_walks_any(
        &self,
        picks: &mut [InstanceIdx],
        width: usize,
        last: Vec<InstanceIdx>,
    ) {
        let owners = &self.table.owners;
        let n = owners.len();
        let zone_aware = self.cfg.zone_awareness_enabled;
        let mut next: Vec<InstanceIdx> = last;
        let mut cur: Vec<InstanceIdx> = Vec::with_capacity(width);
        for i in (0..n - 1).rev() {
            let o = owners[i];
            let h = &self.hot[o as usize];
            cur.clear();
            cur.push(o);
            for &p in &next {
                if cur.len() == width {
                    break;
                }
                let q = &self.hot[p as usize];
                let ruled_out = p == o
                    || (zone_aware && !h.zone_is_empty && !q.zone_is_empty && q.zone == h.zone);
                if !ruled_out {
                    cur.push(p);
                }
            }
            picks[i * width..i * width + cur.len()].copy_from_slice(&cur);
            std::mem::swap(&mut cur, &mut next);
        }
    }

    /// The replication strategy's filter: drops unhealthy replicas in place and returns
    /// how many errors the operation tolerates.
    pub(super) fn filter(
        &self,
        op: Operation,
        rf: usize,
        min_ts: i64,
        out: &mut Vec<InstanceIdx>,
    ) -> Result<usize, RingError> {
        let set_size = out.len();
        let hot = &self.hot;
        let healthy = |i: &InstanceIdx| {
            let h = &hot[*i as usize];
            op.is_state_healthy(h.state) && h.timestamp >= min_ts
        };
        let unhealthy_addrs = |out: &[InstanceIdx]| -> Vec<String> {
            out.iter()
                .filter(|i| !healthy(i))
                .map(|&i| self.instances[i as usize].addr.clone())
                .collect()
        };
        let healthy_count = out.iter().filter(|i| healthy(i)).count();
        let max_errors = match self.cfg.strategy {
            ReplicationStrategy::Default => {
                let min_success = rf.max(set_size) / 2 + 1;
                if healthy_count < min_success {
                    return Err(RingError::NotEnoughLiveReplicas {
                        min_success,
                        found: healthy_count,
                        unhealthy: unhealthy_addrs(out),
                        zone_aware: self.cfg.zone_awareness_enabled,
                    });
                }
                healthy_count - min_success
            }
            ReplicationStrategy::IgnoreUnhealthy => {
                if healthy_count == 0 {
                    return Err(RingError::NoHealthyReplica {
                        unhealthy: unhealthy_addrs(out),
                    });
                }
                healthy_count - 1
            }
        };
        if healthy_count != set_size {
            out.retain(healthy);
        }
        Ok(max_errors)
    }

    /// Every instance healthy for `op` (dskit's `GetAllHealthy`): no quorum check,
    /// `max_errors = 0`.
    pub fn get_all_healthy(
        &self,
        op: Operation,
        now: SystemTime,
    ) -> Result<ReplicationSet, RingError> {
        if self.instances.is_empty() {
            return Err(RingError::EmptyRing);
        }
        let min_ts = min_healthy_timestamp(now, self.cfg.heartbeat_timeout);
        let instances = self
            .instances
            .iter()
            .zip(&self.hot)
            .filter(|(_, h)| op.is_state_healthy(h.state) && h.timestamp >= min_ts)
            .map(|(d, _)| d.clone())
            .collect();
        Ok(ReplicationSet {
            instances,
            max_errors: 0,
            max_unavailable_zones: 0,
            zone_awareness_enabled: false,
        })
    }

    /// Every instance an "ask everyone" operation should reach (dskit's
    /// `GetReplicationSetForOperation`), with the errors or zones it may lose.
    ///
    /// Zone-aware: up to `min(zones, RF) / 2` zones may hold unhealthy instances; all
    /// instances of such zones are dropped and the remaining budget is returned as
    /// `max_unavailable_zones`. Otherwise `max(instances, RF) - RF / 2` healthy instances
    /// are required and the surplus is `max_errors`.
    pub fn replication_set_for_operation(
        &self,
        op: Operation,
        now: SystemTime,
    ) -> Result<ReplicationSet, RingError> {
        if self.table.tokens.is_empty() {
            return Err(RingError::EmptyRing);
        }
        let min_ts = min_healthy_timestamp(now, self.cfg.heartbeat_timeout);
        let mut failing_zone = vec![false; self.zones.len()];
        let mut healthy: Vec<usize> = Vec::with_capacity(self.instances.len());
        for (i, h) in self.hot.iter().enumerate() {
            if op.is_state_healthy(h.state) && h.timestamp >= min_ts {
                healthy.push(i);
            } else {
                failing_zone[h.zone as usize] = true;
            }
        }
        let rf = self.cfg.replication_factor;
        if self.cfg.zone_awareness_enabled {
            let replicated_zones = self.zones.len().min(rf);
            let max_unavailable = replicated_zones / 2;
            let failing = failing_zone.iter().filter(|f| **f).count();
            if failing > max_unavailable {
                return Err(RingError::TooManyUnhealthyInstances);
            }
            let instances = healthy
                .into_iter()
                .filter(|&i| !failing_zone[self.hot[i].zone as usize])
                .map(|i| self.instances[i].clone())
                .collect();
            Ok(ReplicationSet {
                instances,
                max_errors: 0,
                max_unavailable_zones: max_unavailable - failing,
                zone_awareness_enabled: true,
            })
        } else {
            let required = self.instances.len().max(rf) - rf / 2;
            if healthy.len() < required {
                return Err(RingError::TooManyUnhealthyInstances);
            }
            let max_errors = healthy.len() - required;
            Ok(ReplicationSet {
                instances: healthy
                    .into_iter()
                    .map(|i| self.instances[i].clone())
                    .collect(),
                max_errors,
                max_unavailable_zones: 0,
                zone_awareness_enabled: false,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_walk_tables_match_the_general_build() {
        let mut x: u32 = 5;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for n in [1usize, 2, 3, 5, 9, 40] {
            for zone_aware in [false, true] {
                for rf in 1..=5 {
                    let mut d = Desc::new();
                    for i in 0..n {
                        let tokens: Vec<u32> = (0..1 + next() % 20).map(|_| next()).collect();
                        // Zones "", "a", "b", "c": the empty zone is never ruled out.
                        let zone = ["", "a", "b", "c"][next() as usize % 4];
                        d.add_instance(
                            &format!("i{i:02}"),
                            "addr",
                            zone,
                            tokens,
                            InstanceState::Active,
                            1,
                            1,
                        );
                    }
                    let cfg = RingConfig {
                        replication_factor: rf,
                        zone_awareness_enabled: zone_aware,
                        ..RingConfig::default()
                    };
                    let r = RingSnapshot::new(d, cfg).unwrap();
                    let fast = r.primary_walks();
                    let width = fast.width;
                    let len = r.table.tokens.len();
                    let mut slow = vec![u32::MAX; len * width];
                    let mut buf = GetBuffer::new();
                    buf.seen.resize(r.instances.len().div_ceil(64), 0);
                    r.walk_from(len - 1, Operation(0), rf, &mut buf, 0);
                    slow[(len - 1) * width..(len - 1) * width + buf.out.len()]
                        .copy_from_slice(&buf.out);
                    r.fill_walks_any(&mut slow, width, buf.out.clone());
                    assert_eq!(fast.picks, slow, "n {n} zone_aware {zone_aware} rf {rf}");
                }
            }
        }
    }
}
