//! Files singlora writes: the safetensors layer dump ([`layer_dump`]) and atomic writes.

pub mod layer_dump;

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::ArrayD;

use crate::scalar::Scalar;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed, then renamed over `path`.
/// A reader never sees a half-written file, and an interrupted write leaves the old file (or none). The temporary
/// name is unique to the process and the call, so concurrent writers never share one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid("path", path.display(), "a file path"))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Serialises named tensors and a string map to the safetensors format, deterministically: the same inputs always
/// give the same bytes (tensors in the given order, metadata keys sorted), which `safetensors`' own writer does not
/// guarantee for its metadata map.
///
/// Format: an 8-byte little-endian header length, a JSON header `{"__metadata__": {...}, name: {"dtype", "shape",
/// "data_offsets": [begin, end]}, ...}` padded with spaces to a multiple of 8 bytes, then the little-endian data.
/// Files are read back (and so validated) with the `safetensors` crate in the tests.
pub fn safetensors_bytes<T: Scalar>(
    tensors: &[(String, ArrayD<T>)],
    dtype: &str,
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::to_value(metadata).expect("string map"),
    );
    let mut data = Vec::new();
    for (name, value) in tensors {
        let begin = data.len();
        data.extend(T::write_le(
            value
                .as_standard_layout()
                .as_slice()
                .expect("standard layout"),
        ));
        header.insert(name.clone(), serde_json::json!({ "dtype": dtype, "shape": value.shape(), "data_offsets": [begin, data.len()] }));
    }
    let mut json = serde_json::to_vec(&serde_json::Value::Object(header)).expect("json");
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + data.len());
    out.extend((json.len() as u64).to_le_bytes());
    out.extend(json);
    out.extend(data);
    out
}

/// Serde for an `f64` that keeps non-finite values. JSON has no NaN or ∞ (serde_json writes them as `null`, which
/// then fails to read back), yet a diverged run's values are results: they are written as the strings `"NaN"`,
/// `"inf"` and `"-inf"`, and finite values as numbers. Use with `#[serde(with = "crate::io::float")]`.
pub mod float {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// A number or the name of a non-finite one.
    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    pub(super) enum Repr {
        Number(f64),
        Name(String),
    }

    pub(super) fn repr(v: f64) -> Repr {
        if v.is_finite() {
            Repr::Number(v)
        } else if v.is_nan() {
            Repr::Name("NaN".into())
        } else if v > 0.0 {
            Repr::Name("inf".into())
        } else {
            Repr::Name("-inf".into())
        }
    }

    pub(super) fn value<E: serde::de::Error>(r: Repr) -> Result<f64, E> {
        match r {
            Repr::Number(v) => Ok(v),
            Repr::Name(s) => match s.as_str() {
                "NaN" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                other => Err(E::custom(format!(
                    "invalid number {other:?}: expected a number, \"NaN\", \"inf\" or \"-inf\""
                ))),
            },
        }
    }

    /// Writes `v`.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        repr(*v).serialize(s)
    }

    /// Reads a value written by [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        value(Repr::deserialize(d)?)
    }
}

/// [`float`] for a `Vec<f64>`: `#[serde(with = "crate::io::floats")]`.
pub mod floats {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::float::{repr, value, Repr};

    /// Writes `v`.
    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        v.iter().map(|&x| repr(x)).collect::<Vec<_>>().serialize(s)
    }

    /// Reads values written by [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Vec::<Repr>::deserialize(d)?
            .into_iter()
            .map(value)
            .collect()
    }
}
