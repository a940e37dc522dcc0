//! One training loop for every model: full-batch or mini-batch steps, the optimiser and its parameter groups, the ramp
//! tied to the optimiser step, held-out evaluation where someone reads it, and divergence recorded as a result.
//!
//! The loop hands an [`Observer`] each step it has just computed ([`Step`]: the output and cache of the forward pass
//! on the training set, the loss, the full-batch gradients, the held-out evaluation), so probes never recompute a
//! forward or backward pass the loop has already done.
//!
//! - [`data`]: datasets and losses.
//! - [`pretrain()`]: pre-trained frozen bases (the fine-tuning setting), trained by this loop.

pub mod data;
pub mod pretrain;

use std::fmt;

use ndarray::{s, Array2, ArrayD};
use serde::Serialize;

pub use data::{accuracy, cross_entropy, mse, Dataset, Loss};
pub use pretrain::{pretrain, pretrain_mlp};

use crate::adapters::Ramp;
use crate::error::Result;
use crate::models::{Inspect, Model, Prefix};
use crate::optim::{OptimizerConfig, Rule};
use crate::scalar::Scalar;

/// A loss above this multiple of its initial value counts as divergence (see [`TrainConfig::divergence_factor`]).
pub const DIVERGENCE_FACTOR: f64 = 100.0;

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
    /// The held-out split is evaluated at t = 0, at the last step, every `eval_every` steps (0: never in between) and
    /// at every step an observer records.
    pub eval_every: u64,
    /// Training stops as diverged at the first step whose loss is not finite, whose gradient is not finite, or whose
    /// loss exceeds `divergence_factor` × the initial loss (default [`DIVERGENCE_FACTOR`] = 100: a loss blown far past
    /// its start; `inf` turns the last rule off).
    pub divergence_factor: f64,
}

impl Default for TrainConfig {
    /// Adam at η = 10⁻³ (PyTorch's defaults), 100 full-batch steps, no ramp, width 1 (no width scaling), held-out
    /// loss at the first and last step, divergence past 100× the initial loss.
    fn default() -> Self {
        Self {
            optimizer: OptimizerConfig::new(Rule::adam(), 1e-3),
            steps: 100,
            batch: None,
            ramp: Ramp::default(),
            width: 1,
            eval_every: 0,
            divergence_factor: DIVERGENCE_FACTOR,
        }
    }
}

/// Why a run stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Divergence {
    /// The training loss was NaN or infinite.
    NonFiniteLoss,
    /// A gradient entry was NaN or infinite.
    NonFiniteGradient,
    /// The training loss exceeded the divergence factor times its initial value.
    LossBlowUp,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Divergence::NonFiniteLoss => "non-finite loss",
            Divergence::NonFiniteGradient => "non-finite gradient",
            Divergence::LossBlowUp => "loss past the divergence factor × its initial value",
        })
    }
}

/// The held-out evaluation at one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Eval {
    /// Held-out loss.
    pub loss: f64,
    /// Held-out accuracy (cross-entropy tasks only).
    pub accuracy: Option<f64>,
}

/// One training run's record.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrainRecord {
    /// Training loss before each step (index t = 0…steps; the last entry is after the final step).
    pub train_loss: Vec<f64>,
    /// The steps at which the held-out split was evaluated (always t = 0 and the last step reached).
    pub test_steps: Vec<u64>,
    /// Held-out loss at `test_steps`.
    pub test_loss: Vec<f64>,
    /// Held-out accuracy at `test_steps` (cross-entropy tasks only; empty otherwise).
    pub test_accuracy: Vec<f64>,
    /// The step at which training stopped as diverged, if it did.
    pub diverged_at: Option<u64>,
    /// Why it diverged.
    pub divergence: Option<Divergence>,
}

impl TrainRecord {
    /// Records the held-out evaluation of step t.
    fn push_test(&mut self, t: u64, e: Eval) {
        self.test_steps.push(t);
        self.test_loss.push(e.loss);
        self.test_accuracy.extend(e.accuracy);
    }

