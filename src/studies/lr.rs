//! The learning-rate study (`singlora lr`): does one learning rate transfer across widths?
//!
//! The grid is the width study's series (arms × rate exponents c) × a list of base rates η₀ × widths × seeds: each run
//! trains at η = η₀·ratio·n^(−c) and keeps its final train and held-out loss. With `lr_exponents = [0]` the question
//! is "one raw rate"; with c = 1/2 it is "one η₀ under η = η₀·n^(−1/2)". Optionally, a LoRA+ plane: one arm over a
//! 2-D grid of raw rates (η_A, η_B) at a few widths.
//!
//! What is computed from the final losses ([`analyse`]):
//! - per (series, width): the median and spread over seeds of both losses at every rate; the best rate η* (the grid
//!   minimum of the median selection loss, refined by the vertex of the parabola in η through it and its two
//!   neighbours, exact when the loss is quadratic in η); the near-best window, the contiguous rates around the best
//!   whose median loss is within `near_best` (relative) of the best, in octaves, and the same width read off the
//!   parabola in log₂ η through the best three rates (resolving windows narrower than the grid); the first rate at
//!   which a seed diverged;
//! - per series: the width exponent of η* (each seed's refined η* at each width, fitted like every width exponent),
//!   i.e. how much the optimum moves per doubling of width (×2^slope).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::StudyConfig;
use super::cost::Cost;
use super::engine::{run_study, Finished, RunOptions, Study};
use super::fit::{fit_slope, Slope};
use super::spec::{Cell, RunSpec};
use super::store;
use crate::error::{Error, Result};
use crate::scalar::Precision;
use crate::train::{Divergence, TrainRecord};

/// The default learning-rate study (`configs/lr.toml`).
pub const DEFAULT_LR_CONFIG: &str = include_str!("../../configs/lr.toml");

/// A list of rates: explicit, or log-spaced `per_octave` to an octave from `from` to `to` (both included when `to` is
/// on the grid).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Rates {
    /// Explicit rates, strictly increasing.
    List(Vec<f64>),
    /// `from · 2^(k/per_octave)` for k = 0, 1, … while ≤ `to` (1 + 1e-9 relative).
    Range {
        /// The smallest rate.
        from: f64,
        /// The largest rate.
        to: f64,
        /// Rates per octave (doubling).
        per_octave: u32,
    },
}

impl Rates {
    /// The rates, increasing.
    pub fn values(&self) -> Vec<f64> {
        match *self {
            Rates::List(ref v) => v.clone(),
            Rates::Range {
                from,
                to,
                per_octave,
            } => {
                let mut v = Vec::new();
                let mut k = 0u32;
                loop {
                    let r = from * 2f64.powf(k as f64 / per_octave.max(1) as f64);
                    if r > to * (1.0 + 1e-9) || v.len() > 10_000 {
                        break;
                    }
                    v.push(r);
                    k += 1;
                }
                v
            }
        }
    }

    /// Checks that the rates are at least two, finite, positive and strictly increasing; errors name `field`.
    pub fn validate(&self, field: &str) -> Result<()> {
        if let Rates::Range {
            from,
            to,
            per_octave,
        } = *self
        {
            if !(from.is_finite() && from > 0.0 && to.is_finite() && to > from) || per_octave == 0 {
                return Err(Error::invalid(
                    field,
                    format!("{{ from = {from}, to = {to}, per_octave = {per_octave} }}"),
                    "from and to finite with 0 < from < to, and per_octave ≥ 1",
                ));
            }
        }
        let v = self.values();
        if v.len() < 2 {
            return Err(Error::invalid(
                field,
                format!("{v:?}"),
                "at least two rates (a best rate needs neighbours)",
            ));
        }
        if let Some(bad) = v.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
            return Err(Error::invalid(field, bad, "finite rates > 0"));
        }
        if v.windows(2).any(|w| w[1] <= w[0]) {
            return Err(Error::invalid(
                field,
                format!("{v:?}"),
                "strictly increasing rates",
            ));
        }
        Ok(())
    }
}

/// Which final loss picks the best rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// The training loss after the last step (default: the optimisation question).
    #[default]
    Train,
    /// The held-out loss after the last step.
    Test,
}

