//! One training run, fully resolved: the single place where a study's arm, rate and width become an adapter, an
//! optimiser, a model, its data and a training loop ([`RunSpec::resolve`]), and where that run is carried out
//! ([`RunSpec::run`]). `singlora train`, `sweep` and `lr` all go through it.
//!
//! Seeds of a run with seed s: base weights from s, data from s + 1, adapters from s + 2, the pre-training source task
//! from s + 1000 (so the same seed gives the same base and data for every arm and rate).

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Write as _;

use ndarray::Array2;

use serde::{Deserialize, Serialize};

use super::config::{Arm, StudyConfig};
use crate::adapters::{AdapterConfig, Method};
use crate::error::{Error, Result};
use crate::models::{Mlp, MlpConfig, Model, SingleLayer, Transformer, TransformerConfig};
use crate::scalar::{Precision, Scalar};
use crate::tasks::regression::SHIFT_BLOCK;
use crate::tasks::{
    associative_recall, classification_from, regression_from, toy_regression, ShiftKind, TaskKind,
    TaskSpec, Teacher, TeacherOutputs,
};
use crate::train::{
    pretrain, train_observed, train_prefixed, Dataset, Observer, Prefixes, TrainConfig, TrainRecord,
};

/// One cell of a study's grid: a series (an arm with its rate exponents), a base rate, a width and a seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Series name: the arm, plus `@c=…` when crossed with an exponent.
    pub series: String,
    /// The arm.
    pub arm: Arm,
    /// η₀ of this run.
    pub lr: f64,
    /// LoRA+ ratio η_B/η_A of this run (the arm's, or a cell of the learning-rate study's LoRA+ grid).
    pub loraplus_ratio: f64,
    /// Per-role exponents of this cell.
    pub lr_exponent: BTreeMap<String, f64>,
    /// Width n.
    pub width: usize,
    /// Seed.
    pub seed: u64,
}

/// Where a run's `loraplus_ratio` goes, by the adapter's method: LoRA and DoRA train B at η·ratio
/// (`optimizer.groups.loraplus_ratio`, LoRA+); SingLoRA and SingLoRA+DoRA step A along the role split with λ = ratio
/// (`adapter.role_ratio`, THEORY O10), every other tensor at η. Full fine-tuning has no roles: its arms are refused
/// a ratio ≠ 1 by the study's validation.
pub fn place_ratio(ratio: f64, adapter: &mut AdapterConfig, groups: &mut crate::optim::Groups) {
    if adapter.method.is_singlora() {
        adapter.role_ratio = ratio;
        groups.loraplus_ratio = 1.0;
    } else {
        groups.loraplus_ratio = ratio;
    }
}

/// Which network a run builds, at its width.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSpec {
    /// The MLP.
    Mlp(MlpConfig),
    /// LoRA+'s scalar toy at width n (rank-1 adapters).
    Toy(usize),
    /// The transformer.
    Transformer(TransformerConfig),
}

/// Pre-training of the frozen base (the fine-tuning setting): Adam on a source task of the same family (`[pretrain]`
/// in a study file).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pretrain {
    /// Adam steps.
    pub steps: u64,
    /// Adam's base rate.
    pub lr: f64,
    /// Its width exponent: the rate is lr·n^(−c) (default 0; 1 is μP's Adam rule for hidden weights, which keeps
    /// pre-training stable as the width grows).
    #[serde(default)]
    pub lr_exponent: f64,
}

impl Pretrain {
    /// Checks the fields; errors name `pretrain.<field>` (leave `[pretrain]` out for a random base).
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::invalid(
                "pretrain.steps",
                0,
                "a positive integer (leave [pretrain] out for a random base)",
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid(
                "pretrain.lr",
                self.lr,
                "a finite number > 0",
            ));
        }
        if !self.lr_exponent.is_finite() {
            return Err(Error::invalid(
                "pretrain.lr_exponent",
                self.lr_exponent,
                "a finite number",
            ));
        }
        Ok(())
    }
}

