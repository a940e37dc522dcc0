//! Networks at growing width, with adapters attachable to any chosen subset of their linear maps.
//!
//! Every model implements [`Model`]: a forward pass that keeps what its backward pass needs, and a hand-written
//! backward pass proven against finite differences in `tests/models.rs`.

pub mod activation;
pub mod erf;
pub mod linear;
pub mod mlp;
pub mod normal_cdf;
pub mod ops;
pub mod single;
pub mod transformer;

use std::borrow::Cow;
use std::sync::Arc;

use ndarray::{Array2, ArrayD, ArrayViewD, ArrayViewMutD};

pub use activation::Activation;
pub use linear::Linear;
pub use mlp::{Mlp, MlpCache, MlpConfig, Readout};
pub use single::SingleLayer;
pub use transformer::{Block, LogitScale, Transformer, TransformerConfig, WidthMode};

use crate::adapters::ParamInfo;
use crate::names::named_enum;
use crate::scalar::Scalar;

/// Which network a run trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ModelKind {
    /// The MLP ([`mlp`]).
    #[default]
    Mlp,
    /// The pre-LayerNorm transformer ([`transformer`]).
    Transformer,
    /// LoRA+'s scalar toy ([`single`]).
    Toy,
}

impl ModelKind {
    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::Transformer => "transformer",
            ModelKind::Toy => "toy",
        }
    }
}

named_enum!(
    ModelKind,
    "model",
    [ModelKind::Mlp, ModelKind::Transformer, ModelKind::Toy]
);

/// A trainable tensor of a model: the layer it belongs to and its adapter-level description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelParam {
    /// The layer's name (`input`, `hidden.1`, `readout`, …).
    pub layer: String,
    /// Name, role and shape inside that layer.
    pub info: ParamInfo,
}

impl ModelParam {
    /// `layer.name`, e.g. `hidden.1.lora_B.weight`.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.layer, self.info.name)
    }
}

/// The constant part of forward passes on one fixed input: the activations of the frozen maps below the lowest
/// trainable map `k`, and that map's base product $h_k W_{0,k}^\top$. In full-batch training (and on a fixed held-out
/// split) these never change, so the loop computes them once per run ([`Model::prefix`]) and every later forward
/// starts at map `k` ([`Model::forward_prefixed`]), bit for bit the plain forward. Runs sharing a frozen base and data
/// can share one prefix.
pub struct Prefix<T: Scalar> {
    /// The number k of constant maps below the first one the prefix does not cover (0: only the input is known).
    pub layers: usize,
    /// The inputs $h_0 = X, \dots, h_k$ of maps 0..=k.
    pub inputs: Vec<Arc<Array2<T>>>,
    /// The pre-activations $z_1, \dots, z_k$ of the constant maps (models without them leave this empty).
    pub preacts: Vec<Arc<Array2<T>>>,
    /// Map k's base product $h_k W_{0,k}^\top$, if computed.
    pub base: Option<Arc<Array2<T>>>,
}

impl<T: Scalar> Prefix<T> {
    /// The prefix that knows only the input (what models without constant maps use).
    pub fn input(x: &Array2<T>) -> Self {
        Self {
            layers: 0,
            inputs: vec![Arc::new(x.clone())],
            preacts: Vec::new(),
            base: None,
        }
    }

    /// The input $X$.
    pub fn x(&self) -> &Array2<T> {
        &self.inputs[0]
    }
}

/// A network with a forward pass, a backward pass and a list of trainable tensors.
pub trait Model<T: Scalar>: Send + Sync {
    /// What the forward pass keeps for the backward pass.
    type Cache;

    /// The output for a batch $X$ at ramp value `u`, and the cache.
    fn forward(&self, x: &Array2<T>, u: T) -> (Array2<T>, Self::Cache);

    /// Gradients of every trainable tensor (in [`Model::params_info`] order) given $G = \partial L/\partial\,\text{out}$.
    fn backward(&self, cache: &Self::Cache, g: &Array2<T>, u: T) -> Vec<ArrayD<T>>;

    /// The constant part of forward passes on `x` (see [`Prefix`]); the default knows only the input.
    fn prefix(&self, x: &Array2<T>) -> Prefix<T> {
        Prefix::input(x)
    }

    /// [`Model::forward`] on the input of `prefix`, starting after its constant part: bit for bit
    /// `forward(prefix.x(), u)`. The prefix must come from a model with the same frozen maps.
    fn forward_prefixed(&self, prefix: &Prefix<T>, u: T) -> (Array2<T>, Self::Cache) {
        self.forward(prefix.x(), u)
    }

    /// The trainable tensors.
    fn params_info(&self) -> Vec<ModelParam>;

    /// Read-only views of the trainable tensors.
    fn params(&self) -> Vec<ArrayViewD<'_, T>>;

    /// Mutable views of the trainable tensors.
    fn params_mut(&mut self) -> Vec<ArrayViewMutD<'_, T>>;

    /// Number of trainable scalars.
    fn num_trainable(&self) -> usize {
        self.params_info()
            .iter()
            .map(|p| p.info.shape.iter().product::<usize>())
            .sum()
    }
}

