//! C8: SingLoRA+DoRA against DoRA and SingLoRA, and SingLoRA's LoRA+-style role split against SingLoRA, each at its
//! own best rate, from the learning-rate study.
//!
//! Per width and seed, each method's best final training loss over the rate grid (a diverged run never wins); per
//! seed, the mean over widths of log₂(SingLoRA+DoRA's best ÷ the worse parent's) and of log₂(… ÷ the better
//! parent's); the mean over seeds with its Student-t interval. The composition with LoRA+ is measured with the role
//! split of THEORY O10 (arm `singlora+`: A steps along λ·(output-role gradient) + (input-role gradient), λ = the arm's
//! `loraplus_ratio`): the same seed mean of log₂(SingLoRA+'s best ÷ SingLoRA's best).

use std::ops::Not;

use super::plan::LrOutput;
use super::{per_width, Check, Claim, ClaimResult, Estimate, Number, Outcome};
use crate::studies::lr::{median, LrRun};

/// Within 5% of a parent's best loss counts as "as good" (log₂ units).
pub fn tol() -> f64 {
    1.05f64.log2()
}

/// C8's measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct C8Measurements {
    /// log₂(best of SingLoRA+DoRA ÷ best of the worse parent), per seed mean over widths, over seeds.
    pub vs_worse: Estimate,
    /// The same against the better parent.
    pub vs_better: Estimate,
    /// (width, seed) cells where SingLoRA+DoRA's best loss is below its initial loss, and all cells.
    pub learns: (usize, usize),
    /// Median over seeds of each method's best loss per width: (method, width, loss).
    pub best: Vec<(String, usize, f64)>,
    /// log₂(best of SingLoRA+ ÷ best of SingLoRA), per seed mean over widths, over seeds.
    pub split_vs_single: Estimate,
    /// (width, seed) cells where SingLoRA+'s best loss is below its initial loss, and the cells it was run on.
    pub split_learns: (usize, usize),
    /// The split's λ (the `singlora+` arm's `loraplus_ratio`; NaN without the arm).
    pub ratio: f64,
}

/// The arm of SingLoRA's role split.
pub const SPLIT_ARM: &str = "singlora+";

/// Per seed, the mean over widths of log₂(`num` ÷ `den(width index, seed index)`), `num` indexed `[width][seed]`.
fn seed_means(num: &[Vec<(f64, f64)>], den: impl Fn(usize, usize) -> f64) -> Vec<f64> {
    let seeds = num.first().map_or(0, Vec::len);
    (0..seeds)
        .map(|k| {
            num.iter()
                .enumerate()
                .map(|(w, row)| (row[k].0 / den(w, k)).log2())
                .sum::<f64>()
                / num.len() as f64
        })
        .collect()
}

/// (cells whose best loss is below the initial loss, cells that were run).
fn learned(v: &[Vec<(f64, f64)>]) -> (usize, usize) {
    let cells: Vec<(f64, f64)> = v
        .iter()
        .flatten()
        .copied()
        .filter(|c| !c.0.is_nan())
        .collect();
    (cells.iter().filter(|(b, i)| b < i).count(), cells.len())
}

/// Per width and seed, the best selection loss over the grid and the initial loss of `arm`'s series (NaN where
/// there are no runs).
fn best_losses(lr: &LrOutput, arm: &str) -> Vec<Vec<(f64, f64)>> {
    let grid = lr.cfg.lr_grid.as_ref().expect("an lr study");
    let Some(series) = lr.series_of_arm(arm) else {
        return vec![vec![(f64::NAN, f64::NAN); lr.cfg.seeds.len()]; lr.cfg.widths.len()];
    };
    let best = |runs: &[&LrRun]| {
        let best = runs
            .iter()
            .map(|r| r.loss(grid.select))
            .fold(f64::INFINITY, f64::min);
        Some((best, runs[0].initial_loss))
    };
    let cells = lr.per_cell(&series, best).into_iter();
    cells
        .map(|row| {
            row.into_iter()
                .map(|c| c.unwrap_or((f64::NAN, f64::NAN)))
                .collect()
        })
        .collect()
}