/// The LoRA+ plane: one arm over raw rates (η_A, η_B) at a few widths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plane {
    /// The arm (a LoRA-type method).
    pub arm: String,
    /// Widths (each one of the study's).
    pub widths: Vec<usize>,
    /// η_A values.
    pub rates_a: Rates,
    /// η_B values.
    pub rates_b: Rates,
}

/// The learning-rate grid (`[lr_grid]` in a study file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrGrid {
    /// The base rates η₀.
    pub rates: Rates,
    /// A rate is near-best if its median final loss is within this relative tolerance of the best (default 0.01).
    #[serde(default = "near_best")]
    pub near_best: f64,
    /// Which loss picks the best rate.
    #[serde(default)]
    pub select: Select,
    /// The LoRA+ plane, if any.
    #[serde(default)]
    pub loraplus: Option<Plane>,
}

fn near_best() -> f64 {
    0.01
}

/// A job of the learning-rate study: a cell on the rate line, or on the LoRA+ plane.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrJob {
    /// The run.
    pub cell: Cell,
    /// Whether the cell belongs to the LoRA+ plane (raw rates η_A = lr, η_B = lr × loraplus_ratio).
    pub plane: bool,
}

/// A finished run: its losses.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LrRun {
    /// Training loss before the first step.
    #[serde(with = "crate::io::float")]
    pub initial_loss: f64,
    /// Training loss after the last step (or at divergence).
    #[serde(with = "crate::io::float")]
    pub final_loss: f64,
    /// Held-out loss after the last step (or at divergence).
    #[serde(with = "crate::io::float")]
    pub final_test_loss: f64,
    /// The step at which the run diverged.
    pub diverged_at: Option<u64>,
    /// Why.
    pub divergence: Option<Divergence>,
}

impl LrRun {
    fn of(rec: &TrainRecord) -> Self {
        let last = |v: &[f64]| v.last().copied().unwrap_or(f64::NAN);
        LrRun {
            initial_loss: rec.train_loss.first().copied().unwrap_or(f64::NAN),
            final_loss: last(&rec.train_loss),
            final_test_loss: last(&rec.test_loss),
            diverged_at: rec.diverged_at,
            divergence: rec.divergence,
        }
    }

    /// The loss `select` reads, +∞ for a diverged run (it never wins).
    pub fn loss(&self, select: Select) -> f64 {
        if self.diverged_at.is_some() {
            return f64::INFINITY;
        }
        match select {
            Select::Train => self.final_loss,
            Select::Test => self.final_test_loss,
        }
    }
}

/// The learning-rate study as a study of the engine.
pub struct LrStudy<'a>(pub &'a StudyConfig);

impl LrStudy<'_> {
    fn grid(&self) -> &LrGrid {
        self.0
            .lr_grid
            .as_ref()
            .expect("validated: an lr study has a grid")
    }
}

/// Loads a learning-rate study (default `configs/lr.toml`) and validates it.
pub fn load(path: Option<&Path>, sets: &[String]) -> Result<StudyConfig> {
    let cfg: StudyConfig = store::load_config(path, DEFAULT_LR_CONFIG, "configs/lr.toml", sets)?;
    store::blame_sets(validate(&cfg), sets)?;
    Ok(cfg)
}

/// Checks a learning-rate study: a valid width study with a valid `[lr_grid]`.
pub fn validate(cfg: &StudyConfig) -> Result<()> {
    cfg.validate()?;
    let grid = cfg.lr_grid.as_ref().ok_or_else(|| {
        Error::invalid(
            "lr_grid",
            "(absent)",
            "an [lr_grid] table with rates = [..] or { from, to, per_octave }",
        )
    })?;
    grid.rates.validate("lr_grid.rates")?;
    if !(grid.near_best.is_finite() && grid.near_best >= 0.0) {
        return Err(Error::invalid(
            "lr_grid.near_best",
            grid.near_best,
            "a finite relative tolerance ≥ 0",
        ));
    }
    if let Some(p) = &grid.loraplus {
        let arm = cfg.arms.iter().find(|a| a.name == p.arm).ok_or_else(|| {
            let names: Vec<&str> = cfg.arms.iter().map(|a| a.name.as_str()).collect();
            Error::invalid(
                "lr_grid.loraplus.arm",
                &p.arm,
                &format!("one of {}", names.join(", ")),
            )
        })?;
        if !arm.method.is_lora() {
            return Err(Error::invalid(
                "lr_grid.loraplus.arm",
                &p.arm,
                "an arm with a LoRA-type method (lora or dora): the plane is over (η_A, η_B)",
            ));
        }
        if p.widths.is_empty() || p.widths.iter().any(|w| !cfg.widths.contains(w)) {
            return Err(Error::invalid(
                "lr_grid.loraplus.widths",
                format!("{:?}", p.widths),
                &format!("some of the study's widths {:?}", cfg.widths),
            ));
        }
        p.rates_a.validate("lr_grid.loraplus.rates_a")?;
        p.rates_b.validate("lr_grid.loraplus.rates_b")?;
    }
    Ok(())
}

