//! The final loss against width: per series, the width exponent of the training and held-out loss at the last
//! recorded step (the `loss` and `test_loss` rows of `fits.csv`), with its interval and verdict, and the loss itself
//! at the smallest and largest width (the arithmetic mean over the seeds whose loss is finite).
//!
//! The exponent is the same fit as every other (`studies::fit`): the mean over seeds of each seed's log-log OLS
//! slope of the loss against n, so a loss that is the same at every width has slope 0 and one that doubles per
//! ×2 in width has slope +1. It carries no theory prediction; it says whether training is width-invariant.

use std::fmt::Write as _;

use super::{find_fit, series_names, FitKey, FitRow, Grouped};
use crate::probes::Quantity;
use crate::studies::config::StudyConfig;

/// The mean of the finite values of `row` (`None` if there are none).
fn finite_mean(row: &[f64]) -> Option<f64> {
    let v: Vec<f64> = row.iter().copied().filter(|x| x.is_finite()).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// One quantity's cells for a series: `slope [lo,hi] verdict` and `first→last` loss.
fn cells(
    cfg: &StudyConfig,
    grouped: &Grouped,
    fits: &[FitRow],
    series: &str,
    q: Quantity,
) -> (String, String) {
    let step = cfg.last_recorded_step();
    let fit = find_fit(fits, series, "model", q, step)
        .map(FitRow::cell)
        .unwrap_or_else(|| "—".into());
    let key = FitKey {
        series: series.into(),
        layer: "model".into(),
        quantity: q,
        step,
    };
    let ends = grouped
        .get(&key)
        .and_then(|v| Some((finite_mean(v.first()?)?, finite_mean(v.last()?)?)))
        .map(|(a, b)| format!("{a:.3}→{b:.3}"))
        .unwrap_or_else(|| "—".into());
    (fit, ends)
}

/// The table (empty when the study fitted no loss): a row per series, the training loss and, where recorded, the
/// held-out loss.
pub fn loss_summary(cfg: &StudyConfig, grouped: &Grouped, fits: &[FitRow]) -> String {
    let step = cfg.last_recorded_step();
    let has = |q: Quantity| {
        fits.iter()
            .any(|r| r.key.quantity == q && r.key.step == step)
    };
    let quantities: Vec<Quantity> = [Quantity::Loss, Quantity::TestLoss]
        .into_iter()
        .filter(|&q| has(q))
        .collect();
    if quantities.is_empty() {
        return String::new();
    }
    let (n_min, n_max) = (cfg.widths[0], cfg.widths[cfg.widths.len() - 1]);
    let mut s = String::new();
    let _ = writeln!(s, "final loss against width at t = {step} (log-log slope over n = {:?}, 95% Student-t interval over {} seeds; loss at n = {n_min} → {n_max}, mean over seeds)", cfg.widths, cfg.seeds.len());
    let _ = write!(s, "{:<18}", "series");
    for q in &quantities {
        let _ = write!(s, " {:>30} {:>13}", format!("{q} slope"), format!("{q}"));
    }
    let _ = writeln!(s);
    for name in series_names(fits) {
        let _ = write!(s, "{name:<18}");
        for &q in &quantities {
            let (fit, ends) = cells(cfg, grouped, fits, &name, q);
            let _ = write!(s, " {fit:>30} {ends:>13}");
        }
        let _ = writeln!(s);
    }
    s
}
