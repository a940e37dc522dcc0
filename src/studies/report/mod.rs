//! Tables a user reads: those of a finished sweep (the long-format results, the fitted exponents with verdicts, the
//! terminal summary) here, and the printouts of the other commands in [`theory`], [`limit`], [`lr`] and [`train`].

pub mod layers;
pub mod limit;
pub mod loss;
pub mod lr;
pub mod theory;
pub mod train;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::config::StudyConfig;
use super::fit::{fit_slope, verdict, Agreement, Slope, Verdict, INTERVAL_METHOD};
use super::sweep::RunResult;
use crate::error::Result;
use crate::io::write_atomic;
use crate::probes::Quantity;
use crate::theory::{Prediction, Regime, Setting, REACHED};

/// What a fit is of: a quantity of one series at one layer and step.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FitKey {
    /// Series (arm and exponent).
    pub series: String,
    /// Layer.
    pub layer: String,
    /// Quantity.
    pub quantity: Quantity,
    /// Step.
    pub step: u64,
}

/// One fitted row: a (series, layer, quantity, step) and its exponent.
#[derive(Clone, Debug)]
pub struct FitRow {
    /// What is fitted.
    pub key: FitKey,
    /// The fit.
    pub fit: Slope,
    /// Measured verdict at the study's tolerance.
    pub verdict: Verdict,
    /// The regime of the prediction compared here: Init at step 0, FirstStep at step 1, Balanced at the last
    /// recorded step.
    pub regime: Option<Regime>,
    /// The theory's predicted exponent, where the engine derives one.
    pub predicted: Option<f64>,
    /// The prediction against the interval, when there is a prediction: `not testable here` also when the
    /// prediction's reach ratio is below [`REACHED`].
    pub agreement: Option<Agreement>,
    /// The prediction's reach ratio in this study (`theory::reach`: the leading terms over the terms behind them,
    /// η₀·t·n^gap for one order, at the study's rate, step and smallest fitted width), when it has a reach condition.
    pub reach: Option<f64>,
}

impl FitRow {
    /// Whether the prediction's regime is reached here: no reach condition, or a ratio of at least [`REACHED`].
    pub fn regime_reached(&self) -> bool {
        self.reach.is_none_or(|r| r >= REACHED)
    }

    /// The fit as a table cell: slope, interval and verdict (`-0.12 [-0.21,-0.03] unclear`); without an interval
    /// (fewer than two seeds) the seed count instead (`-0.71 (1 seed) no_interval`).
    pub fn cell(&self) -> String {
        let f = &self.fit;
        if f.has_interval() {
            format!(
                "{:+.2} [{:+.2},{:+.2}] {}",
                f.slope, f.lo, f.hi, self.verdict
            )
        } else {
            let seeds = if f.n_seeds == 1 { "seed" } else { "seeds" };
            format!("{:+.2} ({} {seeds}) {}", f.slope, f.n_seeds, self.verdict)
        }
    }
}

/// Values grouped by what they are of, into `[width][seed]` arrays.
pub type Grouped = BTreeMap<FitKey, Vec<Vec<f64>>>;

/// The width exponents of a cell's rate law in one CSV field: `c` for one shared exponent, `role=c;…` otherwise.
pub fn exponent_field(exps: &BTreeMap<String, f64>) -> String {
    match (exps.len(), exps.get("default")) {
        (1, Some(c)) => c.to_string(),
        _ => exps
            .iter()
            .map(|(k, c)| format!("{k}={c}"))
            .collect::<Vec<_>>()
            .join(";"),
    }
}

/// Groups the runs' records by (series, layer, quantity, step) into width × seed arrays (NaN where missing).
pub fn group(cfg: &StudyConfig, runs: &[RunResult]) -> Grouped {
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
            let key = FitKey {
                series: run.cell.series.clone(),
                layer: r.layer.clone(),
                quantity: r.quantity,
                step: r.step,
            };
            let slot = out
                .entry(key)
                .or_insert_with(|| vec![vec![f64::NAN; cfg.seeds.len()]; cfg.widths.len()]);
            slot[w][s] = r.value;
        }
    }
    out
}

