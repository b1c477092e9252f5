//! The tokens file on disk (spec/ring.md §1.3): where a member keeps its tokens across
//! restarts, so that the data it holds still belongs to it when it comes back.
//!
//! The format (dskit's `{"tokens":[1,2,3]}`) is [`ringkit_ring::tokens::format`]; this
//! module adds the file I/O, which the sans-IO ring crate does not do. The
//! [`Lifecycler`](crate::Lifecycler) calls it when `tokens_file_path` is set.
//!
//! [`store`] is crash-safe: it writes `<path>.tmp`, fsyncs it, renames it over `<path>` and
//! fsyncs the directory, so a reader sees either the old file or the new one, never a torn
//! one. On failure the `.tmp` file is left behind for debugging, as dskit does.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("tokens");
//! ringkit_lifecycle::tokens_file::store(&path, &[9, 4]).unwrap();
//! assert_eq!(ringkit_lifecycle::tokens_file::load(&path).unwrap(), vec![4, 9]);
//! ```

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ringkit_ring::tokens::format;

/// Why the tokens file could not be stored or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokensFileError {
    /// No path was configured.
    #[error("tokens file path is empty")]
    EmptyPath,
    /// The file does not exist: a first start, not a failure, for most callers.
    #[error("tokens file {} does not exist", .0.display())]
    NotFound(PathBuf),
    /// Reading, writing, syncing or renaming failed.
    #[error("tokens file {}: {source}", path.display())]
    Io {
        /// The file the operation was on.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file exists but is not a valid `{"tokens":[...]}` document.
    #[error("tokens file {} is corrupt: {source}", path.display())]
    Corrupt {
        /// The file that was read.
        path: PathBuf,
        /// What the decoder rejected.
        source: format::DecodeError,
    },
}

/// Atomically replaces the file at `path` with `tokens` as `{"tokens":[...]}`.
pub fn store(path: impl AsRef<Path>, tokens: &[u32]) -> Result<(), TokensFileError> {
    let path = path.as_ref();
    if path.as_os_str().is_empty() {
        return Err(TokensFileError::EmptyPath);
    }
    let mut tmp = OsString::from(path.as_os_str());
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| TokensFileError::Io { path: p, source }
    };

    let bytes = format::encode(tokens);
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(&bytes).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_parent_dir(path).map_err(io_err(path))
}

/// Reads the tokens stored at `path`, sorted ascending (older writers did not sort).
/// Duplicates are kept, as dskit keeps them.
pub fn load(path: impl AsRef<Path>) -> Result<Vec<u32>, TokensFileError> {
    let path = path.as_ref();
    if path.as_os_str().is_empty() {
        return Err(TokensFileError::EmptyPath);
    }
    let bytes = fs::read(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            TokensFileError::NotFound(path.to_path_buf())
        } else {
            TokensFileError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    format::decode(&bytes).map_err(|source| TokensFileError::Corrupt {
        path: path.to_path_buf(),
        source,
    })
}

/// Makes the rename durable by syncing the directory that holds `path` (Unix only; other
/// platforms cannot open a directory for syncing).
fn sync_parent_dir(path: &Path) -> io::Result<()> {
    if cfg!(unix) {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    #[test]
    fn stored_tokens_load_back_sorted() {
        let d = dir();
        let path = d.path().join("tokens");
        store(&path, &[1, 5, 3]).unwrap();
        assert_eq!(load(&path).unwrap(), vec![1, 3, 5]);
    }

    #[test]
    fn file_is_dskit_json_and_no_tmp_file_is_left_behind() {
        let d = dir();
        let path = d.path().join("tokens");
        store(&path, &[7, 4294967295]).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            r#"{"tokens":[7,4294967295]}"#
        );
        assert!(!d.path().join("tokens.tmp").exists());
    }

    #[test]
    fn store_replaces_an_existing_file() {
        let d = dir();
        let path = d.path().join("tokens");
        store(&path, &[1, 2, 3]).unwrap();
        store(&path, &[9]).unwrap();
        assert_eq!(load(&path).unwrap(), vec![9]);
    }

    #[test]
    fn large_token_lists_round_trip() {
        let d = dir();
        let path = d.path().join("tokens");
        let tokens: Vec<u32> = (0..512u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
        store(&path, &tokens).unwrap();
        let mut sorted = tokens.clone();
        sorted.sort_unstable();
        assert_eq!(load(&path).unwrap(), sorted);
    }

    #[test]
    fn missing_file_is_reported_as_not_found() {
        let d = dir();
        let path = d.path().join("absent");
        match load(&path) {
            Err(TokensFileError::NotFound(p)) => assert_eq!(p, path),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    #[test]
    fn corrupt_files_are_reported_as_corrupt_naming_the_file() {
        let d = dir();
        let path = d.path().join("tokens");
        for bad in ["", "not json", r#"{"tokens":[4294967296]}"#, "[1,2,3]"] {
            fs::write(&path, bad).unwrap();
            match load(&path) {
                Err(TokensFileError::Corrupt { path: p, .. }) => assert_eq!(p, path),
                other => panic!("{bad:?} should be corrupt, got {other:?}"),
            }
        }
    }

    #[test]
    fn go_style_null_tokens_load_as_none() {
        let d = dir();
        let path = d.path().join("tokens");
        fs::write(&path, r#"{"tokens":null}"#).unwrap();
        assert_eq!(load(&path).unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn empty_path_is_rejected_for_both_store_and_load() {
        assert!(matches!(store("", &[1]), Err(TokensFileError::EmptyPath)));
        assert!(matches!(load(""), Err(TokensFileError::EmptyPath)));
    }

    #[test]
    fn storing_into_a_missing_directory_is_an_io_error_naming_the_tmp_file() {
        let d = dir();
        let path = d.path().join("no-such-dir").join("tokens");
        match store(&path, &[1]) {
            Err(TokensFileError::Io { path: p, .. }) => {
                assert_eq!(p, d.path().join("no-such-dir").join("tokens.tmp"));
            }
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn reading_a_directory_is_an_io_error() {
        let d = dir();
        assert!(matches!(load(d.path()), Err(TokensFileError::Io { .. })));
    }
}
