//! The tokens file format (spec/ring.md §1.3), without the file.
//!
//! An instance that restarts should come back with the tokens it had, so that the data it
//! holds still belongs to it. The lifecycler keeps them in a small JSON file in dskit's
//! format, `{"tokens":[1,2,3]}`. This module only turns tokens into those bytes and back;
//! reading and writing the file (atomically) is the lifecycle crate's job
//! (`ringkit_lifecycle::tokens_file`), which keeps this crate free of I/O.
//!
//! ```
//! use ringkit_ring::tokens::format;
//!
//! let bytes = format::encode(&[7, 3]);
//! assert_eq!(bytes, br#"{"tokens":[7,3]}"#);
//! // Decoding sorts: older writers did not.
//! assert_eq!(format::decode(&bytes).unwrap(), vec![3, 7]);
//! assert!(format::decode(b"not json").is_err());
//! ```

use std::fmt::Write as _;

use serde::Deserialize;

/// Why bytes are not a tokens file: they are not a `{"tokens":[...]}` JSON document of
/// 32-bit unsigned tokens. Callers treat such a file as corrupt (and usually ignore it,
/// generating fresh tokens) rather than failing to start.
#[derive(Debug, thiserror::Error)]
#[error("not a {{\"tokens\":[...]}} document: {source}")]
pub struct DecodeError {
    /// What the JSON parser rejected.
    #[from]
    source: serde_json::Error,
}

/// The accepted shape. A missing or `null` `"tokens"` reads as no tokens (Go writes `null`
/// for an empty list); unknown keys such as Cortex's `"previousState"` are ignored.
#[derive(Deserialize)]
struct TokensJson {
    #[serde(default)]
    tokens: Option<Vec<u32>>,
}

/// The tokens file content for `tokens`, in the given order: `{"tokens":[...]}`, byte for
/// byte what dskit writes.
pub fn encode(tokens: &[u32]) -> Vec<u8> {
    // 11 bytes fit any token and its comma.
    let mut out = String::with_capacity(13 + tokens.len() * 11);
    out.push_str(r#"{"tokens":["#);
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Writing into a String cannot fail.
        let _ = write!(out, "{t}");
    }
    out.push_str("]}");
    out.into_bytes()
}

/// The tokens in a tokens file's content, sorted ascending (older writers did not sort).
/// Duplicates are kept, as dskit keeps them.
pub fn decode(bytes: &[u8]) -> Result<Vec<u32>, DecodeError> {
    let parsed: TokensJson = serde_json::from_slice(bytes)?;
    let mut tokens = parsed.tokens.unwrap_or_default();
    if !tokens.is_sorted() {
        tokens.sort_unstable();
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encoding_is_dskit_json() {
        assert_eq!(encode(&[7, 4294967295]), br#"{"tokens":[7,4294967295]}"#);
        assert_eq!(encode(&[]), br#"{"tokens":[]}"#);
    }

    #[test]
    fn decoding_sorts_and_keeps_duplicates() {
        assert_eq!(
            decode(br#"{"tokens":[5,1,5,3]}"#).unwrap(),
            vec![1, 3, 5, 5]
        );
    }

    #[test]
    fn go_style_null_or_absent_tokens_and_extra_keys_are_accepted() {
        assert_eq!(decode(br#"{"tokens":null}"#).unwrap(), Vec::<u32>::new());
        assert_eq!(decode(b"{}").unwrap(), Vec::<u32>::new());
        assert_eq!(
            decode(br#"{"tokens":[3,1],"previousState":"READONLY"}"#).unwrap(),
            vec![1, 3]
        );
    }

    #[test]
    fn malformed_documents_are_decode_errors() {
        for bad in [
            "",
            "not json",
            r#"{"tokens":[1,2"#,
            r#"{"tokens":[-1]}"#,
            r#"{"tokens":[4294967296]}"#,
            r#"{"tokens":"1,2"}"#,
            "[1,2,3]",
        ] {
            let err = decode(bad.as_bytes()).expect_err(bad);
            assert!(err.to_string().starts_with("not a {\"tokens\""), "{err}");
        }
    }

    proptest! {
        #[test]
        fn any_token_list_round_trips_sorted(tokens in proptest::collection::vec(any::<u32>(), 0..600)) {
            let mut want = tokens.clone();
            want.sort_unstable();
            prop_assert_eq!(decode(&encode(&tokens)).unwrap(), want);
        }

        #[test]
        fn encoding_matches_serde_json(tokens in proptest::collection::vec(any::<u32>(), 0..50)) {
            let want = serde_json::to_vec(&serde_json::json!({ "tokens": tokens })).unwrap();
            prop_assert_eq!(encode(&tokens), want);
        }
    }
}
