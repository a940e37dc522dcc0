//! Can SingLoRA change attention scores asymmetrically? The expressiveness measurement of the transformer studies.
//!
//! In one attention head the logits are $\tau\, x_i W_Q^\top W_K x_j^\top = \tau\, x_i M x_j^\top$ with the score
//! matrix $M = W_Q^\top W_K$ ($n \times n$). SingLoRA adapts each map by a symmetric update $S = (\alpha/r)AA^\top$, so
//!
//! $$\Delta M = S_Q W_{K0} + W_{Q0}^\top S_K + S_Q S_K,$$
//!
//! whose factors are symmetric but which is not constrained to be: $W_{Q0}$ and $W_{K0}$ are general. Whether training
//! reaches an asymmetric $\Delta M^*$ is measured, not presumed. A teacher (one pre-LayerNorm block, one head of size
//! n, vocabulary n, Gaussian input rows) differs from the frozen base only in $W_Q$ and $W_K$; every student adapts q
//! and k only and fits the teacher's outputs by MSE with Adam.
//!
//! Targets (U, V: n × r with N(0, 1/n) entries, from the seed's streams `attention.u`, `attention.v`), both with an
//! asymmetric score change (skew fraction measured, near $1/\sqrt2$):
//! - `lowrank-q`: $W_Q^* = W_{Q0} + UV^\top$, $W_K^* = W_{K0}$, so $\Delta M^* = VU^\top W_{K0}$: what LoRA on q
//!   expresses, outside SingLoRA's family;
//! - `psd-qk`: $W_Q^* = W_{Q0} + UU^\top$, $W_K^* = W_{K0} + VV^\top$: inside SingLoRA's family (each map's change is
//!   PSD of rank r), so SingLoRA can reach it exactly although $\Delta M^*$ is asymmetric: the positive control.
//!
//! Measured per (target, method, seed): initial, final and held-out loss; the error of the achieved change on the
//! subspace the logits see, $\|P(\Delta M - \Delta M^*)P\|_F / \|P\Delta M^* P\|_F$ with $P = I - \mathbf{1}\mathbf{1}^\top/n$
//! (LayerNorm's outputs are centred, so $M$ is identifiable only as $PMP$); and the skew fraction
//! $\|\mathrm{skew}(P\Delta M P)\|_F / \|P\Delta M P\|_F$ of the achieved and the target change.

use std::fmt::{self, Write as _};

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::adapters::{AdapterConfig, Method, Ramp};
use crate::error::{Error, Result};
use crate::linalg::{frobenius, mm, mm_nt};
use crate::models::{Inspect, Model, Transformer, TransformerConfig};
use crate::optim::{OptimizerConfig, Rule};
use crate::rng::{normal_matrix, SeedRng};
use crate::studies::cost::{Cost, Work};
use crate::train::{train, Dataset, Loss, TrainConfig};

/// The measurement's settings (`singlora attention` flags).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttentionConfig {
    /// Width n = head size = vocabulary (default 32).
    pub width: usize,
    /// Target rank r of U, V and adapter rank of LoRA and SingLoRA (default 4; `singlora-2r` doubles it).
    pub rank: usize,
    /// Sequence length T (default 8).
    pub seq_len: usize,
    /// Training sequences (default 128; as many held out).
    pub examples: usize,
    /// Adam steps (default 400), full batch.
    pub steps: u64,
    /// Adam's rate (default 1e-2).
    pub lr: f64,
    /// Seeds (default 0, 1, 2).
    pub seeds: Vec<u64>,
}

impl Default for AttentionConfig {
    /// n = 32, r = 4, T = 8, 128 sequences, 400 Adam steps at 1e-2, seeds 0–2: about a minute on 2 cores.
    fn default() -> Self {
        Self {
            width: 32,
            rank: 4,
            seq_len: 8,
            examples: 128,
            steps: 400,
            lr: 1e-2,
            seeds: vec![0, 1, 2],
        }
    }
}

/// Which change of the score matrix the teacher makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScoreTarget {
    /// $W_Q^* = W_{Q0} + UV^\top$ only.
    LowRankQ,
    /// $W_Q^* = W_{Q0} + UU^\top$, $W_K^* = W_{K0} + VV^\top$.
    PsdQK,
}

impl ScoreTarget {
    /// Both targets, in table order.
    pub const ALL: [ScoreTarget; 2] = [ScoreTarget::LowRankQ, ScoreTarget::PsdQK];
}