impl Study for LrStudy<'_> {
    type Job = LrJob;
    type Run = LrRun;

    fn kind(&self) -> &'static str {
        "lr"
    }

    fn config_text(&self) -> Result<String> {
        toml::to_string(self.0).map_err(|e| Error::invalid("config", e, "a serialisable config"))
    }

    fn jobs(&self) -> Vec<LrJob> {
        let cfg = self.0;
        let rates = self.grid().rates.values();
        let mut jobs = Vec::new();
        for (series, arm, exps) in cfg.series() {
            for &lr in &rates {
                for &width in &cfg.widths {
                    for &seed in &cfg.seeds {
                        let cell = Cell {
                            series: series.clone(),
                            arm: arm.clone(),
                            lr,
                            loraplus_ratio: arm.loraplus_ratio,
                            lr_exponent: exps.clone(),
                            width,
                            seed,
                        };
                        jobs.push(LrJob { cell, plane: false });
                    }
                }
            }
        }
        jobs.extend(self.plane_jobs());
        jobs
    }

    fn key(&self, job: &LrJob) -> String {
        let c = &job.cell;
        if job.plane {
            let eta_b = c.lr * c.loraplus_ratio;
            format!(
                "{}__plane__a{}__b{eta_b}__n{}__s{}",
                c.arm.name, c.lr, c.width, c.seed
            )
        } else {
            format!("{}__lr{}__n{}__s{}", c.series, c.lr, c.width, c.seed)
        }
    }

    fn job_bytes(&self, job: &LrJob) -> u64 {
        RunSpec::resolve(self.0, &job.cell).peak_bytes()
    }

    fn run(&self, job: &LrJob) -> Result<LrRun> {
        let mut out = None;
        self.run_group(&[job], &mut |_, r| {
            out = Some(r);
            Ok(())
        })?;
        Ok(out.expect("one run"))
    }

    /// Every series, rate and plane cell of one (width, seed) share the frozen base, the data and the forward passes'
    /// constant part.
    fn share_key(&self, job: &LrJob) -> Option<String> {
        Some(RunSpec::resolve(self.0, &job.cell).share_key())
    }

    fn run_group(
        &self,
        jobs: &[&LrJob],
        done: &mut dyn FnMut(usize, LrRun) -> Result<()>,
    ) -> Result<()> {
        type Done<'a> = &'a mut dyn FnMut(usize, LrRun) -> Result<()>;
        fn go<T: crate::Scalar>(specs: &[RunSpec], done: Done<'_>) -> Result<()> {
            let shared = specs[0].shared::<T>()?;
            for (i, s) in specs.iter().enumerate() {
                done(i, LrRun::of(&s.run_shared(&shared, &mut ())?.record))?;
            }
            Ok(())
        }
        let specs: Vec<RunSpec> = jobs
            .iter()
            .map(|j| RunSpec::resolve(self.0, &j.cell))
            .collect();
        match specs.first().map(|s| s.precision) {
            None => Ok(()),
            Some(Precision::F64) => go::<f64>(&specs, done),
            Some(Precision::F32) => go::<f32>(&specs, done),
        }
    }

    fn diverged_at(&self, run: &LrRun) -> Option<u64> {
        run.diverged_at
    }

    fn job_cost(&self, job: &LrJob) -> Cost {
        RunSpec::resolve(self.0, &job.cell).cost(None)
    }
}