/// The reach ratio of `p` (`theory::reach`) for a fit at `step` of `values[w][s]`: at $\eta_0\Lambda_t$, the rate
/// prefactor of the prediction's role (η₀ times LoRA+'s ratio if the role trains in B's group) times the summed
/// schedule $\Lambda_t = \sum_{s=1}^{t}\lambda(s)$, and the smallest width with a usable point.
fn reach_ratio(
    cfg: &StudyConfig,
    setting: &Setting,
    p: &Prediction,
    step: u64,
    values: &[Vec<f64>],
) -> Option<f64> {
    let reach = p.reach.as_ref()?;
    let summed: f64 = (1..=step).map(|s| cfg.optimizer.schedule.factor(s)).sum();
    let rate_steps = cfg.lr * setting.groups.factor(reach.rate, 1) * summed;
    let n_min = cfg
        .widths
        .iter()
        .zip(values)
        .find(|(_, row)| row.iter().any(|v| v.is_finite() && *v > 0.0))
        .map(|(&n, _)| n)?;
    Some(reach.ratio(rate_steps, n_min))
}

/// Fits every group, and puts the theory's prediction beside each fit it has one for: the initial-state prediction at
/// step 0, the first-step one at step 1 and the balanced-regime one at the last recorded step. A prediction whose
/// reach ratio is below [`REACHED`] is `not testable here` (its leading terms do not yet lead at these widths).
pub fn fit_all(cfg: &StudyConfig, grouped: &Grouped) -> Vec<FitRow> {
    let cells = cfg.cells();
    let last = cfg.last_recorded_step();
    grouped
        .iter()
        .filter_map(|(key, values)| {
            let fit = fit_slope(&cfg.widths, values)?;
            let setting = cfg
                .theory_shape(&key.layer)
                .zip(cells.iter().find(|c| c.series == key.series))
                .map(|(shape, c)| cfg.setting_at(c, shape));
            let prediction = setting
                .as_ref()
                .zip(Regime::compared_at(key.step, last))
                .and_then(|(s, regime)| {
                    s.predictions()
                        .into_iter()
                        .find(|p| p.quantity == key.quantity && p.regime == regime)
                });
            let reach = setting
                .as_ref()
                .zip(prediction.as_ref())
                .and_then(|(s, p)| reach_ratio(cfg, s, p, key.step, values));
            let agreement = prediction.as_ref().map(|p| match reach {
                Some(r) if r < REACHED => Agreement::NotTestable,
                _ => Agreement::of(p.exponent, &fit, cfg.flat_tol),
            });
            Some(FitRow {
                key: key.clone(),
                verdict: verdict(&fit, cfg.flat_tol),
                fit,
                regime: prediction.as_ref().map(|p| p.regime),
                predicted: prediction.map(|p| p.exponent),
                agreement,
                reach,
            })
        })
        .collect()
}

/// The distinct series of `fits`, in table order (fits are sorted by series).
pub fn series_names(fits: &[FitRow]) -> Vec<String> {
    let mut v: Vec<String> = fits.iter().map(|r| r.key.series.clone()).collect();
    v.dedup();
    v
}

/// The fit of `quantity` at `layer` and `step` for `series`, if there is one.
pub fn find_fit<'a>(
    fits: &'a [FitRow],
    series: &str,
    layer: &str,
    quantity: Quantity,
    step: u64,
) -> Option<&'a FitRow> {
    fits.iter().find(|r| {
        r.key.series == series
            && r.key.layer == layer
            && r.key.quantity == quantity
            && r.key.step == step
    })
}

/// Writes `results.csv` and `fits.csv` into `out`.
pub fn write_tables(out: &Path, runs: &[RunResult], fits: &[FitRow]) -> Result<()> {
    write_atomic(&out.join("results.csv"), results_csv(runs).as_bytes())?;
    write_atomic(&out.join("fits.csv"), fits_csv(fits).as_bytes())
}

/// `results.csv`: one row per recorded value (run, layer, quantity, step), and a `diverged_at` row per diverged run.
fn results_csv(runs: &[RunResult]) -> String {
    let mut csv = String::from(
        "series,arm,method,width,seed,layer,quantity,step,value,lr,lr_exponent,loraplus_ratio\n",
    );
    for run in runs {
        let c = &run.cell;
        let rate = format!(
            "{},{},{}",
            c.lr,
            exponent_field(&c.lr_exponent),
            c.loraplus_ratio
        );
        for r in &run.records {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{},{},{},{rate}",
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
                "{},{},{},{},{},model,{},{t},{t},{rate}",
                c.series,
                c.arm.name,
                c.arm.method,
                c.width,
                c.seed,
                Quantity::DivergedAt
            );
        }
    }
    csv
}