impl fmt::Display for ScoreTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScoreTarget::LowRankQ => "lowrank-q",
            ScoreTarget::PsdQK => "psd-qk",
        })
    }
}

/// A student: a method on q and k at a rank.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Student {
    /// Adapter.
    pub method: Method,
    /// Rank multiplier of the config's rank (1, or 2 for SingLoRA at LoRA's parameter count).
    pub rank_factor: usize,
}

impl fmt::Display for Student {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rank_factor {
            1 => write!(f, "{}", self.method),
            k => write!(f, "{}-{k}r", self.method),
        }
    }
}

/// The students compared: full fine-tuning of q and k (the ceiling), LoRA r, SingLoRA r and SingLoRA 2r (LoRA's
/// parameter count on square maps).
pub const STUDENTS: [Student; 4] = [
    Student {
        method: Method::Full,
        rank_factor: 1,
    },
    Student {
        method: Method::Lora,
        rank_factor: 1,
    },
    Student {
        method: Method::Singlora,
        rank_factor: 1,
    },
    Student {
        method: Method::Singlora,
        rank_factor: 2,
    },
];

/// One fit.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScoreFit {
    /// Target.
    pub target: ScoreTarget,
    /// Student (`full`, `lora`, `singlora`, `singlora-2r`).
    pub student: String,
    /// Seed.
    pub seed: u64,
    /// Trainable parameters.
    pub params: usize,
    /// Training loss at t = 0.
    pub initial_loss: f64,
    /// Training loss at the last step.
    pub final_loss: f64,
    /// Held-out loss at the last step.
    pub test_loss: f64,
    /// $\|P(\Delta M - \Delta M^*)P\|_F / \|P\Delta M^*P\|_F$.
    pub score_error: f64,
    /// Skew fraction of the achieved $P\Delta M P$.
    pub skew: f64,
    /// Skew fraction of the target $P\Delta M^* P$.
    pub target_skew: f64,
    /// The step at which training diverged, if it did.
    pub diverged_at: Option<u64>,
}

impl AttentionConfig {
    /// Checks the settings; errors name the flag, the value and what is accepted.
    pub fn validate(&self) -> Result<()> {
        for (flag, v) in [
            ("--width", self.width),
            ("--rank", self.rank),
            ("--seq-len", self.seq_len),
            ("--examples", self.examples),
            ("--steps", self.steps as usize),
        ] {
            if v == 0 {
                return Err(Error::invalid(flag, v, "a positive integer"));
            }
        }
        if 2 * self.rank > self.width {
            let accepted = format!(
                "at most width/2 = {} (SingLoRA 2r is compared)",
                self.width / 2
            );
            return Err(Error::invalid("--rank", self.rank, &accepted));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid("--lr", self.lr, "a finite number > 0"));
        }
        if self.seeds.is_empty() {
            return Err(Error::invalid("--seeds", "[]", "at least one seed"));
        }
        Ok(())
    }

    /// One block, one head of size n, vocabulary n, non-causal, q and k adapted in `adapt`.
    fn transformer(&self, adapt: &[&str]) -> TransformerConfig {
        TransformerConfig {
            vocab: self.width,
            seq_len: self.seq_len,
            blocks: 1,
            heads: 1,
            head_dim: self.width,
            causal: false,
            adapt: adapt.iter().map(|s| s.to_string()).collect(),
            ..TransformerConfig::default()
        }
    }
}

/// Index of `block.0.<map>` in the transformer's weights.
fn map_index(cfg: &TransformerConfig, map: &str) -> usize {
    let name = format!("block.0.{map}");
    cfg.layer_names()
        .iter()
        .position(|n| *n == name)
        .expect("a block map")
}

/// $P M P$ with $P = I - \mathbf{1}\mathbf{1}^\top/n$: rows and columns centred.
fn centred(m: &Array2<f64>) -> Array2<f64> {
    let rows = m.mean_axis(ndarray::Axis(0)).expect("non-empty");
    let c = m - &rows.insert_axis(ndarray::Axis(0));
    let cols = c.mean_axis(ndarray::Axis(1)).expect("non-empty");
    &c - &cols.insert_axis(ndarray::Axis(1))
}

