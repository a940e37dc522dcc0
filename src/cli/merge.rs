//! `singlora merge DIR`: the shards of a study (`--shard I/N`, e.g. a Slurm array) combined into one study folder,
//! with its tables and figures as if it had run at once; for a verify folder, every study's shards, then the verdicts.

use std::path::PathBuf;

use clap::Args;

use crate::error::{Error, Result};
use crate::studies::config::StudyConfig;
use crate::studies::limit::{LimitConfig, LimitStudy};
use crate::studies::lr::LrStudy;
use crate::studies::merge::{gather, Gathered, Shards};
use crate::studies::store;
use crate::studies::sweep::Sweep;
use crate::studies::verify;

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The study folder whose shards/ holds the shard folders (the --out of the sharded runs).
    dir: PathBuf,
}

pub fn run(a: MergeArgs) -> Result<()> {
    let shards = Shards::read(&a.dir)?;
    let origin = a.dir.join("shards/*/config.toml");
    let gathered: Gathered = match shards.kind() {
        Some("sweep") => {
            let cfg: StudyConfig = store::from_toml(shards.body(), &origin)?;
            gather(&Sweep(&cfg), &a.dir, &shards)?
        }
        Some("lr") => {
            let cfg: StudyConfig = store::from_toml(shards.body(), &origin)?;
            gather(&LrStudy(&cfg), &a.dir, &shards)?
        }
        Some(verify::shard::KIND) => {
            let opts = verify::shard::options_of(&shards, &a.dir)?;
            let t = verify::shard::gather_all(&opts, &shards)?;
            println!(
                "merged {} shards of verify into {}: {} studies, {} runs gathered, {} already there",
                shards.count,
                a.dir.display(),
                t.studies,
                t.runs,
                t.other
            );
            return super::verify::judge_and_report(&opts);
        }
        Some("limit") => {
            let cfg: LimitConfig = store::from_toml(shards.body(), &origin)?;
            gather(&LimitStudy::new(&cfg, &cfg)?, &a.dir, &shards)?
        }
        _ => {
            return Err(Error::invalid(
                "dir",
                a.dir.display(),
                "shards of a sweep, lr, limit or verify study",
            ))
        }
    };
    println!(
        "merged {} shards into {}: {} runs gathered, {} already there",
        shards.count,
        a.dir.display(),
        gathered.copied,
        gathered.present
    );
    super::plot::redraw(&a.dir)
}
