//! Tables of a learning-rate study: `lr_runs.csv` (one row per run), `lr_summary.csv` (one row per series, width and
//! rate), `lr_best.csv` (one row per series and width), `lr_drift.csv` (one row per series), `lr_plane.csv` (the LoRA+
//! plane), and the summary printed in the terminal.

use std::fmt::Write as _;
use std::path::Path;

use super::exponent_field;
use crate::error::Result;
use crate::io::write_atomic;
use crate::studies::config::StudyConfig;
use crate::studies::lr::{Drift, LineSummary, LrResults, Select};

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// Writes the CSV tables of a learning-rate study into `out`: `lr_runs.csv`, `lr_summary.csv`, `lr_best.csv`,
/// `lr_drift.csv` and, when the study has LoRA+ planes, `lr_plane.csv`.
pub fn write_lr_tables(out: &Path, r: &LrResults) -> Result<()> {
    write_atomic(&out.join("lr_runs.csv"), runs_csv(r).as_bytes())?;
    let (summary, best) = lines_csv(r);
    write_atomic(&out.join("lr_summary.csv"), summary.as_bytes())?;
    write_atomic(&out.join("lr_best.csv"), best.as_bytes())?;
    write_atomic(&out.join("lr_drift.csv"), drift_csv(r).as_bytes())?;
    if !r.plane.is_empty() {
        write_atomic(&out.join("lr_plane.csv"), plane_csv(r).as_bytes())?;
    }
    Ok(())
}

/// `lr_runs.csv`: one row per run.
fn runs_csv(r: &LrResults) -> String {
    let mut runs = String::from(
        "series,arm,method,lr,lr_exponent,loraplus_ratio,width,seed,plane,initial_loss,final_loss,final_test_loss,diverged_at\n",
    );
    for (job, run) in &r.runs {
        let c = &job.cell;
        let _ = writeln!(
            runs,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            c.series,
            c.arm.name,
            c.arm.method,
            c.lr,
            exponent_field(&c.lr_exponent),
            c.loraplus_ratio,
            c.width,
            c.seed,
            job.plane,
            run.initial_loss,
            run.final_loss,
            run.final_test_loss,
            run.diverged_at.map(|t| t.to_string()).unwrap_or_default()
        );
    }
    runs
}

/// `lr_summary.csv` (per series, width and rate: the seeds' median losses and the selected loss's spread) and
/// `lr_best.csv` (per series and width: the best rate, the near-best window, the first diverging rate).
fn lines_csv(r: &LrResults) -> (String, String) {
    let mut summary = String::from(
        "series,width,lr,median_final_loss,median_final_test_loss,min_selected_loss,max_selected_loss\n",
    );
    let mut best = String::from(
        "series,width,best_lr,at_grid_edge,best_loss,window_lo,window_hi,window_octaves,window_octaves_parabola,first_diverging_lr\n",
    );
    for l in &r.lines {
        for (k, lr) in r.rates.iter().enumerate() {
            let _ = writeln!(
                summary,
                "{},{},{lr},{},{},{},{}",
                l.series, l.width, l.train[k], l.test[k], l.spread[k].0, l.spread[k].1
            );
        }
        let (w_lo, w_hi, w_oct) = l
            .window
            .map_or((None, None, None), |(a, b, o)| (Some(a), Some(b), Some(o)));
        let _ = writeln!(
            best,
            "{},{},{},{},{},{},{},{},{},{}",
            l.series,
            l.width,
            opt(l.best.map(|b| b.0)),
            l.best.is_some_and(|b| b.1),
            l.best_loss,
            opt(w_lo),
            opt(w_hi),
            opt(w_oct),
            opt(l.window_parabola),
            opt(l.first_diverging)
        );
    }
    (summary, best)
}

