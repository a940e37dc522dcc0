//! `singlora verify --shard I/N` and `singlora merge` of a verify folder: verify's studies split over processes (a
//! Slurm array) and gathered back.
//!
//! A shard runs slice I of N of *every* engine study the claims need ([`visit_studies`]), each into
//! `OUT/<study>/shards/I-of-N` with the engine's cost balance, and stamps `OUT/shards/I-of-N` with the verify config
//! (preset and claims), so that a merge can refuse shards of different verifies and name missing ones. The merge
//! gathers each study's shards into `OUT/<study>/runs` ([`gather_all`]); `verify` then finds every run finished and
//! computes only what is not an engine study (the invariance trajectories and parameter counts, milliseconds), so its
//! tables are those of a single process byte for byte.

use serde::{Deserialize, Serialize};

use super::plan::{check, visit_studies, VerifyOptions, VisitStudy};
use super::{Claim, Preset};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::studies::engine::{run_study, stamp_folder, RunOptions, Shard, Study, StudyLock};
use crate::studies::merge::{gather, Shards};

/// The study kind a verify shard's `config.toml` names (`# singlora verify study`).
pub const KIND: &str = "verify";

/// What identifies a verify: the preset and the claims (the shards' `config.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyStamp {
    /// The preset.
    pub preset: Preset,
    /// The claims, in order.
    pub claims: Vec<Claim>,
}

impl VerifyStamp {
    /// The stamp of `opts`.
    pub fn of(opts: &VerifyOptions) -> VerifyStamp {
        VerifyStamp {
            preset: opts.preset,
            claims: opts.claims.clone(),
        }
    }

    /// Its TOML text.
    pub fn text(&self) -> String {
        toml::to_string(self).expect("a preset and a list of claims serialise")
    }
}

/// What a shard or a merge did, summed over verify's studies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Engine studies visited.
    pub studies: usize,
    /// Runs of this shard (a shard), or runs gathered into the study folders (a merge).
    pub runs: usize,
    /// Runs computed by this process (a shard), or runs already in place (a merge).
    pub other: usize,
}

struct RunShard<'a> {
    opts: &'a VerifyOptions,
    shard: Shard,
    tally: Tally,
}

impl VisitStudy for RunShard<'_> {
    fn visit<S: Study>(&mut self, folder: &str, study: &S) -> Result<()> {
        if self.opts.progress {
            eprintln!("verify shard {}: {folder}", self.shard);
        }
        let dir = self.shard.folder(&self.opts.out.join(folder));
        let run = RunOptions {
            progress: self.opts.progress,
            threads: self.opts.threads,
            shard: Some(self.shard),
            ..RunOptions::default()
        };
        let finished = run_study(study, &dir, &run)?;
        self.tally.studies += 1;
        self.tally.runs += finished.runs.len();
        self.tally.other += finished.computed;
        Ok(())
    }
}

/// Runs shard `shard` of every engine study `opts` needs (module doc); `Tally::other` counts the runs computed now.
pub fn run_shard(opts: &VerifyOptions, shard: Shard) -> Result<Tally> {
    check(opts)?;
    let marker = shard.folder(&opts.out);
    let _lock = StudyLock::acquire(&marker, KIND)?;
    stamp_folder(&marker, KIND, &VerifyStamp::of(opts).text())?;
    write_atomic(
        &marker.join("shard.json"),
        &serde_json::to_vec(&shard).expect("shard"),
    )?;
    let mut v = RunShard {
        opts,
        shard,
        tally: Tally::default(),
    };
    visit_studies(opts.preset, &opts.claims, &mut v)?;
    Ok(v.tally)
}

struct Gather<'a> {
    opts: &'a VerifyOptions,
    count: usize,
    tally: Tally,
}

impl VisitStudy for Gather<'_> {
    fn visit<S: Study>(&mut self, folder: &str, study: &S) -> Result<()> {
        let dir = self.opts.out.join(folder);
        let shards = Shards::read(&dir)?;
        if shards.count != self.count {
            return Err(Error::invalid(
                "dir",
                dir.display(),
                &format!(
                    "a study split like the verify around it ({} shards; it has {})",
                    self.count, shards.count
                ),
            ));
        }
        let g = gather(study, &dir, &shards)?;
        self.tally.studies += 1;
        self.tally.runs += g.copied;
        self.tally.other += g.present;
        Ok(())
    }
}

/// The verify whose shards `OUT/shards` holds (`shards`, read by [`Shards::read`]), as options writing into `out`.
pub fn options_of(shards: &Shards, out: &std::path::Path) -> Result<VerifyOptions> {
    let origin = out.join("shards/*/config.toml");
    let stamp: VerifyStamp = crate::studies::store::from_toml(shards.body(), &origin)?;
    Ok(VerifyOptions {
        preset: stamp.preset,
        claims: stamp.claims,
        out: out.to_path_buf(),
        threads: None,
        progress: true,
    })
}

/// Gathers the shards of every engine study of `opts` into its folder, refusing a missing verify shard, a study
/// split another way, or a study with runs missing from every shard; `Tally::other` counts runs already in place.
pub fn gather_all(opts: &VerifyOptions, shards: &Shards) -> Result<Tally> {
    let missing = shards.missing();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|i| i.to_string()).collect();
        return Err(Error::invalid(
            "dir",
            opts.out.display(),
            &format!(
                "every shard of the split (missing: {} of {}; run them with singlora verify --shard I/{} --out {})",
                list.join(", "),
                shards.count,
                shards.count,
                opts.out.display()
            ),
        ));
    }
    let mut v = Gather {
        opts,
        count: shards.count,
        tally: Tally::default(),
    };
    visit_studies(opts.preset, &opts.claims, &mut v)?;
    Ok(v.tally)
}
