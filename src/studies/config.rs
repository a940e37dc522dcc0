//! The study file of `singlora sweep`, `singlora lr` and `singlora theory` (`configs/default.toml` documents every
//! field): a model, a task, an adapter and an optimiser shared by every run, and a grid of arms × learning-rate
//! exponents (× rates, for the learning-rate study) × widths × seeds.
//!
//! A study file states only what differs from its command's default study: each top-level key it gives replaces the
//! default's (a `[task]` table replaces the whole `[task]`, whose missing fields take [`TaskSpec`]'s defaults), and
//! `--set path=value` then changes single fields (see [`super::store::load_config`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::spec::Cell;
use super::store;
use crate::adapters::{AdapterConfig, Method};
use crate::error::{Error, Result};
use crate::models::{MlpConfig, ModelKind, TransformerConfig};
use crate::optim::OptimizerConfig;
use crate::probes::{Quantity, Selection};
use crate::scalar::Precision;
use crate::tasks::TaskSpec;
use crate::theory::Shape;

/// The default width study (`configs/default.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../configs/default.toml");

/// Default tolerance on a slope: |slope| below it counts as flat, and a prediction within it of the interval as
/// `near` (THEORY §5.6).
pub const SLOPE_TOLERANCE: f64 = 0.12;

/// One adapter arm of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Name in tables and figures (letters, digits, `_`, `+`, `-`, `.`).
    pub name: String,
    /// The adapter.
    pub method: Method,
    /// LoRA+ ratio (default 1): η_B/η_A for LoRA and DoRA; SingLoRA's role split λ for SingLoRA and SingLoRA+DoRA
    /// (`adapter.role_ratio`, see [`super::spec::place_ratio`]); 1 for full fine-tuning.
    #[serde(default = "one")]
    pub loraplus_ratio: f64,
    /// Fixed per-role learning-rate exponents (e.g. `{ lora_a = 1.0, lora_b = 0.0 }`); when given, the arm is not
    /// crossed with the study's `lr_exponents`.
    #[serde(default)]
    pub lr_exponent: Option<BTreeMap<String, f64>>,
}

impl Arm {
    /// `loraplus_ratio` is a finite number > 0, and 1 for full fine-tuning (which has no roles to split).
    fn validate_ratio(&self) -> Result<()> {
        let (field, r) = (
            format!("arms.{}.loraplus_ratio", self.name),
            self.loraplus_ratio,
        );
        if !(r.is_finite() && r > 0.0) {
            return Err(Error::invalid(&field, r, "a finite number > 0"));
        }
        if r != 1.0 && self.method == Method::Full {
            return Err(Error::invalid(
                &field,
                r,
                "1 for method full (a ratio splits LoRA's B from A, or SingLoRA's two gradient roles)",
            ));
        }
        Ok(())
    }
}

fn one() -> f64 {
    1.0
}

/// A width study. Every field is present in `configs/default.toml`, which is the base every study file changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// Study name; the default output folder is `results/NAME`.
    pub name: String,
    /// The network.
    pub model: ModelKind,
    /// Widths, strictly increasing, at least two (a width exponent needs two widths).
    pub widths: Vec<usize>,
    /// Seeds, distinct.
    pub seeds: Vec<u64>,
    /// Optimiser steps per run.
    pub steps: u64,
    /// η₀: each tensor's rate is η₀·ratio·n^(−c). The learning-rate study replaces it by each rate of its grid.
    pub lr: f64,
    /// Values of c crossed with arms that do not fix their own exponents, distinct.
    pub lr_exponents: Vec<f64>,
    /// Precision of every run.
    pub precision: Precision,
    /// Steps to record (empty: every step).
    pub probe_steps: Vec<u64>,
    /// Quantities to record: names or prefixes such as `dz_rms`, `grad_fro` (empty: every probe).
    pub probes: Vec<String>,
    /// Mini-batch size (absent: full batch, the μP coordinate check's fixed batch). Probes always use the full
    /// training set.
    #[serde(default)]
    pub batch: Option<usize>,
    /// Flatness tolerance of the verdicts.
    pub flat_tol: f64,
    /// A run whose loss exceeds this multiple of its initial loss is recorded as diverged at that step.
    pub divergence_factor: f64,
    /// The MLP (its width is set per run).
    pub mlp: MlpConfig,
    /// The transformer (`model = "transformer"`): its shape family, the width notion, the adapted maps; `vocab` and
    /// `seq_len` are set from the task.
    #[serde(default)]
    pub transformer: Option<TransformerConfig>,
    /// Pre-train every base weight with Adam on a source task of the same family before freezing it (the
    /// fine-tuning setting; absent: a random frozen base).
    #[serde(default)]
    pub pretrain: Option<super::spec::Pretrain>,
    /// The task.
    pub task: TaskSpec,
    /// The adapter (its method is set per arm).
    pub adapter: AdapterConfig,
    /// The optimiser (its rate and groups are set per run).
    pub optimizer: OptimizerConfig,
    /// The arms.
    pub arms: Vec<Arm>,
    /// The learning-rate study's grid (`singlora lr`; a sweep refuses it).
    #[serde(default)]
    pub lr_grid: Option<super::lr::LrGrid>,
}