impl LrStudy<'_> {
    /// The LoRA+ plane's cells: raw rates (no width exponent), η_A = lr, η_B = lr × loraplus_ratio.
    fn plane_jobs(&self) -> Vec<LrJob> {
        let Some(p) = &self.grid().loraplus else {
            return Vec::new();
        };
        let arm = self
            .0
            .arms
            .iter()
            .find(|a| a.name == p.arm)
            .expect("validated");
        let mut jobs = Vec::new();
        for &width in &p.widths {
            for &eta_a in &p.rates_a.values() {
                for &eta_b in &p.rates_b.values() {
                    for &seed in &self.0.seeds {
                        let cell = Cell {
                            series: format!("{}[plane]", arm.name),
                            arm: arm.clone(),
                            lr: eta_a,
                            loraplus_ratio: eta_b / eta_a,
                            lr_exponent: BTreeMap::new(),
                            width,
                            seed,
                        };
                        jobs.push(LrJob { cell, plane: true });
                    }
                }
            }
        }
        jobs
    }
}

/// Median of finite-or-infinite values (NaN counts as +∞: a run that gave no loss never wins).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values
        .iter()
        .map(|x| if x.is_nan() { f64::INFINITY } else { *x })
        .collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// The best of `losses[k]` at `rates[k]`: the grid index of the minimum, and the minimiser of the parabola in η
/// through it and its two neighbours (exact for a loss quadratic in η). `None` if no loss is finite. At an edge of
/// the grid, or when a neighbour is not finite or the parabola does not open upwards, the grid rate itself.
pub fn best_rate(rates: &[f64], losses: &[f64]) -> Option<(usize, f64)> {
    let k = (0..losses.len())
        .filter(|&k| losses[k].is_finite())
        .min_by(|&a, &b| losses[a].total_cmp(&losses[b]))?;
    if k == 0 || k + 1 == rates.len() || !losses[k - 1].is_finite() || !losses[k + 1].is_finite() {
        return Some((k, rates[k]));
    }
    let (x0, x1, x2) = (rates[k - 1], rates[k], rates[k + 1]);
    let (y0, y1, y2) = (losses[k - 1], losses[k], losses[k + 1]);
    // Vertex of the interpolating parabola: x* = x1 − ½·[(x1−x0)²(y1−y2) − (x1−x2)²(y1−y0)] /
    // [(x1−x0)(y1−y2) − (x1−x2)(y1−y0)].
    let num = (x1 - x0).powi(2) * (y1 - y2) - (x1 - x2).powi(2) * (y1 - y0);
    let den = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0);
    let vertex = x1 - 0.5 * num / den;
    let ok = den.is_finite() && den != 0.0 && vertex.is_finite() && vertex > x0 && vertex < x2;
    Some((k, if ok { vertex } else { x1 }))
}

/// The near-best window around grid index `best`: the contiguous rates whose loss is within `tol` (relative) of the
/// best loss, as (lowest rate, highest rate).
pub fn window(rates: &[f64], losses: &[f64], best: usize, tol: f64) -> (f64, f64) {
    let limit = losses[best] * (1.0 + tol);
    let near = |k: usize| losses[k].is_finite() && losses[k] <= limit;
    let (mut lo, mut hi) = (best, best);
    while lo > 0 && near(lo - 1) {
        lo -= 1;
    }
    while hi + 1 < rates.len() && near(hi + 1) {
        hi += 1;
    }
    (rates[lo], rates[hi])
}

/// The near-best window's width in octaves below the grid's resolution: the parabola in u = log₂ η through the best
/// grid rate and its two neighbours (spacing h octaves), L(u) ≈ L* + ½κ(u − u*)², is within `tol`·L* of its minimum
/// over 2·√(2·tol·L*/κ) octaves, with κ = (L₋ − 2L₀ + L₊)/h² and L* = L₀ − (L₊ − L₋)²/(8κh²). `None` at an edge of the
/// grid, next to a non-finite loss, or when the parabola does not open upwards.
pub fn parabolic_window(rates: &[f64], losses: &[f64], best: usize, tol: f64) -> Option<f64> {
    if best == 0 || best + 1 >= rates.len() {
        return None;
    }
    let (lm, l0, lp) = (losses[best - 1], losses[best], losses[best + 1]);
    let h = (rates[best + 1] / rates[best]).log2();
    let h_left = (rates[best] / rates[best - 1]).log2();
    if !(lm.is_finite() && lp.is_finite()) || (h - h_left).abs() > 1e-9 * h {
        return None;
    }
    let second = lm - 2.0 * l0 + lp;
    if second <= 0.0 {
        return None;
    }
    let kappa = second / (h * h);
    let l_star = l0 - (lp - lm).powi(2) / (8.0 * second);
    (l_star > 0.0).then(|| 2.0 * (2.0 * tol * l_star / kappa).sqrt())
}

