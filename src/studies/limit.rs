//! `singlora limit`: finite widths against the computed infinite-width limit (issue 5).
//!
//! For every arm (adapter, rule, rates) and seed, the study computes the limit trajectory of the linear MLP
//! ([`crate::theory::limit::linear`]) and trains width-n networks coupled to the same Gaussian basis
//! ([`crate::studies::coupled`]) through the ordinary code path. The **distance** of a finite run to its limit
//! is, at each step, the largest of the rms differences of the outputs $f_\mu$, the readout overlaps and the bottleneck
//! overlaps (all O(1) in the limit's units); a run's distance is its maximum over steps. Its width exponent is fitted
//! (log-log OLS, Student-t interval over seeds) and compared with −1/2, the rate of the Gram fluctuations that drive
//! the finite-width error. SGD arms also report the error of the exact finite-width reduction (the recursion with the
//! network's own Grams), which must be round-off.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cost::{Cost, Work};
use super::coupled::{coupled_mlp, finite_trajectory, grams};
use super::engine::{run_study, Finished, RunOptions, Study};
use super::fit::{fit_slope, Agreement, Slope};
use super::store;
use crate::adapters::{AdapterConfig, Method};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::linalg::rms;
use crate::optim::{OptimizerConfig, Rule};
use crate::theory::limit::{Basis, LimitPoint, LimitRule, LinearSetup};

/// The default study (`configs/limit.toml`).
pub const DEFAULT_LIMIT_CONFIG: &str = include_str!("../../configs/limit.toml");

/// The exponent the finite-width distance is expected to follow.
pub const EXPECTED_SLOPE: f64 = -0.5;

/// One arm: an adapter, an update rule and its rates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitArm {
    /// Name (unique; used in file names and figures).
    pub name: String,
    /// `lora` or `singlora`.
    pub method: Method,
    /// `sgd` or `sign_sgd`.
    pub rule: Rule,
    /// Base rate η; each tensor's rate is η·ratio·n^(−c).
    pub lr: f64,
    /// Width exponents c per role (`lora_a`, `lora_b`, `singlora_a`, or `default`).
    #[serde(default)]
    pub lr_exponent: BTreeMap<String, f64>,
    /// LoRA+ ratio η_B/η_A (default 1).
    #[serde(default = "one")]
    pub loraplus_ratio: f64,
}

fn one() -> f64 {
    1.0
}

/// A limit study. Every field is present in `configs/limit.toml`, the base every limit study file changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Study name.
    pub name: String,
    /// Finite widths, strictly increasing, each > input_dim + 1.
    pub widths: Vec<usize>,
    /// Seeds (each fixes the data and the Gaussian basis).
    pub seeds: Vec<u64>,
    /// Optimiser steps.
    pub steps: u64,
    /// Input dimension d.
    pub input_dim: usize,
    /// Number of training examples N (full batch).
    pub examples: usize,
    /// Tolerance for "near" when comparing the slope with −1/2.
    pub slope_tol: f64,
    /// The adapter (its method is set per arm).
    pub adapter: AdapterConfig,
    /// The arms.
    pub arms: Vec<LimitArm>,
}

/// One trajectory's per-step summaries (finite width or limit).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    /// Training loss at t = 0…steps.
    #[serde(with = "crate::io::floats")]
    pub loss: Vec<f64>,
    /// rms of the outputs.
    #[serde(with = "crate::io::floats")]
    pub f_rms: Vec<f64>,
    /// rms of the readout overlap ($\hat\beta$ or $\hat a$).
    #[serde(with = "crate::io::floats")]
    pub readout_overlap_rms: Vec<f64>,
    /// rms of the bottleneck overlap $\hat Z$.
    #[serde(with = "crate::io::floats")]
    pub bottleneck_rms: Vec<f64>,
    /// Distance to the limit at each step (zeros for the limit itself).
    #[serde(with = "crate::io::floats")]
    pub distance: Vec<f64>,
    /// The step at which training diverged, if it did.
    pub diverged_at: Option<u64>,
    /// SGD only: the largest distance between this run and the exact reduction with its own Grams.
    pub reduction_error: Option<f64>,
}

