//! Width sweeps (`singlora sweep`): a grid of (arm, learning-rate exponent, width, seed) cells, each a full training
//! run with probes, run by the study engine (locked folder, parallel, atomic run files, resumable), then fitted and
//! drawn.
//!
//! The output folder holds `config.toml` (the study), `manifest.json` (config, crate version, git commit, wall time
//! per run), `runs/*.json` (one per finished run), `results.csv` (long format: series, arm, method, lr, lr_exponent,
//! loraplus_ratio, width, seed, layer, quantity, step, value), `fits.csv` and `figures/`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::StudyConfig;
use super::cost::Cost;
use super::engine::{run_study, Finished, RunOptions, Study};
use super::spec::{Cell, RunSpec};
use crate::error::{Error, Result};
use crate::probes::{Probe, Record};
use crate::scalar::Precision;
use crate::train::Divergence;

/// A finished run of a sweep.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepRun {
    /// The step at which training stopped as diverged.
    pub diverged_at: Option<u64>,
    /// Why.
    pub divergence: Option<Divergence>,
    /// Probe records.
    pub records: Vec<Record>,
}

/// A finished run with its cell, as tables and figures read it.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The cell.
    pub cell: Cell,
    /// First step with a non-finite loss or gradient, or a loss past the divergence factor.
    pub diverged_at: Option<u64>,
    /// Wall time in seconds.
    pub wall_seconds: f64,
    /// Probe records.
    pub records: Vec<Record>,
}

/// A width sweep as a study of the engine.
pub struct Sweep<'a>(pub &'a StudyConfig);

impl Sweep<'_> {
    /// The run file stem of a cell: `SERIES__nWIDTH__sSEED`.
    pub fn cell_key(cell: &Cell) -> String {
        format!("{}__n{}__s{}", cell.series, cell.width, cell.seed)
    }
}

/// Trains `specs` (runs of one [`RunSpec::share_key`]) one after the other on what they share, each with a probe
/// recording `cfg`'s selection, in their precision, handing each run to `done` (with its index) as it finishes.
pub fn probe_runs(
    cfg: &StudyConfig,
    specs: &[RunSpec],
    done: &mut dyn FnMut(usize, SweepRun) -> Result<()>,
) -> Result<()> {
    type Done<'a> = &'a mut dyn FnMut(usize, SweepRun) -> Result<()>;
    fn go<T: crate::Scalar>(cfg: &StudyConfig, specs: &[RunSpec], done: Done<'_>) -> Result<()> {
        let shared = specs[0].shared::<T>()?;
        for (i, spec) in specs.iter().enumerate() {
            let mut probe = Probe::<T>::new(cfg.selection());
            let rec = spec.run_shared(&shared, &mut probe)?.record;
            let run = SweepRun {
                diverged_at: rec.diverged_at,
                divergence: rec.divergence,
                records: probe.records,
            };
            done(i, run)?;
        }
        Ok(())
    }
    assert!(
        specs
            .windows(2)
            .all(|w| w[0].share_key() == w[1].share_key()),
        "probe_runs: runs on different frozen bases"
    );
    match specs.first().map(|s| s.precision) {
        None => Ok(()),
        Some(Precision::F64) => go::<f64>(cfg, specs, done),
        Some(Precision::F32) => go::<f32>(cfg, specs, done),
    }
}

impl Study for Sweep<'_> {
    type Job = Cell;
    type Run = SweepRun;

    fn kind(&self) -> &'static str {
        "sweep"
    }

    fn config_text(&self) -> Result<String> {
        toml::to_string(self.0).map_err(|e| Error::invalid("config", e, "a serialisable config"))
    }

    fn jobs(&self) -> Vec<Cell> {
        self.0.cells()
    }

    fn key(&self, cell: &Cell) -> String {
        Sweep::cell_key(cell)
    }

    fn job_bytes(&self, cell: &Cell) -> u64 {
        RunSpec::resolve(self.0, cell).peak_bytes()
    }

    fn run(&self, cell: &Cell) -> Result<SweepRun> {
        let mut out = None;
        self.run_group(&[cell], &mut |_, r| {
            out = Some(r);
            Ok(())
        })?;
        Ok(out.expect("one run"))
    }

    /// Every arm and rate of one (width, seed) share the frozen base, the data and the forward passes' constant part.
    fn share_key(&self, cell: &Cell) -> Option<String> {
        Some(RunSpec::resolve(self.0, cell).share_key())
    }

    fn run_group(
        &self,
        cells: &[&Cell],
        done: &mut dyn FnMut(usize, SweepRun) -> Result<()>,
    ) -> Result<()> {
        let specs: Vec<RunSpec> = cells.iter().map(|c| RunSpec::resolve(self.0, c)).collect();
        probe_runs(self.0, &specs, done)
    }

    fn diverged_at(&self, run: &SweepRun) -> Option<u64> {
        run.diverged_at
    }

    fn job_cost(&self, cell: &Cell) -> Cost {
        RunSpec::resolve(self.0, cell).cost(Some(&self.0.selection()))
    }
}

/// Runs every unfinished cell of `cfg` into `out` and returns all runs in grid order. Finished runs found in
/// `out/runs` are loaded, not recomputed; an `out` holding a different study, or locked by another process, is
/// refused. A config with a learning-rate grid belongs to `singlora lr` and is refused.
pub fn run_sweep(cfg: &StudyConfig, out: &Path, opts: &RunOptions) -> Result<Vec<RunResult>> {
    check_sweep(cfg)?;
    Ok(results(run_study(&Sweep(cfg), out, opts)?))
}

/// A width sweep has no learning-rate grid (that belongs to `singlora lr`).
pub fn check_sweep(cfg: &StudyConfig) -> Result<()> {
    if cfg.lr_grid.is_some() {
        return Err(Error::invalid(
            "lr_grid",
            "(a table)",
            "no [lr_grid] in a width sweep (it is the learning-rate study's: run singlora lr)",
        ));
    }
    Ok(())
}

/// The engine's finished runs as tables read them.
pub fn results(finished: Finished<Sweep<'_>>) -> Vec<RunResult> {
    finished
        .runs
        .into_iter()
        .map(|f| RunResult {
            cell: f.job,
            diverged_at: f.run.diverged_at,
            wall_seconds: f.wall_seconds,
            records: f.run.records,
        })
        .collect()
}
