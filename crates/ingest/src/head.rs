//! An ingester's write side: the [`Store`] plus its [`Wal`], with the order of operations that
//! makes an acknowledged sample durable.
//!
//! [`Head::push`] appends every series of a validated request to the store, then logs what the
//! store accepted (new samples and exact duplicates, see [`crate::store::AppendOutcome::to_log`])
//! in **one** WAL append, and only then returns. The caller acknowledges (2xx) only on `Ok` with
//! no `first_error`; a [`WalError`] must become a 5xx so the sender retries. Samples are visible
//! to queries slightly before they are durable; that is harmless, as nothing was acknowledged yet.
//!
//! Two pushes may reach the store in one order and the WAL in the other; replay therefore uses
//! [`Store::append_replayed`], which does not re-apply the ordering rules.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use crate::prompb::TimeSeries;
use crate::store::{AppendError, Store, StoreConfig};
use crate::validate::SeriesText;
use crate::wal::{self, ReplayStats, Wal, WalConfig, WalEntry, WalError};

/// A refused sample and the series it belongs to: bad input, HTTP 400.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error}, series: '{series}'")]
pub struct SampleError {
    /// Why.
    pub error: AppendError,
    /// Which series.
    pub series: SeriesText,
}

/// What a push did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PushSummary {
    /// Newly stored samples.
    pub appended: usize,
    /// Exact duplicates accepted without storing them again.
    pub duplicates: usize,
    /// Refused samples.
    pub rejected: usize,
    /// The first refusal, to answer 400 with.
    pub first_error: Option<SampleError>,
}

/// Store + WAL of one ingester.
pub struct Head {
    store: Store,
    /// `None` for a memory-only head (tests, benchmarks). A std `Mutex`: `append` blocks on the
    /// disk, the lock is never held across an `.await`, and pushes must be serialised into the
    /// log anyway.
    wal: Option<Mutex<Wal>>,
}

impl Head {
    /// A head without a WAL: nothing survives a restart.
    pub fn in_memory(config: StoreConfig) -> Head {
        Head {
            store: Store::new(config),
            wal: None,
        }
    }

    /// Replays the WAL in `dir` into a new store, then opens the WAL for appending.
    pub fn open(
        dir: impl AsRef<Path>,
        store_config: StoreConfig,
        wal_config: WalConfig,
    ) -> Result<(Head, ReplayStats), WalError> {
        let store = Store::new(store_config);
        let stats = wal::replay_into(dir.as_ref(), &store)?;
        let wal = Wal::open(dir, wal_config)?;
        Ok((
            Head {
                store,
                wal: Some(Mutex::new(wal)),
            },
            stats,
        ))
    }

    /// The series store, for queries.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Appends validated series of `tenant` and logs them (see the module doc).
    pub fn push(&self, tenant: &str, series: &[TimeSeries]) -> Result<PushSummary, WalError> {
        let mut summary = PushSummary::default();
        let mut logged = Vec::with_capacity(series.len());
        for ts in series {
            let out = self.store.append(tenant, &ts.labels, &ts.samples);
            summary.appended += out.appended;
            summary.duplicates += out.duplicates;
            summary.rejected += out.rejected;
            if let (None, Some(error)) = (&summary.first_error, out.first_error) {
                summary.first_error = Some(SampleError {
                    error,
                    series: SeriesText::new(&ts.labels),
                });
            }
            if !out.to_log.is_empty() {
                logged.push((ts, out.to_log));
            }
        }
        if let Some(wal) = &self.wal {
            let entries: Vec<WalEntry<'_>> = logged
                .iter()
                .map(|(ts, samples)| WalEntry {
                    tenant,
                    labels: &ts.labels,
                    samples,
                })
                .collect();
            wal.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .append(&entries)?;
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::{Label, Sample};
    use crate::wal::WalEntry;

    fn ts(name: &str, samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: vec![Label::new("__name__", name)],
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_push_reports_the_first_refused_sample_with_its_series() {
        let head = Head::in_memory(StoreConfig::default());
        let summary = head
            .push(
                "t",
                &[ts("a", &[(10, 1.0)]), ts("b", &[(5, 1.0), (4, 1.0)])],
            )
            .unwrap();
        assert_eq!((summary.appended, summary.rejected), (2, 1));
        let err = summary.first_error.unwrap();
        assert_eq!(
            err.to_string(),
            format!("{}, series: '{{__name__=\"b\"}}'", err.error)
        );
        assert!(err.to_string().starts_with("out of order sample"));
    }

    #[test]
    fn acknowledged_samples_survive_a_restart_even_if_logged_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (head, _) =
                Head::open(dir.path(), StoreConfig::default(), WalConfig::default()).unwrap();
            head.push("t", &[ts("a", &[(10, 1.0), (20, 2.0)])]).unwrap();
        }
        // Another process order: a later record carries an older sample of the same series, as
        // when two concurrent pushes reach the log in the other order than the store.
        {
            let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
            let labels = [Label::new("__name__", "a")];
            wal.append(&[WalEntry {
                tenant: "t",
                labels: &labels,
                samples: &[Sample {
                    value: 1.5,
                    timestamp: 15,
                }],
            }])
            .unwrap();
        }
        let (head, stats) =
            Head::open(dir.path(), StoreConfig::default(), WalConfig::default()).unwrap();
        assert_eq!(stats.samples, 3);
        let got = head.store().query("t", &[], i64::MIN, i64::MAX);
        let stamps: Vec<i64> = got[0].samples.iter().map(|s| s.timestamp).collect();
        assert_eq!(stamps, [10, 15, 20]);
    }

    #[test]
    fn a_retried_push_logs_its_duplicates_again() {
        let dir = tempfile::tempdir().unwrap();
        let (head, _) =
            Head::open(dir.path(), StoreConfig::default(), WalConfig::default()).unwrap();
        let push = [ts("a", &[(10, 1.0)])];
        head.push("t", &push).unwrap();
        let again = head.push("t", &push).unwrap();
        assert_eq!((again.appended, again.duplicates), (0, 1));
        drop(head);
        let stats = wal::replay(dir.path(), |_| {}).unwrap();
        assert_eq!(stats.samples, 2);
    }
}
