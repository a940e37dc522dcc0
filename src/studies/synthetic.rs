//! The synthetic experiment of THEORY §6.1: one adapted linear layer fitted to a known shifted target
//! $Y = X(W_0 + \Delta W^*)^\top$ whose shift is positive semidefinite, negative semidefinite or asymmetric.
//!
//! SingLoRA's square update is PSD, so the target's symmetry decides whether it can be reached at all. The study
//! reports final/initial training loss per (target, method); it measures and does not presume who wins.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::adapters::{AdapterConfig, Method};
use crate::error::Result;
use crate::linalg::mm_nt;
use crate::models::SingleLayer;
use crate::optim::{OptimizerConfig, Rule};
use crate::rng::{normal_matrix, SeedRng};
use crate::tasks::ShiftKind;
use crate::train::{train, Dataset, Loss, TrainConfig};

/// The synthetic study's settings (defaults: THEORY §6.1 at a size that runs in seconds).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyntheticConfig {
    /// Width n of the square layer (default 64).
    pub width: usize,
    /// Adapter rank r and target rank (default 4).
    pub rank: usize,
    /// Number of training examples N (default 512).
    pub examples: usize,
    /// Optimiser steps (default 1000).
    pub steps: u64,
    /// Adam learning rate (default 3e-2).
    pub lr: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            width: 64,
            rank: 4,
            examples: 512,
            steps: 1000,
            lr: 3e-2,
            seed: 0,
        }
    }
}

/// One cell of the result table.
#[derive(Clone, Debug, Serialize)]
pub struct SyntheticResult {
    /// Target symmetry.
    pub target: String,
    /// Adapter.
    pub method: String,
    /// Initial training loss.
    pub initial_loss: f64,
    /// Final training loss.
    pub final_loss: f64,
    /// The first step at which the loss was not finite, if any.
    pub diverged_at: Option<u64>,
}

impl SyntheticResult {
    /// final / initial.
    pub fn ratio(&self) -> f64 {
        self.final_loss / self.initial_loss
    }
}

/// Trains `method` on `target` with the common training loop and reports the loss ratio.
pub fn fit(cfg: &SyntheticConfig, target: ShiftKind, method: Method) -> Result<SyntheticResult> {
    let n = cfg.width;
    let w0: Array2<f64> = normal_matrix(
        &mut SeedRng::new(cfg.seed, "w0"),
        n,
        n,
        1.0 / (n as f64).sqrt(),
    );
    let x: Array2<f64> = normal_matrix(&mut SeedRng::new(cfg.seed, "x"), cfg.examples, n, 1.0);
    let w_star = &w0 + &target.draw(n, n, cfg.rank, cfg.seed);
    let y_star = mm_nt(x.view(), w_star.view());
    let data = Dataset {
        x_train: x.clone(),
        y_train: y_star.clone(),
        x_test: x,
        y_test: y_star,
        loss: Loss::Mse,
        rows_per_example: 1,
    };
    let adapter = AdapterConfig::new(method).rank_alpha(cfg.rank, cfg.rank as f64);
    let mut model = SingleLayer::new(w0, &adapter, cfg.seed)?;
    let tc = TrainConfig {
        optimizer: OptimizerConfig::new(Rule::adam(), cfg.lr),
        steps: cfg.steps,
        batch: None,
        ramp: adapter.ramp,
        width: n,
    };
    let rec = train(&mut model, &tc, &data)?;
    Ok(SyntheticResult {
        target: target.to_string(),
        method: method.to_string(),
        initial_loss: rec.train_loss[0],
        final_loss: *rec.train_loss.last().expect("at least the initial loss"),
        diverged_at: rec.diverged_at,
    })
}