/// A run's frozen base weights (in the model's `base_weights` order) and, when pre-trained, pre-training's record.
#[derive(Clone, Debug)]
pub struct Base<T: Scalar> {
    /// The weights.
    pub weights: Vec<Array2<T>>,
    /// The pre-training run, if the base was pre-trained.
    pub pretrain: Option<TrainRecord>,
}

/// What a run leaves: its training record, and pre-training's when the base was pre-trained.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The fine-tuning run.
    pub record: TrainRecord,
    /// The pre-training of its base.
    pub pretrain: Option<TrainRecord>,
}

/// What the runs of one [`RunSpec::share_key`] share: the data, the frozen base (with pre-training's record) and the
/// constant part of the MLP's forward passes on both splits, computed once by the first run.
pub struct Shared<T: Scalar> {
    data: Dataset<T>,
    /// The frozen base weights, lent to one run at a time (an MLP run gives them back unchanged: frozen).
    base: RefCell<Option<Vec<Array2<T>>>>,
    /// Pre-training's record, if the base was pre-trained.
    pretrain: Option<TrainRecord>,
    prefixes: OnceCell<Prefixes<T>>,
}

impl<T: Scalar> Shared<T> {
    /// The base weights, lent to a run (no copy).
    fn take_base(&self) -> Vec<Array2<T>> {
        self.base.borrow_mut().take().expect(
            "the shared base is lent to one run at a time (and a run that failed to build kept it)",
        )
    }

    /// The lent base weights, given back by the run.
    fn put_base(&self, base: Vec<Array2<T>>) {
        *self.base.borrow_mut() = Some(base);
    }

    /// The data.
    pub fn data(&self) -> &Dataset<T> {
        &self.data
    }

    /// Trains `net` from the shared prefixes (computed from `net` by the first run).
    fn train<O: Observer<T, Mlp<T>>>(
        &self,
        net: &mut Mlp<T>,
        cfg: &TrainConfig,
        observer: &mut O,
    ) -> Result<TrainRecord> {
        let prefixes = self
            .prefixes
            .get_or_init(|| Prefixes::new(&*net, &self.data));
        train_prefixed(net, cfg, &self.data, prefixes, observer)
    }
}

/// Everything one training run needs.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The network.
    pub model: ModelSpec,
    /// The task.
    pub task: TaskSpec,
    /// The adapter on the adapted maps.
    pub adapter: AdapterConfig,
    /// Optimiser, steps, batches, ramp, width, divergence rule.
    pub train: TrainConfig,
    /// Precision.
    pub precision: Precision,
    /// Pre-training of the base, if any.
    pub pretrain: Option<Pretrain>,
    /// The run's seed: base weights, and adapters from seed + 2.
    pub seed: u64,
    /// The seed of its data (seed + 1; the toy's target shares its base's stream, so seed).
    pub data_seed: u64,
}

