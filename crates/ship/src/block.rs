//! Finished blocks in a tenant's local TSDB directory.
//!
//! A block is a directory named by its ULID holding `meta.json`, `index`, `chunks/NNNNNN` and
//! `tombstones` (Prometheus' layout). Prometheus and our head write a block under a temporary
//! name and rename it when complete, so a ULID-named directory with a `meta.json` is final.

use std::path::{Path, PathBuf};

use ulid::Ulid;

use crate::error::ShipError;

/// Name of the block metadata file, uploaded last.
pub(crate) const META_FILE: &str = "meta.json";

/// Most files one block may hold (index, tombstones, chunk segments): a bound on what one
/// upload walks; a block with more is refused.
const MAX_FILES: usize = 10_000;

/// What the shipper needs from a block's `meta.json`; `raw` keeps every other field, which
/// is uploaded unchanged.
#[derive(Clone, Debug)]
pub struct BlockMeta {
    /// The block's id (also its directory name).
    pub ulid: Ulid,
    /// First timestamp covered (ms, inclusive).
    pub min_time: i64,
    /// End of the covered range (ms, exclusive in Prometheus).
    pub max_time: i64,
    /// The whole JSON document.
    pub raw: serde_json::Value,
}

impl BlockMeta {
    /// Parses a `meta.json` document; `path` names it in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<BlockMeta, ShipError> {
        let bad = |reason: String| ShipError::BadMeta {
            path: path.to_owned(),
            reason,
        };
        let raw: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let ulid = raw
            .get("ulid")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("no \"ulid\" string".into()))?;
        let ulid = Ulid::from_string(ulid).map_err(|e| bad(format!("ulid {ulid:?}: {e}")))?;
        let time = |key: &str| {
            raw.get(key)
                .and_then(|v| v.as_i64())
                .ok_or_else(|| bad(format!("no integer \"{key}\"")))
        };
        let (min_time, max_time) = (time("minTime")?, time("maxTime")?);
        match raw.get("version").and_then(|v| v.as_u64()) {
            Some(1) => {}
            other => return Err(bad(format!("version {other:?}, want 1"))),
        }
        Ok(BlockMeta {
            ulid,
            min_time,
            max_time,
            raw,
        })
    }
}

/// A finished block on local disk.
#[derive(Clone, Debug)]
pub struct LocalBlock {
    /// The block directory.
    pub dir: PathBuf,
    /// Its parsed `meta.json`.
    pub meta: BlockMeta,
}

