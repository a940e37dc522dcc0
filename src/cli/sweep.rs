//! `singlora sweep`: a width study, its tables, figures and summary.

use std::path::Path;

use clap::Args;

use super::args::{run_opened, StudyArgs};
use crate::error::Result;
use crate::probes::Quantity;
use crate::studies::config::StudyConfig;
use crate::studies::engine::{open, plan};
use crate::studies::report::layers::layer_summary;
use crate::studies::report::loss::loss_summary;
use crate::studies::report::{fit_all, group, summary, write_tables};
use crate::studies::sweep::{check_sweep, results, RunResult, Sweep};

#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    study: StudyArgs,
}

pub fn run(a: SweepArgs) -> Result<()> {
    let cfg = StudyConfig::load(a.study.config.as_deref(), &a.study.sets)?;
    let (out, opts) = a.study.target(&cfg.name)?;
    let cells = cfg.cells();
    if a.study.dry_run {
        print!("{}", toml::to_string(&cfg).unwrap_or_default());
        println!(
            "# {} -> {}",
            plan(&Sweep(&cfg), a.study.threads)?,
            out.display()
        );
        return Ok(());
    }
    check_sweep(&cfg)?;
    let study = Sweep(&cfg);
    let opened = open(&study, &out, &opts)?;
    let start = format!(
        "study {}: {} runs ({} series × {} widths × {} seeds), {} steps each -> {}",
        cfg.name,
        cells.len(),
        cells.len() / (cfg.widths.len() * cfg.seeds.len()),
        cfg.widths.len(),
        cfg.seeds.len(),
        cfg.steps,
        out.display()
    );
    let merge_dir = a.study.out_dir(&cfg.name);
    let Some(finished) = run_opened(opened, &start, opts.shard, &merge_dir)? else {
        return Ok(());
    };
    report(&cfg, &results(finished), &out)
}

/// Writes the tables and figures of a finished sweep and prints its summary.
pub fn report(cfg: &StudyConfig, runs: &[RunResult], out: &Path) -> Result<()> {
    let grouped = group(cfg, runs);
    let fits = fit_all(cfg, &grouped);
    write_tables(out, runs, &fits)?;
    let layer = cfg.summary_layer();
    let figures = crate::plots::draw_sweep(cfg, &grouped, &fits, &layer, &out.join("figures"))?;
    println!("{}", summary(cfg, &grouped, &fits, &layer, Quantity::DzRms));
    let loss = loss_summary(cfg, &grouped, &fits);
    if !loss.is_empty() {
        println!("{loss}");
    }
    print!("{}", layer_summary(cfg, &fits, Quantity::DzRms));
    let diverged: Vec<String> = runs
        .iter()
        .filter_map(|r| {
            r.diverged_at
                .map(|t| format!("{} (step {t})", Sweep::cell_key(&r.cell)))
        })
        .collect();
    if !diverged.is_empty() {
        println!(
            "diverged runs (recorded, not dropped): {}",
            diverged.join(", ")
        );
    }
    println!(
        "wrote {0}/results.csv, fits.csv, manifest.json and {1} figures in {0}/figures (PNG and SVG: {2})",
        out.display(),
        figures.len(),
        crate::plots::stems(&figures)
    );
    Ok(())
}
