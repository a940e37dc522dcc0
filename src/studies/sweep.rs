//! Width sweeps: a grid of (arm, learning-rate exponent, width, seed) cells, each a full training run with probes,
//! run in parallel, written atomically one file per finished run, resumable, then fitted and drawn.
//!
//! A study is described by a TOML file (`configs/default.toml` documents every field); any field can be overridden
//! with `--set path=value` (TOML syntax for the value). The output folder holds `manifest.json` (the full config,
//! crate version, git commit, seeds, wall time per run), `runs/*.json` (one per finished run), `results.csv` (long
//! format: series, arm, width, seed, layer, quantity, step, value), `fits.csv` and `figures/`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::store;
use crate::adapters::{AdapterConfig, Method};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::models::{Inspect, MlpConfig, SingleLayer};
use crate::optim::OptimizerConfig;
use crate::probes::{Probe, Record};
use crate::scalar::Scalar;
use crate::tasks::{teacher_classification, teacher_regression, toy_regression, ShiftKind};
use crate::train::{train_observed, Dataset, TrainConfig};

/// The default study, also shipped as `configs/default.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../../configs/default.toml");

/// One adapter arm of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Name in tables and figures (letters, digits, `_`, `+`, `-`, `.`).
    pub name: String,
    /// The adapter.
    pub method: Method,
    /// LoRA+ ratio η_B/η_A (default 1).
    #[serde(default = "super::fit::default_ratio")]
    pub loraplus_ratio: f64,
    /// Fixed per-role learning-rate exponents (e.g. `{ lora_a = 1.0, lora_b = 0.0 }`); when given, the arm is not
    /// crossed with the study's `lr_exponents`.
    #[serde(default)]
    pub lr_exponent: Option<BTreeMap<String, f64>>,
}

/// The task of a study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// `regression`, `classification` or `toy`.
    pub kind: String,
    /// The teacher's shift.
    #[serde(default = "psd")]
    pub shift: ShiftKind,
    /// The layer holding the shift.
    #[serde(default = "hidden1")]
    pub layer: String,
    /// The shift's rank.
    #[serde(default = "two")]
    pub rank: usize,
    /// Training examples.
    #[serde(default = "n32")]
    pub examples: usize,
    /// Held-out examples.
    #[serde(default = "n32")]
    pub test_examples: usize,
}

fn psd() -> ShiftKind {
    ShiftKind::Psd
}
fn hidden1() -> String {
    "hidden.1".into()
}
fn two() -> usize {
    2
}
fn n32() -> usize {
    32
}

/// A width study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// Study name.
    pub name: String,
    /// `mlp` or `toy`.
    pub model: String,
    /// Widths, strictly increasing.
    pub widths: Vec<usize>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Optimiser steps per run.
    pub steps: u64,
    /// η0.
    pub lr: f64,
    /// Values of c crossed with arms that do not fix their own exponents.
    #[serde(default)]
    pub lr_exponents: Vec<f64>,
    /// `f64` or `f32`.
    #[serde(default = "f64s")]
    pub precision: String,
    /// Steps to record (empty: every step).
    #[serde(default)]
    pub probe_steps: Vec<u64>,
    /// Quantities to record: names or prefixes such as `dz_rms`, `grad_fro` (empty: every probe).
    #[serde(default)]
    pub probes: Vec<String>,
    /// Mini-batch size (absent: full batch, the μP coordinate check's fixed batch). Probes always use the full
    /// training set.
    #[serde(default)]
    pub batch: Option<usize>,
    /// Flatness tolerance of the verdicts.
    #[serde(default = "super::fit::default_tolerance")]
    pub flat_tol: f64,
    /// Bootstrap resamples.
    #[serde(default = "super::fit::default_bootstrap")]
    pub bootstrap: usize,
    /// The MLP (its width is set per cell).
    #[serde(default = "mlp_default")]
    pub mlp: MlpConfig,
    /// The task.
    pub task: TaskConfig,
    /// The adapter (its method is set per arm).
    pub adapter: AdapterConfig,
    /// The optimiser (its rate and groups are set per cell).
    pub optimizer: OptimizerConfig,
    /// The arms.
    pub arms: Vec<Arm>,
}

