//! The in-memory, per-tenant series store of an ingester.
//!
//! # Append answers
//! A sample appended to a series gets the answer Prometheus 2.42's TSDB head gives for a
//! per-series append (checked in this order):
//!
//! | case | answer |
//! |---|---|
//! | `ts < max ts of the tenant's head − 1 h` | [`AppendError::OutOfBounds`], "out of bounds" |
//! | `ts > last ts of the series` | accepted |
//! | `ts == last ts`, same value bits (NaN patterns included) | accepted silently, not stored twice |
//! | `ts == last ts`, other value | [`AppendError::DuplicateTimestamp`], "duplicate sample for timestamp" |
//! | `ts < last ts` | [`AppendError::OutOfOrder`], "out of order sample" |
//!
//! The 1 h is half of the 2 h block range: the head's appendable window. An empty head
//! accepts any timestamp. Each tenant is its own head, as in Mimir's ingesters.
//!
//! Unlike Prometheus' receiver, which rolls back a whole request on the first such error, a
//! refused sample does not undo the others (Mimir's ingester behaviour): the caller gets the
//! accepted samples to log and the first error to answer 400 with.
//!
//! # Concurrency
//! A std `RwLock` over the tenant map (read-locked except to add a tenant) and, per tenant, a fixed
//! number of shards, each a `RwLock` over its part of the series map, chosen by the series hash.
//! Appends to different shards run in parallel; queries read-lock one shard at a time. All code
//! is synchronous, so no lock is ever held across an `.await`; std locks are the right tool.
//! A poisoned lock (a panic elsewhere while holding it) is entered anyway: the maps are never
//! left half-updated by the code below.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use regex::Regex;

use crate::prompb::{Label, LabelMatcher, MatcherType, Sample, TimeSeries};

/// Store settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Width of a TSDB block in ms (Prometheus/Mimir default 2 h). Samples older than the
    /// tenant's newest sample minus half of this are "out of bounds".
    pub block_range_ms: i64,
    /// Series-map shards per tenant (lock striping). 16 keeps contention low on small machines;
    /// more helps only with many cores pushing the same tenant.
    pub shards: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            // -blocks-storage.tsdb.block-ranges-period default (2h).
            block_range_ms: 2 * 3600 * 1000,
            shards: 16,
        }
    }
}

/// Why one sample was refused. The series and the other samples are unaffected; the caller
/// answers 400 (bad input). Each message starts with Prometheus' exact error string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// Older than the head's appendable window.
    #[error(
        "out of bounds: timestamp {timestamp} is older than the head's appendable window (min {min_valid})"
    )]
    OutOfBounds {
        /// The sample's timestamp, ms.
        timestamp: i64,
        /// Oldest timestamp the head accepted at that moment.
        min_valid: i64,
    },
    /// Older than the series' newest sample.
    #[error(
        "out of order sample: timestamp {timestamp} is older than the series' last sample at {last}"
    )]
    OutOfOrder {
        /// The sample's timestamp, ms.
        timestamp: i64,
        /// The series' newest timestamp.
        last: i64,
    },
    /// Same timestamp as the series' newest sample but another value.
    #[error("duplicate sample for timestamp {timestamp} with a different value")]
    DuplicateTimestamp {
        /// The sample's timestamp, ms.
        timestamp: i64,
    },
}

impl AppendError {
    /// The HTTP status to answer with: 400, as Prometheus does.
    pub fn http_status(&self) -> u16 {
        400
    }
}

/// What [`Store::append`] did with one series' samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppendOutcome {
    /// Samples the caller must write to the WAL before acknowledging: the newly stored ones *and*
    /// exact duplicates. Logging duplicates costs little (they are rare: retries) and closes a
    /// hole: a retry after a failed WAL write finds its samples already in memory, and must still
    /// make them durable before it is acknowledged.
    pub to_log: Vec<Sample>,
    /// Newly stored samples.
    pub appended: usize,
    /// Exact duplicates, accepted without storing them again.
    pub duplicates: usize,
    /// Refused samples.
    pub rejected: usize,
    /// The first refusal.
    pub first_error: Option<AppendError>,
}

#[derive(Default)]
struct Series {
    /// Sorted by timestamp, unique timestamps.
    samples: Vec<(i64, f64)>,
}

type Shard = RwLock<HashMap<Box<[Label]>, Series>>;

