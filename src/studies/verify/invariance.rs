//! C9: transformation invariance measured on trajectories (THEORY §4.2), and LoRA's scale gauge that C3 reads.
//!
//! One square SingLoRA layer is trained on a regression batch twice, from $A_0$ and from $A_0U$, and the two
//! updates $\Delta W_t = s\,A_tA_t^\top$ are compared after every step: relative Frobenius difference
//! $\lVert\Delta W_t - \Delta W'_t\rVert_F / \max(\lVert\Delta W_t\rVert_F, \lVert\Delta W'_t\rVert_F)$, the largest over
//! the trajectory. Pairs: SGD with momentum and weight decay under a Haar rotation $U$; Adam under a random signed
//! permutation; Adam under the rotation. LoRA (with a random non-zero $B$) is compared with $(B/2, 2A)$, the same
//! $BA$, under SGD and Adam. How far $A$ moves, $\lVert A_T - A_0\rVert_F/\lVert A_0\rVert_F$, is recorded so that an
//! invariance is never claimed for a layer that did not train.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{Check, Claim, ClaimResult, Number, Outcome};
use crate::adapters::{AdaptedLinear, AdapterConfig, Method};
use crate::error::Result;
use crate::linalg::{frobenius, mm};
use crate::optim::{OptimizerConfig, Rule};
use crate::rng::{normal_matrix, orthogonal_matrix, signed_permutation, SeedRng};
use crate::train::mse;

/// Two runs that perform the same arithmetic up to the order of r-term sums differ by round-off: about r·ε per
/// operation, compounded over at most a few hundred operations per step and S ≤ 50 steps, below 1e-13 in f64. A
/// difference up to this bound counts as the same trajectory.
pub const SAME: f64 = 1e-10;

/// A difference of at least this (10⁴ times [`SAME`]) is a real difference; in between the check is unclear.
pub const DIFFERENT: f64 = 1e-6;

/// A invariance is only meaningful if A moved by at least this fraction of its initial norm.
pub const MOVED: f64 = 1e-3;

/// The layer, data and optimisers of the measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvarianceSetup {
    /// Width of the square layer.
    pub width: usize,
    /// Adapter rank.
    pub rank: usize,
    /// Examples in the batch.
    pub examples: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// SGD's rate (momentum 0.9, weight decay 0.01).
    pub lr_sgd: f64,
    /// Adam's rate.
    pub lr_adam: f64,
    /// Seed of the base, data, A₀ and the transformations.
    pub seed: u64,
}

/// C9's measurements: per-step relative differences of each pair's ΔW.
#[derive(Clone, Debug, PartialEq)]
pub struct InvarianceMeasurements {
    /// The setup.
    pub setup: InvarianceSetup,
    /// SingLoRA, SGD, A₀ vs A₀U (rotation).
    pub sgd_rotation: Vec<f64>,
    /// SingLoRA, Adam, A₀ vs A₀P (signed permutation).
    pub adam_permutation: Vec<f64>,
    /// SingLoRA, Adam, A₀ vs A₀U (rotation).
    pub adam_rotation: Vec<f64>,
    /// LoRA, SGD, (A, B) vs (2A, B/2).
    pub lora_sgd_gauge: Vec<f64>,
    /// LoRA, Adam, the same.
    pub lora_adam_gauge: Vec<f64>,
    /// ‖A_T − A₀‖_F/‖A₀‖_F of the SGD run.
    pub moved: f64,
}

/// The largest value of a trajectory's differences (NaN if empty or if any is NaN).
pub fn worst(v: &[f64]) -> f64 {
    if v.is_empty() || v.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    v.iter().copied().fold(0.0, f64::max)
}

fn sgd() -> Rule {
    Rule::Sgd {
        momentum: 0.9,
        weight_decay: 0.01,
    }
}

struct Batch {
    x: Array2<f64>,
    y: Array2<f64>,
}

