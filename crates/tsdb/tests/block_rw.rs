//! Round trips through our own writer and reader: series selection with every matcher kind,
//! time-range queries, trimming to the block range, segment cutting, atomic creation, and
//! corrupt files giving errors instead of panics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use ringkit_tsdb::{
    Block, BlockError, BlockOptions, BlockSeries, BlockWriter, EncodedChunk, Label, MatchType,
    Matcher, ThanosMeta, XorChunk, labels_from_pairs, list_blocks, remove_tmp_dirs, write_block,
    write_block_with,
};

type Model = BTreeMap<Vec<Label>, Vec<(i64, f64)>>;
type Entry = (Vec<Label>, Vec<(i64, f64)>);

/// Cuts samples into chunks of at most 120, as Prometheus' head does.
fn chunked(samples: &[(i64, f64)]) -> Vec<XorChunk> {
    samples
        .chunks(120)
        .map(|part| {
            let mut c = XorChunk::new();
            for &(t, v) in part {
                c.append(t, v);
            }
            c
        })
        .collect()
}

fn to_series(model: &Model) -> Vec<BlockSeries> {
    model
        .iter()
        .map(|(labels, samples)| BlockSeries {
            labels: labels.clone(),
            chunks: chunked(samples),
        })
        .collect()
}

/// 40 series over 3 jobs × 2 codes × instances, 15 s samples for an hour.
fn fleet() -> Model {
    let mut m = Model::new();
    for i in 0..40 {
        let job = ["api", "db", "web"][i % 3];
        let code = ["200", "500"][i % 2];
        let mut pairs = vec![
            ("__name__", "http_requests_total".to_string()),
            ("job", job.to_string()),
            ("code", code.to_string()),
            ("instance", format!("host-{i:02}:9100")),
        ];
        if i % 4 == 0 {
            pairs.push(("env", "prod".to_string()));
        }
        let samples = (0..240)
            .map(|k| {
                (
                    1_000_000 + k * 15_000 + (k * i as i64) % 7,
                    (k * (i as i64 + 1)) as f64,
                )
            })
            .collect();
        m.insert(labels_from_pairs(pairs), samples);
    }
    m
}

fn write(dir: &Path, model: &Model, min: i64, max: i64) -> PathBuf {
    let ulid = write_block(dir, min, max, to_series(model)).unwrap();
    dir.join(ulid.to_string())
}

fn re(name: &str, v: &str) -> Matcher {
    Matcher::new(MatchType::Regex, name, v).unwrap()
}

fn expect(model: &Model, matchers: &[Matcher]) -> Vec<Vec<Label>> {
    model
        .keys()
        .filter(|ls| matchers.iter().all(|m| m.matches_labels(ls)))
        .cloned()
        .collect()
}

#[test]
fn matchers_select_what_prometheus_would() {
    let model = fleet();
    let dir = tempfile::tempdir().unwrap();
    let block = Block::open(write(dir.path(), &model, 0, 10_000_000)).unwrap();
    let cases: Vec<Vec<Matcher>> = vec![
        vec![Matcher::equal("job", "api")],
        vec![Matcher::equal("job", "api"), Matcher::equal("code", "500")],
        vec![re("job", "api|web")],
        vec![re("instance", "host-0.*")],
        vec![re("job", "ap")], // anchored: matches nothing
        vec![Matcher::new(MatchType::NotEqual, "job", "db").unwrap()],
        vec![Matcher::new(MatchType::NotRegex, "code", "5..").unwrap()],
        vec![Matcher::equal("env", "")], // series without env
        vec![re("env", "prod|")],        // with env=prod, or without env: all
        vec![
            Matcher::equal("job", "api"),
            Matcher::new(MatchType::NotEqual, "env", "prod").unwrap(),
        ],
        vec![Matcher::equal("nope", "x")],
        vec![],
    ];
    for matchers in cases {
        let want = expect(&model, &matchers);
        let got: Vec<Vec<Label>> = block
            .select(&matchers)
            .unwrap()
            .into_iter()
            .map(|r| block.series(r).unwrap().labels)
            .collect();
        assert_eq!(got, want, "{matchers:?}");
    }
    assert_eq!(block.label_values("job"), vec!["api", "db", "web"]);
}

