//! `singlora merge DIR`: the shards of a study (`--shard I/N`, e.g. a Slurm array) combined into one study folder,
//! with its tables and figures as if it had run at once.

use std::path::PathBuf;

use clap::Args;

use crate::error::{Error, Result};
use crate::studies::config::StudyConfig;
use crate::studies::limit::{LimitConfig, LimitStudy};
use crate::studies::lr::LrStudy;
use crate::studies::merge::{gather, Gathered, Shards};
use crate::studies::store;
use crate::studies::sweep::Sweep;

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
        Some("limit") => {
            let cfg: LimitConfig = store::from_toml(shards.body(), &origin)?;
            gather(&LimitStudy::new(&cfg, &cfg)?, &a.dir, &shards)?
        }
        _ => {
            return Err(Error::invalid(
                "dir",
                a.dir.display(),
                "shards of a sweep, lr or limit study",
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