impl RunSpec {
    /// The run of `cell` in study `cfg`: the study's adapter with the arm's method, its optimiser at the cell's rate,
    /// LoRA+ ratio and exponents, its model at the cell's width.
    pub fn resolve(cfg: &StudyConfig, cell: &Cell) -> RunSpec {
        let mut adapter = cfg.adapter.clone();
        adapter.method = cell.arm.method;
        if cfg.model == crate::models::ModelKind::Toy {
            adapter.rank = 1;
        }
        let mut optimizer = cfg.optimizer.clone();
        optimizer.lr = cell.lr;
        place_ratio(cell.loraplus_ratio, &mut adapter, &mut optimizer.groups);
        optimizer.groups.lr_exponent = cell.lr_exponent.clone();
        let model = match cfg.model {
            crate::models::ModelKind::Mlp => ModelSpec::Mlp(MlpConfig {
                width: cell.width,
                ..cfg.mlp.clone()
            }),
            crate::models::ModelKind::Toy => ModelSpec::Toy(cell.width),
            crate::models::ModelKind::Transformer => {
                // vocab and T come from the task; a width the shape cannot take (refused by the study's validation)
                // leaves zero heads, which building refuses.
                let t = cfg.transformer.clone().unwrap_or_default();
                let recall = cfg.task.recall();
                let sized = t
                    .with_width(cell.width)
                    .unwrap_or(TransformerConfig { heads: 0, ..t });
                ModelSpec::Transformer(TransformerConfig {
                    vocab: recall.vocab(),
                    seq_len: recall.seq_len(),
                    ..sized
                })
            }
        };
        RunSpec {
            model,
            task: cfg.task.clone(),
            train: TrainConfig {
                optimizer,
                steps: cfg.steps,
                batch: cfg.batch,
                ramp: adapter.ramp,
                width: cell.width,
                eval_every: 0,
                divergence_factor: cfg.divergence_factor,
            },
            adapter,
            precision: cfg.precision,
            pretrain: cfg.pretrain,
            seed: cell.seed,
            data_seed: match cfg.model {
                crate::models::ModelKind::Toy => cell.seed,
                _ => cell.seed + 1,
            },
        }
    }

    /// The width n of the run.
    pub fn width(&self) -> usize {
        self.train.width
    }

    /// Checks that the run can be built: the optimiser, the model with its adapters and the data at this width
    /// (one-line errors naming the field).
    pub fn check(&self) -> Result<()> {
        self.train.optimizer.validate()?;
        self.task.validate()?;
        let trainable = match &self.model {
            ModelSpec::Mlp(mlp) => mlp
                .build(mlp.base_weights::<f64>(0), &self.adapter, 0)?
                .num_trainable(),
            ModelSpec::Toy(n) => SingleLayer::<f64>::toy(*n, &self.adapter, 0)?.num_trainable(),
            ModelSpec::Transformer(t) => t
                .build(t.base_weights::<f64>(0), &self.adapter, 0)?
                .num_trainable(),
        };
        if trainable == 0 {
            return Err(Error::invalid(
                "adapt",
                "[]",
                "at least one adapted layer (with none, nothing would be trained)",
            ));
        }
        self.data::<f64>().map(drop)
    }

    /// The run's data, drawn from [`RunSpec::data_seed`] (teacher tasks around the base of [`RunSpec::seed`]).
    pub fn data<T: Scalar>(&self) -> Result<Dataset<T>> {
        self.data_on(None)
    }

    /// [`RunSpec::data`], given the random base weights of [`RunSpec::seed`] if they are drawn already.
    fn data_on<T: Scalar>(&self, random: Option<&[Array2<T>]>) -> Result<Dataset<T>> {
        let t = &self.task;
        let data_seed = self.data_seed;
        match (&self.model, t.kind) {
            (ModelSpec::Mlp(mlp), TaskKind::Regression | TaskKind::Classification) => {
                let teacher = Teacher {
                    mlp,
                    base_seed: self.seed,
                    layer: &t.layer,
                    kind: t.shift,
                    rank: t.rank,
                    train: t.examples,
                    test: t.test_examples,
                    data_seed,
                };
                let outputs = match random {
                    Some(base) => TeacherOutputs::on_base(&teacher, base),
                    None => TeacherOutputs::new(&teacher),
                };
                if t.kind == TaskKind::Classification {
                    classification_from(outputs?)
                } else {
                    regression_from(outputs?)
                }
            }
            (ModelSpec::Toy(n), TaskKind::Toy) => {
                toy_regression(*n, t.examples, t.test_examples, data_seed)
            }
            (ModelSpec::Transformer(_), TaskKind::Recall) => {
                associative_recall(&t.recall(), t.examples, t.test_examples, data_seed)
            }
            (model, kind) => Err(Error::invalid(
                "task.kind",
                kind,
                &format!("a task of the {} model", model_name(model)),
            )),
        }
    }