impl Trajectory {
    fn new(points: &[LimitPoint], limit: &[LimitPoint], diverged_at: Option<u64>) -> Self {
        Trajectory {
            loss: points.iter().map(|p| p.loss).collect(),
            f_rms: points.iter().map(|p| rms(&p.f)).collect(),
            readout_overlap_rms: points
                .iter()
                .map(|p| rms(&p.params.readout_overlap))
                .collect(),
            bottleneck_rms: points.iter().map(|p| rms(&p.params.bottleneck)).collect(),
            distance: points
                .iter()
                .zip(limit)
                .map(|(p, q)| distance(p, q))
                .collect(),
            diverged_at,
            reduction_error: None,
        }
    }

    /// The run's distance: its largest per-step distance (∞ if it diverged).
    pub fn max_distance(&self) -> f64 {
        if self.diverged_at.is_some() {
            return f64::INFINITY;
        }
        self.distance.iter().copied().fold(0.0, f64::max)
    }
}

/// The distance of two states: the largest rms difference of outputs, readout overlaps and bottleneck overlaps.
pub fn distance(p: &LimitPoint, q: &LimitPoint) -> f64 {
    let df = rms(&(&p.f - &q.f));
    let da = rms(&(&p.params.readout_overlap - &q.params.readout_overlap));
    let dz = rms(&(&p.params.bottleneck - &q.params.bottleneck));
    df.max(da).max(dz)
}

/// The fitted convergence of one arm.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArmConvergence {
    /// Arm name.
    pub arm: String,
    /// Slope of log(distance) on log(n), with its Student-t interval over seeds.
    pub fit: Option<Slope>,
    /// The slope's interval against −1/2.
    pub agreement: Option<Agreement>,
    /// SGD arms: the largest reduction error over all runs.
    pub reduction_error: Option<f64>,
    /// Runs that diverged, as `n=…, seed=…, t=…`.
    pub diverged: Vec<String>,
}

/// Everything a limit study produces.
pub struct LimitResults {
    /// Limit trajectories by (arm, seed).
    pub limits: BTreeMap<(String, u64), Trajectory>,
    /// Finite trajectories by (arm, width, seed).
    pub finite: BTreeMap<(String, usize, u64), Trajectory>,
    /// Convergence per arm, in config order.
    pub convergence: Vec<ArmConvergence>,
}

impl LimitArm {
    /// The arm's adapter and optimiser configs.
    pub fn configs(&self, adapter: &AdapterConfig) -> (AdapterConfig, OptimizerConfig) {
        let mut adapter = adapter.clone();
        adapter.method = self.method;
        let mut opt = OptimizerConfig::new(self.rule, self.lr);
        opt.groups.lr_exponent = self.lr_exponent.clone();
        opt.groups.loraplus_ratio = self.loraplus_ratio;
        (adapter, opt)
    }

    /// The validated limit parametrisation; errors name the arm.
    pub fn setup(&self, adapter: &AdapterConfig) -> Result<LinearSetup> {
        let (adapter, opt) = self.configs(adapter);
        LinearSetup::new(&adapter, &opt).map_err(|e| match e {
            Error::Invalid {
                field,
                value,
                expected,
            } => {
                // Fields the arm sets are named by their place in the arm; shared ones keep their own name.
                let arm_field = match field.as_str() {
                    "adapter.method" => Some("method"),
                    "optimizer.rule" => Some("rule"),
                    "optimizer.groups.lr_exponent" => Some("lr_exponent"),
                    _ => None,
                };
                Error::Invalid {
                    field: arm_field
                        .map(|f| format!("arms.{}.{f}", self.name))
                        .unwrap_or(field),
                    value,
                    expected,
                }
            }
            other => other,
        })
    }
}

impl LimitConfig {
    /// Reads a config file (or `configs/limit.toml` when `path` is `None`), applies `--set` overrides and validates.
    pub fn load(path: Option<&Path>, sets: &[String]) -> Result<Self> {
        let cfg: LimitConfig =
            store::load_config(path, DEFAULT_LIMIT_CONFIG, "configs/limit.toml", sets)?;
        store::blame_sets(cfg.validate(), sets)?;
        Ok(cfg)
    }