/// $\|\mathrm{skew}(M)\|_F / \|M\|_F$, $\mathrm{skew}(M) = (M - M^\top)/2$.
fn skew_fraction(m: &Array2<f64>) -> f64 {
    let skew = (m - &m.t()) * 0.5;
    frobenius(&skew) / frobenius(m)
}

/// The score matrix $W_Q^\top W_K$ of weights `w` (in layer order).
fn scores(cfg: &TransformerConfig, w: &[Array2<f64>]) -> Array2<f64> {
    mm(w[map_index(cfg, "q")].t(), w[map_index(cfg, "k")].view())
}

/// The teacher's factors U, V (n × r, N(0, 1/n) entries, streams `attention.u`, `attention.v`).
pub fn shift_factors(cfg: &AttentionConfig, seed: u64) -> (Array2<f64>, Array2<f64>) {
    let sd = 1.0 / (cfg.width as f64).sqrt();
    let draw = |stream: &str| {
        normal_matrix::<f64>(&mut SeedRng::new(seed, stream), cfg.width, cfg.rank, sd)
    };
    (draw("attention.u"), draw("attention.v"))
}

/// The teacher's weights: the base with `target`'s change of W_Q and W_K.
fn teacher_weights(cfg: &AttentionConfig, target: ScoreTarget, seed: u64) -> Vec<Array2<f64>> {
    let t = cfg.transformer(&[]);
    let mut w = t.base_weights::<f64>(seed);
    let (u, v) = shift_factors(cfg, seed);
    let (q, k) = (map_index(&t, "q"), map_index(&t, "k"));
    match target {
        ScoreTarget::LowRankQ => w[q] = &w[q] + &mm_nt(u.view(), v.view()),
        ScoreTarget::PsdQK => {
            w[q] = &w[q] + &mm_nt(u.view(), u.view());
            w[k] = &w[k] + &mm_nt(v.view(), v.view());
        }
    }
    w
}

/// The teacher network of `target` at `seed` and its data.
pub fn teacher(
    cfg: &AttentionConfig,
    target: ScoreTarget,
    seed: u64,
) -> Result<(Transformer<f64>, Dataset<f64>)> {
    let plain = cfg.transformer(&[]);
    let net = plain.build(
        teacher_weights(cfg, target, seed),
        &AdapterConfig::default(),
        0,
    )?;
    let data = teacher_data(cfg, &net, seed);
    Ok((net, data))
}

/// An untrained `student` on the frozen base of `seed` (q and k adapted; α = r, so α/r = 1; SingLoRA ramps over the
/// first tenth of the steps) and its adapter settings.
pub fn student(
    cfg: &AttentionConfig,
    student: Student,
    seed: u64,
) -> Result<(Transformer<f64>, AdapterConfig)> {
    let rank = cfg.rank * student.rank_factor;
    let mut adapter = AdapterConfig::new(student.method).rank_alpha(rank, rank as f64);
    if student.method.is_singlora() {
        adapter.ramp = Ramp {
            steps: (cfg.steps / 10).max(1),
            u_min: 0.0,
        };
    }
    let base = cfg.transformer(&[]).base_weights::<f64>(seed);
    let net = cfg
        .transformer(&["q", "k"])
        .build(base, &adapter, seed + 2)?;
    Ok((net, adapter))
}

/// The achieved score change of `net` (at u = 1) against `target`'s, on the centred subspace: the relative error, the
/// achieved skew fraction and the target's.
pub fn score_change(
    cfg: &AttentionConfig,
    target: ScoreTarget,
    net: &Transformer<f64>,
    seed: u64,
) -> (f64, f64, f64) {
    let plain = cfg.transformer(&[]);
    let base = scores(&plain, &plain.base_weights::<f64>(seed));
    let merged: Vec<Array2<f64>> = net.linears().iter().map(|l| l.merged_weight(1.0)).collect();
    let target_change = centred(&(scores(&plain, &teacher_weights(cfg, target, seed)) - &base));
    let change = centred(&(scores(&plain, &merged) - &base));
    (
        frobenius(&(&change - &target_change)) / frobenius(&target_change),
        skew_fraction(&change),
        skew_fraction(&target_change),
    )
}