    /// Trains the run in precision `T`, handing `observer` every step it wants; returns the loop's record.
    pub fn run<T: Scalar, O>(&self, observer: &mut O) -> Result<Outcome>
    where
        O: Observer<T, Mlp<T>> + Observer<T, SingleLayer<T>> + Observer<T, Transformer<T>>,
    {
        self.run_shared(&self.shared::<T>()?, observer)
    }

    /// The key of the runs that share this run's frozen base, data and hence the constant part of its forward passes
    /// ([`Shared`]): equal keys mean equal model, task, seeds and precision (and, with pre-training, rank, which sets
    /// the MLP source task's shift).
    pub fn share_key(&self) -> String {
        let rank = self.pretrain.map(|_| self.adapter.rank);
        format!(
            "{:?}|{:?}|{}|{}|{:?}|{:?}|{rank:?}",
            self.model, self.task, self.seed, self.data_seed, self.precision, self.pretrain
        )
    }

    /// What every run with this run's [`RunSpec::share_key`] shares: its data and frozen base ([`RunSpec::base`]; the
    /// constant part of the forward passes is added by the first run on it).
    pub fn shared<T: Scalar>(&self) -> Result<Shared<T>> {
        let random = self.random_base::<T>();
        let data = match &self.model {
            ModelSpec::Mlp(_) => self.data_on(Some(&random))?,
            _ => self.data::<T>()?,
        };
        let base = self.pretrained(random)?;
        Ok(Shared {
            data,
            base: RefCell::new(Some(base.weights)),
            pretrain: base.pretrain,
            prefixes: OnceCell::new(),
        })
    }

    /// [`RunSpec::run`] on what runs of its [`RunSpec::share_key`] share (`shared`, from [`RunSpec::shared`] of any of
    /// them): bit for bit the same outcome.
    pub fn run_shared<T: Scalar, O>(&self, shared: &Shared<T>, observer: &mut O) -> Result<Outcome>
    where
        O: Observer<T, Mlp<T>> + Observer<T, SingleLayer<T>> + Observer<T, Transformer<T>>,
    {
        let (seed, data) = (self.seed, &shared.data);
        let record = match &self.model {
            ModelSpec::Mlp(mlp) => {
                let mut net = mlp.build(shared.take_base(), &self.adapter, seed + 2)?;
                let record = shared.train(&mut net, &self.train, observer);
                shared.put_base(net.into_base());
                record?
            }
            ModelSpec::Toy(n) => {
                let mut toy = SingleLayer::toy(*n, &self.adapter, seed)?;
                train_observed(&mut toy, &self.train, data, observer)?
            }
            ModelSpec::Transformer(t) => {
                let base = shared
                    .base
                    .borrow()
                    .clone()
                    .expect("a transformer has a base");
                let mut net = t.build(base, &self.adapter, seed + 2)?;
                train_observed(&mut net, &self.train, data, observer)?
            }
        };
        let pretrain = shared.pretrain.clone();
        Ok(Outcome { record, pretrain })
    }

    /// The frozen base of the run: the random draw of its seed, or (with [`RunSpec::pretrain`]) the merged weights of
    /// every map after pre-training on the source task (`RunSpec::source_task`) at η = lr·n^(−c), with that record.
    pub fn base<T: Scalar>(&self) -> Result<Base<T>> {
        self.pretrained(self.random_base::<T>())
    }

    /// The random base weights of the run's seed (none for the toy).
    fn random_base<T: Scalar>(&self) -> Vec<Array2<T>> {
        match &self.model {
            ModelSpec::Mlp(m) => m.base_weights::<T>(self.seed),
            ModelSpec::Transformer(t) => t.base_weights::<T>(self.seed),
            ModelSpec::Toy(_) => Vec::new(),
        }
    }