fn f64s() -> String {
    "f64".into()
}
fn mlp_default() -> MlpConfig {
    MlpConfig::new(0)
}

/// One cell of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Series name: the arm, plus `@c=…` when crossed with an exponent.
    pub series: String,
    /// The arm.
    pub arm: Arm,
    /// Per-role exponents of this cell.
    pub lr_exponent: BTreeMap<String, f64>,
    /// Width n.
    pub width: usize,
    /// Seed.
    pub seed: u64,
}

impl Cell {
    /// File stem of the run.
    pub fn key(&self) -> String {
        format!("{}__n{}__s{}", self.series, self.width, self.seed)
    }
}

/// A finished run as written to `runs/KEY.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    /// The cell.
    pub cell: Cell,
    /// First step with a non-finite loss or gradient.
    pub diverged_at: Option<u64>,
    /// Wall time in seconds.
    pub wall_seconds: f64,
    /// Probe records.
    pub records: Vec<Record>,
}

impl SweepConfig {
    /// Parses TOML text (`origin` names the source in errors, with line and column).
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        store::from_toml(text, origin)
    }

    /// Reads a config file (or the default when `path` is `None`) and applies `--set path=value` overrides.
    pub fn load(path: Option<&Path>, sets: &[String]) -> Result<Self> {
        let cfg: SweepConfig =
            store::load_config(path, DEFAULT_CONFIG, "configs/default.toml", sets)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every field; errors name the field, the value and what is accepted.
    pub fn validate(&self) -> Result<()> {
        store::validate_name(&self.name)?;
        store::validate_grid(&self.widths, &self.seeds, self.steps)?;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid("lr", self.lr, "a finite number > 0"));
        }
        if !["f32", "f64"].contains(&self.precision.as_str()) {
            return Err(Error::invalid("precision", &self.precision, "f32 or f64"));
        }
        if !["mlp", "toy"].contains(&self.model.as_str()) {
            return Err(Error::invalid("model", &self.model, "mlp or toy"));
        }
        let kinds: &[&str] = if self.model == "toy" {
            &["toy"]
        } else {
            &["regression", "classification"]
        };
        if !kinds.contains(&self.task.kind.as_str()) {
            return Err(Error::invalid(
                "task.kind",
                &self.task.kind,
                &format!("for model {}: {}", self.model, kinds.join(" or ")),
            ));
        }
        if self.arms.is_empty() {
            return Err(Error::invalid("arms", "[]", "at least one arm"));
        }
        for arm in &self.arms {
            if arm.name.is_empty()
                || !arm
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
            {
                return Err(Error::invalid(
                    "arms.name",
                    &arm.name,
                    "letters, digits, _ + - .",
                ));
            }
            if arm.lr_exponent.is_none() && self.lr_exponents.is_empty() {
                return Err(Error::invalid(
                    "lr_exponents",
                    "[]",
                    &format!("at least one exponent (arm {} fixes none)", arm.name),
                ));
            }
        }
        if let Some(bad) = self.probes.iter().find(|p| {
            p.is_empty()
                || !crate::probes::QUANTITIES
                    .iter()
                    .any(|q| q.starts_with(p.as_str()) || p.starts_with(q))
        }) {
            return Err(Error::invalid(
                "probes",
                bad,
                &format!(
                    "names or prefixes of {}",
                    crate::probes::QUANTITIES.join(", ")
                ),
            ));
        }
        if let Some(&t) = self.probe_steps.iter().find(|&&t| t > self.steps) {
            return Err(Error::invalid(
                "probe_steps",
                t,
                &format!("steps in 0..={} (the study's steps)", self.steps),
            ));
        }
        if !(self.flat_tol.is_finite() && self.flat_tol >= 0.0) {
            return Err(Error::invalid(
                "flat_tol",
                self.flat_tol,
                "a finite number ≥ 0",
            ));
        }
        if self.bootstrap == 0 {
            return Err(Error::invalid(
                "bootstrap",
                0,
                "a positive number of resamples",
            ));
        }
        if self.batch == Some(0) {
            return Err(Error::invalid(
                "batch",
                0,
                "a positive integer, or no batch for full-batch training",
            ));
        }
        if self.task.examples == 0 || self.task.test_examples == 0 {
            return Err(Error::invalid("task.examples", 0, "a positive integer"));
        }
        let mut opt = self.optimizer.clone();
        opt.lr = self.lr;
        opt.validate()?;
        // Every arm must build at the smallest width (rank ≤ width and the like).
        for cell in self
            .cells()
            .iter()
            .filter(|c| c.width == self.widths[0] && c.seed == self.seeds[0])
        {
            let mut adapter = self.adapter.clone();
            adapter.method = cell.arm.method;
            if self.model == "mlp" {
                let mlp = MlpConfig {
                    width: cell.width,
                    ..self.mlp.clone()
                };
                mlp.build(mlp.base_weights::<f64>(0), &adapter, 0)?;
            } else {
                SingleLayer::<f64>::toy(cell.width, &adapter, 0)?;
            }
        }
        Ok(())
    }

    /// The grid, in a fixed order.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for arm in &self.arms {
            let series: Vec<(String, BTreeMap<String, f64>)> = match &arm.lr_exponent {
                Some(map) => vec![(arm.name.clone(), map.clone())],
                None => self
                    .lr_exponents
                    .iter()
                    .map(|&c| {
                        (
                            format!("{}@c={c}", arm.name),
                            BTreeMap::from([("default".to_string(), c)]),
                        )
                    })
                    .collect(),
            };
            for (name, exps) in series {
                for &width in &self.widths {
                    for &seed in &self.seeds {
                        cells.push(Cell {
                            series: name.clone(),
                            arm: arm.clone(),
                            lr_exponent: exps.clone(),
                            width,
                            seed,
                        });
                    }
                }
            }
        }
        cells
    }

    /// The theory's view of a cell (adapter, rule, rate groups, readout; the MLP's hidden layer is square).
    pub fn setting(&self, cell: &Cell) -> crate::theory::Setting {
        let mut adapter = self.adapter.clone();
        adapter.method = cell.arm.method;
        let mut groups = self.optimizer.groups.clone();
        groups.loraplus_ratio = cell.arm.loraplus_ratio;
        groups.lr_exponent = cell.lr_exponent.clone();
        crate::theory::Setting {
            adapter,
            rule: self.optimizer.rule,
            groups,
            readout: self.mlp.readout,
            shape: crate::theory::Shape::Square,
        }
    }

    /// The last step the probes record (where balanced-regime predictions are compared).
    pub fn last_recorded_step(&self) -> u64 {
        self.probe_steps.iter().copied().max().unwrap_or(self.steps)
    }

    /// The square hidden layer the theory's predictions apply to (MLP studies adapting a `hidden.K` map).
    pub fn theory_layer(&self) -> Option<&str> {
        (self.model == "mlp")
            .then(|| {
                self.mlp
                    .adapt
                    .iter()
                    .find(|a| a.starts_with("hidden."))
                    .map(|s| s.as_str())
            })
            .flatten()
    }

    fn probe_at(&self, t: u64) -> bool {
        self.probe_steps.is_empty() || self.probe_steps.contains(&t)
    }

    /// Runs one cell in precision `T`.
    pub fn run_cell<T: Scalar>(&self, cell: &Cell) -> Result<RunResult> {
        let start = Instant::now();
        let mut adapter = self.adapter.clone();
        adapter.method = cell.arm.method;
        let mut optimizer = self.optimizer.clone();
        optimizer.lr = self.lr;
        optimizer.groups.loraplus_ratio = cell.arm.loraplus_ratio;
        optimizer.groups.lr_exponent = cell.lr_exponent.clone();
        let tc = TrainConfig {
            optimizer,
            steps: self.steps,
            batch: self.batch,
            ramp: adapter.ramp,
            width: cell.width,
        };
        let t = &self.task;
        let (records, diverged_at) = if self.model == "mlp" {
            let mlp = MlpConfig {
                width: cell.width,
                ..self.mlp.clone()
            };
            let teacher = match t.kind.as_str() {
                "classification" => teacher_classification::<T>,
                _ => teacher_regression::<T>,
            };
            let data: Dataset<T> = teacher(
                &mlp,
                cell.seed,
                &t.layer,
                t.shift,
                t.rank,
                t.examples,
                t.test_examples,
                cell.seed + 1,
            )?;
            let mut model = mlp.build(mlp.base_weights::<T>(cell.seed), &adapter, cell.seed + 2)?;
            self.observe_run(&mut model, &tc, &data)?
        } else {
            let data: Dataset<T> =
                toy_regression(cell.width, t.examples, t.test_examples, cell.seed)?;
            let mut model = SingleLayer::toy(cell.width, &adapter, cell.seed)?;
            self.observe_run(&mut model, &tc, &data)?
        };
        Ok(RunResult {
            cell: cell.clone(),
            diverged_at,
            wall_seconds: start.elapsed().as_secs_f64(),
            records,
        })
    }

    fn observe_run<T: Scalar, M: Inspect<T>>(
        &self,
        model: &mut M,
        tc: &TrainConfig,
        data: &Dataset<T>,
    ) -> Result<(Vec<Record>, Option<u64>)> {
        let mut probe = Probe::new();
        let rec = train_observed(model, tc, data, |t, m, u| {
            if self.probe_at(t) {
                probe.observe(t, m, u, data);
            }
        })?;
        let mut records = probe.records;
        if !self.probes.is_empty() {
            records.retain(|r| {
                self.probes
                    .iter()
                    .any(|p| r.quantity.starts_with(p.as_str()))
            });
        }
        Ok((records, rec.diverged_at))
    }
}