/// One (series, width) of the rate line.
#[derive(Clone, Debug)]
pub struct LineSummary {
    /// Series.
    pub series: String,
    /// Width.
    pub width: usize,
    /// Median final training loss at each rate.
    pub train: Vec<f64>,
    /// Median final held-out loss at each rate.
    pub test: Vec<f64>,
    /// Smallest and largest selection loss over seeds at each rate (the spread).
    pub spread: Vec<(f64, f64)>,
    /// The best rate η* from the median selection loss (refined), and whether it sits at an edge of the grid.
    pub best: Option<(f64, bool)>,
    /// The median selection loss at the best grid rate.
    pub best_loss: f64,
    /// The near-best window (lowest, highest rate) and its width in octaves (0: only the best grid rate, i.e. narrower
    /// than the grid's spacing).
    pub window: Option<(f64, f64, f64)>,
    /// The window's width in octaves from the parabola through the best three rates ([`parabolic_window`]).
    pub window_parabola: Option<f64>,
    /// The smallest rate at which some seed diverged.
    pub first_diverging: Option<f64>,
    /// The median initial training loss (the same at every rate: the run's base and data do not depend on it).
    pub initial: f64,
    /// Each seed's refined η* (NaN where every rate diverged), in seed order.
    pub seed_best: Vec<f64>,
}

/// Per series: the width exponent of η*.
#[derive(Clone, Debug)]
pub struct Drift {
    /// Series.
    pub series: String,
    /// Slope of log η* on log n with its interval, if at least two widths have a best rate.
    pub fit: Option<Slope>,
    /// Whether some width's best rate sits at an edge of the grid (the drift is then censored).
    pub at_edge: bool,
}

/// One cell of the LoRA+ plane: median selection loss over seeds.
#[derive(Clone, Debug)]
pub struct PlaneCell {
    /// Width.
    pub width: usize,
    /// η_A.
    pub eta_a: f64,
    /// η_B.
    pub eta_b: f64,
    /// Median selection loss.
    pub loss: f64,
    /// Within `near_best` of the best cell at this width.
    pub near_best: bool,
}

/// Everything a learning-rate study produces.
pub struct LrResults {
    /// The rates.
    pub rates: Vec<f64>,
    /// The grid's spacing in octaves (the smallest ratio of neighbouring rates, log₂).
    pub spacing: f64,
    /// Every finished run of the rate line and plane, in grid order.
    pub runs: Vec<(LrJob, LrRun)>,
    /// Per (series, width), in series then width order.
    pub lines: Vec<LineSummary>,
    /// Per series.
    pub drifts: Vec<Drift>,
    /// The LoRA+ plane (empty without one).
    pub plane: Vec<PlaneCell>,
}

/// Runs every unfinished job of the study into `out` and analyses the runs.
pub fn run_lr(cfg: &StudyConfig, out: &Path, opts: &RunOptions) -> Result<LrResults> {
    Ok(results(cfg, run_study(&LrStudy(cfg), out, opts)?))
}

/// The engine's finished runs, analysed.
pub fn results(cfg: &StudyConfig, finished: Finished<LrStudy<'_>>) -> LrResults {
    let runs = finished.runs.into_iter().map(|f| (f.job, f.run)).collect();
    analyse(cfg, runs)
}

/// The rate line's runs per (series, width, seed), each in rate order (the LoRA+ plane left out).
pub fn by_seed(runs: &[(LrJob, LrRun)]) -> BTreeMap<(String, usize, u64), Vec<&LrRun>> {
    let mut by: BTreeMap<(String, usize, u64), Vec<&LrRun>> = BTreeMap::new();
    for (job, run) in runs.iter().filter(|(j, _)| !j.plane) {
        let c = &job.cell;
        by.entry((c.series.clone(), c.width, c.seed))
            .or_default()
            .push(run);
    }
    by
}