    /// Records that training stopped as diverged at step t.
    fn stop(&mut self, t: u64, why: Divergence) {
        (self.diverged_at, self.divergence) = (Some(t), Some(why));
    }
}

/// A step the loop has just computed, as an observer sees it: the state before optimiser step t + 1.
pub struct Step<'a, T: Scalar, M: Inspect<T>> {
    /// t: optimiser steps taken so far.
    pub t: u64,
    /// The ramp value u(t) the forward pass used.
    pub u: T,
    /// The model.
    pub model: &'a M,
    /// The data.
    pub data: &'a Dataset<T>,
    /// The model's output on the training set.
    pub out: &'a Array2<T>,
    /// The forward pass's cache on the training set.
    pub cache: &'a M::Cache,
    /// The training loss.
    pub loss: f64,
    /// The full-batch gradient of every trainable tensor at this state (in `params_info` order).
    pub grads: &'a [ArrayD<T>],
    /// The held-out evaluation.
    pub test: Eval,
}

/// Something that records what happens while a model of type `M` trains (a probe, a trajectory).
pub trait Observer<T: Scalar, M: Inspect<T>> {
    /// Whether the observer records step t; the loop then evaluates the held-out split and the full-batch gradient.
    fn wants(&self, t: u64) -> bool;

    /// Called at every step t = 0…(last) the observer wants, before the step's update.
    fn observe(&mut self, step: &Step<'_, T, M>);
}

/// The observer that records nothing.
impl<T: Scalar, M: Inspect<T>> Observer<T, M> for () {
    fn wants(&self, _t: u64) -> bool {
        false
    }