    /// Checks every field; errors name the field, the value and what is accepted.
    pub fn validate(&self) -> Result<()> {
        if self.input_dim == 0 {
            return Err(Error::invalid("input_dim", 0, "an integer ≥ 1"));
        }
        if self.examples == 0 {
            return Err(Error::invalid("examples", 0, "an integer ≥ 1"));
        }
        store::validate_name(&self.name)?;
        store::validate_grid(&self.widths, &self.seeds, self.steps)?;
        let min_width = self.input_dim + 2;
        if let Some(&w) = self
            .widths
            .iter()
            .find(|&&w| w < min_width.max(self.adapter.rank))
        {
            return Err(Error::invalid(
                "widths",
                w,
                &format!(
                    "widths ≥ input_dim + 2 = {min_width} and ≥ adapter.rank = {}",
                    self.adapter.rank
                ),
            ));
        }
        if self.arms.is_empty() {
            return Err(Error::invalid("arms", "[]", "at least one arm"));
        }
        let mut names = std::collections::BTreeSet::new();
        for arm in &self.arms {
            if arm.name.trim().is_empty() || !names.insert(arm.name.clone()) {
                return Err(Error::invalid(
                    "arms.name",
                    &arm.name,
                    "a non-empty name used by one arm only",
                ));
            }
            if !(arm.lr.is_finite() && arm.lr > 0.0) {
                return Err(Error::invalid(
                    &format!("arms.{}.lr", arm.name),
                    arm.lr,
                    "a finite number > 0",
                ));
            }
            let (adapter, opt) = arm.configs(&self.adapter);
            adapter.validate(self.widths[0], self.widths[0])?;
            opt.validate()?;
            arm.setup(&self.adapter)?;
        }
        if !(self.slope_tol.is_finite() && self.slope_tol >= 0.0) {
            return Err(Error::invalid(
                "slope_tol",
                self.slope_tol,
                "a finite number ≥ 0",
            ));
        }
        Ok(())
    }

    /// The same study restricted to the arms named in `names` (all of them when `names` is empty).
    pub fn select(&self, names: &[String]) -> Result<LimitConfig> {
        let known: Vec<&str> = self.arms.iter().map(|a| a.name.as_str()).collect();
        if let Some(bad) = names.iter().find(|n| !known.contains(&n.as_str())) {
            return Err(Error::invalid(
                "--arm",
                bad,
                &format!("one of {}", known.join(", ")),
            ));
        }
        let mut sub = self.clone();
        if !names.is_empty() {
            sub.arms.retain(|a| names.contains(&a.name));
        }
        Ok(sub)
    }

    /// The arms whose every run is finished in the study folder `out`.
    pub fn finished_arms(&self, out: &Path) -> Vec<String> {
        let runs = out.join("runs");
        self.arms
            .iter()
            .filter(|a| {
                self.widths.iter().all(|&w| {
                    self.seeds
                        .iter()
                        .all(|&s| self.run_file(&runs, &a.name, w, s).exists())
                })
            })
            .map(|a| a.name.clone())
            .collect()
    }

    fn run_file(&self, runs: &Path, arm: &str, width: usize, seed: u64) -> PathBuf {
        runs.join(format!("{}.json", job_key(arm, width, seed)))
    }
}

/// The run-file stem of a finite run: `ARM-nWIDTH-sSEED` (the arm's name made file-safe).
fn job_key(arm: &str, width: usize, seed: u64) -> String {
    format!("{}-n{width}-s{seed}", store::file_stem(arm))
}

/// One finite-width run of a limit study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LimitJob {
    /// The arm's name.
    pub arm: String,
    /// Width n.
    pub width: usize,
    /// Seed.
    pub seed: u64,
}

/// A limit study as a study of the engine: the arms of `cfg` (a subset of `study`'s), with their limits computed.
pub struct LimitStudy<'a> {
    cfg: &'a LimitConfig,
    study: &'a LimitConfig,
    bases: BTreeMap<(String, u64), Basis>,
    limits: BTreeMap<(String, u64), Vec<LimitPoint>>,
}

impl LimitStudy<'_> {
    fn arm(&self, name: &str) -> &LimitArm {
        self.cfg
            .arms
            .iter()
            .find(|a| a.name == name)
            .expect("a job's arm")
    }
}

