//! Codecs: how a typed value becomes the bytes a store keeps, and a registry by id.
//!
//! The codec id travels with the value in stores that record it (in-memory, gossip: see
//! `spec/memberlist.md` §3.1), so two clients of one store cannot silently read each
//! other's values as the wrong type: a mismatch is [`Error::CodecMismatch`].

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{CodecError, Error};

/// Turns values of type `V` into bytes and back.
///
/// Contract: `decode(&encode(v))` returns a value equal to `v`; `decode` never panics on
/// any input (it returns [`CodecError::Invalid`]); `id` is stable for the life of a cluster
/// because other processes use it to pick the decoder (dskit's ring uses `ringDesc`).
pub trait Codec<V>: Send + Sync + 'static {
    /// Short stable identifier, recorded next to the value by stores that keep one.
    fn id(&self) -> &str;
    /// Serialises a value.
    fn encode(&self, value: &V) -> Vec<u8>;
    /// Parses bytes produced by [`Codec::encode`] (possibly by another process).
    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError>;

    /// A shortcut for the gossip store's receive path: merge the encoded value `bytes`
    /// into `current` without decoding it fully. `None` means "not handled here" (and
    /// `current` is untouched): decode and merge the usual way. When it answers, the
    /// result must be what decoding and [`crate::Mergeable::merge_verbatim`] would give.
    /// `scratch` is the store's per-value working memory for this codec (see
    /// [`MergeScratch`]).
    fn merge_encoded(
        &self,
        _current: &mut V,
        _bytes: &[u8],
        _scratch: &mut MergeScratch,
    ) -> Option<EncodedMerge> {
        None
    }
}

/// Working memory a codec keeps between [`Codec::merge_encoded`] calls on one stored
/// value (caches, buffers). The store keeps one next to each value and never looks
/// inside; a codec must treat its content as a hint that can be stale or missing.
#[derive(Default)]
pub struct MergeScratch(Option<Box<dyn Any + Send + Sync>>);

impl MergeScratch {
    /// The scratch as a `T`, created empty on first use (or when it held another type).
    pub fn get_or_default<T: Any + Send + Sync + Default>(&mut self) -> Option<&mut T> {
        let slot = self.0.get_or_insert_with(|| Box::new(T::default()));
        if !slot.is::<T>() {
            *slot = Box::new(T::default());
        }
        slot.downcast_mut::<T>()
    }
}

impl std::fmt::Debug for MergeScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "MergeScratch(used)"
        } else {
            "MergeScratch(empty)"
        })
    }
}

/// What [`Codec::merge_encoded`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodedMerge {
    /// Old news: nothing changed.
    Unchanged,
    /// Merged; the change is exactly the encoded value, which may be forwarded as is.
    AppliedVerbatim {
        /// [`crate::Mergeable::merge_content`] of the change (for a ring heartbeat: the
        /// one instance id), so the gossip store can let it replace older queued news
        /// without decoding it.
        content: Vec<String>,
    },
}

/// dskit's `string` codec: raw UTF-8, no compression.
#[derive(Debug, Default, Clone, Copy)]
pub struct StringCodec;

impl Codec<String> for StringCodec {
    fn id(&self) -> &str {
        "string"
    }
    fn encode(&self, value: &String) -> Vec<u8> {
        value.as_bytes().to_vec()
    }
    fn decode(&self, bytes: &[u8]) -> Result<String, CodecError> {
        String::from_utf8(bytes.to_vec()).map_err(|e| CodecError::invalid("string", e))
    }
}

/// Passes bytes through unchanged, under a chosen id. Useful for tools that copy values
/// between stores without knowing their type, and for tests that plant raw bytes.
#[derive(Debug, Clone)]
pub struct BytesCodec {
    id: String,
}

impl BytesCodec {
    /// A pass-through codec that claims the id `id`.
    pub fn with_id(id: impl Into<String>) -> Self {
        BytesCodec { id: id.into() }
    }
}

impl Default for BytesCodec {
    fn default() -> Self {
        BytesCodec::with_id("bytes")
    }
}

impl Codec<Vec<u8>> for BytesCodec {
    fn id(&self) -> &str {
        &self.id
    }
    fn encode(&self, value: &Vec<u8>) -> Vec<u8> {
        value.clone()
    }
    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(bytes.to_vec())
    }
}