/// One linear map of a model as a probe sees it: its name, the map, and its input and output on the batch of a
/// forward pass.
pub struct Tap<'a, T: Scalar> {
    /// The layer's name.
    pub name: &'a str,
    /// The map (frozen or adapted).
    pub linear: &'a Linear<T>,
    /// Its input on the batch the cache was computed from.
    pub input: &'a Array2<T>,
    /// Its output on that batch: borrowed from the forward pass where the cache holds it.
    pub output: Cow<'a, Array2<T>>,
}

/// An intermediate activation a coordinate check shows besides the maps' outputs: a transformer block's attention
/// logits, heads' outputs, sublayer outputs and residual stream.
pub struct Intermediate<'a, T: Scalar> {
    /// The block (`block.K`).
    pub layer: String,
    /// What it is (`attn_logits`, `attn_ctx`, `attn_out`, `resid_mid`, `mlp_out`, `resid_out`).
    pub name: &'static str,
    /// The values on the batch of the forward pass.
    pub values: &'a Array2<T>,
    /// `Some(T)` when only entries t' ≤ t of each row count (causal logits; row r is query t = r mod T).
    pub causal: Option<usize>,
}

/// Models whose linear maps can be probed (every model the studies use).
pub trait Inspect<T: Scalar>: Model<T> {
    /// Every linear map, in forward order, with its input and output from the forward pass that gave `cache` and the
    /// model output `out`.
    fn taps<'a>(&'a self, cache: &'a Self::Cache, out: &'a Array2<T>) -> Vec<Tap<'a, T>>;

    /// Every linear map, in forward order (the order of the model's `base_weights`).
    fn linears(&self) -> Vec<&Linear<T>>;

    /// Intermediate activations beyond the maps' outputs, from `cache` (none for models without blocks).
    fn intermediates<'a>(&'a self, _cache: &'a Self::Cache) -> Vec<Intermediate<'a, T>> {
        Vec::new()
    }
}

impl<T: Scalar> Inspect<T> for Mlp<T> {
    /// Outputs are the pre-activations $z_1 \dots z_L$ and, for the readout, the model output.
    fn taps<'a>(&'a self, cache: &'a Self::Cache, out: &'a Array2<T>) -> Vec<Tap<'a, T>> {
        let outputs = cache
            .preacts
            .iter()
            .map(|z| &**z)
            .chain(std::iter::once(out));
        self.names
            .iter()
            .zip(&self.layers)
            .zip(&cache.inputs)
            .zip(outputs)
            .map(|(((name, linear), input), output)| Tap {
                name,
                linear,
                input: &**input,
                output: Cow::Borrowed(output),
            })
            .collect()
    }

    fn linears(&self) -> Vec<&Linear<T>> {
        self.layers.iter().collect()
    }
}

impl<T: Scalar> Inspect<T> for SingleLayer<T> {
    fn taps<'a>(&'a self, cache: &'a Self::Cache, out: &'a Array2<T>) -> Vec<Tap<'a, T>> {
        vec![Tap {
            name: "layer",
            linear: &self.layer,
            input: cache,
            output: Cow::Borrowed(out),
        }]
    }

    fn linears(&self) -> Vec<&Linear<T>> {
        vec![&self.layer]
    }
}

impl<T: Scalar> Inspect<T> for Transformer<T> {
    /// Inputs and outputs are the ones the forward pass kept ([`Transformer::map_outputs`]).
    fn taps<'a>(&'a self, cache: &'a Self::Cache, _out: &'a Array2<T>) -> Vec<Tap<'a, T>> {
        let mut inputs: Vec<&'a Array2<T>> = vec![&cache.x];
        for b in &cache.blocks {
            let (att, ff) = (&b.attention, &b.feed_forward);
            inputs.extend([
                &att.ln.y,
                &att.ln.y,
                &att.ln.y,
                &att.attended.ctx,
                &ff.ln.y,
                &ff.gelu.act,
            ]);
        }
        inputs.push(&cache.final_ln.y);
        self.names
            .iter()
            .zip(self.layers())
            .zip(inputs)
            .zip(self.map_outputs(cache))
            .map(|(((name, linear), input), output)| Tap {
                name,
                linear,
                input,
                output: Cow::Borrowed(output),
            })
            .collect()
    }

    fn linears(&self) -> Vec<&Linear<T>> {
        self.layers()
    }

    fn intermediates<'a>(&'a self, cache: &'a Self::Cache) -> Vec<Intermediate<'a, T>> {
        let causal = self.config.causal.then_some(self.config.seq_len);
        cache
            .blocks
            .iter()
            .enumerate()
            .flat_map(|(k, b)| {
                b.activations(k).into_iter().map(move |(full, values)| {
                    let name = full.rsplit('.').next().expect("block.K.name");
                    let name: &'static str = transformer::BLOCK_ACTIVATIONS
                        .iter()
                        .find(|n| **n == name)
                        .expect("a block activation");
                    Intermediate {
                        layer: format!("block.{k}"),
                        name,
                        values,
                        causal: (name == "attn_logits").then_some(causal).flatten(),
                    }
                })
            })
            .collect()
    }
}
