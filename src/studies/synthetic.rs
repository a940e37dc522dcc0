//! The synthetic experiment of THEORY §6.1: one adapted linear layer fitted to a known shifted target
//! $Y = X(W_0 + \Delta W^*)^\top$ whose shift is positive semidefinite, negative semidefinite or asymmetric.
//!
//! SingLoRA's square update is PSD, so the target's symmetry decides whether it can be reached at all. The study
//! reports final/initial training loss per (target, method); it measures and does not presume who wins. A
//! [`SyntheticGrid`] runs many such fits (targets × adapters at given ranks × seeds) through the study engine.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::adapters::{AdapterConfig, Method};
use crate::studies::cost::{Cost, Work};
use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::linalg::mm_nt;
use crate::models::SingleLayer;
use crate::optim::{OptimizerConfig, Rule};
use crate::rng::{normal_matrix, SeedRng};
use crate::tasks::ShiftKind;
use crate::train::{mse, train, Dataset, Loss, TrainConfig};

/// The synthetic study's settings (defaults: THEORY §6.1 at a size that runs in seconds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyntheticConfig {
    /// Width n of the square layer (default 64).
    pub width: usize,
    /// Target rank, and the adapter's rank unless `adapter_rank` is given (default 4).
    pub rank: usize,
    /// The adapter's rank when it differs from the target's (equal-budget comparisons, C7).
    #[serde(default)]
    pub adapter_rank: Option<usize>,
    /// Number of training examples N (default 512).
    pub examples: usize,
    /// Optimiser steps (default 1000).
    pub steps: u64,
    /// Adam learning rate (default 3e-2).
    pub lr: f64,
    /// Seed.
    pub seed: u64,
}

impl SyntheticConfig {
    /// Checks the settings; errors name the flag.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("width", self.width),
            ("rank", self.rank),
            ("examples", self.examples),
            ("steps", self.steps as usize),
        ] {
            if v == 0 {
                return Err(Error::invalid(field, v, "a positive integer"));
            }
        }
        for (field, r) in [
            ("rank", Some(self.rank)),
            ("adapter_rank", self.adapter_rank),
        ] {
            if let Some(r) = r.filter(|&r| r == 0 || r > self.width) {
                return Err(Error::invalid(
                    field,
                    r,
                    &format!("an integer in 1..={} (the width)", self.width),
                ));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid("lr", self.lr, "a finite number > 0"));
        }
        Ok(())
    }
}

impl Default for SyntheticConfig {
    /// THEORY §6.1 at a size that runs in seconds: n = 64, r = 4, N = 512, Adam η = 0.03 for 1000 steps, seed 0.
    fn default() -> Self {
        Self {
            width: 64,
            rank: 4,
            adapter_rank: None,
            examples: 512,
            steps: 1000,
            lr: 3e-2,
            seed: 0,
        }
    }
}

/// One cell of the result table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyntheticResult {
    /// Target symmetry.
    pub target: String,
    /// Adapter.
    pub method: String,
    /// The adapter's rank.
    pub rank: usize,
    /// The seed (base, data, target and adapter).
    pub seed: u64,
    /// The base layer's loss (ΔW = 0): what the fit has to improve on.
    #[serde(with = "crate::io::float")]
    pub base_loss: f64,
    /// Initial training loss (the base's, unless the adapter starts away from it: SingLoRA without a ramp).
    #[serde(with = "crate::io::float")]
    pub initial_loss: f64,
    /// Final training loss.
    #[serde(with = "crate::io::float")]
    pub final_loss: f64,
    /// The first step at which the loss was not finite, if any.
    pub diverged_at: Option<u64>,
}

impl SyntheticResult {
    /// final / initial.
    pub fn ratio(&self) -> f64 {
        self.final_loss / self.initial_loss
    }

    /// final / base: how much of the base layer's loss the fit removed (comparable across methods, since a SingLoRA
    /// layer without a ramp starts away from the base).
    pub fn ratio_to_base(&self) -> f64 {
        self.final_loss / self.base_loss
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
    let base_loss = mse(&mm_nt(x.view(), w0.view()), &y_star).0;
    let data = Dataset {
        x_train: x.clone(),
        y_train: y_star.clone(),
        x_test: x,
        y_test: y_star,
        loss: Loss::Mse,
        rows_per_example: 1,
    };
    let rank = cfg.adapter_rank.unwrap_or(cfg.rank);
    let adapter = AdapterConfig::new(method).rank_alpha(rank, rank as f64);
    let mut model = SingleLayer::new(w0, &adapter, cfg.seed)?;
    let tc = TrainConfig {
        optimizer: OptimizerConfig::new(Rule::adam(), cfg.lr),
        steps: cfg.steps,
        ramp: adapter.ramp,
        width: n,
        ..TrainConfig::default()
    };
    let rec = train(&mut model, &tc, &data)?;
    Ok(SyntheticResult {
        target: target.to_string(),
        method: method.to_string(),
        rank,
        seed: cfg.seed,
        base_loss,
        initial_loss: rec.train_loss[0],
        final_loss: *rec.train_loss.last().expect("at least the initial loss"),
        diverged_at: rec.diverged_at,
    })
}

/// The experiment's table: every target symmetry × LoRA and SingLoRA, initial and final loss and their ratio.
pub fn synthetic_table(cfg: &SyntheticConfig) -> Result<String> {
    cfg.validate()?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Synthetic experiment (THEORY §6.1): one {n}x{n} layer, Y = X(W0 + ΔW*)ᵀ, rank-{r} shift, N = {N}, Adam lr {lr}, {t} steps, seed {seed}",
        n = cfg.width,
        r = cfg.rank,
        N = cfg.examples,
        lr = cfg.lr,
        t = cfg.steps,
        seed = cfg.seed
    );
    let _ = writeln!(
        s,
        "{:<12} {:<10} {:>14} {:>14} {:>14}",
        "target", "method", "initial loss", "final loss", "final/initial"
    );
    for target in [ShiftKind::Psd, ShiftKind::Nsd, ShiftKind::Asymmetric] {
        for method in [Method::Lora, Method::Singlora] {
            let r = fit(cfg, target, method)?;
            let note = r
                .diverged_at
                .map(|t| format!("  diverged at step {t}"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "{:<12} {:<10} {:>14.4e} {:>14.4e} {:>14.4e}{note}",
                r.target,
                r.method,
                r.initial_loss,
                r.final_loss,
                r.ratio()
            );
        }
    }
    Ok(s)
}

/// One fit of a synthetic grid: an adapter at a rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticArm {
    /// The adapter.
    pub method: Method,
    /// Its rank (the target's rank is the grid's).
    pub rank: usize,
}