/// The manifest written beside the results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// The full config as TOML.
    pub config: String,
    /// Crate version.
    pub version: String,
    /// Git commit of the code, if known.
    pub git_commit: Option<String>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Wall time per run, by run key.
    pub wall_seconds: BTreeMap<String, f64>,
    /// Divergence steps, by run key.
    pub diverged_at: BTreeMap<String, u64>,
}

/// The commit the binary was built from (empty when built outside a git checkout).
fn git_commit() -> Option<String> {
    let c = env!("SINGLORA_GIT_COMMIT");
    (!c.is_empty()).then(|| c.to_string())
}

/// Runs every unfinished cell of `cfg` into `out` (in parallel; `progress` draws a bar), and returns all runs.
/// Finished runs found in `out/runs` are loaded, not recomputed; an `out` holding a different study is refused.
pub fn run_sweep(cfg: &SweepConfig, out: &Path, progress: bool) -> Result<Vec<RunResult>> {
    let config_text =
        toml::to_string(cfg).map_err(|e| Error::invalid("config", e, "a serialisable config"))?;
    let runs_dir = store::claim_out_dir(out, &config_text)?;
    let cells = cfg.cells();
    let path_of = |c: &Cell| runs_dir.join(format!("{}.json", c.key()));
    let pending: Vec<&Cell> = cells.iter().filter(|c| !path_of(c).exists()).collect();
    let bar = if progress && !pending.is_empty() {
        let b = indicatif::ProgressBar::new(pending.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} runs  {elapsed} elapsed, ETA {eta}  {msg}",
            )
            .expect("template"),
        );
        if cells.len() > pending.len() {
            b.println(format!(
                "resuming: {} of {} runs already finished",
                cells.len() - pending.len(),
                cells.len()
            ));
        }
        Some(b)
    } else {
        None
    };
    pending.par_iter().try_for_each(|cell| -> Result<()> {
        let run = if cfg.precision == "f32" {
            cfg.run_cell::<f32>(cell)?
        } else {
            cfg.run_cell::<f64>(cell)?
        };
        let json = serde_json::to_vec(&run).expect("serialisable run");
        write_atomic(&path_of(cell), &json)?;
        if let Some(b) = &bar {
            b.set_message(cell.key());
            b.inc(1);
        }
        Ok(())
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let runs: Vec<RunResult> = cells
        .iter()
        .map(|c| store::read_json(&path_of(c)))
        .collect::<Result<_>>()?;
    let manifest = Manifest {
        config: config_text,
        version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: git_commit(),
        seeds: cfg.seeds.clone(),
        wall_seconds: runs
            .iter()
            .map(|r| (r.cell.key(), r.wall_seconds))
            .collect(),
        diverged_at: runs
            .iter()
            .filter_map(|r| r.diverged_at.map(|t| (r.cell.key(), t)))
            .collect(),
    };
    write_atomic(
        &out.join("manifest.json"),
        &serde_json::to_vec_pretty(&manifest).expect("manifest"),
    )?;
    Ok(runs)
}