    /// `random` itself, or with [`RunSpec::pretrain`] the merged weights after pre-training from it (see
    /// [`RunSpec::base`]).
    fn pretrained<T: Scalar>(&self, random: Vec<Array2<T>>) -> Result<Base<T>> {
        let full = AdapterConfig::new(Method::Full);
        let Some(p) = self.pretrain else {
            return Ok(Base {
                weights: random,
                pretrain: None,
            });
        };
        let source = self.source_task()?.data::<T>()?;
        let lr = p.lr * (self.width() as f64).powf(-p.lr_exponent);
        let adapt = self.map_names();
        let (weights, rec) = match &self.model {
            ModelSpec::Mlp(m) => {
                let all = MlpConfig { adapt, ..m.clone() };
                pretrain(
                    &mut all.build(random, &full, 0)?,
                    &source,
                    p.steps,
                    lr,
                    self.width(),
                )?
            }
            ModelSpec::Transformer(t) => {
                let all = TransformerConfig { adapt, ..t.clone() };
                pretrain(
                    &mut all.build(random, &full, 0)?,
                    &source,
                    p.steps,
                    lr,
                    self.width(),
                )?
            }
            ModelSpec::Toy(_) => (random, TrainRecord::default()),
        };
        Ok(Base {
            weights,
            pretrain: Some(rec),
        })
    }

    /// Every linear map of the model (what pre-training trains).
    fn map_names(&self) -> Vec<String> {
        match &self.model {
            ModelSpec::Mlp(m) => m.layer_names(),
            ModelSpec::Toy(_) => vec!["layer".into()],
            ModelSpec::Transformer(t) => t.layer_names(),
        }
    }

    /// The pre-training source task: MLP regression with a random rank-r shift of the input layer around the same
    /// base, or fresh recall sequences; its data come from seed + 1000.
    fn source_task(&self) -> Result<RunSpec> {
        let mut source = self.clone();
        source.pretrain = None;
        source.data_seed = self.seed + 1000;
        source.task.permute_values = false;
        if let ModelSpec::Mlp(mlp) = &self.model {
            source.task.kind = TaskKind::Regression;
            source.task.shift = ShiftKind::Random;
            source.task.layer = mlp.layer_names()[0].clone();
            source.task.rank = self.adapter.rank.min(mlp.width);
        }
        source.task.test_examples = source.task.examples;
        Ok(source)
    }

    /// One line describing the run (model, adapter, trainable count, optimiser and rate law, task).
    pub fn describe(&self) -> Result<String> {
        let a = &self.adapter;
        let opt = &self.train.optimizer;
        let mut s = String::new();
        match &self.model {
            ModelSpec::Mlp(m) => {
                let net = m.build(m.base_weights::<f64>(0), a, 0)?;
                let _ =
                    write!(
                    s,
                    "MLP d0={} → {}×{} ({}) → {}, readout {}; {} on [{}], r={}, α={}, {} trainable",
                    m.input_dim, m.depth, m.width, m.activation, m.output_dim, m.readout, a.method,
                    m.adapt.join(","), a.rank, a.alpha, net.num_trainable()
                );
            }
            ModelSpec::Toy(n) => {
                let toy = SingleLayer::<f64>::toy(*n, a, 0)?;
                let _ = write!(
                    s,
                    "LoRA+ scalar toy f(x) = (W* + ΔW)x at width {n}: {} rank 1, {} trainable",
                    a.method,
                    toy.num_trainable()
                );
            }
            ModelSpec::Transformer(t) => {
                let net = t.build(t.base_weights::<f64>(0), a, 0)?;
                let _ = write!(
                    s,
                    "transformer: {} blocks, {} heads × {} = width {}, vocab {}, T = {}; {} on [{}], r={}, {} trainable",
                    t.blocks, t.heads, t.head_dim, t.width(), t.vocab, t.seq_len, a.method,
                    t.adapt.join(","), a.rank, net.num_trainable()
                );
            }
        }
        let _ = write!(
            s,
            "; {} η = {}; task {}",
            opt.rule.name(),
            opt.groups.rate_law(opt.lr),
            self.task_description()
        );
        Ok(s)
    }