impl Default for StudyConfig {
    /// The default width study, `configs/default.toml`.
    fn default() -> Self {
        store::from_toml(DEFAULT_CONFIG, "configs/default.toml".as_ref())
            .expect("the embedded default study parses")
    }
}

/// `values` are distinct (by bits for floats); errors name `field`.
fn check_distinct<T: PartialEq + std::fmt::Debug>(field: &str, values: &[T]) -> Result<()> {
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            return Err(Error::invalid(
                field,
                format!("{values:?}"),
                &format!("distinct values ({v:?} appears twice)"),
            ));
        }
    }
    Ok(())
}

impl StudyConfig {
    /// Reads a study file (or `configs/default.toml` when `path` is `None`), applies `--set path=value` overrides and
    /// validates. Errors name the flag or file, the field, the value and what is accepted.
    pub fn load(path: Option<&std::path::Path>, sets: &[String]) -> Result<Self> {
        let cfg: StudyConfig =
            store::load_config(path, DEFAULT_CONFIG, "configs/default.toml", sets)?;
        store::blame_sets(cfg.validate(), sets)?;
        Ok(cfg)
    }

    /// Checks every field; errors name the field, the value and what is accepted.
    pub fn validate(&self) -> Result<()> {
        store::validate_name(&self.name)?;
        store::validate_grid(&self.widths, &self.seeds, self.steps)?;
        if self.widths.len() < 2 {
            return Err(Error::invalid(
                "widths",
                format!("{:?}", self.widths),
                "at least two widths (a width exponent is a slope over widths)",
            ));
        }
        check_distinct("lr_exponents", &self.lr_exponents)?;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid("lr", self.lr, "a finite number > 0"));
        }
        self.validate_kinds()?;
        self.validate_arms()?;
        self.validate_probes()?;
        self.validate_numbers()?;
        self.task.validate()?;
        let mut opt = self.optimizer.clone();
        opt.lr = self.lr;
        opt.validate()?;
        self.validate_memory()?;
        // Every series must build, with its data, at the smallest width (rank ≤ width, the task's layer, …).
        let mut seen = BTreeSet::new();
        for cell in self.cells() {
            if cell.width == self.widths[0] && seen.insert(cell.series.clone()) {
                super::spec::RunSpec::resolve(self, &cell).check()?;
            }
        }
        Ok(())
    }

    /// One run at the widest width must fit in the machine's available memory (checked before anything is built).
    fn validate_memory(&self) -> Result<()> {
        let Some(available) = super::engine::available_memory() else {
            return Ok(());
        };
        let widest = self.widths[self.widths.len() - 1];
        let need = self
            .cells()
            .iter()
            .filter(|c| c.width == widest)
            .map(|c| super::spec::RunSpec::resolve(self, c).peak_bytes())
            .max()
            .unwrap_or(0);
        if need > available {
            return Err(Error::invalid(
                "widths",
                format!("{:?}", self.widths),
                &format!(
                    "widths whose runs fit in memory (one run at n = {widest} needs about {}, this machine has {} available)",
                    super::engine::gib(need),
                    super::engine::gib(available)
                ),
            ));
        }
        Ok(())
    }

    fn validate_kinds(&self) -> Result<()> {
        let kinds = super::spec::allowed_tasks(self.model);
        if !kinds.contains(&self.task.kind) {
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            return Err(Error::invalid(
                "task.kind",
                self.task.kind,
                &format!("for model {}: {}", self.model, names.join(" or ")),
            ));
        }
        if self.model == ModelKind::Transformer {
            let t = self.transformer.as_ref().ok_or_else(|| {
                Error::invalid(
                    "transformer",
                    "(absent)",
                    "a [transformer] table for model = \"transformer\"",
                )
            })?;
            t.validate()?;
            for &w in &self.widths {
                t.with_width(w).map_err(|e| match e {
                    Error::Invalid { expected, .. } => Error::invalid("widths", w, &expected),
                    other => other,
                })?;
            }
        }
        if let Some(p) = &self.pretrain {
            p.validate()?;
        }
        Ok(())
    }

    fn validate_arms(&self) -> Result<()> {
        if self.arms.is_empty() {
            return Err(Error::invalid("arms", "[]", "at least one arm"));
        }
        if self.adapter.role_ratio != 1.0 {
            return Err(Error::invalid(
                "adapter.role_ratio",
                self.adapter.role_ratio,
                "1 in a study (set λ per SingLoRA arm with arms.NAME.loraplus_ratio)",
            ));
        }
        let mut names = BTreeSet::new();
        for arm in &self.arms {
            let ok = !arm.name.is_empty()
                && arm
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
            if !ok {
                return Err(Error::invalid(
                    "arms.name",
                    &arm.name,
                    "letters, digits, _ + - .",
                ));
            }
            if !names.insert(arm.name.as_str()) {
                return Err(Error::invalid(
                    "arms.name",
                    &arm.name,
                    "a name used by one arm only",
                ));
            }
            arm.validate_ratio()?;
            if arm.lr_exponent.is_none() && self.lr_exponents.is_empty() {
                return Err(Error::invalid(
                    "lr_exponents",
                    "[]",
                    &format!("at least one exponent (arm {} fixes none)", arm.name),
                ));
            }
        }
        Ok(())
    }

    fn validate_probes(&self) -> Result<()> {
        let all = Quantity::all();
        if let Some(bad) = self
            .probes
            .iter()
            .find(|p| p.is_empty() || !all.iter().any(|q| q.matches(p)))
        {
            let names: Vec<String> = all.iter().map(|q| q.to_string()).collect();
            return Err(Error::invalid(
                "probes",
                bad,
                &format!("names or prefixes of {}", names.join(", ")),
            ));
        }
        if let Some(&t) = self.probe_steps.iter().find(|&&t| t > self.steps) {
            return Err(Error::invalid(
                "probe_steps",
                t,
                &format!("steps in 0..={} (the study's steps)", self.steps),
            ));
        }
        check_distinct("probe_steps", &self.probe_steps)
    }

    fn validate_numbers(&self) -> Result<()> {
        if !(self.flat_tol.is_finite() && self.flat_tol >= 0.0) {
            return Err(Error::invalid(
                "flat_tol",
                self.flat_tol,
                "a finite number ≥ 0",
            ));
        }
        if self.batch == Some(0) {
            return Err(Error::invalid(
                "batch",
                0,
                "a positive integer, or no batch for full-batch training",
            ));
        }
        if self.divergence_factor.is_nan() || self.divergence_factor <= 1.0 {
            return Err(Error::invalid(
                "divergence_factor",
                self.divergence_factor,
                "a number > 1 (inf: only non-finite losses count as divergence)",
            ));
        }
        Ok(())
    }

    /// The series of the grid in a fixed order: each arm with its fixed exponents, or crossed with every
    /// `lr_exponents` value (named `ARM@c=C`).
    pub fn series(&self) -> Vec<(String, &Arm, BTreeMap<String, f64>)> {
        let mut out = Vec::new();
        for arm in &self.arms {
            match &arm.lr_exponent {
                Some(map) => out.push((arm.name.clone(), arm, map.clone())),
                None => out.extend(self.lr_exponents.iter().map(|&c| {
                    (
                        format!("{}@c={c}", arm.name),
                        arm,
                        BTreeMap::from([("default".to_string(), c)]),
                    )
                })),
            }
        }
        out
    }

    /// The width study's grid, in a fixed order: series × widths × seeds, each at rate η₀ = `lr`.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for (series, arm, exps) in self.series() {
            for &width in &self.widths {
                for &seed in &self.seeds {
                    cells.push(Cell {
                        series: series.clone(),
                        arm: arm.clone(),
                        lr: self.lr,
                        loraplus_ratio: arm.loraplus_ratio,
                        lr_exponent: exps.clone(),
                        width,
                        seed,
                    });
                }
            }
        }
        cells
    }

    /// What probes record in a run of this study.
    pub fn selection(&self) -> Selection {
        Selection {
            steps: self.probe_steps.clone(),
            patterns: self.probes.clone(),
        }
    }

    /// The theory's view of a cell at a layer of `shape` (adapter, rule, rate groups, readout).
    pub fn setting_at(&self, cell: &Cell, shape: Shape) -> crate::theory::Setting {
        let mut adapter = self.adapter.clone();
        adapter.method = cell.arm.method;
        let mut groups = self.optimizer.groups.clone();
        super::spec::place_ratio(cell.loraplus_ratio, &mut adapter, &mut groups);
        groups.lr_exponent = cell.lr_exponent.clone();
        let readout = match self.model {
            ModelKind::Transformer => self
                .transformer
                .as_ref()
                .map_or(self.mlp.readout, |t| t.readout),
            _ => self.mlp.readout,
        };
        crate::theory::Setting {
            adapter,
            rule: self.optimizer.rule,
            groups,
            readout,
            shape,
        }
    }

    /// The theory's view of a cell at the MLP's square hidden layer.
    pub fn setting(&self, cell: &Cell) -> crate::theory::Setting {
        self.setting_at(cell, Shape::Square)
    }

    /// The shape family of an adapted layer the theory predicts for: the MLP's hidden maps are square; a
    /// transformer's q, k, v, o are square, up is tall (d_out = ratio·n), down is wide (d_in = ratio·n), embed has a
    /// fixed input (the vocabulary) and readout a fixed output. `None` for frozen layers, the toy and `model`.
    pub fn theory_shape(&self, layer: &str) -> Option<Shape> {
        match self.model {
            ModelKind::Mlp => {
                let adapted = self
                    .mlp
                    .adapt
                    .iter()
                    .any(|a| a == layer || (a == "hidden" && layer.starts_with("hidden.")));
                (adapted && layer.starts_with("hidden.")).then_some(Shape::Square)
            }
            ModelKind::Transformer => {
                let t = self.transformer.as_ref()?;
                let vocab = self.task.recall().vocab();
                let map = layer.rsplit('.').next()?;
                let adapted = t
                    .adapt
                    .iter()
                    .any(|a| a == layer || (a == map && layer.starts_with("block.")));
                if !adapted {
                    return None;
                }
                match (layer, map) {
                    ("embed", _) => Some(Shape::FixedIn(vocab)),
                    ("readout", _) => Some(Shape::FixedOut(vocab)),
                    (_, "q" | "k" | "v" | "o") => Some(Shape::Square),
                    (_, "up") => Some(Shape::Tall(t.mlp_ratio)),
                    (_, "down") => Some(Shape::Wide(t.mlp_ratio)),
                    _ => None,
                }
            }
            ModelKind::Toy => None,
        }
    }

    /// The last step the probes record (where balanced-regime predictions are compared).
    pub fn last_recorded_step(&self) -> u64 {
        self.probe_steps.iter().copied().max().unwrap_or(self.steps)
    }

    /// The first adapted layer the theory predicts for (what `singlora theory` describes without `--shape`).
    pub fn theory_layer(&self) -> Option<String> {
        let layers: Vec<String> = match self.model {
            ModelKind::Mlp => self.mlp.layer_names(),
            ModelKind::Transformer => {
                let t = self.transformer.clone().unwrap_or_default();
                t.layer_names()
            }
            ModelKind::Toy => Vec::new(),
        };
        layers.into_iter().find(|l| self.theory_shape(l).is_some())
    }

    /// The layer a study's summary table and figures show: the toy's one layer, or the first adapted map.
    pub fn summary_layer(&self) -> String {
        match self.model {
            ModelKind::Toy => "layer".into(),
            ModelKind::Mlp => match self.mlp.adapt.first().map(|s| s.as_str()) {
                None | Some("hidden") => "hidden.1".into(),
                Some(a) => a.into(),
            },
            ModelKind::Transformer => self
                .transformer
                .as_ref()
                .and_then(|t| t.adapt.first())
                .map(|a| {
                    if a.contains('.') {
                        a.clone()
                    } else {
                        format!("block.0.{a}")
                    }
                })
                .unwrap_or_else(|| "block.0.q".into()),
        }
    }
}
