//! Shared by the golden-vector tests: the instance record of the JSON files and the
//! descriptor it describes.

use std::path::Path;

use ringkit_ring::{Desc, InstanceDesc, InstanceState};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// One instance as the golden files record it (dskit's field names).
#[derive(Deserialize)]
pub(crate) struct Instance {
    pub(crate) id: String,
    pub(crate) addr: String,
    pub(crate) zone: String,
    pub(crate) state: String,
    pub(crate) tokens: Vec<u32>,
    pub(crate) timestamp: i64,
    pub(crate) registered_timestamp: i64,
    pub(crate) read_only: bool,
    pub(crate) read_only_updated_timestamp: i64,
}

/// The descriptor holding `instances`.
pub(crate) fn desc_of(instances: &[Instance]) -> Desc {
    let mut d = Desc::new();
    for i in instances {
        let state =
            InstanceState::parse(&i.state).unwrap_or_else(|| panic!("unknown state {:?}", i.state));
        let inst = InstanceDesc {
            addr: i.addr.clone(),
            timestamp: i.timestamp,
            state: state as i32,
            tokens: i.tokens.clone().into(),
            zone: i.zone.clone(),
            registered_timestamp: i.registered_timestamp,
            id: i.id.clone(),
            read_only_updated_timestamp: i.read_only_updated_timestamp,
            read_only: i.read_only,
            ..Default::default()
        };
        d.ingesters.insert(i.id.clone(), inst);
    }
    d
}

/// Parses one golden JSON file, naming the file in any error.
pub(crate) fn load<T: DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}