#[test]
fn time_range_queries_return_exactly_the_samples_inside() {
    let model = fleet();
    let dir = tempfile::tempdir().unwrap();
    let block = Block::open(write(dir.path(), &model, 0, 10_000_000)).unwrap();
    let meta = block.meta();
    assert_eq!(meta.stats.num_series, 40);
    assert_eq!(meta.stats.num_samples, 40 * 240);
    assert_eq!(meta.stats.num_chunks, 40 * 2);
    assert_eq!(meta.compaction.level, 1);
    assert_eq!(meta.compaction.sources, vec![meta.ulid.clone()]);
    for (lo, hi) in [
        (i64::MIN, i64::MAX),
        (1_500_000, 2_000_000),
        (2_800_000, 2_800_010),
        (0, 10),
    ] {
        let got = block.query(&[Matcher::equal("job", "db")], lo, hi).unwrap();
        let want: Vec<Entry> = model
            .iter()
            .filter(|(ls, _)| Matcher::equal("job", "db").matches_labels(ls))
            .map(|(ls, s)| {
                (
                    ls.clone(),
                    s.iter()
                        .copied()
                        .filter(|(t, _)| *t >= lo && *t <= hi)
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, s)| !s.is_empty())
            .collect();
        let got: Vec<Entry> = got.into_iter().map(|s| (s.labels, s.samples)).collect();
        assert_eq!(got, want, "range [{lo}, {hi}]");
    }
}

#[test]
fn chunks_reaching_outside_the_range_are_trimmed() {
    let labels = labels_from_pairs([("__name__", "up")]);
    let samples: Vec<(i64, f64)> = (0..300).map(|i| (i * 1000, i as f64)).collect();
    let dir = tempfile::tempdir().unwrap();
    let series = vec![BlockSeries {
        labels: labels.clone(),
        chunks: chunked(&samples),
    }];
    let ulid = write_block(dir.path(), 50_000, 250_000, series).unwrap();
    let block = Block::open(dir.path().join(ulid.to_string())).unwrap();
    let got = block
        .query(&[Matcher::equal("__name__", "up")], i64::MIN, i64::MAX)
        .unwrap();
    let want: Vec<(i64, f64)> = samples
        .into_iter()
        .filter(|(t, _)| (50_000..250_000).contains(t))
        .collect();
    assert_eq!(got[0].samples, want);
    assert_eq!(block.meta().stats.num_samples, 200);
    assert_eq!(
        (block.meta().min_time, block.meta().max_time),
        (50_000, 250_000)
    );
}

#[test]
fn bad_input_is_an_error_not_a_block() {
    let dir = tempfile::tempdir().unwrap();
    let one = |labels: Vec<Label>| BlockSeries {
        labels,
        chunks: chunked(&[(1, 1.0)]),
    };
    let unsorted = vec![Label::new("b", "1"), Label::new("a", "1")];
    assert!(matches!(
        write_block(dir.path(), 0, 10, vec![one(unsorted)]),
        Err(BlockError::InvalidSeries { .. })
    ));
    let dup = labels_from_pairs([("a", "1")]);
    assert!(matches!(
        write_block(dir.path(), 0, 10, vec![one(dup.clone()), one(dup.clone())]),
        Err(BlockError::InvalidSeries { .. })
    ));
    assert!(matches!(
        write_block(dir.path(), 0, 10, vec![one(labels_from_pairs([("a", "")]))]),
        Err(BlockError::InvalidSeries { .. })
    ));
    let overlapping = BlockSeries {
        labels: dup.clone(),
        chunks: [chunked(&[(1, 1.0), (5, 1.0)]), chunked(&[(3, 1.0)])].concat(),
    };
    assert!(matches!(
        write_block(dir.path(), 0, 10, vec![overlapping]),
        Err(BlockError::InvalidSeries { .. })
    ));
    assert!(matches!(
        write_block(dir.path(), 10, 10, vec![one(dup.clone())]),
        Err(BlockError::BadRange { .. })
    ));
    assert!(matches!(
        write_block(dir.path(), 100, 200, vec![one(dup)]),
        Err(BlockError::Empty { .. })
    ));
    // Nothing was left behind by the failed attempts.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn small_segments_split_chunks_across_files() {
    let model = fleet();
    let dir = tempfile::tempdir().unwrap();
    let opts = BlockOptions {
        segment_size: 2_000,
        thanos: Some(ThanosMeta {
            labels: [("__org_id__".to_string(), "tenant-1".to_string())].into(),
            source: "receive".to_string(),
            ..ThanosMeta::default()
        }),
        ..BlockOptions::default()
    };
    let ulid = write_block_with(dir.path(), &opts, 0, 10_000_000, to_series(&model)).unwrap();
    let path = dir.path().join(ulid.to_string());
    let segments = std::fs::read_dir(path.join("chunks")).unwrap().count();
    assert!(segments > 3, "{segments} segments");
    for i in 1..=segments {
        let size = std::fs::metadata(path.join(format!("chunks/{i:06}")))
            .unwrap()
            .len();
        assert!(size <= 2_000, "segment {i} is {size} bytes");
    }
    let block = Block::open(&path).unwrap();
    let all = block.query(&[], i64::MIN, i64::MAX).unwrap();
    let got: Model = all.into_iter().map(|s| (s.labels, s.samples)).collect();
    assert_eq!(got, model);
    let thanos = block.meta().thanos.as_ref().unwrap();
    assert_eq!(thanos.labels["__org_id__"], "tenant-1");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path.join("meta.json")).unwrap()).unwrap();
    assert_eq!(json["thanos"]["labels"]["__org_id__"], "tenant-1");
    assert_eq!(json["thanos"]["downsample"]["resolution"], 0);
    assert_eq!(json["thanos"]["source"], "receive");
    assert_eq!(json["maxTime"], 10_000_000);
}

