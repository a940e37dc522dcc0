//! C3, C4, C5 on transformer blocks (THEORY §5.2, §5.5, P1–P10 for each map's shape family): the per-map width
//! exponents of Δz (`dz_rms`) from the transformer sweep, judged map by map by the rules the MLP checks use.
//!
//! Each adapted map of every block (q, k, v, o square; up tall, d_out = 4n; down wide, d_in = 4n:
//! `StudyConfig::theory_shape`) has its own fit, the mean of the seeds' log-log slopes with a 95% Student-t interval,
//! and, where the theory engine derives one, the predicted exponent for that shape at that step's regime (`fits.csv`'s
//! `predicted`: the one `singlora sweep` marks in its per-map table). A slope is *consistent with* a value when the
//! value lies in its interval widened by τ (`agree` or `near`).
//!
//! How the transformer enters a verdict: as checks of its own, each stated "transformer maps: …" and each the
//! conjunction over every adapted map (one map that fails the rule fails the check, one that cannot decide makes it
//! unclear), never pooled with the MLP's slopes; a disagreement on the transformer is therefore a failing check beside
//! the MLP's, printed under the verdict table. They are *conditions*, not core checks: the core checks judge the claim
//! where the theory derives its exponents and where the derivation's assumption of an Adam update coherent with the
//! layer's input is measured to hold (the MLP's hidden layer); a transformer map takes its gradient through softmax
//! and LayerNorm, which the derivation does not model, so its checks say how far the claim extends.

use std::ops::Not;

use super::plan::{SweepOutput, TRANSFORMER_SWEEP};
use super::width::{efficient, series_of, SeriesStability};
use super::{Check, ClaimResult, Estimate, Number, Outcome};
use crate::probes::Quantity;
use crate::studies::report::layers::order;
use crate::studies::report::FitRow;

/// One adapted map's fit of Δz for one series at one step.
#[derive(Clone, Debug, PartialEq)]
pub struct MapSlope {
    /// The map (`block.K.q` …).
    pub layer: String,
    /// Its shape family as the theory names it (`square`, `tall:4`, `wide:4`).
    pub shape: String,
    /// The width exponent with its interval.
    pub slope: Estimate,
    /// Each seed's own slope, in seed order (what pairs two series by seed).
    pub seed_slopes: Vec<f64>,
    /// The theory engine's prediction for this shape at this step's regime, if it derives one.
    pub predicted: Option<f64>,
}

/// One series' Δz fits on every adapted map at the first and the last recorded step.
#[derive(Clone, Debug, PartialEq)]
pub struct MapSeries {
    /// The series (`ARM@c=C`), or what was looked for when the sweep has no such series.
    pub series: String,
    /// Its runs that diverged.
    pub diverged: usize,
    /// Its runs.
    pub runs: usize,
    /// Per map, at t = 1, in model order.
    pub first: Vec<MapSlope>,
    /// Per map, at the last recorded step.
    pub last: Vec<MapSlope>,
}

/// What the transformer checks of C3–C5 read from the transformer sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct TransformerMaps {
    /// The flatness tolerance τ.
    pub tol: f64,
    /// The last recorded step.
    pub last_step: u64,
    /// SingLoRA under Adam at η ∝ n^(−1/2).
    pub singlora_half: MapSeries,
    /// SingLoRA at η ∝ n^(−1).
    pub singlora_one: MapSeries,
    /// LoRA with one shared rate η ∝ n^(−1/2).
    pub lora_half: MapSeries,
}

fn map_slope(out: &SweepOutput, r: &FitRow) -> MapSlope {
    MapSlope {
        layer: r.key.layer.clone(),
        shape: out
            .cfg
            .theory_shape(&r.key.layer)
            .map_or("—".into(), |s| s.to_string()),
        slope: Estimate::of_slope(&r.fit),
        seed_slopes: r.fit.seed_slopes.clone(),
        predicted: r.predicted,
    }
}

/// The Δz fits of `series` at `step` on every adapted map (a layer the theory has a shape for), in model order.
fn map_slopes(out: &SweepOutput, series: &str, step: u64) -> Vec<MapSlope> {
    let mut rows: Vec<&FitRow> = out
        .fits
        .iter()
        .filter(|r| {
            r.key.series == series
                && r.key.quantity == Quantity::DzRms
                && r.key.step == step
                && out.cfg.theory_shape(&r.key.layer).is_some()
        })
        .collect();
    rows.sort_by_key(|r| order(&r.key.layer));
    rows.into_iter().map(|r| map_slope(out, r)).collect()
}