struct Tenant {
    /// Newest timestamp stored for the tenant, `i64::MIN` while empty.
    max_t: AtomicI64,
    shards: Box<[Shard]>,
}

/// The per-tenant series store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Store {
    config: StoreConfig,
    tenants: RwLock<HashMap<String, Arc<Tenant>>>,
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// Borrows `labels` sorted by (name, value), copying only when they are not sorted already.
fn sorted(labels: &[Label]) -> std::borrow::Cow<'_, [Label]> {
    if labels.is_sorted() {
        std::borrow::Cow::Borrowed(labels)
    } else {
        let mut v = labels.to_vec();
        v.sort();
        std::borrow::Cow::Owned(v)
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new(StoreConfig::default())
    }
}

impl Store {
    /// An empty store.
    pub fn new(config: StoreConfig) -> Self {
        Store {
            config: StoreConfig {
                shards: config.shards.max(1),
                ..config
            },
            tenants: RwLock::new(HashMap::new()),
        }
    }

    fn tenant(&self, tenant: &str) -> Arc<Tenant> {
        if let Some(t) = read(&self.tenants).get(tenant) {
            return Arc::clone(t);
        }
        let mut map = write(&self.tenants);
        Arc::clone(map.entry(tenant.to_owned()).or_insert_with(|| {
            Arc::new(Tenant {
                max_t: AtomicI64::new(i64::MIN),
                shards: (0..self.config.shards).map(|_| Shard::default()).collect(),
            })
        }))
    }