impl Study for LimitStudy<'_> {
    type Job = LimitJob;
    type Run = Trajectory;

    fn kind(&self) -> &'static str {
        "limit"
    }

    fn config_text(&self) -> Result<String> {
        toml::to_string(self.study)
            .map_err(|e| Error::invalid("config", e, "a serialisable config"))
    }

    fn jobs(&self) -> Vec<LimitJob> {
        let c = self.cfg;
        c.arms
            .iter()
            .flat_map(|a| {
                c.widths.iter().flat_map(move |&width| {
                    c.seeds.iter().map(move |&seed| LimitJob {
                        arm: a.name.clone(),
                        width,
                        seed,
                    })
                })
            })
            .collect()
    }

    fn key(&self, job: &LimitJob) -> String {
        job_key(&job.arm, job.width, job.seed)
    }

    /// The coupled network's weights (n² for the hidden map, in f64) four times over: base, adapter state,
    /// optimiser moments and the Gram products.
    fn job_bytes(&self, job: &LimitJob) -> u64 {
        let n = job.width as u64;
        4 * 8 * n * (n + self.cfg.input_dim as u64 + 2) + (64 << 20)
    }

    /// The coupled network at width n: its n × n hidden map drawn, its base product on the N examples (computed once
    /// per run: the map is frozen), then per step the adapter's low-rank terms and the element passes over the
    /// N × n activations; under SGD also the Gram products of the reduced dynamics (two N·n² products).
    fn job_cost(&self, job: &LimitJob) -> Cost {
        let (rows, n) = (self.cfg.examples as f64, job.width as f64);
        let (d, r) = (self.cfg.input_dim as f64, self.cfg.adapter.rank as f64);
        let sgd = self
            .arm(&job.arm)
            .setup(&self.cfg.adapter)
            .map_or(true, |s| s.rule == LimitRule::Sgd);
        let step = Work::madds(6.0 * rows * n * r) + Work::touches(12.0 * rows * n);
        let once = Work::normals(n * n + n * d)
            + Work::madds(2.0 * rows * n * n * if sgd { 2.0 } else { 1.0 });
        Cost::alone(step * self.cfg.steps as f64 + once)
    }

    fn run(&self, job: &LimitJob) -> Result<Trajectory> {
        let arm = self.arm(&job.arm);
        let setup = arm.setup(&self.cfg.adapter)?;
        let (adapter, opt) = arm.configs(&self.cfg.adapter);
        let key = (job.arm.clone(), job.seed);
        let (basis, limit) = (&self.bases[&key], &self.limits[&key]);
        let (points, diverged) = finite_trajectory(
            &setup,
            &adapter,
            &opt,
            basis,
            job.width,
            job.seed,
            self.cfg.steps,
        )?;
        let mut traj = Trajectory::new(&points, limit, diverged);
        if setup.rule == LimitRule::Sgd && diverged.is_none() {
            let mlp = coupled_mlp(&setup, &adapter, basis, job.width, job.seed)?;
            let reduced = setup.reduced(basis, &grams(&mlp, &basis.x), self.cfg.steps)?;
            traj.reduction_error = Some(
                points
                    .iter()
                    .zip(&reduced)
                    .map(|(p, q)| distance(p, q))
                    .fold(0.0, f64::max),
            );
        }
        Ok(traj)
    }

    fn diverged_at(&self, run: &Trajectory) -> Option<u64> {
        run.diverged_at
    }
}

/// Runs every unfinished finite-width run of `cfg` into `out/runs` (in parallel, through the study engine), computes
/// the limits, and writes `trajectories.csv`, `convergence.csv` and `convergence_fits.csv`. Finished runs are loaded,
/// not recomputed. `out` is claimed for `study`, the whole study `cfg` belongs to (`cfg` itself, or the study of
/// which `cfg` runs a subset of arms, see [`LimitConfig::select`]), so a subset and the whole study share their runs.
pub fn run_limit_study(
    cfg: &LimitConfig,
    study: &LimitConfig,
    out: &Path,
    opts: &RunOptions,
) -> Result<LimitResults> {
    let limit = LimitStudy::new(cfg, study)?;
    let finished = run_study(&limit, out, opts)?;
    limit.finish(finished, out)
}

impl<'a> LimitStudy<'a> {
    /// The study of `cfg`'s arms (a subset of `study`'s) with every arm's limit trajectory computed per seed.
    pub fn new(cfg: &'a LimitConfig, study: &'a LimitConfig) -> Result<Self> {
        let mut limit = LimitStudy {
            cfg,
            study,
            bases: BTreeMap::new(),
            limits: BTreeMap::new(),
        };
        for arm in &cfg.arms {
            let setup = arm.setup(&cfg.adapter)?;
            for &seed in &cfg.seeds {
                let basis = Basis::draw(&setup, cfg.input_dim, cfg.examples, seed);
                let points = setup.limit(&basis, cfg.steps);
                limit.limits.insert((arm.name.clone(), seed), points);
                limit.bases.insert((arm.name.clone(), seed), basis);
            }
        }
        Ok(limit)
    }