    fn observe(&mut self, _step: &Step<'_, T, M>) {}
}

/// The divergence rule of [`TrainConfig::divergence_factor`] applied to the training loss.
fn loss_divergence(loss: f64, initial: f64, factor: f64) -> Option<Divergence> {
    if !loss.is_finite() {
        Some(Divergence::NonFiniteLoss)
    } else if initial > 0.0 && loss > factor * initial {
        Some(Divergence::LossBlowUp)
    } else {
        None
    }
}

/// The constant parts of the forward passes on a dataset's two splits ([`Prefix`]): computed once per run, or once for
/// every run sharing a frozen base and data.
pub struct Prefixes<T: Scalar> {
    /// On the training inputs.
    pub train: Prefix<T>,
    /// On the held-out inputs.
    pub test: Prefix<T>,
}

impl<T: Scalar> Prefixes<T> {
    /// The prefixes of `model` on `data`'s splits.
    pub fn new<M: Model<T>>(model: &M, data: &Dataset<T>) -> Self {
        Self {
            train: model.prefix(&data.x_train),
            test: model.prefix(&data.x_test),
        }
    }
}

/// Held-out loss (and accuracy) of `model` at ramp value `u`, from the held-out prefix.
fn evaluate<T: Scalar, M: Inspect<T>>(
    model: &M,
    data: &Dataset<T>,
    test: &Prefix<T>,
    u: T,
) -> Eval {
    let (out, _) = model.forward_prefixed(test, u);
    let (loss, _) = data.loss.eval(&out, &data.y_test);
    let accuracy = (data.loss == Loss::CrossEntropy).then(|| accuracy(&out, &data.y_test));
    Eval { loss, accuracy }
}

/// The mini-batch size in examples (the whole training set when `cfg.batch` is unset, clamped to it) and whether it
/// is the full batch.
fn batch_size<T: Scalar>(cfg: &TrainConfig, data: &Dataset<T>) -> (usize, bool) {
    let examples = data.x_train.nrows() / data.rows_per_example.max(1);
    let bs = cfg.batch.unwrap_or(examples).clamp(1, examples.max(1));
    (bs, bs == examples)
}

/// The gradient on the mini-batch of step t (examples `t·b … t·b + b` of the training set, wrapping around).
fn batch_gradient<T: Scalar, M: Inspect<T>>(
    model: &M,
    data: &Dataset<T>,
    t: u64,
    batch: usize,
    u: T,
) -> Vec<ArrayD<T>> {
    let rpe = data.rows_per_example.max(1);
    let examples = data.x_train.nrows() / rpe;
    let start = (t as usize * batch) % examples;
    let end = (start + batch).min(examples);
    let rows = s![start * rpe..end * rpe, ..];
    let (xb, yb) = (
        data.x_train.slice(rows).to_owned(),
        data.y_train.slice(rows).to_owned(),
    );
    let (out, cache) = model.forward(&xb, u);
    let (_, g) = data.loss.eval(&out, &yb);
    model.backward(&cache, &g, u)
}

/// Trains `model` on `data`, handing `observer` every step it wants (see [`Step`]).
pub fn train_observed<T: Scalar, M: Inspect<T>, O: Observer<T, M>>(
    model: &mut M,
    cfg: &TrainConfig,
    data: &Dataset<T>,
    observer: &mut O,
) -> Result<TrainRecord> {
    let prefixes = Prefixes::new(&*model, data);
    train_prefixed(model, cfg, data, &prefixes, observer)
}

/// [`train_observed`] with the constant parts of the forward passes given (`prefixes`, computed on `data` by a model
/// with the same frozen maps, e.g. another run on the same base): every forward on the training set and the held-out
/// split starts after them. Bit for bit [`train_observed`].
pub fn train_prefixed<T: Scalar, M: Inspect<T>, O: Observer<T, M>>(
    model: &mut M,
    cfg: &TrainConfig,
    data: &Dataset<T>,
    prefixes: &Prefixes<T>,
    observer: &mut O,
) -> Result<TrainRecord> {
    let mut opt = cfg.optimizer.init()?;
    let roles = model.params_info().into_iter().map(|p| p.info.role);
    let factors = cfg.optimizer.groups.factors(roles, cfg.width);
    let mut rec = TrainRecord::default();
    let (bs, full_batch) = batch_size(cfg, data);
    for t in 0..=cfg.steps {
        let u = T::of(cfg.ramp.u(opt.steps_taken()));
        // Full batch: the loss forward is also the step's forward (no second pass, no copy of the data).
        let (out, cache) = model.forward_prefixed(&prefixes.train, u);
        let (loss, g) = data.loss.eval(&out, &data.y_train);
        rec.train_loss.push(loss);
        let diverged = loss_divergence(loss, rec.train_loss[0], cfg.divergence_factor);
        let (wanted, last) = (observer.wants(t), t == cfg.steps || diverged.is_some());
        let every = cfg.eval_every > 0 && t.is_multiple_of(cfg.eval_every);
        let test =
            (t == 0 || last || every || wanted).then(|| evaluate(&*model, data, &prefixes.test, u));
        if let Some(e) = test {
            rec.push_test(t, e);
        }
        let full_grads = (wanted || (full_batch && !last)).then(|| model.backward(&cache, &g, u));
        if let (true, Some(grads), Some(test)) = (wanted, &full_grads, test) {
            let step = Step {
                t,
                u,
                model: &*model,
                data,
                out: &out,
                cache: &cache,
                loss,
                grads,
                test,
            };
            observer.observe(&step);
        }
        if let Some(why) = diverged {
            rec.stop(t, why);
            break;
        }
        if t == cfg.steps {
            break;
        }
        let grads = match full_grads {
            Some(g) if full_batch => g,
            _ => batch_gradient(&*model, data, t, bs, u),
        };
        if grads.iter().any(|g| g.iter().any(|v| !v.f64().is_finite())) {
            rec.stop(t, Divergence::NonFiniteGradient);
            break;
        }
        opt.step_views(model.params_mut(), &grads, &factors);
    }
    Ok(rec)
}

/// Trains `model` on `data` (see [`train_observed`]).
pub fn train<T: Scalar, M: Inspect<T>>(
    model: &mut M,
    cfg: &TrainConfig,
    data: &Dataset<T>,
) -> Result<TrainRecord> {
    train_observed(model, cfg, data, &mut ())
}