fn map_series(out: &SweepOutput, arm: &str, c: f64) -> MapSeries {
    let Some(series) = series_of(out, arm, c) else {
        return MapSeries {
            series: format!("{arm}@c={c} (not in the sweep)"),
            diverged: 0,
            runs: 0,
            first: Vec::new(),
            last: Vec::new(),
        };
    };
    let runs: Vec<_> = out
        .runs
        .iter()
        .filter(|r| r.cell.series == series)
        .collect();
    MapSeries {
        diverged: runs.iter().filter(|r| r.diverged_at.is_some()).count(),
        runs: runs.len(),
        first: map_slopes(out, &series, 1),
        last: map_slopes(out, &series, out.cfg.last_recorded_step()),
        series,
    }
}

/// Reads the transformer checks' fits from the transformer sweep.
pub fn measure(out: &SweepOutput) -> TransformerMaps {
    TransformerMaps {
        tol: out.cfg.flat_tol,
        last_step: out.cfg.last_recorded_step(),
        singlora_half: map_series(out, "singlora", 0.5),
        singlora_one: map_series(out, "singlora", 1.0),
        lora_half: map_series(out, "lora", 0.5),
    }
}

/// A rule over every map: pass if every map passes, fail if one fails, else unclear; unclear without maps.
fn every(outcomes: impl Iterator<Item = Outcome>) -> Outcome {
    outcomes.reduce(Outcome::and).unwrap_or(Outcome::Unclear)
}