/// Reads C8's comparisons from the learning-rate study (arms `dora`, `singlora`, `singlora_dora`, `singlora+`).
pub fn measure(lr: &LrOutput) -> C8Measurements {
    let (d, s, sd, sp) = (
        best_losses(lr, "dora"),
        best_losses(lr, "singlora"),
        best_losses(lr, "singlora_dora"),
        best_losses(lr, SPLIT_ARM),
    );
    let vs = |pick: fn(f64, f64) -> f64| seed_means(&sd, |w, k| pick(d[w][k].0, s[w][k].0));
    let mut best = Vec::new();
    for (name, v) in [
        ("dora", &d),
        ("singlora", &s),
        ("singlora_dora", &sd),
        (SPLIT_ARM, &sp),
    ] {
        for (w, &n) in lr.cfg.widths.iter().enumerate() {
            let losses: Vec<f64> = v[w].iter().map(|x| x.0).collect();
            best.push((name.to_string(), n, median(&losses)));
        }
    }
    let cells: Vec<(f64, f64)> = sd.iter().flatten().copied().collect();
    let split = seed_means(&sp, |w, k| s[w][k].0);
    C8Measurements {
        vs_worse: Estimate::mean_of(&vs(f64::max)).unwrap_or(Estimate::missing()),
        vs_better: Estimate::mean_of(&vs(f64::min)).unwrap_or(Estimate::missing()),
        learns: (cells.iter().filter(|(b, i)| b < i).count(), cells.len()),
        best,
        split_vs_single: Estimate::mean_of(&split).unwrap_or(Estimate::missing()),
        split_learns: learned(&sp),
        ratio: lr
            .cfg
            .arms
            .iter()
            .find(|a| a.name == SPLIT_ARM)
            .map_or(f64::NAN, |a| a.loraplus_ratio),
    }
}

/// The role split's checks. Core: SingLoRA+ learns at every width and seed it ran on, and is not worse than SingLoRA
/// by more than 5%. Condition: it gains more than 5% on SingLoRA, as LoRA+ is meant to on LoRA.
fn split_checks(m: &C8Measurements) -> Vec<Check> {
    let t = tol();
    let (l, n) = m.split_learns;
    let learns = if n == 0 {
        Outcome::Unclear
    } else {
        Outcome::of(l == n)
    };
    vec![
        Check::core(
            format!("SingLoRA+ (role split λ = {}) trains: at every width and seed its best final loss is below its initial loss ({l} of {n} cells)", m.ratio),
            learns,
        ),
        Check::core(
            format!("the split does not hurt SingLoRA: log₂(SingLoRA+'s best ÷ SingLoRA's best) = {} not above log₂ 1.05 = {t:.3}", m.split_vs_single.text(3)),
            m.split_vs_single.exceeds(t).not(),
        ),
        Check::condition(
            format!("the split gains, as LoRA+ is meant to: log₂(SingLoRA+'s best ÷ SingLoRA's best) = {} below −{t:.3}", m.split_vs_single.text(3)),
            m.split_vs_single.below(-t),
        ),
    ]
}

/// C8's verdict. Core: SingLoRA+DoRA learns at every width and seed, and is not worse than the worse parent by more
/// than 5%; the role split's core checks (`split_checks`). Conditions: SingLoRA+DoRA is within 5% of the better
/// parent; the split gains more than 5% on SingLoRA.
pub fn judge(m: &C8Measurements) -> ClaimResult {
    let t = tol();
    let mut checks = vec![
        Check::core(
            format!("SingLoRA+DoRA trains: at every width and seed its best final loss is below its initial loss ({} of {} cells)", m.learns.0, m.learns.1),
            Outcome::of(m.learns.1 > 0 && m.learns.0 == m.learns.1),
        ),
        Check::core(
            format!("it is not worse than the worse of DoRA and SingLoRA: log₂(best ÷ worse parent's best) = {} not above log₂ 1.05 = {t:.3}", m.vs_worse.text(3)),
            m.vs_worse.exceeds(t).not(),
        ),
        Check::condition(
            format!("it is as good as the better parent: log₂(best ÷ better parent's best) = {} not above {t:.3}", m.vs_better.text(3)),
            m.vs_better.exceeds(t).not(),
        ),
    ];
    checks.extend(split_checks(m));
    let mut numbers = vec![
        Number::estimate("log₂ SingLoRA+DoRA / worse parent", &m.vs_worse),
        Number::estimate("log₂ SingLoRA+DoRA / better parent", &m.vs_better),
        Number::estimate(
            format!("log₂ SingLoRA+ (λ = {}) / SingLoRA", m.ratio),
            &m.split_vs_single,
        ),
    ];
    numbers.extend(per_width(&m.best, "best final loss", 4));
    let setting = format!("DoRA (magnitude and direction around LoRA), SingLoRA, SingLoRA+DoRA (DoRA around the SingLoRA update, THEORY §7) and SingLoRA+ (SingLoRA with the LoRA+-style role split of THEORY O10: A steps along λ·(output-role gradient) + (input-role gradient), λ = {}, Adam's moments taken of that direction) in the learning-rate study of C6: each method's best final training loss over the whole rate grid, so that each is compared at its own best rate.", m.ratio);
    ClaimResult::new(Claim::C8, checks, numbers, setting).with_figures(&["lr/figures/lr_loss.png"])
}
