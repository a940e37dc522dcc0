//! Tables of a finished sweep: the long-format results, the fitted exponents with verdicts, and the summary a user
//! reads in the terminal.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::fit::{fit_slope, verdict, Slope};
use super::sweep::{RunResult, SweepConfig};
use crate::error::Result;
use crate::io::write_atomic;
use crate::theory::Regime;

/// One fitted row: a (series, layer, quantity, step) and its exponent.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FitRow {
    /// Series (arm and exponent).
    pub series: String,
    /// Layer.
    pub layer: String,
    /// Quantity.
    pub quantity: String,
    /// Step.
    pub step: u64,
    /// The fit.
    pub fit: Slope,
    /// Measured verdict at the study's tolerance.
    pub verdict: &'static str,
    /// The regime of the prediction compared here: Init at step 0, FirstStep at step 1, Balanced at the last
    /// recorded step.
    pub regime: Option<Regime>,
    /// The theory's predicted exponent, where the engine derives one.
    pub predicted: Option<f64>,
    /// `agree`, `near` or `disagree` (prediction against the interval), when there is a prediction.
    pub agreement: Option<&'static str>,
}

/// Values grouped as `[(series, layer, quantity, step)] → [width][seed]`.
pub type Grouped = BTreeMap<(String, String, String, u64), Vec<Vec<f64>>>;

/// Groups the runs' records by (series, layer, quantity, step) into width × seed arrays (NaN where missing).
pub fn group(cfg: &SweepConfig, runs: &[RunResult]) -> Grouped {
    let mut out: Grouped = BTreeMap::new();
    for run in runs {
        let w = cfg
            .widths
            .iter()
            .position(|&x| x == run.cell.width)
            .expect("width of the grid");
        let s = cfg
            .seeds
            .iter()
            .position(|&x| x == run.cell.seed)
            .expect("seed of the grid");
        for r in &run.records {
            let slot = out
                .entry((
                    run.cell.series.clone(),
                    r.layer.clone(),
                    r.quantity.clone(),
                    r.step,
                ))
                .or_insert_with(|| vec![vec![f64::NAN; cfg.seeds.len()]; cfg.widths.len()]);
            slot[w][s] = r.value;
        }
    }
    out
}

/// Fits every group, and puts the theory's prediction beside each fit it has one for: the initial-state prediction at
/// step 0, the first-step one at step 1 and the balanced-regime one at the last recorded step.
pub fn fit_all(cfg: &SweepConfig, grouped: &Grouped) -> Vec<FitRow> {
    let cells = cfg.cells();
    let theory_layer = cfg.theory_layer();
    let last = cfg.last_recorded_step();
    grouped
        .iter()
        .enumerate()
        .filter_map(|(i, ((series, layer, quantity, step), values))| {
            let fit = fit_slope(&cfg.widths, values, cfg.bootstrap, i as u64)?;
            let prediction = (theory_layer == Some(layer.as_str()))
                .then(|| cells.iter().find(|c| &c.series == series))
                .flatten()
                .zip(Regime::compared_at(*step, last))
                .and_then(|(c, regime)| {
                    cfg.setting(c)
                        .predictions()
                        .into_iter()
                        .find(|p| p.quantity == quantity && p.regime == regime)
                });
            let regime = prediction.as_ref().map(|p| p.regime);
            let predicted = prediction.map(|p| p.exponent);
            let agreement =
                predicted.map(|p| crate::theory::agreement(p, fit.lo, fit.hi, cfg.flat_tol));
            Some(FitRow {
                series: series.clone(),
                layer: layer.clone(),
                quantity: quantity.clone(),
                step: *step,
                verdict: verdict(&fit, cfg.flat_tol),
                fit,
                regime,
                predicted,
                agreement,
            })
        })
        .collect()
}