/// `block.0.q −0.34 [−0.48, −0.19]; …`, with the prediction and shape when `theory`.
fn list(slopes: &[MapSlope], theory: bool) -> String {
    if slopes.is_empty() {
        return "no map measured".into();
    }
    slopes
        .iter()
        .map(|s| match (theory, s.predicted) {
            (true, Some(p)) => format!("{} {} vs {p:+.2} ({})", s.layer, s.slope.text(2), s.shape),
            (true, None) => format!("{} {} (no prediction)", s.layer, s.slope.text(2)),
            (false, _) => format!("{} {}", s.layer, s.slope.text(2)),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The slope against the theory's prediction for its shape: consistent within τ (unclear without a prediction).
fn against_theory(s: &MapSlope, tol: f64) -> Outcome {
    s.predicted
        .map_or(Outcome::Unclear, |p| s.slope.consistent_with(p, tol))
}

/// C4's transformer conditions: the first step at η ∝ n^(−1/2) agrees with each map's predicted exponent; the sweep
/// resolves the rate (at η ∝ n^(−1) every map's first step lies below −τ, else unclear); Δz stays Θ(1) (consistent
/// with 0) at the last recorded step on every map.
pub fn c4_checks(m: &TransformerMaps) -> Vec<Check> {
    let t = m.tol;
    let (half, one) = (&m.singlora_half, &m.singlora_one);
    let resolved = |s: &MapSlope| match s.slope.below(-t) {
        Outcome::Pass => Outcome::Pass,
        _ => Outcome::Unclear,
    };
    vec![
        Check::condition(
            format!("transformer maps: at η ∝ n^(−1/2) SingLoRA's first-step Δz slope is consistent with the theory's prediction for the map's shape (within τ = {t} of its interval) on every adapted map: {}", list(&half.first, true)),
            every(half.first.iter().map(|s| against_theory(s, t))),
        ),
        Check::condition(
            format!("transformer maps: the sweep resolves the rate exponent on every map: at η ∝ n^(−1) SingLoRA's first step has a slope below −τ ({}; otherwise unclear)", list(&one.first, false)),
            every(one.first.iter().map(resolved)),
        ),
        Check::condition(
            format!("transformer maps: SingLoRA's Δz at η ∝ n^(−1/2) stays Θ(1) at the last recorded step t = {}: slope consistent with 0 on every map ({})", m.last_step, list(&half.last, false)),
            every(half.last.iter().map(|s| s.slope.consistent_with(0.0, t))),
        ),
    ]
}

/// The per-map stability of `s` (its divergences are the series', a run diverges as a whole).
fn map_stability(s: &MapSeries, first: &MapSlope, last_step: u64) -> SeriesStability {
    let last = s.last.iter().find(|l| l.layer == first.layer);
    SeriesStability {
        series: format!("{} {}", s.series, first.layer),
        diverged: s.diverged,
        runs: s.runs,
        first: first.slope,
        last: last.map_or(Estimate::missing(), |l| l.slope),
        last_step,
        drop_steps: Vec::new(),
        delay: None,
    }
}

/// C5's transformer condition: under Adam some tested rate exponent is efficient (no divergence, Δz slopes at t = 1
/// and at the last step consistent with 0, the last not above τ: `width::efficient`) on every adapted map.
pub fn c5_checks(m: &TransformerMaps) -> Vec<Check> {
    let t = m.tol;
    let series = [&m.singlora_half, &m.singlora_one];
    let per_series = |s: &MapSeries| {
        every(
            s.first
                .iter()
                .map(|f| efficient(&map_stability(s, f, m.last_step), t)),
        )
    };
    let outcome = series
        .iter()
        .map(|s| per_series(s))
        .reduce(Outcome::or)
        .unwrap_or(Outcome::Unclear);
    let text: Vec<String> = series
        .iter()
        .map(|s| {
            format!(
                "{}: {} of {} runs diverged, t = 1 {}",
                s.series,
                s.diverged,
                s.runs,
                list(&s.first, false)
            )
        })
        .collect();
    vec![Check::condition(
        format!("transformer maps, Adam: some tested rate exponent is stable with Δz slopes at t = 1 and t = {} consistent with 0 (τ = {t}) on every adapted map ({})", m.last_step, text.join(" | ")),
        outcome,
    )]
}

/// Per map, per seed |SingLoRA's last-step slope| − |LoRA's| at the shared rate c = 1/2 (same seed: same base and
/// data), mean and interval; missing where either series lacks the map.
pub fn distance_differences(m: &TransformerMaps) -> Vec<(String, Estimate)> {
    m.singlora_half
        .last
        .iter()
        .map(|s| {
            let lora = m.lora_half.last.iter().find(|l| l.layer == s.layer);
            let diffs: Vec<f64> = lora.map_or(Vec::new(), |l| {
                s.seed_slopes
                    .iter()
                    .zip(&l.seed_slopes)
                    .map(|(a, b)| a.abs() - b.abs())
                    .collect()
            });
            let e = Estimate::mean_of(&diffs).unwrap_or(Estimate::missing());
            (s.layer.clone(), e)
        })
        .collect()
}

/// C3's transformer condition: at one shared Adam rate (c = 1/2) SingLoRA's last-step Δz is not measurably further
/// from width-independence than LoRA's on any map (the per-seed difference of |slopes| not above τ).
pub fn c3_checks(m: &TransformerMaps) -> Vec<Check> {
    let t = m.tol;
    let d = distance_differences(m);
    let text: Vec<String> = d
        .iter()
        .map(|(l, e)| format!("{l} {}", e.text(2)))
        .collect();
    vec![Check::condition(
        format!("transformer maps: at one shared Adam rate (c = 1/2) SingLoRA's Δz at t = {} is not measurably further from width-independence than LoRA's on any adapted map: per map, per seed |slope_SingLoRA| − |slope_LoRA| not above τ = {t} ({})", m.last_step, if text.is_empty() { "no map measured".into() } else { text.join("; ") }),
        every(d.iter().map(|(_, e)| e.exceeds(t).not())),
    )]
}

/// The per-map numbers behind the checks: for each series, each map's Δz slope at t = 1 (with the prediction) and at
/// the last step.
pub fn numbers(m: &TransformerMaps) -> Vec<Number> {
    let mut out = Vec::new();
    for s in [&m.singlora_half, &m.singlora_one, &m.lora_half] {
        for f in &s.first {
            let last = s.last.iter().find(|l| l.layer == f.layer);
            let theory = f
                .predicted
                .map_or("no prediction".into(), |p| format!("theory {p:+.2}"));
            out.push(Number::new(
                format!("transformer {} {} Δz", f.layer, s.series),
                format!(
                    "t=1 {} ({theory}, {}), t={} {}",
                    f.slope.text(2),
                    f.shape,
                    m.last_step,
                    last.map_or("not measured".into(), |l| l.slope.text(2))
                ),
            ));
        }
    }
    out
}

/// The transformer sweep's figures, relative to the output folder: the per-map slopes and coordinate checks.
pub fn figures() -> Vec<String> {
    ["slopes_maps", "coord_maps"]
        .iter()
        .map(|f| format!("{TRANSFORMER_SWEEP}/figures/{f}.png"))
        .collect()
}

/// `r` with the transformer checks `checks`, the per-map numbers and figures added and its verdict recomputed.
pub fn extend(r: ClaimResult, m: &TransformerMaps, checks: Vec<Check>) -> ClaimResult {
    let setting = format!(
        "{} Transformer blocks: the transformer sweep (pre-trained frozen pre-LayerNorm blocks fine-tuned on permuted associative recall, an adapter on every map q, k, v, o, up, down; Adam at η = 0.02·n^(−c)) is judged map by map against the theory's exponent for each map's shape; its checks read \"transformer maps: …\" and are conditions (how far the claim extends beyond the MLP, whose hidden layer the core checks read).",
        r.setting
    );
    r.with_more(checks, numbers(m), setting, figures())
}
