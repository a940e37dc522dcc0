//! The training step both step benches time (`steps`, criterion; `ratios`, interleaved): the MLP
//! 16 → n → n → n → 1 with the adapter on both hidden maps, rank 8, batch 64, Adam (see `steps.rs`).
#![allow(dead_code)]

pub mod timing;

use ndarray::Array2;
use singlora::adapters::{AdapterConfig, Method};
use singlora::models::{Mlp, MlpConfig, Model};
use singlora::optim::{OptimizerConfig, Rule};
use singlora::rng::{normal_matrix, SeedRng};
use singlora::Scalar;

/// Batch size b.
pub const BATCH: usize = 64;
/// Adapter rank r.
pub const RANK: usize = 8;
/// Input dimension d₀ of the MLP.
pub const INPUT_DIM: usize = 16;
/// Number of hidden layers (so `hidden.1` and `hidden.2` are the adapted n × n maps).
pub const DEPTH: usize = 3;
/// One model, its optimiser and a fixed batch: everything a training step touches.
pub struct Step<T: Scalar> {
    model: Mlp<T>,
    optimizer: singlora::optim::Optimizer,
    factors: Vec<f64>,
    x: Array2<T>,
    y: Array2<T>,
}

impl<T: Scalar> Step<T> {
    /// The MLP 16 → n → n → n → 1 with `method` on both hidden maps, its Adam optimiser, a Gaussian batch and a
    /// random target.
    pub fn new(method: Method, n: usize) -> Self {
        let mlp = MlpConfig {
            width: n,
            depth: DEPTH,
            adapt: vec!["hidden".into()],
            ..MlpConfig::new(n)
        };
        let adapter = AdapterConfig::new(method).rank_alpha(RANK, 8.0);
        let model = mlp
            .build(mlp.base_weights::<T>(0), &adapter, 1)
            .expect("the benchmark's MLP builds");
        let opt_cfg = OptimizerConfig::new(Rule::adam(), 1e-3);
        let factors = opt_cfg
            .groups
            .factors(model.params_info().into_iter().map(|p| p.info.role), n);
        let x = normal_matrix(&mut SeedRng::new(2, "bench.x"), BATCH, INPUT_DIM, 1.0);
        let y = normal_matrix(&mut SeedRng::new(2, "bench.y"), BATCH, 1, 1.0);
        Self {
            model,
            optimizer: opt_cfg.init().expect("valid optimiser"),
            factors,
            x,
            y,
        }
    }

    /// One training step (forward, loss, backward, Adam); returns the loss before the step.
    pub fn run(&mut self) -> f64 {
        let u = T::one();
        let (out, cache) = self.model.forward(&self.x, u);
        let (loss, g) = singlora::train::mse(&out, &self.y);
        let grads = self.model.backward(&cache, &g, u);
        self.optimizer
            .step_views(self.model.params_mut(), &grads, &self.factors);
        loss
    }
}
