//! `singlora train`: fine-tune one model at width n and print its losses. The flags become one
//! [`crate::studies::spec::RunSpec`], the same resolution every study uses.

use clap::Args;

use super::args::{split_list, AdapterArgs};
use crate::adapters::{AdapterConfig, Method};
use crate::error::{Error, Result};
use crate::models::{MlpConfig, ModelKind, TransformerConfig, WidthMode};
use crate::optim::{OptimizerConfig, Rule};
use crate::scalar::{with_product_threads, Precision};
use crate::studies::engine::free_cores;
use crate::studies::report::train::train_table;
use crate::studies::spec::{allowed_tasks, ModelSpec, Pretrain, RunSpec};
use crate::tasks::{TaskKind, TaskSpec};
use crate::train::TrainConfig;

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// Model: mlp, transformer (task recall) or toy (LoRA+'s scalar toy, task toy).
    #[arg(long, default_value = "mlp")]
    model: String,
    /// Hidden width n.
    #[arg(long, default_value_t = 256)]
    width: usize,
    /// MLP: number of hidden layers L (≥ 2).
    #[arg(long, default_value_t = 2)]
    depth: usize,
    /// MLP: relu, gelu, tanh or identity.
    #[arg(long, default_value = "relu")]
    activation: String,
    /// Readout scale: standard (1/√n) or mup (1/n).
    #[arg(long, default_value = "mup")]
    readout: String,
    /// Transformer: attention heads (width n = heads × head_dim).
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Comma-separated adapted layers. MLP: input, hidden.K, hidden (all), readout (default hidden.1).
    /// Transformer: q, k, v, o, up, down, block.K.q, embed, readout (default q,k,v,o,up,down).
    #[arg(long)]
    adapt: Option<String>,
    #[command(flatten)]
    adapter: AdapterArgs,
    /// Ramp length T in optimiser steps (0: none).
    #[arg(long, default_value_t = 0)]
    ramp: u64,
    /// sgd, adam, adamw or sign_sgd.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// Base learning rate η.
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// LoRA+ ratio: η_B/η_A for lora and dora; for singlora and singlora_dora the role split λ (A steps along
    /// λ·(output-role gradient) + (input-role gradient), THEORY O10).
    #[arg(long, default_value_t = 1.0)]
    loraplus_ratio: f64,
    /// Width exponent c of every rate: η·n^(−c).
    #[arg(long, default_value_t = 0.0)]
    lr_exponent: f64,
    /// Optimiser steps.
    #[arg(long, default_value_t = 200)]
    steps: u64,
    /// Mini-batch size (default: full batch).
    #[arg(long)]
    batch: Option<usize>,
    /// Streamed batches: every step sees fresh training examples (batch × steps of them are drawn, none repeats).
    /// Needs --batch.
    #[arg(long)]
    stream: bool,
    /// Task: regression or classification (MLP), recall (transformer), toy (toy). Default: the model's first.
    #[arg(long)]
    task: Option<String>,
    /// Classes (classification, default 4) or outputs (regression, default 1).
    #[arg(long)]
    outputs: Option<usize>,
    /// Teacher shift: psd, nsd, asymmetric, random.
    #[arg(long, default_value = "psd")]
    shift: String,
    /// Layer carrying the teacher's shift.
    #[arg(long, default_value = "hidden.1")]
    shift_layer: String,
    /// Recall: key–value pairs per sequence (T = 2·pairs + 1).
    #[arg(long, default_value_t = 2)]
    pairs: usize,
    /// Training / held-out examples (sequences for recall).
    #[arg(long, default_value_t = 256)]
    examples: usize,
    /// Seed of base, data and adapter.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Pre-train every base weight for this many Adam steps on a source task (same family, data from seed + 1000)
    /// before freezing it (0: random frozen base).
    #[arg(long, default_value_t = 0)]
    pretrain_steps: u64,
    /// Learning rate of the pre-training.
    #[arg(long, default_value_t = 0.01)]
    pretrain_lr: f64,
    /// f32 or f64.
    #[arg(long, default_value = "f64")]
    dtype: String,
}

impl TrainArgs {
    fn task(&self, model: ModelKind) -> Result<TaskSpec> {
        let kind: TaskKind = match &self.task {
            Some(t) => t.parse().map_err(|_| bad_task(t, model))?,
            None => allowed_tasks(model)[0],
        };
        if !allowed_tasks(model).contains(&kind) {
            return Err(bad_task(kind.name(), model));
        }
        if self.examples == 0 {
            return Err(Error::invalid("examples", 0, "a positive integer"));
        }
        let train = match (self.stream, self.batch) {
            (true, Some(b)) => b * self.steps as usize,
            (true, None) => {
                return Err(Error::invalid(
                    "stream",
                    "true",
                    "--batch B as well (each step then draws B fresh examples)",
                ))
            }
            _ => self.examples,
        };
        Ok(TaskSpec {
            kind,
            shift: self.shift.parse()?,
            layer: self.shift_layer.clone(),
            rank: self.adapter.rank,
            examples: train,
            test_examples: self.examples,
            pairs: self.pairs,
            ..TaskSpec::default()
        })
    }