#[test]
fn leftover_tmp_dirs_are_removed_and_never_listed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(
        dir.path()
            .join("01ARZ3NDEKTSV4RRFFQ69G5FAV.tmp-for-creation/chunks"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("wal")).unwrap();
    let later = write(dir.path(), &fleet(), 2_000_000, 10_000_000);
    let block = write(dir.path(), &fleet(), 0, 10_000_000);
    let listed: Vec<PathBuf> = list_blocks(dir.path())
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        listed,
        vec![block.clone(), later.clone()],
        "oldest range first, no leftovers"
    );
    std::fs::remove_dir_all(&later).unwrap();
    std::fs::remove_dir_all(dir.path().join("wal")).unwrap();
    assert_eq!(remove_tmp_dirs(dir.path()).unwrap(), 1);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert!(Block::open(block).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any byte of any file flipped, or any file cut short: opening and querying the block
    /// returns errors or (when the flip hit padding) correct data, and never panics.
    #[test]
    fn corrupt_files_never_panic(file in 0usize..4, pos in any::<usize>(), bit in 0u8..8, cut in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let mut model = fleet();
        while model.len() > 6 {
            model.pop_last();
        }
        let path = write(dir.path(), &model, 0, 10_000_000);
        let name = ["index", "chunks/000001", "meta.json", "tombstones"][file];
        let mut bytes = std::fs::read(path.join(name)).unwrap();
        let i = pos % bytes.len();
        if cut {
            bytes.truncate(i);
        } else {
            bytes[i] ^= 1 << bit;
        }
        std::fs::write(path.join(name), &bytes).unwrap();
        if let Ok(block) = Block::open(&path)
            && let Ok(all) = block.query(&[], i64::MIN, i64::MAX)
        {
            // Whatever comes back must be real data (a flip in meta.json's text may still
            // parse, and padding bytes carry nothing).
            for s in all {
                if let Some(want) = model.get(&s.labels) {
                    prop_assert_eq!(&s.samples, want);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The index reader on a damaged copy of Prometheus' own index file: errors, never panics,
    /// whatever is asked of it afterwards.
    #[test]
    fn damaged_prometheus_index_never_panics(
        flips in prop::collection::vec((any::<usize>(), 0u8..8), 1..6),
        cut in any::<usize>(),
        refs in prop::collection::vec(any::<u32>(), 0..8),
    ) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/promtool-block/01M956MN3WX0QF9DW7XZZ0A3PX/index");
        let mut bytes = std::fs::read(path).unwrap();
        for (pos, bit) in flips {
            let i = pos % bytes.len();
            bytes[i] ^= 1 << bit;
        }
        if cut % 3 == 0 {
            bytes.truncate(cut % bytes.len());
        }
        if let Ok(index) = ringkit_tsdb::index::IndexReader::new(bytes) {
            for name in index.label_names() {
                let _ = index.label_values(name);
            }
            // Refs 7, 10 and 12 are the fixture's real series.
            for r in refs.into_iter().chain([7, 10, 12]) {
                let _ = index.series(r);
            }
        }
    }
}

/// A closed chunk as a head keeps it: first and last times, encoded bytes.
type Closed = (i64, i64, Box<[u8]>);

fn encoded(chunks: &[Closed]) -> impl Iterator<Item = EncodedChunk<'_>> {
    chunks
        .iter()
        .map(|(min_time, max_time, data)| EncodedChunk {
            min_time: *min_time,
            max_time: *max_time,
            data,
        })
}

#[test]
fn block_writer_takes_encoded_chunks_series_by_series() {
    let model = fleet();
    let dir = tempfile::tempdir().unwrap();
    let closed: Vec<(Vec<Label>, Vec<Closed>)> = model
        .iter()
        .map(|(labels, samples)| {
            let chunks = chunked(samples)
                .into_iter()
                .map(|c| {
                    let (lo, hi) = (c.min_time().unwrap(), c.max_time().unwrap());
                    (lo, hi, c.into_bytes().into_boxed_slice())
                })
                .collect();
            (labels.clone(), chunks)
        })
        .collect();
    let opts = BlockOptions::default();
    // A range that cuts the series' first chunks in the middle.
    let (lo, hi) = (2_000_000, 4_000_000);
    let mut w = BlockWriter::new(dir.path(), &opts, lo, hi).unwrap();
    let tmp = dir.path().join(format!("{}.tmp-for-creation", w.ulid()));
    assert!(tmp.is_dir());
    for (labels, chunks) in &closed {
        w.add_series(labels.clone(), encoded(chunks)).unwrap();
    }
    // Out of order (the first series again) is refused and changes nothing.
    let again = w.add_series(closed[0].0.clone(), encoded(&closed[0].1));
    assert!(matches!(again, Err(BlockError::InvalidSeries { .. })));
    let ulid = w.finish().unwrap();
    assert!(!tmp.exists());
    let block = Block::open(dir.path().join(ulid.to_string())).unwrap();
    let got: Model = block
        .query(&[], i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|s| (s.labels, s.samples))
        .collect();
    let want: Model = model
        .iter()
        .map(|(l, s)| {
            let inside = s.iter().copied().filter(|(t, _)| (lo..hi).contains(t));
            (l.clone(), inside.collect())
        })
        .collect();
    assert_eq!(got, want);
    let samples: usize = want.values().map(Vec::len).sum();
    assert_eq!(block.meta().stats.num_samples, samples as u64);

    // A writer dropped before `finish` leaves nothing behind.
    let w = BlockWriter::new(dir.path(), &opts, lo, hi).unwrap();
    let tmp = dir.path().join(format!("{}.tmp-for-creation", w.ulid()));
    drop(w);
    assert!(!tmp.exists());
    assert_eq!(list_blocks(dir.path()).unwrap().len(), 1);
}
