//! What a training run learns from: datasets (train and held-out splits) and the losses, each returning its value and
//! its gradient with respect to the network's output.

use ndarray::Array2;
use serde::Serialize;

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
