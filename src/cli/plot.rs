//! `singlora plot DIR`: redraw the tables and figures of a study folder from its finished runs.

use std::path::PathBuf;

use clap::Args;

use crate::error::{Error, Result};
use crate::studies::engine::{folder_kind, RunOptions};
use crate::studies::store;

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// A folder written by `singlora sweep`, `singlora lr` or `singlora limit`.
    dir: PathBuf,
}

/// Options for re-reading a folder: nothing is computed (a folder with unfinished runs is refused).
fn reread() -> RunOptions {
    RunOptions {
        read_only: true,
        ..RunOptions::default()
    }
}

pub fn run(a: PlotArgs) -> Result<()> {
    redraw(&a.dir)
}

/// Reads a finished study folder back and writes its tables and figures (what `plot` and `merge` print).
pub fn redraw(dir: &std::path::Path) -> Result<()> {
    let a = PlotArgs {
        dir: dir.to_path_buf(),
    };
    let stamp = a.dir.join("config.toml");
    let text = match std::fs::read_to_string(&stamp) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_a_study(&a.dir)),
        r => r.map_err(|e| Error::io(&stamp, e))?,
    };
    match folder_kind(&a.dir).as_deref() {
        Some("sweep") => {
            let cfg = store::from_toml(&text, &stamp)?;
            let runs = crate::studies::sweep::run_sweep(&cfg, &a.dir, &reread())?;
            super::sweep::report(&cfg, &runs, &a.dir)
        }
        Some("lr") => {
            let cfg = store::from_toml(&text, &stamp)?;
            let results = crate::studies::lr::run_lr(&cfg, &a.dir, &reread())?;
            super::lr::report(&cfg, &results, &a.dir)
        }
        Some("limit") => {
            use crate::studies::limit::{run_limit_study, LimitConfig};
            let study: LimitConfig = store::from_toml(&text, &stamp)?;
            let finished = study.finished_arms(&a.dir);
            if finished.is_empty() {
                return Err(Error::invalid(
                    "dir",
                    a.dir.display(),
                    "a study folder with at least one finished arm (run singlora limit --config DIR/config.toml --out DIR)",
                ));
            }
            let cfg = study.select(&finished)?;
            let results = run_limit_study(&cfg, &study, &a.dir, &reread())?;
            super::limit::report(&cfg, &results, &a.dir)
        }
        _ => Err(not_a_study(&a.dir)),
    }
}

fn not_a_study(dir: &std::path::Path) -> Error {
    Error::invalid(
        "dir",
        dir.display(),
        "a folder written by singlora sweep, lr or limit (its config.toml starts with # singlora KIND study)",
    )
}
