//! One training loop for every model: full-batch or mini-batch steps, loss and held-out loss, the optimiser and its
//! parameter groups, the ramp tied to the optimiser step, divergence recorded as a result.

use ndarray::{s, Array2};
use serde::Serialize;

use crate::error::Result;
use crate::models::Model;
use crate::optim::OptimizerConfig;
use crate::scalar::Scalar;
use crate::adapters::Ramp;

/// Mean-squared error $L = \tfrac{1}{2N}\lVert Y - Y^*\rVert_F^2$ and $G = \partial L/\partial Y = (Y - Y^*)/N$.
pub fn mse<T: Scalar>(y: &Array2<T>, target: &Array2<T>) -> (f64, Array2<T>) {
    let diff = y - target;
    let n = y.nrows() as f64;
    let loss = 0.5 * diff.iter().map(|v| v.f64() * v.f64()).sum::<f64>() / n;
    (loss, diff / T::of(n))
}

/// What to train and how.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Optimiser, rates and groups.
    pub optimizer: OptimizerConfig,
    /// Number of optimiser steps.
    pub steps: u64,
    /// Mini-batch size (`None`: full batch). Batches cycle through the training set in order.
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
    /// The first step at which a loss or gradient was not finite; training stops there.
    pub diverged_at: Option<u64>,
}

/// Trains `model` on (x, y) with held-out (x_test, y_test).
pub fn train<T: Scalar, M: Model<T>>(model: &mut M, cfg: &TrainConfig, x: &Array2<T>, y: &Array2<T>, x_test: &Array2<T>, y_test: &Array2<T>) -> Result<TrainRecord> {
    let mut opt = cfg.optimizer.init()?;
    let factors: Vec<f64> = model.params_info().iter().map(|p| cfg.optimizer.groups.factor(p.info.role, cfg.width)).collect();
    let mut rec = TrainRecord { train_loss: Vec::new(), test_loss: Vec::new(), diverged_at: None };
    let n = x.nrows();
    let bs = cfg.batch.unwrap_or(n).clamp(1, n);
    for t in 0..=cfg.steps {
        let u = T::of(cfg.ramp.u(opt.steps_taken()));
        let (out, _) = model.forward(x, u);
        let (loss, _) = mse(&out, y);
        let (out_test, _) = model.forward(x_test, u);
        let (test_loss, _) = mse(&out_test, y_test);
        rec.train_loss.push(loss);
        rec.test_loss.push(test_loss);
        if !loss.is_finite() {
            rec.diverged_at = Some(t);
            break;
        }
        if t == cfg.steps {
            break;
        }
        let start = (t as usize * bs) % n;
        let end = (start + bs).min(n);
        let (xb, yb) = (x.slice(s![start..end, ..]).to_owned(), y.slice(s![start..end, ..]).to_owned());
        let (out_b, cache) = model.forward(&xb, u);
        let (_, g) = mse(&out_b, &yb);
        let grads = model.backward(&cache, &g, u);
        if grads.iter().any(|g| g.iter().any(|v| !v.f64().is_finite())) {
            rec.diverged_at = Some(t);
            break;
        }
        opt.step_views(model.params_mut(), &grads, &factors);
    }
    Ok(rec)
}