    fn model(&self, kind: ModelKind, task: &TaskSpec) -> Result<ModelSpec> {
        let adapt = |default: &str| {
            let list = split_list(self.adapt.as_deref().unwrap_or(default));
            if list.is_empty() {
                return Err(Error::invalid(
                    "adapt",
                    format!("{:?}", self.adapt.as_deref().unwrap_or("")),
                    "at least one layer to adapt (with none, nothing would be trained)",
                ));
            }
            Ok(list)
        };
        Ok(match kind {
            ModelKind::Mlp => {
                let outputs = match (task.kind, self.outputs) {
                    (TaskKind::Classification, Some(k)) if k < 2 => {
                        return Err(Error::invalid(
                            "outputs",
                            k,
                            "at least 2 classes for --task classification",
                        ))
                    }
                    (TaskKind::Classification, None) => 4,
                    (_, k) => k.unwrap_or(1),
                };
                ModelSpec::Mlp(MlpConfig {
                    width: self.width,
                    depth: self.depth,
                    activation: self.activation.parse()?,
                    readout: self.readout.parse()?,
                    adapt: adapt("hidden.1")?,
                    output_dim: outputs,
                    ..MlpConfig::new(self.width)
                })
            }
            ModelKind::Transformer => {
                if self.heads == 0 || !self.width.is_multiple_of(self.heads) {
                    return Err(Error::invalid(
                        "heads",
                        self.heads,
                        &format!("a positive divisor of the width {}", self.width),
                    ));
                }
                let recall = task.recall();
                let shape =
                    TransformerConfig::at_width(self.width, WidthMode::HeadDim, self.heads)?;
                ModelSpec::Transformer(TransformerConfig {
                    vocab: recall.vocab(),
                    seq_len: recall.seq_len(),
                    readout: self.readout.parse()?,
                    adapt: adapt("q,k,v,o,up,down")?,
                    ..shape
                })
            }
            ModelKind::Toy => ModelSpec::Toy(self.width),
        })
    }

    fn spec(&self) -> Result<RunSpec> {
        let kind: ModelKind = self.model.parse()?;
        let task = self.task(kind)?;
        let model = self.model(kind, &task)?;
        let mut adapter = self.adapter.config(Some(Method::Singlora))?;
        adapter.ramp.steps = self.ramp;
        if kind == ModelKind::Toy {
            adapter.rank = 1;
        }
        let optimizer = self.optimizer(&mut adapter)?;
        self.check_numbers()?;
        let precision: Precision = self
            .dtype
            .parse()
            .map_err(|_| Error::invalid("dtype", &self.dtype, "f32 or f64"))?;
        Ok(RunSpec {
            model,
            train: TrainConfig {
                optimizer,
                steps: self.steps,
                batch: self.batch,
                ramp: adapter.ramp,
                width: self.width,
                eval_every: (self.steps / 10).max(1),
                ..TrainConfig::default()
            },
            task,
            adapter,
            precision,
            pretrain: (self.pretrain_steps > 0).then_some(Pretrain {
                steps: self.pretrain_steps,
                lr: self.pretrain_lr,
                lr_exponent: 0.0,
            }),
            seed: self.seed,
            data_seed: if kind == ModelKind::Toy {
                self.seed
            } else {
                self.seed + 1
            },
        })
    }

    /// The optimiser of the flags; LoRA+'s ratio is placed in the adapter or the rate groups (see
    /// [`crate::studies::spec::place_ratio`]).
    fn optimizer(&self, adapter: &mut AdapterConfig) -> Result<OptimizerConfig> {
        let mut optimizer = OptimizerConfig::new(Rule::from_name(&self.optimizer)?, self.lr);
        if adapter.method == Method::Full && self.loraplus_ratio != 1.0 {
            return Err(Error::invalid(
                "--loraplus-ratio",
                self.loraplus_ratio,
                "1 for --method full (a ratio splits LoRA's B from A, or SingLoRA's two gradient roles)",
            ));
        }
        crate::studies::spec::place_ratio(self.loraplus_ratio, adapter, &mut optimizer.groups);
        optimizer
            .groups
            .lr_exponent
            .insert("default".into(), self.lr_exponent);
        optimizer.validate()?;
        Ok(optimizer)
    }

    /// Checks the step count, the batch size and the pre-training rate.
    fn check_numbers(&self) -> Result<()> {
        for (flag, v) in [
            ("steps", self.steps as usize),
            ("batch", self.batch.unwrap_or(1)),
        ] {
            if v == 0 {
                return Err(Error::invalid(flag, 0, "a positive integer"));
            }
        }
        if !(self.pretrain_lr.is_finite() && self.pretrain_lr > 0.0) {
            return Err(Error::invalid(
                "pretrain_lr",
                self.pretrain_lr,
                "a finite number > 0",
            ));
        }
        Ok(())
    }
}

fn bad_task(task: &str, model: ModelKind) -> Error {
    let names: Vec<&str> = allowed_tasks(model).iter().map(|k| k.name()).collect();
    Error::invalid(
        "task",
        task,
        &format!("for --model {model}: {}", names.join(" or ")),
    )
}

pub fn run(a: TrainArgs) -> Result<()> {
    let spec = a.spec()?;
    spec.check()?;
    println!("{}", spec.describe()?);
    // One run: its large products use the cores other processes leave free (the numbers do not depend on it). The
    // loop runs on a thread of a pool of that size, so a split product is a join inside the pool, never a hand-off
    // from outside it.
    let threads = free_cores();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::invalid("threads", threads, &format!("a thread pool ({e})")))?;
    let outcome = pool.install(|| {
        with_product_threads(threads, || match spec.precision {
            Precision::F64 => spec.run::<f64, _>(&mut ()),
            Precision::F32 => spec.run::<f32, _>(&mut ()),
        })
    })?;
    if let Some(p) = &outcome.pretrain {
        println!(
            "pre-trained the base for {} steps on a source task: loss {:.4e} → {:.4e}",
            a.pretrain_steps,
            p.train_loss[0],
            p.train_loss.last().copied().unwrap_or(f64::NAN)
        );
    }
    print!("{}", train_table(&outcome.record));
    Ok(())
}
