//! Pre-trained bases: the fine-tuning setting. The MLP's weights are trained in full on a source task for a chosen
//! number of steps (every layer carries a full fine-tuning update, Adam), merged, and returned as the frozen base of
//! the adaptation run.

use ndarray::Array2;

use super::{Linear, MlpConfig};
use crate::adapters::{AdapterConfig, Method};
use crate::error::Result;
use crate::optim::{OptimizerConfig, Rule};
use crate::scalar::Scalar;
use crate::train::{train, Dataset, TrainConfig, TrainRecord};

/// Trains every weight of the MLP whose random base comes from `base_seed` on `source` for `steps` Adam steps at
/// rate `lr`, and returns the trained weights (to pass to [`MlpConfig::build`]) and the source run's record.
pub fn pretrain_mlp<T: Scalar>(cfg: &MlpConfig, base_seed: u64, source: &Dataset<T>, steps: u64, lr: f64) -> Result<(Vec<Array2<T>>, TrainRecord)> {
    let mut all = cfg.clone();
    all.adapt = cfg.layer_names();
    let mut net = all.build(cfg.base_weights::<T>(base_seed), &AdapterConfig::new(Method::Full), 0)?;
    let tc = TrainConfig { optimizer: OptimizerConfig::new(Rule::adam(), lr), steps, batch: None, ramp: Default::default(), width: cfg.width };
    let rec = train(&mut net, &tc, source)?;
    let weights = net
        .layers
        .iter()
        .map(|l| match l {
            Linear::Adapted(a) => a.merged_weight(T::one()),
            Linear::Frozen(w) => w.clone(),
        })
        .collect();
    Ok((weights, rec))
}