/// Gaussian input sequences and the teacher's outputs on them (train from `attention.x`, held out from
/// `attention.x_test`).
fn teacher_data(cfg: &AttentionConfig, teacher: &Transformer<f64>, seed: u64) -> Dataset<f64> {
    let rows = cfg.examples * cfg.seq_len;
    let x =
        |stream: &str| normal_matrix::<f64>(&mut SeedRng::new(seed, stream), rows, cfg.width, 1.0);
    let (x_train, x_test) = (x("attention.x"), x("attention.x_test"));
    let (y_train, y_test) = (
        teacher.forward(&x_train, 1.0).0,
        teacher.forward(&x_test, 1.0).0,
    );
    Dataset {
        x_train,
        y_train,
        x_test,
        y_test,
        loss: Loss::Mse,
        rows_per_example: cfg.seq_len,
    }
}

/// Fits `student` to `target`'s teacher at `seed` and measures it (see the module doc).
pub fn fit(
    cfg: &AttentionConfig,
    target: ScoreTarget,
    student_kind: Student,
    seed: u64,
) -> Result<ScoreFit> {
    let (_, data) = teacher(cfg, target, seed)?;
    let (mut net, adapter) = student(cfg, student_kind, seed)?;
    let tc = TrainConfig {
        optimizer: OptimizerConfig::new(Rule::adam(), cfg.lr),
        steps: cfg.steps,
        ramp: adapter.ramp,
        width: cfg.width,
        ..TrainConfig::default()
    };
    let rec = train(&mut net, &tc, &data)?;
    let (score_error, skew, target_skew) = score_change(cfg, target, &net, seed);
    Ok(ScoreFit {
        target,
        student: student_kind.to_string(),
        seed,
        params: net.num_trainable(),
        initial_loss: rec.train_loss[0],
        final_loss: *rec.train_loss.last().expect("the initial loss at least"),
        test_loss: rec.test_loss.last().copied().unwrap_or(f64::NAN),
        score_error,
        skew,
        target_skew,
        diverged_at: rec.diverged_at,
    })
}

/// Every (target, student, seed) fit of `cfg`, in that order; fits run in parallel, each on one thread, so the
/// numbers do not depend on the thread count.
pub fn run_attention(cfg: &AttentionConfig) -> Result<Vec<ScoreFit>> {
    run_students(cfg, &STUDENTS)
}

/// The (target, student, seed) fits of `cfg` for `students` only, in that order, as [`run_attention`] runs them.
pub fn run_students(cfg: &AttentionConfig, students: &[Student]) -> Result<Vec<ScoreFit>> {
    use rayon::prelude::*;
    cfg.validate()?;
    let mut cells = Vec::new();
    for target in ScoreTarget::ALL {
        for &student in students {
            cells.extend(cfg.seeds.iter().map(|&seed| (target, student, seed)));
        }
    }
    cells
        .par_iter()
        .map(|&(t, s, seed)| fit(cfg, t, s, seed))
        .collect()
}

/// One fit of an [`AttentionStudy`]: the teacher, the student and the seed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttentionJob {
    /// The teacher's change.
    pub target: ScoreTarget,
    /// The student.
    pub student: Student,
    /// The seed.
    pub seed: u64,
}

/// The fits of `config` for `students` as a study of the engine: each fit one run file, so an interrupted
/// measurement resumes without recomputing a finished fit. The fits are [`run_students`]'s, each on one thread.
#[derive(Clone, Debug, Serialize)]
pub struct AttentionStudy {
    /// The settings.
    pub config: AttentionConfig,
    /// The students fitted.
    pub students: Vec<Student>,
}

impl super::engine::Study for AttentionStudy {
    type Job = AttentionJob;
    type Run = ScoreFit;