    fn task_description(&self) -> String {
        let t = &self.task;
        match t.kind {
            TaskKind::Regression | TaskKind::Classification => {
                format!(
                    "{} (teacher shift {} of rank {} in {})",
                    t.kind, t.shift, t.rank, t.layer
                )
            }
            TaskKind::Recall => format!("recall ({} pairs)", t.pairs),
            TaskKind::Toy => "toy".into(),
        }
    }
}

/// The tasks a model can learn, the default first.
pub fn allowed_tasks(model: crate::models::ModelKind) -> &'static [TaskKind] {
    match model {
        crate::models::ModelKind::Mlp => &[TaskKind::Regression, TaskKind::Classification],
        crate::models::ModelKind::Toy => &[TaskKind::Toy],
        crate::models::ModelKind::Transformer => &[TaskKind::Recall],
    }
}

fn model_name(m: &ModelSpec) -> &'static str {
    match m {
        ModelSpec::Mlp(_) => "mlp",
        ModelSpec::Toy(_) => "toy",
        ModelSpec::Transformer(_) => "transformer",
    }
}

impl RunSpec {
    /// Every linear map as (d_in, d_out, adapted), and the rows one example contributes (1, or T tokens).
    pub(super) fn maps(&self) -> (Vec<(u64, u64, bool)>, u64) {
        match &self.model {
            ModelSpec::Mlp(m) => {
                let names = m.layer_names();
                let (n, d0, d1) = (m.width as u64, m.input_dim as u64, m.output_dim as u64);
                let dims = names.iter().enumerate().map(|(l, name)| {
                    let adapted = m.is_adapted(name);
                    let (d_in, d_out) = match l {
                        0 => (d0, n),
                        l if l + 1 == names.len() => (n, d1),
                        _ => (n, n),
                    };
                    (d_in, d_out, adapted)
                });
                (dims.collect(), 1)
            }
            ModelSpec::Toy(n) => (vec![(*n as u64, 1, true)], 1),
            ModelSpec::Transformer(t) => {
                let maps = t.layer_names().into_iter().map(|name| {
                    let (d_out, d_in) = t.shape(&name);
                    (d_in as u64, d_out as u64, t.is_adapted(&name))
                });
                (maps.collect(), t.seq_len as u64)
            }
        }
    }

    /// An upper estimate of the run's peak memory in bytes (what the study engine checks against the machine):
    /// drawing the teacher holds two copies of the base weights and an f64 block of the shift's rows
    /// ([`crate::tasks::regression::SHIFT_BLOCK`]), then the student holds the base,
    /// dense adapters (full fine-tuning: ΔW, its gradient, the merged W0 + cΔW and two f64 Adam moments; DoRA: a
    /// transient W0 + ΔW when a probe merges the weight), activations of the train and held-out sets with the probe's
    /// two reference copies, and pre-training's dense copies.
    pub fn peak_bytes(&self) -> u64 {
        let s = self.precision.bytes();
        let (maps, rows) = self.maps();
        let weights: u64 = maps.iter().map(|(i, o, _)| i * o * s).sum();
        let widest_in = maps.iter().map(|(i, _, _)| *i).max().unwrap_or(0);
        let dense: u64 = maps
            .iter()
            .filter(|(_, _, a)| *a)
            .map(|(i, o, _)| match self.adapter.method {
                Method::Full => i * o * (3 * s + 16),
                Method::Dora | Method::SingloraDora => i * o * s,
                _ => 0,
            })
            .sum();
        let width_sum: u64 = maps.iter().map(|(_, o, _)| *o).sum();
        let examples = (self.task.examples + self.task.test_examples) as u64 * rows;
        let activations = examples * width_sum * s * 4;
        let teacher = 2 * weights + 8 * SHIFT_BLOCK as u64 * widest_in;
        let pretrain = self.pretrain.map_or(0, |_| {
            weights * 2 + maps.iter().map(|(i, o, _)| i * o * 16).sum::<u64>()
        });
        teacher.max(weights + dense + activations + pretrain) + (64 << 20)
    }
}
