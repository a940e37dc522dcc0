//! C8: SingLoRA+DoRA against DoRA and SingLoRA, each at its own best rate, from the learning-rate study.
//!
//! Per width and seed, each method's best final training loss over the rate grid (a diverged run never wins); per
//! seed, the mean over widths of log₂(SingLoRA+DoRA's best ÷ the worse parent's) and of log₂(… ÷ the better
//! parent's); the mean over seeds with its Student-t interval. The paper's other composition, with LoRA+, has no
//! definition for one matrix (THEORY C8, O10: there is no B/A pair) and is not measured by this version.

use std::ops::Not;

use super::plan::LrOutput;
use super::{per_width, Check, Claim, ClaimResult, Estimate, Number, Outcome};
use crate::studies::lr::{by_seed, median};

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
}

/// Per width and seed, the best selection loss over the grid and the initial loss of `arm`'s series.
fn best_losses(lr: &LrOutput, arm: &str) -> Vec<Vec<(f64, f64)>> {
    let grid = lr.cfg.lr_grid.as_ref().expect("an lr study");
    let series = lr
        .cfg
        .series()
        .into_iter()
        .find(|(_, a, _)| a.name == arm)
        .map(|(name, _, _)| name);
    let by = by_seed(&lr.results.runs);
    lr.cfg
        .widths
        .iter()
        .map(|&w| {
            lr.cfg
                .seeds
                .iter()
                .map(|&s| {
                    let runs = series.as_ref().and_then(|n| by.get(&(n.clone(), w, s)));
                    runs.map_or((f64::NAN, f64::NAN), |runs| {
                        let best = runs
                            .iter()
                            .map(|r| r.loss(grid.select))
                            .fold(f64::INFINITY, f64::min);
                        (best, runs[0].initial_loss)
                    })
                })
                .collect()
        })
        .collect()
}

/// Reads C8's comparisons from the learning-rate study (arms `dora`, `singlora`, `singlora_dora`).
pub fn measure(lr: &LrOutput) -> C8Measurements {
    let (d, s, sd) = (
        best_losses(lr, "dora"),
        best_losses(lr, "singlora"),
        best_losses(lr, "singlora_dora"),
    );
    let widths = lr.cfg.widths.len();
    let per_seed = |pick: fn(f64, f64) -> f64| -> Vec<f64> {
        (0..lr.cfg.seeds.len())
            .map(|k| {
                (0..widths)
                    .map(|w| (sd[w][k].0 / pick(d[w][k].0, s[w][k].0)).log2())
                    .sum::<f64>()
                    / widths as f64
            })
            .collect()
    };
    let cells: Vec<(f64, f64)> = sd.iter().flatten().copied().collect();
    let mut best = Vec::new();
    for (name, v) in [("dora", &d), ("singlora", &s), ("singlora_dora", &sd)] {
        for (w, &n) in lr.cfg.widths.iter().enumerate() {
            let losses: Vec<f64> = v[w].iter().map(|x| x.0).collect();
            best.push((name.to_string(), n, median(&losses)));
        }
    }
    C8Measurements {
        vs_worse: Estimate::mean_of(&per_seed(f64::max)).unwrap_or(Estimate::missing()),
        vs_better: Estimate::mean_of(&per_seed(f64::min)).unwrap_or(Estimate::missing()),
        learns: (cells.iter().filter(|(b, i)| b < i).count(), cells.len()),
        best,
    }
}

/// C8's verdict. Core: SingLoRA+DoRA learns at every width and seed, and is not worse than the worse parent by more
/// than 5%. Condition: it is within 5% of the better parent.
pub fn judge(m: &C8Measurements) -> ClaimResult {
    let t = tol();
    let checks = vec![
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
    let mut numbers = vec![
        Number::estimate("log₂ SingLoRA+DoRA / worse parent", &m.vs_worse),
        Number::estimate("log₂ SingLoRA+DoRA / better parent", &m.vs_better),
    ];
    numbers.extend(per_width(&m.best, "best final loss", 4));
    numbers.push(Number::new(
        "LoRA+-style rate split for SingLoRA",
        "not measured by this version",
    ));
    let setting = "DoRA (magnitude and direction around LoRA), SingLoRA, and SingLoRA+DoRA (DoRA around the SingLoRA update, THEORY §7) in the learning-rate study of C6: each method's best final training loss over the whole rate grid, so that each is compared at its own best rate. Composition with LoRA+ is not measured by this version: one matrix has no B/A pair, and a per-gradient-role rate split for SingLoRA is not implemented yet.".to_string();
    ClaimResult::new(Claim::C8, checks, numbers, setting).with_figures(&["lr/figures/lr_loss.png"])
}
