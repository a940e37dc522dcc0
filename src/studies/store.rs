//! What every study does with files: read a TOML config with `--set path=value` overrides, claim an output folder
//! (refusing one that holds a different study), and keep one JSON file per finished run so an interrupted study
//! resumes without recomputing it. All writes are atomic (`io::write_atomic`).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::io::write_atomic;

/// Parses TOML text into `T` (`origin` names the source in errors, with line and column).
pub fn from_toml<T: DeserializeOwned>(text: &str, origin: &Path) -> Result<T> {
    toml::from_str(text).map_err(|e| toml_error(origin, text, &e))
}

/// Reads a config file (or `default` with its `default_origin` when `path` is `None`) and applies `--set path=value`
/// overrides.
pub fn load_config<T: DeserializeOwned>(
    path: Option<&Path>,
    default: &str,
    default_origin: &str,
    sets: &[String],
) -> Result<T> {
    let (text, origin) = match path {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?,
            p.to_path_buf(),
        ),
        None => (default.to_string(), PathBuf::from(default_origin)),
    };
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| toml_error(&origin, &text, &e))?;
    for set in sets {
        let (key, value) = set.split_once('=').ok_or_else(|| {
            Error::invalid("--set", set, "path=value, e.g. steps=4 or adapter.rank=2")
        })?;
        let value: toml::Value = format!("v = {}", value.trim())
            .parse::<toml::Table>()
            .map(|mut t| t.remove("v").expect("v"))
            .or_else(|_| Ok::<_, Error>(toml::Value::String(value.trim().to_string())))?;
        let mut node = &mut table;
        let parts: Vec<&str> = key.trim().split('.').collect();
        for part in &parts[..parts.len() - 1] {
            node = node
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default()))
                .as_table_mut()
                .ok_or_else(|| {
                    Error::invalid(
                        "--set",
                        key,
                        &format!("a path through tables; {part} is not a table"),
                    )
                })?;
        }
        node.insert(parts[parts.len() - 1].to_string(), value);
    }
    table
        .try_into()
        .map_err(|e: toml::de::Error| toml_error(&origin, &text, &e))
}

/// One line: `FILE: line L, column C: MESSAGE` (line and column when the parser knows the span).
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> Error {
    let message = e.message().trim().replace('\n', " ");
    let message = match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    };
    Error::Config {
        path: path.to_path_buf(),
        message,
    }
}

/// Claims `out` for the study whose normalised config is `config_text`: creates `out/runs`, writes
/// `out/config.toml`, and refuses a folder that already holds a different study. Returns the runs folder.
pub fn claim_out_dir(out: &Path, config_text: &str) -> Result<PathBuf> {
    let runs_dir = out.join("runs");
    std::fs::create_dir_all(&runs_dir).map_err(|e| Error::io(&runs_dir, e))?;
    let stamp = out.join("config.toml");
    match std::fs::read_to_string(&stamp) {
        Ok(existing) if existing != config_text => Err(Error::invalid(
            "--out",
            out.display(),
            "a folder without results, or one holding this same study (it holds a different config.toml)",
        )),
        Ok(_) => Ok(runs_dir),
        Err(_) => {
            write_atomic(&stamp, config_text.as_bytes())?;
            Ok(runs_dir)
        }
    }
}

/// Reads one finished run.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Checks a study's grid: widths positive and strictly increasing, at least one seed, at least one step.
pub fn validate_grid(widths: &[usize], seeds: &[u64], steps: u64) -> Result<()> {
    if widths.is_empty() {
        return Err(Error::invalid(
            "widths",
            "[]",
            "at least one positive width",
        ));
    }
    for (i, &w) in widths.iter().enumerate() {
        if w == 0 {
            return Err(Error::invalid("widths", 0, "positive integers"));
        }
        if i > 0 && w <= widths[i - 1] {
            return Err(Error::invalid(
                "widths",
                format!("{widths:?}"),
                "strictly increasing widths",
            ));
        }
    }
    if seeds.is_empty() {
        return Err(Error::invalid("seeds", "[]", "at least one seed"));
    }
    if steps == 0 {
        return Err(Error::invalid("steps", 0, "a positive integer"));
    }
    Ok(())
}

/// Checks a study's name, which names its default output folder `results/NAME`: non-empty, one path component.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.trim().is_empty() && name != "." && name != ".." && !name.contains(['/', '\\']);
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            format!("{name:?}"),
            "a non-empty name without path separators (it names the folder results/NAME)",
        ))
    }
}
