//! `singlora lr`: the learning-rate study, its tables, figures and summary.

use std::path::Path;

use clap::Args;

use super::args::{run_opened, StudyArgs};
use crate::error::Result;
use crate::studies::config::StudyConfig;
use crate::studies::engine::{open, plan};
use crate::studies::lr::{load, results, LrResults, LrStudy};
use crate::studies::report::lr::{lr_summary, write_lr_tables};

#[derive(Args, Debug)]
pub struct LrArgs {
    #[command(flatten)]
    study: StudyArgs,
}

pub fn run(a: LrArgs) -> Result<()> {
    let cfg = load(a.study.config.as_deref(), &a.study.sets)?;
    let (out, opts) = a.study.target(&cfg.name)?;
    let plan = plan(&LrStudy(&cfg), a.study.threads)?;
    if a.study.dry_run {
        print!("{}", toml::to_string(&cfg).unwrap_or_default());
        println!("# {plan} -> {}", out.display());
        return Ok(());
    }
    let study = LrStudy(&cfg);
    let opened = open(&study, &out, &opts)?;
    let start = format!(
        "learning-rate study {}: {} ({} steps each) -> {}",
        cfg.name,
        plan,
        cfg.steps,
        out.display()
    );
    let merge_dir = a.study.out_dir(&cfg.name);
    let Some(finished) = run_opened(opened, &start, opts.shard, &merge_dir)? else {
        return Ok(());
    };
    report(&cfg, &results(&cfg, finished), &out)
}

/// Writes the tables and figures of a finished learning-rate study and prints its summary.
pub fn report(cfg: &StudyConfig, results: &LrResults, out: &Path) -> Result<()> {
    write_lr_tables(out, results)?;
    let figures = crate::plots::lr::draw_lr(cfg, results, &out.join("figures"))?;
    print!("{}", lr_summary(cfg, results));
    println!(
        "wrote {0}/lr_runs.csv, lr_summary.csv, lr_best.csv, lr_drift.csv{1}, manifest.json and {2} figures in {0}/figures (PNG and SVG: {3})",
        out.display(),
        if results.plane.is_empty() { "" } else { ", lr_plane.csv" },
        figures.len(),
        crate::plots::stems(&figures)
    );
    Ok(())
}