/// A grid of synthetic fits run by the study engine (so a second run resumes): every target × arm × seed on one
/// layer of THEORY §6.1's shape. `singlora verify` uses it for C1 (LoRA and SingLoRA at the target's rank) and C7
/// (SingLoRA at twice LoRA's rank: the same number of parameters on a square layer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticGrid {
    /// Every fit's settings; its `seed` and `adapter_rank` are set per job.
    pub fit: SyntheticConfig,
    /// Target symmetries.
    pub targets: Vec<ShiftKind>,
    /// Adapters and ranks.
    pub arms: Vec<SyntheticArm>,
    /// Seeds (each draws its own base, data and target).
    pub seeds: Vec<u64>,
}

/// One job of a synthetic grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyntheticJob {
    /// The target's symmetry.
    pub target: ShiftKind,
    /// The adapter and its rank.
    pub arm: SyntheticArm,
    /// The seed.
    pub seed: u64,
}

impl SyntheticGrid {
    /// Checks every job's settings.
    pub fn validate(&self) -> Result<()> {
        for job in super::engine::Study::jobs(&SyntheticStudy(self)) {
            self.config_of(&job).validate()?;
        }
        Ok(())
    }

    /// The settings of one job.
    pub fn config_of(&self, job: &SyntheticJob) -> SyntheticConfig {
        SyntheticConfig {
            adapter_rank: Some(job.arm.rank),
            seed: job.seed,
            ..self.fit.clone()
        }
    }
}

/// A synthetic grid as a study of the engine.
pub struct SyntheticStudy<'a>(pub &'a SyntheticGrid);

impl super::engine::Study for SyntheticStudy<'_> {
    type Job = SyntheticJob;
    type Run = SyntheticResult;

    fn kind(&self) -> &'static str {
        "synthetic"
    }

    fn config_text(&self) -> Result<String> {
        toml::to_string(self.0).map_err(|e| Error::invalid("config", e, "a serialisable config"))
    }

    fn jobs(&self) -> Vec<SyntheticJob> {
        let g = self.0;
        let mut jobs = Vec::new();
        for &target in &g.targets {
            for &arm in &g.arms {
                for &seed in &g.seeds {
                    jobs.push(SyntheticJob { target, arm, seed });
                }
            }
        }
        jobs
    }

    fn key(&self, job: &SyntheticJob) -> String {
        format!(
            "{}__{}__r{}__s{}",
            job.target, job.arm.method, job.arm.rank, job.seed
        )
    }

    /// The layer, the data (inputs and targets), Adam's state and the step's temporaries: about 16 matrices of the
    /// data's size in f64.
    fn job_bytes(&self, _job: &SyntheticJob) -> u64 {
        let f = &self.0.fit;
        16 * 8 * (f.examples * f.width + f.width * f.width) as u64
    }

    /// A step is a forward and a backward through the n×n layer, at most three (N×n)·(n×n) products of N·n²
    /// multiply–adds each (the low-rank terms are r/n of that); the layer's draw and the data once.
    fn job_cost(&self, _job: &SyntheticJob) -> Cost {
        let f = &self.0.fit;
        let (rows, n) = (f.examples as f64, f.width as f64);
        let step = Work::madds(3.0 * rows * n * n) + Work::touches(8.0 * rows * n);
        Cost::alone(step * f.steps as f64 + Work::normals(n * n + rows * n))
    }

    fn run(&self, job: &SyntheticJob) -> Result<SyntheticResult> {
        fit(&self.0.config_of(job), job.target, job.arm.method)
    }

    fn diverged_at(&self, run: &SyntheticResult) -> Option<u64> {
        run.diverged_at
    }
}

/// A grid's fits as CSV: `target,method,rank,seed,base_loss,initial_loss,final_loss,final_over_base,diverged_at`.
pub fn results_csv(fits: &[SyntheticResult]) -> String {
    let mut s = String::from(
        "target,method,rank,seed,base_loss,initial_loss,final_loss,final_over_base,diverged_at\n",
    );
    for f in fits {
        let _ = writeln!(
            s,
            "{},{},{},{},{:e},{:e},{:e},{:e},{}",
            f.target,
            f.method,
            f.rank,
            f.seed,
            f.base_loss,
            f.initial_loss,
            f.final_loss,
            f.ratio_to_base(),
            f.diverged_at.map(|t| t.to_string()).unwrap_or_default()
        );
    }
    s
}
