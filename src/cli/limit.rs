//! `singlora limit`: finite widths against the computed infinite-width limit.

use std::path::Path;

use clap::Args;

use super::args::{run_opened, StudyArgs};
use crate::error::Result;
use crate::studies::engine::open;
use crate::studies::limit::{LimitConfig, LimitResults, LimitStudy};
use crate::studies::report::limit::limit_table;

#[derive(Args, Debug)]
pub struct LimitArgs {
    #[command(flatten)]
    study: StudyArgs,
    /// Run only these arms (repeatable; default: all). The output folder still holds the whole study: a later run of
    /// all arms reuses these runs.
    #[arg(long = "arm", value_name = "NAME")]
    arms: Vec<String>,
}

pub fn run(a: LimitArgs) -> Result<()> {
    let study = LimitConfig::load(a.study.config.as_deref(), &a.study.sets)?;
    let cfg = study.select(&a.arms)?;
    let (out, opts) = a.study.target(&cfg.name)?;
    let runs = cfg.arms.len() * cfg.widths.len() * cfg.seeds.len();
    if a.study.dry_run {
        print!("{}", toml::to_string(&cfg).unwrap_or_default());
        println!("# {runs} finite runs -> {}", out.display());
        return Ok(());
    }
    let limit = LimitStudy::new(&cfg, &study)?;
    let opened = open(&limit, &out, &opts)?;
    let start = format!(
        "limit study {}: {} arms × {} widths × {} seeds, {} steps -> {}",
        cfg.name,
        cfg.arms.len(),
        cfg.widths.len(),
        cfg.seeds.len(),
        cfg.steps,
        out.display()
    );
    let merge_dir = a.study.out_dir(&cfg.name);
    let Some(finished) = run_opened(opened, &start, opts.shard, &merge_dir)? else {
        return Ok(());
    };
    let results = limit.finish(finished, &out)?;
    report(&cfg, &results, &out)
}

/// Prints a limit study's summary and draws its figures.
pub fn report(cfg: &LimitConfig, results: &LimitResults, out: &Path) -> Result<()> {
    print!("{}", limit_table(cfg, results));
    let figures = crate::plots::limit::draw_limit(cfg, results, &out.join("figures"))?;
    println!(
        "wrote {0}/trajectories.csv, convergence.csv, convergence_fits.csv and {1} figures in {0}/figures (PNG and SVG: {2})",
        out.display(),
        figures.len(),
        crate::plots::stems(&figures)
    );
    Ok(())
}
