//! What every study does with files and names: read a study file over its command's default study with
//! `--set path=value` overrides (errors name the flag or file, the field, the value and what is accepted), read run
//! files back, check grids and names, and turn series names into file names.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Parses TOML text into `T` (`origin` names the source in errors, with line and column).
pub fn from_toml<T: DeserializeOwned>(text: &str, origin: &Path) -> Result<T> {
    toml::from_str(text).map_err(|e| toml_error(origin, text, &e))
}

/// Parses TOML text into a table (syntax errors with line and column).
fn table(text: &str, origin: &Path) -> Result<toml::Table> {
    text.parse()
        .map_err(|e: toml::de::Error| toml_error(origin, text, &e))
}

/// One `--set path=value`: the dotted path and the TOML value (a bare word that is not TOML is taken as a string).
fn parse_set(set: &str) -> Result<(Vec<String>, toml::Value)> {
    let (key, value) = set.split_once('=').ok_or_else(|| {
        Error::invalid("--set", set, "path=value, e.g. steps=4 or adapter.rank=2")
    })?;
    let parts: Vec<String> = key
        .trim()
        .split('.')
        .map(|p| p.trim().to_string())
        .collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::invalid(
            "--set",
            set,
            "a dotted path of field names, e.g. task.examples=8",
        ));
    }
    let value = format!("v = {}", value.trim())
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.trim().to_string()));
    Ok((parts, value))
}

/// Sets `path` to `value` in `table`, creating tables on the way.
fn apply_set(
    table: &mut toml::Table,
    path: &[String],
    value: toml::Value,
    set: &str,
) -> Result<()> {
    let mut node = table;
    for part in &path[..path.len() - 1] {
        node = node
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .ok_or_else(|| {
                Error::invalid(
                    "--set",
                    set,
                    &format!("a path through tables ({part} is not a table)"),
                )
            })?;
    }
    node.insert(path[path.len() - 1].clone(), value);
    Ok(())
}

/// Reads a study: the default study `default` (named `default_origin`), each top-level key of the file at `path`
/// replacing the default's, then the `--set path=value` overrides. Syntax errors name the file, line and column;
/// a value of the wrong type names the `--set` that gave it, or the file and the field.
pub fn load_config<T: DeserializeOwned>(
    path: Option<&Path>,
    default: &str,
    default_origin: &str,
    sets: &[String],
) -> Result<T> {
    let mut merged = table(default, default_origin.as_ref())?;
    let origin = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            merged.extend(table(&text, p)?);
            p.display().to_string()
        }
        None => default_origin.to_string(),
    };
    let mut parsed = Vec::with_capacity(sets.len());
    for set in sets {
        let (key, value) = parse_set(set)?;
        apply_set(&mut merged, &key, value, set)?;
        parsed.push((key.join("."), set.as_str()));
    }
    let origin = if !sets.is_empty() && path.is_none() {
        format!("{origin} (with --set)")
    } else {
        origin
    };
    merged
        .try_into()
        .map_err(|e: toml::de::Error| type_error(&e, &parsed, &origin))
}

/// A deserialisation error of the merged study, blamed on the `--set` that gave the field, or on the file.
fn type_error(e: &toml::de::Error, sets: &[(String, &str)], origin: &str) -> Error {
    let text = e.to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let problem = lines.next().unwrap_or("").to_string();
    let within = lines
        .find_map(|l| l.strip_prefix("in `").and_then(|l| l.strip_suffix('`')))
        .unwrap_or("")
        .to_string();
    let unknown = problem
        .strip_prefix("unknown field `")
        .and_then(|r| r.split_once('`'))
        .map(|(name, _)| name.to_string());
    let field = match (&unknown, within.is_empty()) {
        (Some(name), true) => name.clone(),
        (Some(name), false) => format!("{within}.{name}"),
        (None, _) => within.clone(),
    };
    let related = |key: &str| {
        key == field
            || field.starts_with(&format!("{key}."))
            || key.starts_with(&format!("{field}."))
    };
    match sets.iter().rev().find(|(key, _)| related(key)) {
        Some((key, set)) if unknown.is_some() => {
            let expected = problem.split_once(", expected ").map_or("", |(_, w)| w);
            let value = set.split_once('=').map_or(*set, |(_, v)| v.trim());
            Error::invalid(
                &format!("--set {key}"),
                value,
                &format!("a known field ({} is not one; expected {expected})", field),
            )
        }
        Some((key, set)) => set_error(key, set, &problem),
        None => Error::Config {
            path: origin.into(),
            message: if field.is_empty() {
                problem
            } else {
                format!("{field}: {problem}")
            },
        },
    }
}

