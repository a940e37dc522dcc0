//! Shards of one study into one folder (`singlora merge DIR`): every shard folder `DIR/shards/I-of-N` must hold the
//! same study (the same `config.toml`) and the same shard count; their run files are gathered into `DIR/runs`, and
//! the study is then read back as if it had run at once, so its tables are byte for byte those of a single process.

use std::path::{Path, PathBuf};

use super::engine::{claim_folder, Shard, Study, StudyLock};
use crate::error::{Error, Result};
use crate::io::write_atomic;

/// The shard folders of a study folder, with their common `config.toml` text.
pub struct Shards {
    /// The shard count N.
    pub count: usize,
    /// Each shard present, with its folder, in index order.
    pub found: Vec<(Shard, PathBuf)>,
    /// Their common `config.toml`.
    pub config: String,
}

/// The folders of `root` that hold a shard (a `shard.json`), with their shard, in directory order.
fn shard_folders(root: &Path, entries: std::fs::ReadDir) -> Result<Vec<(Shard, PathBuf)>> {
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(root, e))?.path();
        let marker = path.join("shard.json");
        if marker.exists() {
            found.push((super::store::read_json(&marker)?, path));
        }
    }
    Ok(found)
}

impl Shards {
    /// The shards of `dir`; refuses shards of different studies or counts, and a folder with none.
    pub fn read(dir: &Path) -> Result<Shards> {
        let root = dir.join("shards");
        let no_shards = || {
            Error::invalid(
                "dir",
                dir.display(),
                "a study folder with shards (DIR/shards/I-of-N, written by --shard I/N)",
            )
        };
        let entries = match std::fs::read_dir(&root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_shards()),
            r => r.map_err(|e| Error::io(&root, e))?,
        };
        let mut found = shard_folders(&root, entries)?;
        found.sort_by_key(|(s, _)| s.index);
        let Some((first, first_dir)) = found.first().cloned() else {
            return Err(no_shards());
        };
        let stamp = |d: &Path| {
            let p = d.join("config.toml");
            std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))
        };
        let config = stamp(&first_dir)?;
        for (shard, path) in &found {
            if shard.count != first.count {
                return Err(Error::invalid(
                    "shard",
                    format!("{shard} in {}", path.display()),
                    &format!(
                        "shards of one split ({} of them, as {})",
                        first.count,
                        first_dir.display()
                    ),
                ));
            }
            if stamp(path)? != config {
                return Err(Error::invalid(
                    "shard",
                    path.display(),
                    &format!(
                        "a shard of the same study as {} (its config.toml differs)",
                        first_dir.display()
                    ),
                ));
            }
        }
        Ok(Shards {
            count: first.count,
            found,
            config,
        })
    }

    /// The shard indices with no folder.
    pub fn missing(&self) -> Vec<usize> {
        (0..self.count)
            .filter(|i| !self.found.iter().any(|(s, _)| s.index == *i))
            .collect()
    }

    /// The study kind recorded in the shards' `config.toml`.
    pub fn kind(&self) -> Option<&str> {
        self.config
            .lines()
            .next()?
            .strip_prefix("# singlora ")?
            .strip_suffix(" study")
    }

    /// The config text without its `# singlora KIND study` first line (what the study's config type parses).
    pub fn body(&self) -> &str {
        self.config.split_once('\n').map_or("", |(_, b)| b)
    }
}

/// What gathering the shards did.
pub struct Gathered {
    /// Run files copied into `DIR/runs`.
    pub copied: usize,
    /// Runs already there.
    pub present: usize,
}

/// Copies every shard's run files of `study` into `dir/runs` (each atomically; a run already there is kept), claiming
/// `dir` for the study, and refuses when a shard is missing or some run has no file in any shard.
pub fn gather<S: Study>(study: &S, dir: &Path, shards: &Shards) -> Result<Gathered> {
    let missing_shards = shards.missing();
    if !missing_shards.is_empty() {
        let list: Vec<String> = missing_shards.iter().map(|i| i.to_string()).collect();
        return Err(Error::invalid(
            "dir",
            dir.display(),
            &format!(
                "every shard of the split (missing: {} of {}; run them with --shard I/{} --out {})",
                list.join(", "),
                shards.count,
                shards.count,
                dir.display()
            ),
        ));
    }
    let _lock = StudyLock::acquire(dir, "merge")?;
    let runs = claim_folder(dir, study.kind(), &study.config_text()?)?;
    let (mut copied, mut present, mut missing) = (0, 0, Vec::new());
    for job in study.jobs() {
        let name = format!("{}.json", study.key(&job));
        let target = runs.join(&name);
        if target.exists() {
            present += 1;
            continue;
        }
        let source = shards
            .found
            .iter()
            .map(|(_, d)| d.join("runs").join(&name))
            .find(|p| p.exists());
        match source {
            Some(p) => {
                let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
                write_atomic(&target, &bytes)?;
                copied += 1;
            }
            None => missing.push(name),
        }
    }
    if !missing.is_empty() {
        return Err(Error::invalid(
            "dir",
            dir.display(),
            &format!(
                "shards whose runs are all finished ({} runs missing, e.g. {}: rerun its shard)",
                missing.len(),
                missing[0]
            ),
        ));
    }
    Ok(Gathered { copied, present })
}
