//! Probes: what a width study records about every linear map at every recorded step, on a fixed probe batch.
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
//! as it is; the run records its divergence step separately.

use std::collections::HashMap;

use ndarray::{Array2, ArrayD};
use serde::{Deserialize, Serialize};

use crate::linalg::{mean_abs, op_norm_power, rms};
use crate::models::{Inspect, Linear};
use crate::scalar::Scalar;
use crate::train::Dataset;

/// Every quantity name a probe records (`grad_fro.` and `param_fro.` are followed by a tensor name); a study's
/// `probes` filter entries must be a prefix of one of these.
pub const QUANTITIES: [&str; 19] = [
    "act_rms",
    "act_l1",
    "dz_rms",
    "dz_l1",
    "dz_cum_rms",
    "update_out_rms",
    "delta1_rms",
    "delta2_rms",
    "delta3_rms",
    "T1_rms",
    "T2_rms",
    "T3_rms",
    "bottleneck_rms",
    "dw_fro",
    "dw_op",
    "grad_fro.",
    "param_fro.",
    "loss",
    "test_",
];

/// One measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Layer name (`model` for model-level quantities).
    pub layer: String,
    /// Quantity name.
    pub quantity: String,
    /// Step t.
    pub step: u64,
    /// Value (non-finite values survive the run file, see `io::float`).
    #[serde(with = "crate::io::float")]
    pub value: f64,
}

/// The probe's memory between steps: reference outputs and previous factors.
#[derive(Default)]
pub struct Probe<T: Scalar> {
    z0: HashMap<String, Array2<T>>,
    z_prev: HashMap<String, Array2<T>>,
    prev_params: HashMap<String, Vec<ArrayD<T>>>,
    /// Everything recorded so far.
    pub records: Vec<Record>,
    /// Iterations of the spectral-norm power method (default 50).
    pub power_iterations: usize,
}

impl<T: Scalar> Probe<T> {
    /// An empty probe.
    pub fn new() -> Self {
        Self {
            power_iterations: 50,
            ..Default::default()
        }
    }

    fn push(&mut self, layer: &str, quantity: impl Into<String>, step: u64, value: f64) {
        self.records.push(Record {
            layer: layer.to_string(),
            quantity: quantity.into(),
            step,
            value,
        });
    }

    /// Records every quantity at step `t` for `model` at ramp value `u`, on the training batch of `data` (full-batch
    /// studies: the probe batch is the training batch, so gradient norms are those of the update taken at t + 1).
    pub fn observe<M: Inspect<T>>(&mut self, t: u64, model: &M, u: T, data: &Dataset<T>) {
        let (out, cache) = model.forward(&data.x_train, u);
        let (loss, g) = data.loss.eval(&out, &data.y_train);
        let (out_test, _) = model.forward(&data.x_test, u);
        let (test_loss, _) = data.loss.eval(&out_test, &data.y_test);
        self.push("model", "loss", t, loss);
        self.push("model", "test_loss", t, test_loss);
        if data.loss == crate::train::Loss::CrossEntropy {
            self.push(
                "model",
                "test_acc",
                t,
                crate::train::accuracy(&out_test, &data.y_test),
            );
        }
        let grads = model.backward(&cache, &g, u);
        let infos = model.params_info();
        for ((info, p), gr) in infos.iter().zip(model.params()).zip(&grads) {
            self.push(
                &info.layer,
                format!("param_fro.{}", info.info.name),
                t,
                crate::linalg::frobenius(&p),
            );
            self.push(
                &info.layer,
                format!("grad_fro.{}", info.info.name),
                t,
                crate::linalg::frobenius(gr),
            );
        }
        for tap in model.taps(&cache) {
            let name = tap.name.to_string();
            let z = tap.linear.forward(tap.input.view(), u);
            self.push(&name, "act_rms", t, rms(&z));
            self.push(&name, "act_l1", t, mean_abs(&z));
            let Linear::Adapted(layer) = tap.linear else {
                continue;
            };
            if let Some(prev) = self.z_prev.get(&name) {
                let dz = &z - prev;
                self.push(&name, "dz_rms", t, rms(&dz));
                self.push(&name, "dz_l1", t, mean_abs(&dz));
            }
            match self.z0.get(&name) {
                Some(z0) => {
                    let v = rms(&(&z - z0));
                    self.push(&name, "dz_cum_rms", t, v);
                }
                None => {
                    self.z0.insert(name.clone(), z.clone());
                }
            }
            let c = layer.c(u);
            let x = tap.input.view();
            self.push(
                &name,
                "update_out_rms",
                t,
                rms(&layer.update.apply(x)) * c.f64().abs(),
            );
            if let Some(b) = layer.update.bottleneck(x) {
                self.push(&name, "bottleneck_rms", t, rms(&b));
            }
            if let Some(prev) = self.prev_params.get(&name) {
                for (term, v) in layer.update.decompose(prev, x) {
                    self.push(&name, format!("{term}_rms"), t, rms(&v) * c.f64().abs());
                }
            }
            self.push(
                &name,
                "dw_fro",
                t,
                layer.update.frobenius_sq().sqrt() * c.f64().abs(),
            );
            let upd = &layer.update;
            let op = op_norm_power::<T>(
                layer.d_in(),
                |v| upd.apply(v.t()).reversed_axes(),
                |w| upd.apply_adjoint(w.t()).reversed_axes(),
                t,
                self.power_iterations,
                1e-6,
            );
            self.push(&name, "dw_op", t, op * c.f64().abs());
            self.prev_params.insert(
                name.clone(),
                layer.update.params().iter().map(|p| p.to_owned()).collect(),
            );
            self.z_prev.insert(name, z);
        }
    }
}