/// `fits.csv`: one row per fitted width exponent, with its interval, verdict and the theory's prediction.
fn fits_csv(fits: &[FitRow]) -> String {
    let mut f = String::from(
        "series,layer,quantity,step,slope,ci_lo,ci_hi,widths,verdict,regime,predicted,agreement,interval,n_seeds,points,partial,seed_slopes\n",
    );
    for r in fits {
        let p = r.predicted.map(|v| v.to_string()).unwrap_or_default();
        let a = r.agreement.map(Agreement::name).unwrap_or_default();
        let g = r.regime.map(Regime::name).unwrap_or_default();
        let seeds: Vec<String> = r
            .fit
            .seed_slopes
            .iter()
            .map(|p| format!("{p:.4}"))
            .collect();
        let _ = writeln!(
            f,
            "{},{},{},{},{:.4},{:.4},{:.4},{},{},{g},{p},{a},{INTERVAL_METHOD},{},{},{},{}",
            r.key.series,
            r.key.layer,
            r.key.quantity,
            r.key.step,
            r.fit.slope,
            r.fit.lo,
            r.fit.hi,
            r.fit.widths,
            r.verdict,
            r.fit.n_seeds,
            r.fit.points,
            r.fit.partial,
            seeds.join(";")
        );
    }
    f
}

/// A fit's agreement in words, with the reach ratio when that is what made it `not testable here`.
pub fn grade(r: &FitRow) -> String {
    let a = r.agreement.map(Agreement::name).unwrap_or("");
    match r.reach {
        Some(x) if !r.regime_reached() => format!("{a}: reach {x:.2} < {REACHED}"),
        _ => a.to_string(),
    }
}

/// The steps the terminal summary shows: those of t = 1, 2, 4, 8 and the last step at which `quantity` at `layer`
/// was fitted.
fn summary_steps(cfg: &StudyConfig, fits: &[FitRow], layer: &str, quantity: Quantity) -> Vec<u64> {
    let mut all: Vec<u64> = fits
        .iter()
        .filter(|r| r.key.layer == layer && r.key.quantity == quantity)
        .map(|r| r.key.step)
        .collect();
    all.sort();
    all.dedup();
    let pick = [1u64, 2, 4, 8, cfg.steps];
    all.into_iter().filter(|s| pick.contains(s)).collect()
}

/// A series' final loss at the smallest and largest width (means over seeds), or why there is none.
fn final_loss_cell(cfg: &StudyConfig, grouped: &Grouped, series: &str) -> String {
    let loss = grouped.get(&FitKey {
        series: series.to_string(),
        layer: "model".into(),
        quantity: Quantity::Loss,
        step: cfg.steps,
    });
    let mean = |row: &Vec<f64>| row.iter().sum::<f64>() / row.len() as f64;
    loss.map(|v| format!("{:.3}→{:.3}", mean(&v[0]), mean(&v[v.len() - 1])))
        .unwrap_or_else(|| match cfg.selection().quantity(Quantity::Loss) {
            true => "diverged".into(),
            false => "— (not probed)".into(),
        })
}

/// The terminal summary: for each series, the slope of `quantity` at `layer` for a few steps, with its interval and
/// verdict, the final loss at the smallest and largest width, and the theory's first-step (t = 1) and balanced (last
/// recorded step) predictions with their agreement.
pub fn summary(
    cfg: &StudyConfig,
    grouped: &Grouped,
    fits: &[FitRow],
    layer: &str,
    quantity: Quantity,
) -> String {
    let steps = summary_steps(cfg, fits, layer, quantity);
    let mut s = String::new();
    let _ = writeln!(s, "width exponent of {quantity} at {layer} (log-log slope over n = {:?}, 95% Student-t interval over {} seeds; flat = |slope| ≤ {})", cfg.widths, cfg.seeds.len(), cfg.flat_tol);
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
    for name in series_names(fits) {
        let _ = write!(s, "{name:<18}");
        for t in &steps {
            let cell = find_fit(fits, &name, layer, quantity, *t)
                .map(FitRow::cell)
                .unwrap_or_else(|| "—".into());
            let _ = write!(s, " {cell:>28}");
        }
        let l = final_loss_cell(cfg, grouped, &name);
        let pred = |regime: Regime| {
            fits.iter()
                .find(|r| {
                    r.key.series == name
                        && r.key.layer == layer
                        && r.key.quantity == quantity
                        && r.regime == Some(regime)
                })
                .and_then(|r| r.predicted.map(|p| format!("{p:+.2} ({})", grade(r))))
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