/// Codecs by id, for stores that hold values of several types (the gossip store receives
/// values tagged with a codec id and must find the decoder).
///
/// Lookups are typed: asking for id `ringDesc` as a `Codec<String>` is
/// [`CodecError::WrongType`], never a panic.
#[derive(Default, Clone)]
pub struct CodecRegistry {
    codecs: HashMap<String, Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for CodecRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<_> = self.codecs.keys().collect();
        ids.sort();
        f.debug_struct("CodecRegistry").field("ids", &ids).finish()
    }
}

impl CodecRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `codec` under its id, replacing any codec with the same id.
    pub fn register<V: 'static>(&mut self, codec: Arc<dyn Codec<V>>) {
        let id = codec.id().to_owned();
        self.codecs.insert(id, Arc::new(codec));
    }

    /// The codec registered as `id`, typed as `Codec<V>`.
    pub fn get<V: 'static>(&self, id: &str) -> Result<Arc<dyn Codec<V>>, CodecError> {
        let any = self
            .codecs
            .get(id)
            .ok_or_else(|| CodecError::UnknownId(id.to_owned()))?;
        any.downcast_ref::<Arc<dyn Codec<V>>>()
            .cloned()
            .ok_or_else(|| CodecError::WrongType { id: id.to_owned() })
    }

    /// Registered ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<_> = self.codecs.keys().cloned().collect();
        ids.sort();
        ids
    }
}

/// A client's codec plus the checks every store applies: codec id and value size.
pub(crate) struct ValueCodec<V> {
    codec: Arc<dyn Codec<V>>,
    max_value_size: usize,
}

impl<V> Clone for ValueCodec<V> {
    fn clone(&self) -> Self {
        ValueCodec {
            codec: self.codec.clone(),
            max_value_size: self.max_value_size,
        }
    }
}

impl<V: 'static> ValueCodec<V> {
    pub(crate) fn new(codec: Arc<dyn Codec<V>>, max_value_size: usize) -> Self {
        ValueCodec {
            codec,
            max_value_size,
        }
    }

    pub(crate) fn id(&self) -> &str {
        self.codec.id()
    }

    /// Encodes and enforces the size limit.
    pub(crate) fn encode(&self, key: &str, value: &V) -> Result<Vec<u8>, Error> {
        let bytes = self.codec.encode(value);
        if bytes.len() > self.max_value_size {
            return Err(Error::TooLarge {
                key: key.to_owned(),
                size: bytes.len(),
                max: self.max_value_size,
            });
        }
        Ok(bytes)
    }

    /// Decodes stored bytes, checking the recorded codec id when the store keeps one.
    pub(crate) fn decode(
        &self,
        key: &str,
        bytes: &[u8],
        stored_codec: Option<&str>,
    ) -> Result<V, Error> {
        if let Some(stored) = stored_codec
            && stored != self.codec.id()
        {
            return Err(Error::CodecMismatch {
                key: key.to_owned(),
                stored: stored.to_owned(),
                expected: self.codec.id().to_owned(),
            });
        }
        self.codec.decode(bytes).map_err(|source| Error::Decode {
            key: key.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_returns_typed_codec_by_id() {
        let mut reg = CodecRegistry::new();
        reg.register::<String>(Arc::new(StringCodec));
        let c = reg.get::<String>("string").unwrap();
        assert_eq!(c.decode(b"hi").unwrap(), "hi");
    }

    #[test]
    fn registry_lookup_with_wrong_type_is_an_error_not_a_panic() {
        let mut reg = CodecRegistry::new();
        reg.register::<String>(Arc::new(StringCodec));
        assert!(matches!(
            reg.get::<Vec<u8>>("string"),
            Err(CodecError::WrongType { .. })
        ));
        assert!(matches!(
            reg.get::<String>("ringDesc"),
            Err(CodecError::UnknownId(_))
        ));
    }

    #[test]
    fn value_codec_rejects_oversized_values_and_foreign_codec_ids() {
        let vc = ValueCodec::new(Arc::new(StringCodec) as Arc<dyn Codec<String>>, 4);
        assert!(matches!(
            vc.encode("k", &"too long".to_owned()),
            Err(Error::TooLarge {
                size: 8,
                max: 4,
                ..
            })
        ));
        assert!(matches!(
            vc.decode("k", b"x", Some("ringDesc")),
            Err(Error::CodecMismatch { .. })
        ));
        assert!(matches!(
            vc.decode("k", &[0xff, 0xfe], Some("string")),
            Err(Error::Decode { .. })
        ));
    }
}