/// The tables of [`LrResults`] from the runs (see the module doc).
pub fn analyse(cfg: &StudyConfig, runs: Vec<(LrJob, LrRun)>) -> LrResults {
    let grid = cfg.lr_grid.as_ref().expect("an lr study");
    let rates = grid.rates.values();
    let by = by_seed(&runs);
    let mut lines = Vec::new();
    let mut drifts = Vec::new();
    for (series, _, _) in cfg.series() {
        let mut seed_best: Vec<Vec<f64>> = Vec::new();
        let mut at_edge = false;
        for &width in &cfg.widths {
            let per_seed: Vec<&Vec<&LrRun>> = cfg
                .seeds
                .iter()
                .filter_map(|&s| by.get(&(series.clone(), width, s)))
                .collect();
            let line = line_summary(&series, width, &rates, &per_seed, grid);
            at_edge |= line.best.is_some_and(|(_, edge)| edge);
            seed_best.push(line.seed_best.clone());
            lines.push(line);
        }
        let fit = fit_slope(&cfg.widths, &seed_best);
        drifts.push(Drift {
            series,
            fit,
            at_edge,
        });
    }
    let plane = plane_cells(cfg, &runs, grid);
    let spacing = rates
        .windows(2)
        .map(|w| (w[1] / w[0]).log2())
        .fold(f64::INFINITY, f64::min);
    LrResults {
        rates,
        spacing,
        runs,
        lines,
        drifts,
        plane,
    }
}

fn line_summary(
    series: &str,
    width: usize,
    rates: &[f64],
    per_seed: &[&Vec<&LrRun>],
    grid: &LrGrid,
) -> LineSummary {
    let at = |k: usize, f: &dyn Fn(&LrRun) -> f64| -> Vec<f64> {
        per_seed.iter().map(|runs| f(runs[k])).collect()
    };
    let n = rates.len();
    let select = |r: &LrRun| r.loss(grid.select);
    let sel: Vec<f64> = (0..n).map(|k| median(&at(k, &select))).collect();
    let spread = (0..n)
        .map(|k| {
            let v = at(k, &select);
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (lo, hi)
        })
        .collect();
    let best = best_rate(rates, &sel);
    let window = best.map(|(k, _)| {
        let (lo, hi) = window(rates, &sel, k, grid.near_best);
        (lo, hi, (hi / lo).log2())
    });
    let window_parabola = best.and_then(|(k, _)| parabolic_window(rates, &sel, k, grid.near_best));
    let first_diverging = (0..n)
        .find(|&k| per_seed.iter().any(|runs| runs[k].diverged_at.is_some()))
        .map(|k| rates[k]);
    let seed_best = per_seed
        .iter()
        .map(|runs| {
            let losses: Vec<f64> = runs.iter().map(|r| select(r)).collect();
            best_rate(rates, &losses).map_or(f64::NAN, |(_, eta)| eta)
        })
        .collect();
    LineSummary {
        series: series.to_string(),
        width,
        train: (0..n).map(|k| median(&at(k, &|r| r.final_loss))).collect(),
        test: (0..n)
            .map(|k| median(&at(k, &|r| r.final_test_loss)))
            .collect(),
        spread,
        best: best.map(|(k, eta)| (eta, k == 0 || k + 1 == n)),
        best_loss: best.map_or(f64::NAN, |(k, _)| sel[k]),
        window,
        window_parabola,
        first_diverging,
        initial: median(&at(0, &|r| r.initial_loss)),
        seed_best,
    }
}

fn plane_cells(cfg: &StudyConfig, runs: &[(LrJob, LrRun)], grid: &LrGrid) -> Vec<PlaneCell> {
    let mut by: BTreeMap<(usize, u64, u64), Vec<f64>> = BTreeMap::new();
    for (job, run) in runs.iter().filter(|(j, _)| j.plane) {
        let c = &job.cell;
        let eta_b = c.lr * c.loraplus_ratio;
        by.entry((c.width, c.lr.to_bits(), eta_b.to_bits()))
            .or_default()
            .push(run.loss(grid.select));
    }
    let mut cells: Vec<PlaneCell> = by
        .into_iter()
        .map(|((width, a, b), losses)| PlaneCell {
            width,
            eta_a: f64::from_bits(a),
            eta_b: f64::from_bits(b),
            loss: median(&losses),
            near_best: false,
        })
        .collect();
    for &w in cfg
        .lr_grid
        .iter()
        .flat_map(|g| g.loraplus.iter())
        .flat_map(|p| &p.widths)
    {
        let best = cells
            .iter()
            .filter(|c| c.width == w && c.loss.is_finite())
            .map(|c| c.loss)
            .fold(f64::INFINITY, f64::min);
        for c in cells.iter_mut().filter(|c| c.width == w) {
            c.near_best = c.loss.is_finite() && c.loss <= best * (1.0 + grid.near_best);
        }
    }
    cells
}