impl LocalBlock {
    /// Paths relative to the block directory of every file but `meta.json`, sorted
    /// (`chunks/000001`, `index`, `tombstones`...), with their sizes.
    pub fn data_files(&self) -> Result<Vec<(String, u64)>, ShipError> {
        let mut out = Vec::new();
        let mut dirs = vec![(self.dir.clone(), String::new())];
        while let Some((dir, prefix)) = dirs.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| ShipError::io(&dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| ShipError::io(&dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let rel = format!("{prefix}{name}");
                let kind = entry
                    .file_type()
                    .map_err(|e| ShipError::io(entry.path(), e))?;
                if kind.is_dir() {
                    dirs.push((entry.path(), format!("{rel}/")));
                } else if kind.is_file() && rel != META_FILE {
                    let len = entry
                        .metadata()
                        .map_err(|e| ShipError::io(entry.path(), e))?
                        .len();
                    out.push((rel, len));
                }
                if out.len() + dirs.len() > MAX_FILES {
                    return Err(ShipError::BadMeta {
                        path: self.dir.clone(),
                        reason: format!("more than {MAX_FILES} files in the block"),
                    });
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// The finished blocks of a tenant directory, oldest `minTime` first, and the errors of
/// ULID-named directories whose `meta.json` is unreadable (they are skipped, not fatal).
/// Directories without a `meta.json`, or not named by a ULID, are not blocks (yet).
pub fn list_blocks(tenant_dir: &Path) -> Result<(Vec<LocalBlock>, Vec<ShipError>), ShipError> {
    let mut blocks = Vec::new();
    let mut invalid = Vec::new();
    let entries = match std::fs::read_dir(tenant_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((blocks, invalid)),
        Err(e) => return Err(ShipError::io(tenant_dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| ShipError::io(tenant_dir, e))?;
        let name = entry.file_name();
        let Some(Ok(ulid)) = name.to_str().map(Ulid::from_string) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = entry.path();
        let meta_path = dir.join(META_FILE);
        let bytes = match std::fs::read(&meta_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                invalid.push(ShipError::io(&meta_path, e));
                continue;
            }
        };
        match BlockMeta::parse(&bytes, &meta_path) {
            Ok(meta) if meta.ulid == ulid => blocks.push(LocalBlock { dir, meta }),
            Ok(meta) => invalid.push(ShipError::BadMeta {
                path: meta_path,
                reason: format!("ulid {} differs from the directory name", meta.ulid),
            }),
            Err(e) => invalid.push(e),
        }
    }
    blocks.sort_by_key(|b| (b.meta.min_time, b.meta.ulid));
    Ok((blocks, invalid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_block(root: &Path, ulid: &str, min: i64) -> PathBuf {
        let dir = root.join(ulid);
        std::fs::create_dir_all(dir.join("chunks")).unwrap();
        std::fs::write(dir.join("index"), b"idx").unwrap();
        std::fs::write(dir.join("chunks/000001"), b"c1").unwrap();
        std::fs::write(dir.join("tombstones"), b"t").unwrap();
        let meta =
            serde_json::json!({"ulid": ulid, "minTime": min, "maxTime": min + 10, "version": 1});
        std::fs::write(dir.join(META_FILE), meta.to_string()).unwrap();
        dir
    }

    #[test]
    fn blocks_are_listed_oldest_first_and_unfinished_or_foreign_dirs_are_not_blocks() {
        let t = tempfile::tempdir().unwrap();
        write_block(t.path(), "01HZZZZZZZZZZZZZZZZZZZZZZ1", 500);
        write_block(t.path(), "01HZZZZZZZZZZZZZZZZZZZZZZ2", 100);
        // Being written: no meta.json yet.
        std::fs::create_dir_all(t.path().join("01HZZZZZZZZZZZZZZZZZZZZZZ3")).unwrap();
        std::fs::create_dir_all(t.path().join("wal")).unwrap();
        std::fs::write(t.path().join("mimir.shipper.json"), b"{}").unwrap();
        let (blocks, invalid) = list_blocks(t.path()).unwrap();
        assert!(invalid.is_empty());
        let ids: Vec<String> = blocks.iter().map(|b| b.meta.ulid.to_string()).collect();
        assert_eq!(
            ids,
            ["01HZZZZZZZZZZZZZZZZZZZZZZ2", "01HZZZZZZZZZZZZZZZZZZZZZZ1"]
        );
        let files = blocks[0].data_files().unwrap();
        assert_eq!(
            files,
            [
                ("chunks/000001".to_owned(), 2),
                ("index".to_owned(), 3),
                ("tombstones".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn a_block_with_a_broken_or_mismatched_meta_is_reported_not_listed() {
        let t = tempfile::tempdir().unwrap();
        let a = write_block(t.path(), "01HZZZZZZZZZZZZZZZZZZZZZZ1", 0);
        std::fs::write(a.join(META_FILE), b"{not json").unwrap();
        let b = write_block(t.path(), "01HZZZZZZZZZZZZZZZZZZZZZZ2", 0);
        let meta = serde_json::json!({"ulid": "01HZZZZZZZZZZZZZZZZZZZZZZ9", "minTime": 0, "maxTime": 1, "version": 1});
        std::fs::write(b.join(META_FILE), meta.to_string()).unwrap();
        let c = write_block(t.path(), "01HZZZZZZZZZZZZZZZZZZZZZZ3", 0);
        let meta = serde_json::json!({"ulid": "01HZZZZZZZZZZZZZZZZZZZZZZ3", "minTime": 0, "maxTime": 1, "version": 2});
        std::fs::write(c.join(META_FILE), meta.to_string()).unwrap();
        let (blocks, invalid) = list_blocks(t.path()).unwrap();
        assert!(blocks.is_empty());
        assert_eq!(invalid.len(), 3, "{invalid:?}");
    }
}
