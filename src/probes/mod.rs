//! Probes: what a width study records about every linear map at every recorded step, on the training batch. A
//! [`Probe`] is a training-loop [`Observer`]: it reads the forward pass, loss, gradients and held-out evaluation the
//! loop has just computed and never recomputes them.
//!
//! Step semantics: step t is the state after t optimiser updates (t = 0 is initialisation). Per-step changes at t
//! compare with step t − 1; cumulative changes compare with step 0, the frozen reference copy of the network
//! (litgpt's `TrainingMonitor`). Quantities (names as written to the results table):
//!
//! | quantity | meaning |
//! |---|---|
//! | `act_rms`, `act_l1` | coordinate size of the map's output $z$ (μP's statistic), every map |
//! | `dz_rms`, `dz_l1` | per-step output change $z_t - z_{t-1}$ |
//! | `dz_cum_rms` | cumulative change $z_t - z_0$ |
//! | `update_out_rms` | the adapter's own contribution $c\,X\widetilde{\Delta W}^\top$ |
//! | `delta1/2/3_rms`, `T1/2/3_rms` | LoRA's and SingLoRA's per-step decomposition (times c) |
//! | `bottleneck_rms` | $XA^\top$ (LoRA) or $XA_{in}$ (SingLoRA) |
//! | `dw_fro`, `dw_op` | $\lVert c\widetilde{\Delta W}\rVert_F$ (r×r formula) and $\lVert c\widetilde{\Delta W}\rVert_{op}$ (power iteration) |
//! | `grad_fro.P`, `param_fro.P` | Frobenius norms of each trainable tensor P and its gradient |
//!
//! Model-level quantities use the layer name `model`: `loss`, `test_loss`, `test_acc`. A non-finite value is recorded
//! as it is; the run records its divergence step separately. Names are [`Quantity`] values (`quantity`).

pub mod quantity;

use std::collections::HashMap;

use ndarray::{Array2, ArrayD};
use serde::{Deserialize, Serialize};

pub use quantity::Quantity;

use crate::linalg::{mean_abs, op_norm_power, rms};
use crate::models::{Inspect, Linear};
use crate::scalar::Scalar;
use crate::train::{Observer, Step};

/// One measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Layer name (`model` for model-level quantities).
    pub layer: String,
    /// Quantity.
    pub quantity: Quantity,
    /// Step t.
    pub step: u64,
    /// Value (non-finite values survive the run file, see `io::float`).
    #[serde(with = "crate::io::float")]
    pub value: f64,
}

/// Which steps and quantities a probe records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    /// Steps to record (empty: every step).
    pub steps: Vec<u64>,
    /// Quantity patterns, prefixes of the spellings (empty: every quantity).
    pub patterns: Vec<String>,
}

impl Selection {
    /// Whether step `t` is recorded.
    pub fn step(&self, t: u64) -> bool {
        self.steps.is_empty() || self.steps.contains(&t)
    }

    /// Whether quantity `q` is recorded.
    pub fn quantity(&self, q: Quantity) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| q.matches(p))
    }
}

/// The probe's memory between steps: reference outputs and previous factors.
#[derive(Default)]
pub struct Probe<T: Scalar> {
    z0: HashMap<String, Array2<T>>,
    z_prev: HashMap<String, Array2<T>>,
    prev_params: HashMap<String, Vec<ArrayD<T>>>,
    /// What to record.
    pub selection: Selection,
    /// Everything recorded so far.
    pub records: Vec<Record>,
    /// Iterations of the spectral-norm power method (default 50).
    pub power_iterations: usize,
}

impl<T: Scalar> Probe<T> {
    /// A probe recording `selection`.
    pub fn new(selection: Selection) -> Self {
        Self {
            selection,
            power_iterations: 50,
            ..Default::default()
        }
    }

    fn push(&mut self, layer: &str, quantity: Quantity, step: u64, value: f64) {
        if self.selection.quantity(quantity) {
            self.records.push(Record {
                layer: layer.to_string(),
                quantity,
                step,
                value,
            });
        }
    }