/// Writes `results.csv` and `fits.csv` into `out`.
pub fn write_tables(out: &Path, runs: &[RunResult], fits: &[FitRow]) -> Result<()> {
    let mut csv = String::from("series,arm,method,width,seed,layer,quantity,step,value\n");
    for run in runs {
        let c = &run.cell;
        for r in &run.records {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{},{},{}",
                c.series,
                c.arm.name,
                c.arm.method,
                c.width,
                c.seed,
                r.layer,
                r.quantity,
                r.step,
                r.value
            );
        }
        if let Some(t) = run.diverged_at {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},model,diverged_at,{t},{t}",
                c.series, c.arm.name, c.arm.method, c.width, c.seed
            );
        }
    }
    write_atomic(&out.join("results.csv"), csv.as_bytes())?;
    let mut f = String::from(
        "series,layer,quantity,step,slope,ci_lo,ci_hi,widths,verdict,regime,predicted,agreement\n",
    );
    for r in fits {
        let p = r.predicted.map(|v| v.to_string()).unwrap_or_default();
        let a = r.agreement.unwrap_or_default();
        let g = r.regime.map(Regime::name).unwrap_or_default();
        let _ = writeln!(
            f,
            "{},{},{},{},{:.4},{:.4},{:.4},{},{},{g},{p},{a}",
            r.series,
            r.layer,
            r.quantity,
            r.step,
            r.fit.slope,
            r.fit.lo,
            r.fit.hi,
            r.fit.widths,
            r.verdict
        );
    }
    write_atomic(&out.join("fits.csv"), f.as_bytes())
}

/// The terminal summary: for each series, the slope of `quantity` at `layer` for a few steps, with its interval and
/// verdict, the final loss at the smallest and largest width, and the theory's first-step (t = 1) and balanced (last
/// recorded step) predictions with their agreement.
pub fn summary(
    cfg: &SweepConfig,
    grouped: &Grouped,
    fits: &[FitRow],
    layer: &str,
    quantity: &str,
) -> String {
    let steps: Vec<u64> = {
        let mut all: Vec<u64> = fits
            .iter()
            .filter(|r| r.layer == layer && r.quantity == quantity)
            .map(|r| r.step)
            .collect();
        all.sort();
        all.dedup();
        let pick = [1u64, 2, 4, 8, cfg.steps];
        all.into_iter().filter(|s| pick.contains(s)).collect()
    };
    let mut s = String::new();
    let _ = writeln!(s, "width exponent of {quantity} at {layer} (log-log slope over n = {:?}, 95% bootstrap interval over {} seeds; flat = |slope| ≤ {})", cfg.widths, cfg.seeds.len(), cfg.flat_tol);
    let _ = write!(s, "{:<18}", "series");
    for t in &steps {
        let _ = write!(s, " {:>28}", format!("t = {t}"));
    }
    let _ = writeln!(
        s,
        " {:>22}  theory: t = 1 | balanced (t = {})",
        "final loss n_min→n_max",
        cfg.last_recorded_step()
    );
    let series: Vec<String> = {
        let mut v: Vec<String> = fits.iter().map(|r| r.series.clone()).collect();
        v.dedup();
        v
    };
    for name in series {
        let _ = write!(s, "{name:<18}");
        for t in &steps {
            let cell = fits
                .iter()
                .find(|r| {
                    r.series == name && r.layer == layer && r.quantity == quantity && r.step == *t
                })
                .map(|r| {
                    format!(
                        "{:+.2} [{:+.2},{:+.2}] {}",
                        r.fit.slope, r.fit.lo, r.fit.hi, r.verdict
                    )
                })
                .unwrap_or_else(|| "—".into());
            let _ = write!(s, " {cell:>28}");
        }
        let loss = grouped.get(&(name.clone(), "model".into(), "loss".into(), cfg.steps));
        let mean = |row: &Vec<f64>| row.iter().sum::<f64>() / row.len() as f64;
        let l = loss
            .map(|v| format!("{:.3}→{:.3}", mean(&v[0]), mean(&v[v.len() - 1])))
            .unwrap_or_else(|| "diverged".into());
        let pred = |regime: Regime| {
            fits.iter()
                .find(|r| {
                    r.series == name
                        && r.layer == layer
                        && r.quantity == quantity
                        && r.regime == Some(regime)
                })
                .and_then(|r| {
                    r.predicted
                        .map(|p| format!("{p:+.2} ({})", r.agreement.unwrap_or("")))
                })
                .unwrap_or_else(|| "—".into())
        };
        let _ = writeln!(
            s,
            " {l:>22}  {} | {}",
            pred(Regime::FirstStep),
            pred(Regime::Balanced)
        );
    }
    s
}