    /// The finished finite runs against their limits: convergence fits, and the tables written into `out`.
    pub fn finish(&self, finished: Finished<LimitStudy<'_>>, out: &Path) -> Result<LimitResults> {
        let cfg = self.cfg;
        let finite: BTreeMap<(String, usize, u64), Trajectory> = finished
            .runs
            .into_iter()
            .map(|f| ((f.job.arm, f.job.width, f.job.seed), f.run))
            .collect();
        let limits: BTreeMap<(String, u64), Trajectory> = self
            .limits
            .iter()
            .map(|(k, pts)| (k.clone(), Trajectory::new(pts, pts, None)))
            .collect();
        let convergence = cfg
            .arms
            .iter()
            .map(|arm| arm_convergence(cfg, &finite, arm))
            .collect();
        let results = LimitResults {
            limits,
            finite,
            convergence,
        };
        write_tables(out, &results)?;
        Ok(results)
    }
}

/// The fitted convergence of one arm's finite runs to its limit.
fn arm_convergence(
    cfg: &LimitConfig,
    finite: &BTreeMap<(String, usize, u64), Trajectory>,
    arm: &LimitArm,
) -> ArmConvergence {
    let values: Vec<Vec<f64>> = cfg
        .widths
        .iter()
        .map(|&w| {
            cfg.seeds
                .iter()
                .map(|&s| finite[&(arm.name.clone(), w, s)].max_distance())
                .collect()
        })
        .collect();
    let fit = fit_slope(&cfg.widths, &values);
    let agreement = fit
        .as_ref()
        .map(|f| Agreement::of(EXPECTED_SLOPE, f, cfg.slope_tol));
    let runs = finite.iter().filter(|((a, _, _), _)| a == &arm.name);
    ArmConvergence {
        arm: arm.name.clone(),
        fit,
        agreement,
        reduction_error: runs
            .clone()
            .filter_map(|(_, t)| t.reduction_error)
            .reduce(f64::max),
        diverged: runs
            .filter_map(|((_, w, s), t)| t.diverged_at.map(|d| format!("n={w}, seed={s}, t={d}")))
            .collect(),
    }
}

/// `trajectories.csv` (one row per arm, width or `inf`, seed and step) and `convergence.csv` (one row per arm,
/// width and seed, then the fitted slope per arm in `convergence_fits.csv`).
fn write_tables(out: &Path, r: &LimitResults) -> Result<()> {
    let mut t = String::from(
        "arm,width,seed,step,loss,f_rms,readout_overlap_rms,bottleneck_rms,distance\n",
    );
    let mut row = |arm: &str, width: &str, seed: u64, tr: &Trajectory| {
        for i in 0..tr.loss.len() {
            let _ = writeln!(
                t,
                "{arm},{width},{seed},{i},{},{},{},{},{}",
                tr.loss[i],
                tr.f_rms[i],
                tr.readout_overlap_rms[i],
                tr.bottleneck_rms[i],
                tr.distance[i]
            );
        }
    };
    for ((arm, seed), tr) in &r.limits {
        row(arm, "inf", *seed, tr);
    }
    for ((arm, w, seed), tr) in &r.finite {
        row(arm, &w.to_string(), *seed, tr);
    }
    write_atomic(&out.join("trajectories.csv"), t.as_bytes())?;
    let mut c = String::from("arm,width,seed,distance,diverged_at,reduction_error\n");
    for ((arm, w, seed), tr) in &r.finite {
        let _ = writeln!(
            c,
            "{arm},{w},{seed},{},{},{}",
            tr.max_distance(),
            tr.diverged_at.map(|d| d.to_string()).unwrap_or_default(),
            tr.reduction_error
                .map(|e| e.to_string())
                .unwrap_or_default()
        );
    }
    write_atomic(&out.join("convergence.csv"), c.as_bytes())?;
    let mut f = String::from("arm,slope,lo,hi,expected,agreement,max_reduction_error\n");
    for a in &r.convergence {
        let (s, lo, hi) =
            a.fit
                .as_ref()
                .map(|f| (f.slope, f.lo, f.hi))
                .unwrap_or((f64::NAN, f64::NAN, f64::NAN));
        let _ = writeln!(
            f,
            "{},{s},{lo},{hi},{EXPECTED_SLOPE},{},{}",
            a.arm,
            a.agreement.map(Agreement::name).unwrap_or(""),
            a.reduction_error.map(|e| e.to_string()).unwrap_or_default()
        );
    }
    write_atomic(&out.join("convergence_fits.csv"), f.as_bytes())
}
