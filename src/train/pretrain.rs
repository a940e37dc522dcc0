//! Pre-trained bases: the fine-tuning setting. A model whose maps all carry full fine-tuning updates is trained on a
//! source task (Adam, full batch), and its merged weights become the frozen base of the adaptation run.

use ndarray::Array2;

use super::{train, Dataset, TrainConfig, TrainRecord};
use crate::adapters::{AdapterConfig, Method};
use crate::error::Result;
use crate::models::{Inspect, MlpConfig};
use crate::optim::{OptimizerConfig, Rule};
use crate::scalar::Scalar;

/// Trains `model` (build it with `Method::Full` on every map you want pre-trained) on `source` for `steps` Adam steps
/// at rate `lr`, and returns the merged weight of every map in forward order (the order `base_weights` uses, so the
/// result can be passed to the config's `build`), with the source run's record.
pub fn pretrain<T: Scalar, M: Inspect<T>>(
    model: &mut M,
    source: &Dataset<T>,
    steps: u64,
    lr: f64,
    width: usize,
) -> Result<(Vec<Array2<T>>, TrainRecord)> {
    let tc = TrainConfig {
        optimizer: OptimizerConfig::new(Rule::adam(), lr),
        steps,
        width,
        ..TrainConfig::default()
    };
    let rec = train(model, &tc, source)?;
    let weights = model
        .linears()
        .into_iter()
        .map(|l| l.merged_weight(T::one()))
        .collect();
    Ok((weights, rec))
}

/// [`pretrain`] for the MLP whose random base comes from `base_seed`: every layer is trained.
pub fn pretrain_mlp<T: Scalar>(
    cfg: &MlpConfig,
    base_seed: u64,
    source: &Dataset<T>,
    steps: u64,
    lr: f64,
) -> Result<(Vec<Array2<T>>, TrainRecord)> {
    let mut all = cfg.clone();
    all.adapt = cfg.layer_names();
    let mut net = all.build(
        cfg.base_weights::<T>(base_seed),
        &AdapterConfig::new(Method::Full),
        0,
    )?;
    pretrain(&mut net, source, steps, lr, cfg.width)
}