    fn kind(&self) -> &'static str {
        "attention"
    }

    fn config_text(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::invalid("config", e, "a serialisable config"))
    }

    /// Targets, then students, then seeds: [`run_students`]'s order.
    fn jobs(&self) -> Vec<AttentionJob> {
        let mut jobs = Vec::new();
        for target in ScoreTarget::ALL {
            for &student in &self.students {
                jobs.extend(self.config.seeds.iter().map(|&seed| AttentionJob {
                    target,
                    student,
                    seed,
                }));
            }
        }
        jobs
    }

    fn key(&self, job: &AttentionJob) -> String {
        format!("{}__{}__s{}", job.target, job.student, job.seed)
    }

    /// The teacher's and the student's weights (n × n maps, a few copies each), the data and the activations of
    /// both splits (T·examples rows of width n, a few dozen copies through the block): generous.
    fn job_bytes(&self, _job: &AttentionJob) -> u64 {
        let c = &self.config;
        let rows = (c.seq_len * c.examples) as u64;
        8 * (64 * c.width as u64 * c.width as u64 + 64 * 2 * rows * c.width as u64)
    }

    /// Three times the forward's work per step, which projects the T·N rows through four n×n maps (T·N·n²
    /// multiply–adds each), forms the T×T scores and their mix with the values (N·T²·n each) and their softmax; the
    /// teacher's and student's draws once.
    fn job_cost(&self, _job: &AttentionJob) -> Cost {
        let c = &self.config;
        let (rows, n, t) = (
            (c.seq_len * c.examples) as f64,
            c.width as f64,
            c.seq_len as f64,
        );
        let forward = Work::madds(4.0 * rows * n * n + 2.0 * rows * t * n)
            + Work::touches(8.0 * rows * n + 4.0 * rows * t);
        Cost::alone(forward * (3.0 * c.steps as f64) + Work::normals(8.0 * n * n))
    }

    fn run(&self, job: &AttentionJob) -> Result<ScoreFit> {
        fit(&self.config, job.target, job.student, job.seed)
    }

    fn diverged_at(&self, run: &ScoreFit) -> Option<u64> {
        run.diverged_at
    }
}

/// The mean over seeds and the [min, max] of `f` over `fits`.
fn spread(fits: &[&ScoreFit], f: impl Fn(&ScoreFit) -> f64, sci: bool) -> String {
    let v: Vec<f64> = fits.iter().map(|r| f(r)).collect();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let (lo, hi) = v
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    if sci {
        format!("{mean:.2e} [{lo:.2e},{hi:.2e}]")
    } else {
        format!("{mean:.3} [{lo:.3},{hi:.3}]")
    }
}

/// The table of `fits`: per target and student, the mean and [min, max] over seeds of each measurement.
pub fn attention_table(cfg: &AttentionConfig, fits: &[ScoreFit]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Attention scores: one head of size n = {n} (vocabulary n, T = {t}), teacher = base with W_Q, W_K changed \
         (rank {r}), students adapt q and k; {e} sequences, Adam lr {lr}, {steps} steps, seeds {seeds:?}. \
         Mean [min, max] over seeds; score error and skew on the centred subspace (PΔMP).",
        n = cfg.width,
        t = cfg.seq_len,
        r = cfg.rank,
        e = cfg.examples,
        lr = cfg.lr,
        steps = cfg.steps,
        seeds = cfg.seeds
    );
    let _ = writeln!(
        s,
        "{:<10} {:<12} {:>6} {:>27} {:>27} {:>22} {:>22} {:>12}",
        "target",
        "student",
        "params",
        "final/initial loss",
        "held-out/initial",
        "score error",
        "skew",
        "target skew"
    );
    for target in ScoreTarget::ALL {
        for student in STUDENTS {
            let name = student.to_string();
            let rows: Vec<&ScoreFit> = fits
                .iter()
                .filter(|f| f.target == target && f.student == name)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let diverged = rows.iter().filter(|r| r.diverged_at.is_some()).count();
            let note = if diverged > 0 {
                format!("  ({diverged} diverged)")
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "{:<10} {:<12} {:>6} {:>27} {:>27} {:>22} {:>22} {:>12.3}{note}",
                target.to_string(),
                name,
                rows[0].params,
                spread(&rows, |r| r.final_loss / r.initial_loss, true),
                spread(&rows, |r| r.test_loss / r.initial_loss, true),
                spread(&rows, |r| r.score_error, false),
                spread(&rows, |r| r.skew, false),
                rows[0].target_skew,
            );
        }
    }
    s
}

/// One line per fit: `target,student,seed,params,initial_loss,final_loss,test_loss,score_error,skew,target_skew,
/// diverged_at` (empty when it did not diverge).
pub fn attention_csv(fits: &[ScoreFit]) -> String {
    let mut s = String::from("target,student,seed,params,initial_loss,final_loss,test_loss,score_error,skew,target_skew,diverged_at\n");
    for f in fits {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{}",
            f.target,
            f.student,
            f.seed,
            f.params,
            f.initial_loss,
            f.final_loss,
            f.test_loss,
            f.score_error,
            f.skew,
            f.target_skew,
            f.diverged_at.map_or(String::new(), |t| t.to_string())
        );
    }
    s
}