    fn shard_of<'t>(&self, t: &'t Tenant, labels: &[Label]) -> &'t Shard {
        let h = crate::hash::series_key("", labels) as usize;
        &t.shards[h % t.shards.len()]
    }

    /// Appends samples to the series `labels` of `tenant` with Prometheus' head answers (see the
    /// module doc). `labels` should be validated (sorted by name); they are sorted here if not,
    /// so one label set is always one series. Samples are handled in the order given.
    pub fn append(&self, tenant: &str, labels: &[Label], samples: &[Sample]) -> AppendOutcome {
        let labels = sorted(labels);
        let t = self.tenant(tenant);
        let mut out = AppendOutcome::default();
        let mut shard = write(self.shard_of(&t, &labels));
        let series = match shard.get_mut(labels.as_ref()) {
            Some(s) => s,
            None => shard.entry(labels.clone().into_owned().into()).or_default(),
        };
        let half_block = self.config.block_range_ms / 2;
        for s in samples {
            let head_max = t.max_t.load(Ordering::Acquire);
            let min_valid = if head_max == i64::MIN {
                i64::MIN
            } else {
                head_max.saturating_sub(half_block)
            };
            let verdict = if s.timestamp < min_valid {
                Err(AppendError::OutOfBounds {
                    timestamp: s.timestamp,
                    min_valid,
                })
            } else {
                match series.samples.last() {
                    None => Ok(true),
                    Some(&(last, _)) if s.timestamp > last => Ok(true),
                    Some(&(last, v)) if s.timestamp == last => {
                        if v.to_bits() == s.value.to_bits() {
                            Ok(false)
                        } else {
                            Err(AppendError::DuplicateTimestamp {
                                timestamp: s.timestamp,
                            })
                        }
                    }
                    Some(&(last, _)) => Err(AppendError::OutOfOrder {
                        timestamp: s.timestamp,
                        last,
                    }),
                }
            };
            match verdict {
                Ok(true) => {
                    series.samples.push((s.timestamp, s.value));
                    t.max_t.fetch_max(s.timestamp, Ordering::AcqRel);
                    out.appended += 1;
                    out.to_log.push(*s);
                }
                Ok(false) => {
                    out.duplicates += 1;
                    out.to_log.push(*s);
                }
                Err(e) => {
                    out.rejected += 1;
                    out.first_error.get_or_insert(e);
                }
            }
        }
        // A series created for samples that were all refused is not kept.
        if series.samples.is_empty() {
            shard.remove(labels.as_ref());
        }
        out
    }

    /// Puts back samples read from the WAL. Every logged sample was accepted once, so the head's
    /// ordering rules are not applied again: concurrent pushes can reach the log in another
    /// order than they reached the store, and replaying them through [`Store::append`] could
    /// refuse an acknowledged sample as "out of order". Samples are inserted at their place;
    /// a timestamp already present keeps its first value. Returns how many were new.
    pub fn append_replayed(&self, tenant: &str, labels: &[Label], samples: &[Sample]) -> usize {
        if samples.is_empty() {
            return 0;
        }
        let labels = sorted(labels);
        let t = self.tenant(tenant);
        let mut shard = write(self.shard_of(&t, &labels));
        let series = match shard.get_mut(labels.as_ref()) {
            Some(s) => s,
            None => shard.entry(labels.clone().into_owned().into()).or_default(),
        };
        let mut added = 0;
        for s in samples {
            let v = &mut series.samples;
            if v.last().is_none_or(|&(last, _)| s.timestamp > last) {
                v.push((s.timestamp, s.value));
            } else if let Err(at) = v.binary_search_by_key(&s.timestamp, |&(ts, _)| ts) {
                v.insert(at, (s.timestamp, s.value));
            } else {
                continue;
            }
            added += 1;
            t.max_t.fetch_max(s.timestamp, Ordering::AcqRel);
        }
        added
    }

    /// Series of `tenant` matching every matcher, with their samples in `[start_ms, end_ms]`
    /// (inclusive, as remote read), sorted by labels; series without samples in range are left
    /// out.
    pub fn query(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<TimeSeries> {
        let Some(t) = read(&self.tenants).get(tenant).cloned() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for shard in t.shards.iter() {
            let shard = read(shard);
            for (labels, series) in shard.iter() {
                if !matchers.iter().all(|m| m.matches_labels(labels)) {
                    continue;
                }
                let lo = series.samples.partition_point(|&(ts, _)| ts < start_ms);
                let hi = series.samples.partition_point(|&(ts, _)| ts <= end_ms);
                if lo >= hi {
                    continue;
                }
                out.push(TimeSeries {
                    labels: labels.to_vec(),
                    samples: series.samples[lo..hi]
                        .iter()
                        .map(|&(timestamp, value)| Sample { value, timestamp })
                        .collect(),
                    ..Default::default()
                });
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Number of series of `tenant`.
    pub fn series_count(&self, tenant: &str) -> usize {
        read(&self.tenants)
            .get(tenant)
            .map_or(0, |t| t.shards.iter().map(|s| read(s).len()).sum())
    }

    /// Number of samples of `tenant`.
    pub fn sample_count(&self, tenant: &str) -> usize {
        read(&self.tenants).get(tenant).map_or(0, |t| {
            t.shards
                .iter()
                .map(|s| read(s).values().map(|x| x.samples.len()).sum::<usize>())
                .sum()
        })
    }

    /// Names of the tenants with data, sorted.
    pub fn tenants(&self) -> Vec<String> {
        let mut v: Vec<String> = read(&self.tenants).keys().cloned().collect();
        v.sort();
        v
    }
}

/// A compiled label matcher. As in Prometheus, an absent label matches like an empty value,
/// and regexes are fully anchored (`=~"a|b"` means `^(?:a|b)$`).
#[derive(Clone, Debug)]
pub struct Matcher {
    kind: MatcherType,
    name: String,
    value: String,
    re: Option<Regex>,
}

/// A matcher that cannot be built: bad input (HTTP 400).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MatcherError {
    /// The regex does not compile (or would be too large).
    #[error("invalid regular expression {pattern:?} for label {name:?}: {source}")]
    Regex {
        /// Label name.
        name: String,
        /// The pattern as sent.
        pattern: String,
        /// The compiler's message.
        #[source]
        source: Box<regex::Error>,
    },
    /// A matcher type number outside 0..=3.
    #[error("unknown label matcher type {0}")]
    UnknownType(i32),
}

impl MatcherError {
    /// The HTTP status to answer with: 400.
    pub fn http_status(&self) -> u16 {
        400
    }
}

impl Matcher {
    /// Builds a matcher; regex kinds compile `value` anchored at both ends.
    pub fn new(
        kind: MatcherType,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let name = name.into();
        let value = value.into();
        let re = match kind {
            MatcherType::Re | MatcherType::Nre => Some(
                regex::RegexBuilder::new(&format!("^(?:{value})$"))
                    // Bounded, so a hostile pattern costs at most a few MiB to compile.
                    .size_limit(4 << 20)
                    .build()
                    .map_err(|e| MatcherError::Regex {
                        name: name.clone(),
                        pattern: value.clone(),
                        source: Box::new(e),
                    })?,
            ),
            MatcherType::Eq | MatcherType::Neq => None,
        };
        Ok(Matcher {
            kind,
            name,
            value,
            re,
        })
    }

    /// Builds a matcher from its remote-read form.
    pub fn from_proto(m: &LabelMatcher) -> Result<Self, MatcherError> {
        let kind =
            MatcherType::try_from(m.r#type).map_err(|_| MatcherError::UnknownType(m.r#type))?;
        Matcher::new(kind, m.name.clone(), m.value.clone())
    }

    /// Whether a label value (empty when the label is absent) matches.
    pub fn matches(&self, value: &str) -> bool {
        match (self.kind, &self.re) {
            (MatcherType::Eq, _) => value == self.value,
            (MatcherType::Neq, _) => value != self.value,
            (MatcherType::Re, Some(re)) => re.is_match(value),
            (MatcherType::Nre, Some(re)) => !re.is_match(value),
            // Regex kinds always carry a compiled regex (see `new`).
            (MatcherType::Re | MatcherType::Nre, None) => false,
        }
    }

    /// Whether a sorted label set matches.
    pub fn matches_labels(&self, labels: &[Label]) -> bool {
        let value = labels
            .iter()
            .find(|l| l.name == self.name)
            .map_or("", |l| l.value.as_str());
        self.matches(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_546_100_000;
    const HOUR: i64 = 3_600_000;

    fn s(timestamp: i64, value: f64) -> Sample {
        Sample { value, timestamp }
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect()
    }

    fn up() -> Vec<Label> {
        labels(&[("__name__", "up"), ("job", "a")])
    }

    #[test]
    fn append_answers_match_prometheus_head() {
        struct Case {
            what: &'static str,
            sample: Sample,
            want: Result<bool, &'static str>,
        }
        let nan_a = f64::from_bits(0x7ff8_0000_0000_0001);
        let nan_b = f64::from_bits(0x7ff8_0000_0000_0002);
        let cases = [
            Case {
                what: "first sample",
                sample: s(T0, 1.0),
                want: Ok(true),
            },
            Case {
                what: "exact duplicate",
                sample: s(T0, 1.0),
                want: Ok(false),
            },
            Case {
                what: "same ts, other value",
                sample: s(T0, 2.0),
                want: Err("duplicate sample for timestamp"),
            },
            Case {
                what: "60 s older",
                sample: s(T0 - 60_000, 3.0),
                want: Err("out of order sample"),
            },
            Case {
                what: "24 h older",
                sample: s(T0 - 24 * HOUR, 4.0),
                want: Err("out of bounds"),
            },
            Case {
                what: "newer",
                sample: s(T0 + 1000, 5.0),
                want: Ok(true),
            },
            Case {
                what: "NaN",
                sample: s(T0 + 2000, nan_a),
                want: Ok(true),
            },
            Case {
                what: "same NaN bits",
                sample: s(T0 + 2000, nan_a),
                want: Ok(false),
            },
            Case {
                what: "other NaN bits",
                sample: s(T0 + 2000, nan_b),
                want: Err("duplicate sample for timestamp"),
            },
            Case {
                what: "-0.0 after 0.0",
                sample: s(T0 + 3000, 0.0),
                want: Ok(true),
            },
            Case {
                what: "-0.0 is another value",
                sample: s(T0 + 3000, -0.0),
                want: Err("duplicate sample for timestamp"),
            },
        ];
        let store = Store::default();
        for c in cases {
            let out = store.append("t", &up(), &[c.sample]);
            match c.want {
                Ok(new) => {
                    assert!(
                        out.first_error.is_none(),
                        "{}: {:?}",
                        c.what,
                        out.first_error
                    );
                    assert_eq!(out.appended, usize::from(new), "{}", c.what);
                    assert_eq!(out.to_log.len(), 1, "{}: logged", c.what);
                }
                Err(msg) => {
                    let err = out.first_error.expect(c.what);
                    assert!(err.to_string().starts_with(msg), "{}: {err}", c.what);
                    assert!(out.to_log.is_empty(), "{}", c.what);
                }
            }
        }
        assert_eq!(store.sample_count("t"), 4);
    }

    #[test]
    fn out_of_bounds_is_relative_to_the_tenants_newest_sample_not_the_series() {
        let store = Store::default();
        store.append("t", &up(), &[s(T0, 1.0)]);
        let other = labels(&[("__name__", "other")]);
        // A new series may start up to 1 h behind the head...
        assert!(
            store
                .append("t", &other, &[s(T0 - HOUR, 1.0)])
                .first_error
                .is_none()
        );
        // ...but not further.
        let out = store.append("t", &other, &[s(T0 - HOUR - 1, 1.0)]);
        assert!(matches!(
            out.first_error,
            Some(AppendError::OutOfBounds { .. })
        ));
        // Another tenant has its own, empty head: anything goes.
        assert!(
            store
                .append("u", &other, &[s(0, 1.0)])
                .first_error
                .is_none()
        );
    }

    #[test]
    fn a_refused_sample_does_not_undo_the_others_of_the_batch() {
        let store = Store::default();
        let out = store.append("t", &up(), &[s(T0, 1.0), s(T0 - 1, 2.0), s(T0 + 1, 3.0)]);
        assert_eq!((out.appended, out.rejected), (2, 1));
        assert!(matches!(
            out.first_error,
            Some(AppendError::OutOfOrder { last: T0, .. })
        ));
    }

    #[test]
    fn a_series_whose_samples_were_all_refused_is_not_created() {
        let store = Store::default();
        store.append("t", &up(), &[s(T0, 1.0)]);
        let other = labels(&[("__name__", "other")]);
        store.append("t", &other, &[s(T0 - 2 * HOUR, 1.0)]);
        assert_eq!(store.series_count("t"), 1);
    }

    #[test]
    fn unsorted_labels_address_the_same_series() {
        let store = Store::default();
        store.append(
            "t",
            &labels(&[("job", "a"), ("__name__", "up")]),
            &[s(T0, 1.0)],
        );
        store.append("t", &up(), &[s(T0 + 1, 1.0)]);
        assert_eq!(store.series_count("t"), 1);
        assert_eq!(store.sample_count("t"), 2);
    }

    #[test]
    fn replayed_samples_are_inserted_in_place_and_duplicates_ignored() {
        let store = Store::default();
        store.append_replayed("t", &up(), &[s(T0 + 2, 2.0), s(T0, 0.0)]);
        let added = store.append_replayed("t", &up(), &[s(T0 + 1, 1.0), s(T0, 9.0)]);
        assert_eq!(added, 1);
        let got = store.query("t", &[], i64::MIN, i64::MAX);
        assert_eq!(
            got[0].samples,
            vec![s(T0, 0.0), s(T0 + 1, 1.0), s(T0 + 2, 2.0)]
        );
    }

    fn query_store() -> Store {
        let store = Store::default();
        for (name, job, inst) in [
            ("up", "node", "a"),
            ("up", "node", "b"),
            ("up", "prom", "a"),
            ("http_requests_total", "prom", "a"),
        ] {
            let l = labels(&[("__name__", name), ("instance", inst), ("job", job)]);
            store.append("t", &l, &[s(T0, 1.0), s(T0 + 10, 2.0), s(T0 + 20, 3.0)]);
        }
        store.append("t", &labels(&[("__name__", "up")]), &[s(T0, 1.0)]);
        store
    }

    fn names(result: &[TimeSeries]) -> Vec<String> {
        result
            .iter()
            .map(|ts| {
                ts.labels
                    .iter()
                    .map(|l| l.value.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    }

    fn m(kind: MatcherType, name: &str, value: &str) -> Matcher {
        Matcher::new(kind, name, value).unwrap()
    }

    #[test]
    fn equality_matchers_select_series_sorted_by_labels() {
        let store = query_store();
        let got = store.query(
            "t",
            &[
                m(MatcherType::Eq, "__name__", "up"),
                m(MatcherType::Eq, "job", "node"),
            ],
            i64::MIN,
            i64::MAX,
        );
        assert_eq!(names(&got), ["up,a,node", "up,b,node"]);
    }

    #[test]
    fn not_equal_matches_series_without_the_label() {
        let store = query_store();
        let got = store.query(
            "t",
            &[
                m(MatcherType::Eq, "__name__", "up"),
                m(MatcherType::Neq, "job", "node"),
            ],
            i64::MIN,
            i64::MAX,
        );
        assert_eq!(names(&got), ["up", "up,a,prom"]);
    }

    #[test]
    fn regex_matchers_are_fully_anchored() {
        let store = query_store();
        let got = store.query("t", &[m(MatcherType::Re, "job", "pro")], i64::MIN, i64::MAX);
        assert!(got.is_empty());
        let got = store.query(
            "t",
            &[m(MatcherType::Re, "job", "pro.*|x")],
            i64::MIN,
            i64::MAX,
        );
        assert_eq!(names(&got), ["http_requests_total,a,prom", "up,a,prom"]);
        let got = store.query(
            "t",
            &[
                m(MatcherType::Re, "__name__", "up"),
                m(MatcherType::Nre, "instance", "a|"),
            ],
            i64::MIN,
            i64::MAX,
        );
        assert_eq!(names(&got), ["up,b,node"]);
    }

    #[test]
    fn empty_regex_matches_series_missing_the_label() {
        let store = query_store();
        let got = store.query(
            "t",
            &[
                m(MatcherType::Eq, "__name__", "up"),
                m(MatcherType::Re, "job", ""),
            ],
            i64::MIN,
            i64::MAX,
        );
        assert_eq!(names(&got), ["up"]);
    }

    #[test]
    fn time_range_is_inclusive_and_drops_series_without_samples_in_it() {
        let store = query_store();
        let sel = [m(MatcherType::Eq, "__name__", "up")];
        let got = store.query("t", &sel, T0 + 10, T0 + 20);
        assert_eq!(got.len(), 3);
        assert!(
            got.iter()
                .all(|ts| ts.samples == vec![s(T0 + 10, 2.0), s(T0 + 20, 3.0)])
        );
        assert!(store.query("t", &sel, T0 + 21, T0 + 100).is_empty());
        assert!(
            store
                .query("other-tenant", &sel, i64::MIN, i64::MAX)
                .is_empty()
        );
    }

    #[test]
    fn a_bad_regex_or_matcher_type_is_a_400() {
        let err = Matcher::new(MatcherType::Re, "a", "(").unwrap_err();
        assert_eq!(err.http_status(), 400);
        assert!(err.to_string().contains("invalid regular expression"));
        let bad = LabelMatcher {
            r#type: 9,
            name: "a".into(),
            value: "b".into(),
        };
        assert!(matches!(
            Matcher::from_proto(&bad),
            Err(MatcherError::UnknownType(9))
        ));
    }

    proptest::proptest! {
        /// Against a simple model: a series keeps exactly the accepted samples, in order, and
        /// every answer is the one the rules in the module doc give.
        #[test]
        fn appends_agree_with_a_model_of_the_head_rules(
            steps in proptest::collection::vec((0i64..10_000_000, 0u8..3), 1..200)
        ) {
            let store = Store::default();
            let mut model: Vec<(i64, f64)> = Vec::new();
            let mut head_max = i64::MIN;
            for (ts, v) in steps {
                let value = f64::from(v);
                let out = store.append("t", &up(), &[s(ts, value)]);
                let min_valid = if head_max == i64::MIN { i64::MIN } else { head_max - HOUR };
                let want: Result<bool, ()> = if ts < min_valid {
                    Err(())
                } else {
                    match model.last() {
                        None => Ok(true),
                        Some(&(last, _)) if ts > last => Ok(true),
                        Some(&(last, lv)) if ts == last && lv.to_bits() == value.to_bits() => Ok(false),
                        _ => Err(()),
                    }
                };
                match want {
                    Ok(true) => {
                        proptest::prop_assert_eq!(out.appended, 1);
                        model.push((ts, value));
                        head_max = head_max.max(ts);
                    }
                    Ok(false) => proptest::prop_assert_eq!(out.duplicates, 1),
                    Err(()) => proptest::prop_assert_eq!(out.rejected, 1),
                }
            }
            let got: Vec<(i64, f64)> = store
                .query("t", &[], i64::MIN, i64::MAX)
                .first()
                .map(|t| t.samples.iter().map(|x| (x.timestamp, x.value)).collect())
                .unwrap_or_default();
            proptest::prop_assert_eq!(got, model);
        }
    }

    #[test]
    fn concurrent_appends_to_many_series_lose_nothing() {
        let store = Arc::new(Store::default());
        std::thread::scope(|scope| {
            for w in 0..4 {
                let store = Arc::clone(&store);
                scope.spawn(move || {
                    for i in 0..200 {
                        let l = labels(&[("__name__", "x"), ("i", &format!("{w}-{i}"))]);
                        for k in 0..10 {
                            store.append("t", &l, &[s(T0 + k, k as f64)]);
                        }
                    }
                });
            }
        });
        assert_eq!(store.series_count("t"), 800);
        assert_eq!(store.sample_count("t"), 8000);
    }
}