/// Trains `layer` for `steps` full-batch steps on the MSE and returns ΔW after each step.
fn trajectory(
    layer: &mut AdaptedLinear<f64>,
    rule: Rule,
    lr: f64,
    b: &Batch,
    steps: usize,
) -> Result<Vec<Array2<f64>>> {
    let mut opt = OptimizerConfig::new(rule, lr).init()?;
    let n = layer.d_in();
    let mut out = Vec::with_capacity(steps);
    for _ in 0..steps {
        let (_, g) = mse(&layer.forward(b.x.view(), 1.0), &b.y);
        let grads = layer.backward(b.x.view(), g.view(), 1.0);
        opt.step_layer(layer, &grads.params, n);
        out.push(layer.delta_w(1.0));
    }
    Ok(out)
}

fn relative(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    let scale = frobenius(a).max(frobenius(b));
    let d = frobenius(&(a - b));
    if scale == 0.0 {
        d
    } else {
        d / scale
    }
}

fn differences(a: &[Array2<f64>], b: &[Array2<f64>]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| relative(x, y)).collect()
}

fn layer(s: &InvarianceSetup, method: Method) -> Result<AdaptedLinear<f64>> {
    let n = s.width;
    let w0: Array2<f64> = normal_matrix(
        &mut SeedRng::new(s.seed, "invariance.w0"),
        n,
        n,
        1.0 / (n as f64).sqrt(),
    );
    let cfg = AdapterConfig::new(method).rank_alpha(s.rank, s.rank as f64);
    let mut l = AdaptedLinear::new(w0, &cfg, s.seed)?;
    if method == Method::Lora {
        l.randomize(s.seed + 1, 1.0);
    }
    Ok(l)
}

fn a_of(l: &AdaptedLinear<f64>) -> Array2<f64> {
    l.params()[0]
        .to_owned()
        .into_dimensionality()
        .expect("SingLoRA's A is a matrix")
}

/// SingLoRA from A₀ and from A₀·`t` under `rule`: per-step differences, and how far A moved in the first run.
fn singlora_pair(
    s: &InvarianceSetup,
    b: &Batch,
    rule: Rule,
    lr: f64,
    t: &Array2<f64>,
) -> Result<(Vec<f64>, f64)> {
    let mut first = layer(s, Method::Singlora)?;
    let mut second = layer(s, Method::Singlora)?;
    let a0 = a_of(&first);
    second.params_mut()[0].assign(&mm(a0.view(), t.view()).into_dyn());
    let ta = trajectory(&mut first, rule, lr, b, s.steps)?;
    let tb = trajectory(&mut second, rule, lr, b, s.steps)?;
    let moved = frobenius(&(&a_of(&first) - &a0)) / frobenius(&a0);
    Ok((differences(&ta, &tb), moved))
}

/// LoRA from (A, B) and from (2A, B/2) under `rule`: per-step differences of BA.
fn lora_gauge(s: &InvarianceSetup, b: &Batch, rule: Rule, lr: f64) -> Result<Vec<f64>> {
    let mut first = layer(s, Method::Lora)?;
    let mut second = layer(s, Method::Lora)?;
    second.params_mut()[0].mapv_inplace(|v| 2.0 * v);
    second.params_mut()[1].mapv_inplace(|v| 0.5 * v);
    let ta = trajectory(&mut first, rule, lr, b, s.steps)?;
    let tb = trajectory(&mut second, rule, lr, b, s.steps)?;
    Ok(differences(&ta, &tb))
}

/// Runs every pair of the setup.
pub fn measure(s: &InvarianceSetup) -> Result<InvarianceMeasurements> {
    let n = s.width;
    let batch = Batch {
        x: normal_matrix(
            &mut SeedRng::new(s.seed, "invariance.x"),
            s.examples,
            n,
            1.0,
        ),
        y: normal_matrix(
            &mut SeedRng::new(s.seed, "invariance.y"),
            s.examples,
            n,
            1.0,
        ),
    };
    let u = orthogonal_matrix(&mut SeedRng::new(s.seed, "invariance.U"), s.rank);
    let p = signed_permutation(&mut SeedRng::new(s.seed, "invariance.P"), s.rank);
    let (sgd_rotation, moved) = singlora_pair(s, &batch, sgd(), s.lr_sgd, &u)?;
    Ok(InvarianceMeasurements {
        setup: s.clone(),
        sgd_rotation,
        adam_permutation: singlora_pair(s, &batch, Rule::adam(), s.lr_adam, &p)?.0,
        adam_rotation: singlora_pair(s, &batch, Rule::adam(), s.lr_adam, &u)?.0,
        lora_sgd_gauge: lora_gauge(s, &batch, sgd(), s.lr_sgd)?,
        lora_adam_gauge: lora_gauge(s, &batch, Rule::adam(), s.lr_adam)?,
        moved,
    })
}

