//! `mimir.shipper.json`: the local record of shipped blocks, in Mimir's format
//! (`{"version": 1, "shipped": {"<ULID>": <unix seconds>}}`), written atomically.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::error::ShipError;

/// File name of the marker in a tenant's TSDB directory (Mimir's name).
pub const MARKER_FILE: &str = "mimir.shipper.json";

/// Largest marker file read (a tenant's local blocks fit in far less).
const MAX_MARKER_BYTES: u64 = 16 << 20;

/// The blocks of one tenant that are complete in the bucket, with when they were shipped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ShippedMarker {
    /// Format version; only 1 exists.
    pub version: u32,
    /// Block id -> Unix time (seconds, ms precision) it was found complete in the bucket.
    pub shipped: BTreeMap<Ulid, f64>,
}

impl ShippedMarker {
    /// An empty version-1 marker.
    pub fn new() -> ShippedMarker {
        ShippedMarker {
            version: 1,
            shipped: BTreeMap::new(),
        }
    }

    /// Reads `<dir>/mimir.shipper.json`; `None` when there is none (nothing shipped yet).
    pub fn read(dir: &Path) -> Result<Option<ShippedMarker>, ShipError> {
        let path = dir.join(MARKER_FILE);
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ShipError::io(&path, e)),
        };
        let bad = |reason: String| {
            ShipError::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
            )
        };
        if len > MAX_MARKER_BYTES {
            return Err(bad(format!("{len} bytes, more than {MAX_MARKER_BYTES}")));
        }
        let bytes = std::fs::read(&path).map_err(|e| ShipError::io(&path, e))?;
        let m: ShippedMarker = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if m.version != 1 {
            return Err(bad(format!("version {}, want 1", m.version)));
        }
        Ok(Some(m))
    }

    /// Writes `<dir>/mimir.shipper.json` atomically: a temporary file, fsync, rename, fsync
    /// of the directory. A crash leaves the old file or the new one, never a torn one.
    pub fn write(&self, dir: &Path) -> Result<(), ShipError> {
        let path = dir.join(MARKER_FILE);
        let tmp = dir.join(format!("{MARKER_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).expect("a marker always serializes");
        let mut f = std::fs::File::create(&tmp).map_err(|e| ShipError::io(&tmp, e))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| ShipError::io(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(|e| ShipError::io(&path, e))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| ShipError::io(dir, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_in_mimirs_shape_and_leaves_no_temporary_file() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(ShippedMarker::read(t.path()).unwrap(), None);
        let mut m = ShippedMarker::new();
        let id = Ulid::from_string("01HZZZZZZZZZZZZZZZZZZZZZZ1").unwrap();
        m.shipped.insert(id, 1_700_000_000.25);
        m.write(t.path()).unwrap();
        let text = std::fs::read_to_string(t.path().join(MARKER_FILE)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(
            json["shipped"]["01HZZZZZZZZZZZZZZZZZZZZZZ1"],
            1_700_000_000.25
        );
        assert_eq!(ShippedMarker::read(t.path()).unwrap(), Some(m));
        let names: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [MARKER_FILE]);
    }

    #[test]
    fn a_torn_or_unknown_marker_is_an_error_not_a_panic() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join(MARKER_FILE), b"{\"version\":1,\"shi").unwrap();
        assert!(ShippedMarker::read(t.path()).is_err());
        std::fs::write(
            t.path().join(MARKER_FILE),
            b"{\"version\":2,\"shipped\":{}}",
        )
        .unwrap();
        assert!(ShippedMarker::read(t.path()).is_err());
    }
}
