//! The printout of `singlora theory`: every series' predicted width exponents in each regime, with derivations and
//! the conditions they need, and the stable rate exponent c*.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::studies::config::StudyConfig;
use crate::studies::spec::Cell;
use crate::theory::{Regime, Setting, Shape};

/// The layer the predictions are for: one layer of `shape`, or the study's square hidden layer.
fn layer_description(cfg: &StudyConfig, shape: Option<Shape>) -> String {
    match (shape, cfg.theory_layer()) {
        (Some(s), _) => {
            let (d_in, d_out) = s.dims(1);
            let side = |d: usize, a: f64| {
                if a == 0.0 {
                    d.to_string()
                } else if d == 1 {
                    "n".to_string()
                } else {
                    format!("{d}n")
                }
            };
            format!(
                "one {s} layer (d_in = {}, d_out = {})",
                side(d_in, s.a_in()),
                side(d_out, s.a_out())
            )
        }
        (None, Some(l)) => {
            let shape = cfg.theory_shape(&l).unwrap_or_default();
            format!("{l} ({shape})")
        }
        (None, None) => {
            "(none: the engine needs an MLP hidden layer, or --shape for one layer)".to_string()
        }
    }
}

fn regime_title(regime: Regime) -> &'static str {
    match regime {
        Regime::Init => "initial state (t = 0)",
        Regime::FirstStep => "first step (t = 1)",
        Regime::Balanced => {
            "balanced (t ≫ 1 but O(1), after alignment; a sweep compares it at its last recorded step)"
        }
    }
}

/// The predictions of one regime with their derivations and distinct conditions.
fn regime_block(s: &mut String, preds: &[crate::theory::Prediction], regime: Regime) {
    let rows: Vec<_> = preds.iter().filter(|p| p.regime == regime).collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(s, "  {}", regime_title(regime));
    for p in &rows {
        let _ = writeln!(
            s,
            "    {:<28} {:+.2}   {}",
            p.quantity.to_string(),
            p.exponent,
            p.derivation
        );
        if let Some(r) = &p.reach {
            let _ = writeln!(s, "      reached when {}", r.condition());
        }
    }
    // Each distinct condition once; one that another extends (dz's "…; T3 is second order …") is printed as the
    // longer one only.
    let mut conditions: Vec<&str> = Vec::new();
    for p in &rows {
        if !conditions.contains(&p.conditions.as_str()) {
            conditions.push(&p.conditions);
        }
    }
    let extended = |c: &str| {
        conditions
            .iter()
            .any(|d| d.len() > c.len() && d.starts_with(c))
    };
    let printed: Vec<&str> = conditions
        .iter()
        .copied()
        .filter(|c| !extended(c))
        .collect();
    for c in printed {
        let _ = writeln!(s, "    holds if: {c}");
    }
    if rows.iter().any(|p| p.reach.is_some()) {
        let _ = writeln!(s, "    reached when: η₀·t is the rate prefactor times the summed schedule, and ≫ 1 means ≥ {} at the smallest fitted width (a sweep grades the others `not testable here`)", crate::theory::REACHED);
    }
}

/// The whole printout for `cfg` (predictions for `shape` instead of the study's hidden layer when given).
pub fn theory_table(cfg: &StudyConfig, shape: Option<Shape>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "study {}: predicted width exponents at {}; derivations in src/theory",
        cfg.name,
        layer_description(cfg, shape)
    );
    let covered = shape.is_some() || cfg.theory_layer().is_some();
    let mut seen = BTreeSet::new();
    for cell in cfg.cells() {
        if !seen.insert(cell.series.clone()) {
            continue;
        }
        let layer_shape = cfg.theory_layer().and_then(|l| cfg.theory_shape(&l));
        let setting = cfg.setting_at(&cell, shape.or(layer_shape).unwrap_or_default());
        series_block(&mut s, cfg, &cell, &setting, covered);
    }
    let batch = cfg.batch.unwrap_or(cfg.task.examples);
    let _ = writeln!(
        s,
        "finite batch: a coherent sign-update sum over N = {batch} rows biases slopes over n = {:?} by {:+.3} \
         (finite::coherence_bias; derived and measured in tests/theory.rs){}",
        cfg.widths,
        crate::theory::finite::coherence_bias(batch, &cfg.widths),
        if cfg.model == crate::models::ModelKind::Transformer {
            " (a recall batch scores one row per sequence)"
        } else {
            ""
        }
    );
    s
}

/// One series of the printout: its setting, then its predictions per regime, its stable rate exponent and the
/// verdict at the study's rates (or that the engine has no prediction for it; none at all when not `covered`).
fn series_block(s: &mut String, cfg: &StudyConfig, cell: &Cell, setting: &Setting, covered: bool) {
    let _ = writeln!(
        s,
        "{}  ({} {}, {}: a_in = {}, a_out = {}; ρ = {}, init std n^(−b) with b = {}, γ = {})",
        cell.series,
        cell.arm.method,
        cfg.optimizer.rule.name(),
        setting.shape,
        setting.shape.a_in(),
        setting.shape.a_out(),
        setting.rho(),
        setting
            .init_exponent()
            .map(|b| b.to_string())
            .unwrap_or_else(|| "—".into()),
        cfg.adapter.multiplier_exponent
    );
    let preds = if covered {
        setting.predictions()
    } else {
        Vec::new()
    };
    if preds.is_empty() {
        let _ = writeln!(s, "    no prediction for this setting yet");
        return;
    }
    for regime in [Regime::Init, Regime::FirstStep, Regime::Balanced] {
        regime_block(s, &preds, regime);
    }
    match setting.stable_lr_exponent() {
        Some((c, why)) => {
            let _ = writeln!(s, "  stable learning-rate exponent c* = {c:.2}   {why}");
        }
        None => {
            let _ = writeln!(
                s,
                "  no stable learning-rate exponent: the initial output explodes"
            );
        }
    }
    if let Some(v) = setting.verdict() {
        let _ = writeln!(s, "  at these rates: {v}");
    }
}