/// The outcome of "these two trajectories are the same" for a pair's differences.
pub fn same(v: &[f64]) -> Outcome {
    Outcome::of_difference(worst(v), SAME, DIFFERENT)
}

/// C9's verdict. Core: A moved; SGD is invariant under a rotation; Adam under a signed permutation. Condition: Adam
/// under a rotation.
pub fn judge(m: &InvarianceMeasurements) -> ClaimResult {
    let rule = |what: &str, v: &[f64]| {
        format!("{what}: the largest relative difference of ΔW over {} steps is ≤ {SAME:e} (round-off; ≥ {DIFFERENT:e} is a real difference, in between unclear); measured {:.1e}", v.len(), worst(v))
    };
    let checks = vec![
        Check::core(
            format!("A moves under SGD: ‖A_T − A₀‖_F ≥ {MOVED:e}·‖A₀‖_F (measured {:.2}), so the invariance is not that of a layer at rest", m.moved),
            Outcome::of(m.moved >= MOVED),
        ),
        Check::core(rule("SGD (momentum 0.9, weight decay 0.01), A₀ vs A₀U with U a Haar rotation", &m.sgd_rotation), same(&m.sgd_rotation)),
        Check::core(rule("Adam, A₀ vs A₀P with P a random signed permutation", &m.adam_permutation), same(&m.adam_permutation)),
        Check::condition(rule("Adam, A₀ vs A₀U (the same rotation)", &m.adam_rotation), same(&m.adam_rotation)),
    ];
    let numbers = vec![
        Number::new("SGD, rotation", format!("{:.1e}", worst(&m.sgd_rotation))),
        Number::new(
            "Adam, signed permutation",
            format!("{:.1e}", worst(&m.adam_permutation)),
        ),
        Number::new("Adam, rotation", format!("{:.1e}", worst(&m.adam_rotation))),
        Number::new("A moved (SGD)", format!("{:.2}", m.moved)),
        Number::new(
            "LoRA (B/2, 2A), SGD",
            format!("{:.1e}", worst(&m.lora_sgd_gauge)),
        ),
        Number::new(
            "LoRA (B/2, 2A), Adam",
            format!("{:.1e}", worst(&m.lora_adam_gauge)),
        ),
    ];
    let s = &m.setup;
    let setting = format!(
        "One {n}×{n} SingLoRA layer (rank {r}, width-aware A₀) trained full-batch on an MSE regression of {e} random examples for {t} steps, twice — from A₀ and from A₀U — with SGD (η = {ls}, momentum 0.9, weight decay 0.01) and Adam (η = {la}); the two ΔW = s·AAᵀ compared after every step. LoRA's gauge (B/2, 2A), which leaves BA unchanged, measured the same way.",
        n = s.width, r = s.rank, e = s.examples, t = s.steps, ls = s.lr_sgd, la = s.lr_adam
    );
    ClaimResult::new(Claim::C9, checks, numbers, setting)
        .with_figures(&["invariance/invariance.png"])
}

/// The pairs of a measurement with their names: `(name, per-step differences)`.
pub fn pairs(m: &InvarianceMeasurements) -> [(&'static str, &[f64]); 5] {
    [
        ("singlora_sgd_rotation", &m.sgd_rotation),
        ("singlora_adam_signed_permutation", &m.adam_permutation),
        ("singlora_adam_rotation", &m.adam_rotation),
        ("lora_sgd_gauge", &m.lora_sgd_gauge),
        ("lora_adam_gauge", &m.lora_adam_gauge),
    ]
}

/// The per-step differences as CSV: `pair,step,relative_difference` (step t is after t updates).
pub fn csv(m: &InvarianceMeasurements) -> String {
    let mut s = String::from("pair,step,relative_difference\n");
    for (name, v) in pairs(m) {
        for (t, d) in v.iter().enumerate() {
            s += &format!("{name},{},{d:e}\n", t + 1);
        }
    }
    s
}