    /// Model-level quantities and each trainable tensor's norm and gradient norm.
    fn record_model<M: Inspect<T>>(&mut self, s: &Step<'_, T, M>) {
        self.push("model", Quantity::Loss, s.t, s.loss);
        self.push("model", Quantity::TestLoss, s.t, s.test.loss);
        if let Some(acc) = s.test.accuracy {
            self.push("model", Quantity::TestAcc, s.t, acc);
        }
        let infos = s.model.params_info();
        for ((info, p), g) in infos.iter().zip(s.model.params()).zip(s.grads) {
            let role = info.info.role;
            let norm = crate::linalg::frobenius(&p);
            self.push(&info.layer, Quantity::ParamFro(role), s.t, norm);
            let norm = crate::linalg::frobenius(g);
            self.push(&info.layer, Quantity::GradFro(role), s.t, norm);
        }
    }

    /// The per-map quantities of an adapted map with input `x` and output `z` at step `t`.
    fn record_adapted(
        &mut self,
        name: &str,
        layer: &crate::adapters::AdaptedLinear<T>,
        x: ndarray::ArrayView2<'_, T>,
        z: &Array2<T>,
        (t, u): (u64, T),
    ) {
        if let Some(prev) = self.z_prev.get(name) {
            let dz = z - prev;
            self.push(name, Quantity::DzRms, t, rms(&dz));
            self.push(name, Quantity::DzL1, t, mean_abs(&dz));
        }
        match self.z0.get(name) {
            Some(z0) => {
                let v = rms(&(z - z0));
                self.push(name, Quantity::DzCumRms, t, v);
            }
            None => {
                self.z0.insert(name.to_string(), z.clone());
            }
        }
        let c = layer.c(u).f64().abs();
        let update = &layer.update;
        self.push(name, Quantity::UpdateOutRms, t, rms(&update.apply(x)) * c);
        if let Some(b) = update.bottleneck(x) {
            self.push(name, Quantity::BottleneckRms, t, rms(&b));
        }
        if let Some(prev) = self.prev_params.get(name) {
            for (term, v) in update.decompose(prev, x) {
                self.push(name, Quantity::TermRms(term), t, rms(&v) * c);
            }
        }
        self.push(name, Quantity::DwFro, t, update.frobenius_sq().sqrt() * c);
        if self.selection.quantity(Quantity::DwOp) {
            let op = op_norm_power::<T>(
                layer.d_in(),
                |v| update.apply(v.t()).reversed_axes(),
                |w| update.apply_adjoint(w.t()).reversed_axes(),
                t,
                self.power_iterations,
                1e-6,
            );
            self.push(name, Quantity::DwOp, t, op * c);
        }
        let params = update.params().iter().map(|p| p.to_owned()).collect();
        self.prev_params.insert(name.to_string(), params);
        self.z_prev.insert(name.to_string(), z.clone());
    }
}

/// The rms of the entries (r, j) with j ≤ r mod `seq_len`: a causal attention's logits, the masked ones left out.
pub fn causal_rms<T: Scalar>(logits: &Array2<T>, seq_len: usize) -> f64 {
    let (mut sum, mut count) = (0.0, 0usize);
    for (r, row) in logits.outer_iter().enumerate() {
        let keep = r % seq_len.max(1) + 1;
        for v in row.iter().take(keep) {
            sum += v.f64() * v.f64();
            count += 1;
        }
    }
    (sum / count.max(1) as f64).sqrt()
}

impl<T: Scalar, M: Inspect<T>> Observer<T, M> for Probe<T> {
    fn wants(&self, t: u64) -> bool {
        self.selection.step(t)
    }

    /// Records every selected quantity at step `s.t`, on the training batch (full-batch studies: the probe batch is
    /// the training batch, so gradient norms are those of the update taken at t + 1).
    fn observe(&mut self, s: &Step<'_, T, M>) {
        self.record_model(s);
        for act in s.model.intermediates(s.cache) {
            if let Some(q) = Quantity::of_activation(act.name) {
                let v = match act.causal {
                    Some(t) => causal_rms(act.values, t),
                    None => rms(act.values),
                };
                self.push(&act.layer, q, s.t, v);
            }
        }
        for tap in s.model.taps(s.cache, s.out) {
            let z = tap.output.as_ref();
            self.push(tap.name, Quantity::ActRms, s.t, rms(z));
            self.push(tap.name, Quantity::ActL1, s.t, mean_abs(z));
            if let Linear::Adapted(layer) = tap.linear {
                self.record_adapted(tap.name, layer, tap.input.view(), z, (s.t, s.u));
            }
        }
    }
}