/// `lr_drift.csv`: per series the fitted width exponent of the best rate, its interval and whether it is censored.
fn drift_csv(r: &LrResults) -> String {
    let mut drift = String::from("series,slope,ci_lo,ci_hi,widths,factor_per_doubling,censored\n");
    for d in &r.drifts {
        let (s, lo, hi, w) = d.fit.as_ref().map_or((None, None, None, 0), |f| {
            (Some(f.slope), Some(f.lo), Some(f.hi), f.widths)
        });
        let _ = writeln!(
            drift,
            "{},{},{},{},{w},{},{}",
            d.series,
            opt(s),
            opt(lo),
            opt(hi),
            opt(s.map(|s| 2f64.powf(s))),
            d.at_edge
        );
    }
    drift
}

/// `lr_plane.csv`: the LoRA+ planes' cells (η_A, η_B), their median loss and whether they are near the best.
fn plane_csv(r: &LrResults) -> String {
    let mut plane = String::from("width,eta_a,eta_b,median_loss,near_best\n");
    for c in &r.plane {
        let _ = writeln!(
            plane,
            "{},{},{},{},{}",
            c.width, c.eta_a, c.eta_b, c.loss, c.near_best
        );
    }
    plane
}

/// The terminal summary: per series and width the best rate, its loss, the near-best window and the first diverging
/// rate; per series the width exponent of the best rate.
pub fn lr_summary(cfg: &StudyConfig, r: &LrResults) -> String {
    let grid = cfg.lr_grid.as_ref().expect("an lr study");
    let which = match grid.select {
        Select::Train => "training",
        Select::Test => "held-out",
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "best rate η* by median final {which} loss over {} seeds ({} rates from {:.3e} to {:.3e}); near-best window: the rates within {}% of the best loss, in octaves on the grid (≈: from the parabola through the best three rates)",
        cfg.seeds.len(),
        r.rates.len(),
        r.rates[0],
        r.rates[r.rates.len() - 1],
        grid.near_best * 100.0
    );
    let _ = writeln!(
        s,
        "{:<18} {:>6} {:>16} {:>12} {:>28} {:>16}",
        "series", "width", "η*", "loss at η*", "near-best window (octaves)", "first diverging"
    );
    for l in &r.lines {
        let _ = writeln!(s, "{}", line_row(l, r.spacing));
    }
    let _ = writeln!(
        s,
        "\nwidth exponent of η* (log-log slope over n = {:?}, 95% Student-t interval over seeds): η* ∝ n^slope",
        cfg.widths
    );
    for d in &r.drifts {
        let _ = writeln!(s, "{:<18} {}", d.series, drift_text(d));
    }
    s
}

/// One row of the summary's per-width table: series, width, η*, its loss, the near-best window (`spacing`: the
/// grid's octaves between rates, the bound of a one-rate window) and the first diverging rate.
fn line_row(l: &LineSummary, spacing: f64) -> String {
    let best = match l.best {
        Some((eta, false)) => format!("{eta:.3e}"),
        Some((eta, true)) => format!("{eta:.3e} (edge)"),
        None => "all diverged".into(),
    };
    let parabola = l
        .window_parabola
        .map(|w| format!(", ≈{w:.2}"))
        .unwrap_or_default();
    let window = match l.window {
        Some((a, _, 0.0)) => format!("{a:.2e} (< {spacing:.2}{parabola})"),
        Some((a, b, o)) => format!("{a:.2e}–{b:.2e} ({o:.2}{parabola})"),
        None => "—".into(),
    };
    let div = l
        .first_diverging
        .map(|e| format!("{e:.3e}"))
        .unwrap_or_else(|| "none".into());
    format!(
        "{:<18} {:>6} {:>16} {:>12.4e} {:>28} {:>16}",
        l.series, l.width, best, l.best_loss, window, div
    )
}

/// A series' width exponent of η* with its interval and the factor per doubling, or why there is none.
fn drift_text(d: &Drift) -> String {
    match &d.fit {
        Some(f) => format!(
            "{:+.2} [{:+.2}, {:+.2}]  (×{:.2} per doubling of width){}",
            f.slope,
            f.lo,
            f.hi,
            2f64.powf(f.slope),
            if d.at_edge {
                "; censored: a best rate sits at the grid's edge, widen lr_grid.rates"
            } else {
                ""
            }
        ),
        None => "no fit (fewer than two widths with a best rate)".into(),
    }
}
