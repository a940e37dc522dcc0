//! One training loop for every model: full-batch or mini-batch steps, loss and held-out loss, the optimiser and its
//! parameter groups, the ramp tied to the optimiser step, divergence recorded as a result.

use ndarray::{s, Array2};
use serde::Serialize;

use crate::adapters::Ramp;
use crate::error::Result;
use crate::models::Model;
use crate::optim::OptimizerConfig;
use crate::scalar::Scalar;

/// Mean-squared error $L = \tfrac{1}{2N}\lVert Y - Y^*\rVert_F^2$ and $G = \partial L/\partial Y = (Y - Y^*)/N$.
pub fn mse<T: Scalar>(y: &Array2<T>, target: &Array2<T>) -> (f64, Array2<T>) {
    let diff = y - target;
    let n = y.nrows() as f64;
    let loss = 0.5 * diff.iter().map(|v| v.f64() * v.f64()).sum::<f64>() / n;
    (loss, diff / T::of(n))
}

/// Softmax cross-entropy against target distributions (one-hot or soft), one row per prediction. Rows whose target is
/// all zero are ignored (positions a sequence task does not score). With $p = \mathrm{softmax}(y_i)$, $N$ the number of
/// scored rows and $\tau_i$ the target row:
/// $L = -\tfrac1N\sum_i \tau_i\cdot\log p_i$, $G_i = (p_i\,\textstyle\sum_j\tau_{ij} - \tau_i)/N$.
pub fn cross_entropy<T: Scalar>(y: &Array2<T>, target: &Array2<T>) -> (f64, Array2<T>) {
    assert_eq!(
        y.dim(),
        target.dim(),
        "cross_entropy: logits and targets differ in shape"
    );
    let scored = target
        .outer_iter()
        .filter(|t| t.iter().any(|v| *v != T::zero()))
        .count()
        .max(1) as f64;
    let mut g = Array2::<T>::zeros(y.dim());
    let mut loss = 0.0;
    for ((row, t), mut grow) in y
        .outer_iter()
        .zip(target.outer_iter())
        .zip(g.outer_iter_mut())
    {
        let mass: f64 = t.iter().map(|v| v.f64()).sum();
        if mass == 0.0 {
            continue;
        }
        let max = row
            .iter()
            .map(|v| v.f64())
            .fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v.f64() - max).exp()).sum::<f64>().ln();
        for ((gj, yj), tj) in grow.iter_mut().zip(row).zip(t) {
            let logp = yj.f64() - lse;
            loss -= tj.f64() * logp;
            *gj = T::of((logp.exp() * mass - tj.f64()) / scored);
        }
    }
    (loss / scored, g)
}

/// Fraction of scored rows whose arg-max prediction equals the target's arg-max.
pub fn accuracy<T: Scalar>(y: &Array2<T>, target: &Array2<T>) -> f64 {
    let argmax = |r: ndarray::ArrayView1<'_, T>| {
        r.iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |b, (i, v)| {
                if v.f64() > b.1 {
                    (i, v.f64())
                } else {
                    b
                }
            })
            .0
    };
    let (mut hit, mut n) = (0usize, 0usize);
    for (row, t) in y.outer_iter().zip(target.outer_iter()) {
        if t.iter().any(|v| *v != T::zero()) {
            n += 1;
            hit += usize::from(argmax(row) == argmax(t));
        }
    }
    if n == 0 {
        f64::NAN
    } else {
        hit as f64 / n as f64
    }
}

/// The training loss of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Loss {
    /// [`mse`].
    Mse,
    /// [`cross_entropy`], with accuracy as the held-out metric.
    CrossEntropy,
}

impl Loss {
    /// Loss value and $\partial L/\partial Y$.
    pub fn eval<T: Scalar>(self, y: &Array2<T>, target: &Array2<T>) -> (f64, Array2<T>) {
        match self {
            Loss::Mse => mse(y, target),
            Loss::CrossEntropy => cross_entropy(y, target),
        }
    }
}

/// A task's data: train and held-out splits, the loss, and how many rows form one example (1, or the sequence length
/// for sequence models, whose rows are tokens), so mini-batches never split an example.
#[derive(Clone, Debug)]
pub struct Dataset<T: Scalar> {
    /// Training inputs.
    pub x_train: Array2<T>,
    /// Training targets.
    pub y_train: Array2<T>,
    /// Held-out inputs.
    pub x_test: Array2<T>,
    /// Held-out targets.
    pub y_test: Array2<T>,
    /// The loss.
    pub loss: Loss,
    /// Rows per example.
    pub rows_per_example: usize,
}