/// `invalid --set KEY = VALUE: expected WHAT` from a deserialiser's `problem` ("invalid type: …, expected u64").
fn set_error(key: &str, set: &str, problem: &str) -> Error {
    let value = set.split_once('=').map_or(set, |(_, v)| v.trim());
    let field = if key.is_empty() {
        "--set".to_string()
    } else {
        format!("--set {key}")
    };
    // A named value's own error ("invalid task.kind = x: expected one of …") already says what is accepted; when it is
    // of a field inside the set value (`arms=[{method="lorax"}]`), that field and value are named too.
    let own = problem
        .strip_prefix("invalid ")
        .and_then(|rest| rest.split_once(": expected "))
        .and_then(|(fv, what)| fv.split_once(" = ").map(|(f, v)| (f, v, what)));
    if let Some((inner, inner_value, what)) = own {
        if key == inner || key.ends_with(&format!(".{inner}")) {
            return Error::invalid(&field, value, what);
        }
        return Error::invalid(&format!("{field}: {inner}"), inner_value, what);
    }
    let expected = match problem.rsplit_once(", expected ") {
        Some((_, what)) => plain_type(what),
        None => problem.to_string(),
    };
    Error::invalid(&field, value, &expected)
}

/// A serde type name in words: `u64` → "a non-negative integer".
fn plain_type(what: &str) -> String {
    match what.trim() {
        "u64" | "usize" | "u32" => "a non-negative integer".into(),
        "i64" | "i32" => "an integer".into(),
        "f64" | "f32" => "a number".into(),
        "a boolean" | "bool" => "true or false".into(),
        other => other.to_string(),
    }
}

/// Names the `--set` flag in a validation error whose field one of `sets` gave: `invalid --set steps = 0: …`. A set
/// gave the field if its path is the field, lies above it (`lr_grid` gives `lr_grid.near_best`, which is named), lies
/// below it or ends with it (`adapter.rank` gives `rank`, and the set's path is named).
pub fn blame_sets<T>(result: Result<T>, sets: &[String]) -> Result<T> {
    result.map_err(|e| match e {
        Error::Invalid {
            field,
            value,
            expected,
        } => {
            let key = sets.iter().rev().find_map(|s| {
                let key = s.split_once('=').map_or("", |(k, _)| k.trim());
                if key == field || field.starts_with(&format!("{key}.")) {
                    Some(field.clone())
                } else if key.starts_with(&format!("{field}."))
                    || key.ends_with(&format!(".{field}"))
                {
                    Some(key.to_string())
                } else {
                    None
                }
            });
            Error::Invalid {
                field: key.map_or(field, |k| format!("--set {k}")),
                value,
                expected,
            }
        }
        other => other,
    })
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

/// Reads one JSON file (a finished run).
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Checks a study's grid: widths positive and strictly increasing, seeds present and distinct, at least one step.
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
    if let Some((_, s)) = seeds
        .iter()
        .enumerate()
        .find(|(i, s)| seeds[..*i].contains(s))
    {
        return Err(Error::invalid(
            "seeds",
            format!("{seeds:?}"),
            &format!("distinct seeds ({s} appears twice)"),
        ));
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

/// A file-name-safe form of a series name: `lora+@c=0.5` → `loraplus_c0.5`.
pub fn file_stem(series: &str) -> String {
    series
        .replace('+', "plus")
        .replace('@', "_")
        .replace('=', "")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