/// What to train and how.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Optimiser, rates and groups.
    pub optimizer: OptimizerConfig,
    /// Number of optimiser steps.
    pub steps: u64,
    /// Mini-batch size (`None`: full batch). Batches walk through the training set in order and wrap around; with
    /// batch × steps training examples no example repeats, i.e. batches are streamed.
    pub batch: Option<usize>,
    /// The ramp $u(t)$ of the adapters.
    pub ramp: Ramp,
    /// The width n at which per-role rate exponents are evaluated.
    pub width: usize,
}

/// One training run's record.
#[derive(Clone, Debug, Serialize)]
pub struct TrainRecord {
    /// Training loss before each step (index t = 0…steps; the last entry is after the final step).
    pub train_loss: Vec<f64>,
    /// Held-out loss at the same points.
    pub test_loss: Vec<f64>,
    /// Held-out accuracy at the same points (cross-entropy tasks only; empty otherwise).
    pub test_accuracy: Vec<f64>,
    /// The first step at which a loss or gradient was not finite; training stops there.
    pub diverged_at: Option<u64>,
}

/// Trains `model` on `data`, calling `observe(t, model, u)` before every step t = 0…steps (for probes).
pub fn train_observed<T: Scalar, M: Model<T>>(
    model: &mut M,
    cfg: &TrainConfig,
    data: &Dataset<T>,
    mut observe: impl FnMut(u64, &M, T),
) -> Result<TrainRecord> {
    let mut opt = cfg.optimizer.init()?;
    let factors: Vec<f64> = model
        .params_info()
        .iter()
        .map(|p| cfg.optimizer.groups.factor(p.info.role, cfg.width))
        .collect();
    let mut rec = TrainRecord {
        train_loss: Vec::new(),
        test_loss: Vec::new(),
        test_accuracy: Vec::new(),
        diverged_at: None,
    };
    let rpe = data.rows_per_example.max(1);
    let examples = data.x_train.nrows() / rpe;
    let bs = cfg.batch.unwrap_or(examples).clamp(1, examples.max(1));
    for t in 0..=cfg.steps {
        let u = T::of(cfg.ramp.u(opt.steps_taken()));
        observe(t, model, u);
        // Full batch: the loss forward is also the step's forward (no second pass, no copy of the data).
        let full_batch = bs == examples;
        let (out, cache) = model.forward(&data.x_train, u);
        let (loss, g_full) = data.loss.eval(&out, &data.y_train);
        let (out_test, _) = model.forward(&data.x_test, u);
        let (test_loss, _) = data.loss.eval(&out_test, &data.y_test);
        rec.train_loss.push(loss);
        rec.test_loss.push(test_loss);
        if data.loss == Loss::CrossEntropy {
            rec.test_accuracy.push(accuracy(&out_test, &data.y_test));
        }
        if !loss.is_finite() {
            rec.diverged_at = Some(t);
            break;
        }
        if t == cfg.steps {
            break;
        }
        let grads = if full_batch {
            model.backward(&cache, &g_full, u)
        } else {
            let start = (t as usize * bs) % examples;
            let end = (start + bs).min(examples);
            let rows = s![start * rpe..end * rpe, ..];
            let (xb, yb) = (
                data.x_train.slice(rows).to_owned(),
                data.y_train.slice(rows).to_owned(),
            );
            let (out_b, cache_b) = model.forward(&xb, u);
            let (_, g) = data.loss.eval(&out_b, &yb);
            model.backward(&cache_b, &g, u)
        };
        if grads.iter().any(|g| g.iter().any(|v| !v.f64().is_finite())) {
            rec.diverged_at = Some(t);
            break;
        }
        opt.step_views(model.params_mut(), &grads, &factors);
    }
    Ok(rec)
}

/// Trains `model` on `data` (see [`train_observed`]).
pub fn train<T: Scalar, M: Model<T>>(
    model: &mut M,
    cfg: &TrainConfig,
    data: &Dataset<T>,
) -> Result<TrainRecord> {
    train_observed(model, cfg, data, |_, _, _| {})
}
