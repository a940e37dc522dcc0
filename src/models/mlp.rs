//! The MLP of THEORY §5.2: fixed input dimension $d_0$ → $L \ge 2$ hidden layers of width $n$ → fixed output
//! dimension, no biases.
//!
//! $$h_0 = x,\quad z_l = W_l h_{l-1},\quad h_l = \phi(z_l)\ (l = 1..L),\quad f = W_{L+1} h_L.$$
//!
//! Layer names: `input` ($W_1$, $n\times d_0$, tall), `hidden.1` … `hidden.{L-1}` ($n\times n$), `readout`
//! ($d_{out}\times n$, wide). Base weights are Gaussian with fan-in variance $g^2/\text{fan}_{in}$ ($g$ the
//! activation's gain) so hidden activations have Θ(1) coordinates; the readout is $\mathcal N(0, 1/n)$ (standard) or
//! $\mathcal N(0, 1/n^2)$ (μP), which sets the gradient coordinate exponent ρ = 1/2 or 1.

use std::sync::Arc;

use ndarray::{Array2, ArrayD, ArrayViewD, ArrayViewMutD};
use serde::{Deserialize, Serialize};

use super::{Activation, Linear, Model, ModelParam, Prefix};
use crate::adapters::{AdapterConfig, Kept};
use crate::error::{Error, Result};
use crate::linalg::mm_nt;
use crate::names::named_enum;
use crate::rng::{normal_matrix, SeedRng};
use crate::scalar::Scalar;

/// Readout scale (default μP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Readout {
    /// $W_{L+1} \sim \mathcal N(0, 1/n)$ (SP/NTK, ρ = 1/2).
    Standard,
    /// $W_{L+1} \sim \mathcal N(0, 1/n^2)$ (μP, ρ = 1).
    #[default]
    Mup,
}

impl Readout {
    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            Readout::Standard => "standard",
            Readout::Mup => "mup",
        }
    }

    /// The readout's init std at width n.
    pub fn std(self, n: usize) -> f64 {
        match self {
            Readout::Standard => 1.0 / (n as f64).sqrt(),
            Readout::Mup => 1.0 / n as f64,
        }
    }
}

named_enum!(Readout, "readout", [Readout::Standard, Readout::Mup]);

/// The MLP's shape, base initialisation and which layers carry adapters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpConfig {
    /// Input dimension $d_0$ (default 16, independent of width).
    pub input_dim: usize,
    /// Hidden width n (a sweep sets it per cell).
    pub width: usize,
    /// Number of hidden layers L ≥ 2 (default 2).
    pub depth: usize,
    /// Output dimension (default 1).
    pub output_dim: usize,
    /// Activation (default relu).
    pub activation: Activation,
    /// Readout scale (default μP).
    pub readout: Readout,
    /// Layers carrying the adapter: any of `input`, `hidden.K`, `hidden` (all hidden maps), `readout`
    /// (default `["hidden.1"]`).
    pub adapt: Vec<String>,
}

impl Default for MlpConfig {
    /// 16 → 2 hidden ReLU layers of width 0 (set per run) → 1, μP readout, the adapter on `hidden.1`.
    fn default() -> Self {
        Self::new(0)
    }
}

impl MlpConfig {
    /// The default MLP at width n.
    pub fn new(width: usize) -> Self {
        Self {
            input_dim: 16,
            width,
            depth: 2,
            output_dim: 1,
            activation: Activation::Relu,
            readout: Readout::Mup,
            adapt: vec!["hidden.1".into()],
        }
    }

    /// Names of the L + 1 linear maps.
    pub fn layer_names(&self) -> Vec<String> {
        let mut names = vec!["input".to_string()];
        names.extend((1..self.depth).map(|k| format!("hidden.{k}")));
        names.push("readout".into());
        names
    }

    /// Checks the fields.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("width", self.width),
            ("input_dim", self.input_dim),
            ("output_dim", self.output_dim),
        ] {
            if v == 0 {
                return Err(Error::invalid(field, v, "a positive integer"));
            }
        }
        if self.depth < 2 {
            return Err(Error::invalid(
                "depth",
                self.depth,
                "an integer ≥ 2 (hidden layers)",
            ));
        }
        let names = self.layer_names();
        for a in &self.adapt {
            if a != "hidden" && !names.contains(a) {
                return Err(Error::invalid(
                    "adapt",
                    a,
                    &format!("one of {}, or hidden", names.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// Whether the map called `name` carries the adapter (named in `adapt`, or a hidden map under `hidden`).
    pub fn is_adapted(&self, name: &str) -> bool {
        self.adapt
            .iter()
            .any(|a| a == name || (a == "hidden" && name.starts_with("hidden.")))
    }

    /// Shape (d_in, d_out) of layer `l`.
    fn shape(&self, l: usize) -> (usize, usize) {
        let n = self.width;
        if l == 0 {
            (self.input_dim, n)
        } else if l == self.depth {
            (n, self.output_dim)
        } else {
            (n, n)
        }
    }

    /// The frozen base weights, drawn from `seed` (the stream of each layer is named, so the draws of one layer do not
    /// depend on whether another is adapted).
    pub fn base_weights<T: Scalar>(&self, seed: u64) -> Vec<Array2<T>> {
        self.layer_names()
            .iter()
            .enumerate()
            .map(|(l, name)| {
                let (d_in, d_out) = self.shape(l);
                let std = if l == self.depth {
                    self.readout.std(self.width)
                } else {
                    self.activation.gain() / (d_in as f64).sqrt()
                };
                normal_matrix(
                    &mut SeedRng::new(seed, &format!("base.{name}")),
                    d_out,
                    d_in,
                    std,
                )
            })
            .collect()
    }

    /// Builds the network on given base weights, attaching `adapter` (width knob n = the MLP's width) to the chosen
    /// layers; adapter seeds are derived per layer from `seed`.
    pub fn build<T: Scalar>(
        &self,
        base: Vec<Array2<T>>,
        adapter: &AdapterConfig,
        seed: u64,
    ) -> Result<Mlp<T>> {
        self.validate()?;
        let mut cfg = adapter.clone();
        cfg.width = Some(cfg.width.unwrap_or(self.width));
        let names = self.layer_names();
        let mut layers = Vec::with_capacity(names.len());
        for (l, (name, w)) in names.iter().zip(base).enumerate() {
            layers.push(Linear::attach(
                w,
                &cfg,
                self.is_adapted(name),
                seed,
                l,
                name,
            )?);
        }
        Ok(Mlp {
            config: self.clone(),
            names,
            layers,
        })
    }
}

/// An MLP with adapters.
pub struct Mlp<T: Scalar> {
    /// Its configuration.
    pub config: MlpConfig,
    /// Layer names, in order.
    pub names: Vec<String>,
    /// The L + 1 linear maps.
    pub layers: Vec<Linear<T>>,
}

/// What [`Mlp::forward`] keeps: each layer's input and each hidden pre-activation (shared, so the constant ones of a
/// [`Prefix`] are not copied).
pub struct MlpCache<T: Scalar> {
    /// $h_0, \dots, h_L$ (inputs of layers 0..=L).
    pub inputs: Vec<Arc<Array2<T>>>,
    /// $z_1, \dots, z_L$.
    pub preacts: Vec<Arc<Array2<T>>>,
    /// What each map's forward kept for its backward (DoRA and full fine-tuning; `None` elsewhere and below a prefix).
    pub kept: Vec<Option<Kept<T>>>,
}

impl<T: Scalar> MlpCache<T> {
    /// Keeps a hidden map's pre-activation $z$ and the next map's input $\phi(z)$.
    fn push_hidden(&mut self, z: Array2<T>, act: Activation) {
        self.inputs.push(Arc::new(act.apply_all(&z)));
        self.preacts.push(Arc::new(z));
    }
}

impl<T: Scalar> Mlp<T> {
    /// The frozen base weights, taken out of the network (what [`MlpConfig::build`] was given).
    pub fn into_base(self) -> Vec<Array2<T>> {
        self.layers.into_iter().map(Linear::into_base).collect()
    }

    /// The index of the lowest map with trainable tensors (the readout's when none has any).
    pub fn lowest_trainable(&self) -> usize {
        self.layers
            .iter()
            .position(Linear::is_trainable)
            .unwrap_or(self.config.depth)
    }

    /// The forward pass from map `cache.preacts.len()` on, given the inputs and pre-activations below it and, if
    /// known, that map's base product.
    fn forward_from(
        &self,
        mut cache: MlpCache<T>,
        base: Option<Array2<T>>,
        u: T,
    ) -> (Array2<T>, MlpCache<T>) {
        let (act, depth, start) = (
            self.config.activation,
            self.config.depth,
            cache.preacts.len(),
        );
        let mut base = base;
        cache.kept.resize_with(start, || None);
        for (l, layer) in self.layers.iter().enumerate().skip(start) {
            let h = cache.inputs.last().expect("input");
            let (z, kept) = layer.forward_kept(h.view(), base.take(), u);
            cache.kept.push(kept);
            if l == depth {
                return (z, cache);
            }
            cache.push_hidden(z, act);
        }
        unreachable!("the readout returns")
    }
}

impl<T: Scalar> Model<T> for Mlp<T> {
    type Cache = MlpCache<T>;

    fn forward(&self, x: &Array2<T>, u: T) -> (Array2<T>, MlpCache<T>) {
        let cache = MlpCache {
            inputs: vec![Arc::new(x.clone())],
            preacts: Vec::with_capacity(self.config.depth),
            kept: Vec::with_capacity(self.layers.len()),
        };
        self.forward_from(cache, None, u)
    }

    /// $\partial h_{l-1} = W_l^\top$-product of $\partial z_l$ (from the layer), $\partial z_{l} = \partial h_l \odot
    /// \phi'(z_l)$, from the readout down to the lowest trainable map, whose input gradient is not computed.
    fn backward(&self, cache: &MlpCache<T>, g: &Array2<T>, u: T) -> Vec<ArrayD<T>> {
        let act = self.config.activation;
        let lowest = self.lowest_trainable();
        let mut per_layer: Vec<Vec<ArrayD<T>>> = Vec::with_capacity(self.layers.len());
        let mut g = std::borrow::Cow::Borrowed(g);
        for l in (lowest..self.layers.len()).rev() {
            let kept = cache.kept.get(l).and_then(Option::as_ref);
            let (params, gx) =
                self.layers[l].grads_kept(cache.inputs[l].view(), g.view(), u, l > lowest, kept);
            per_layer.push(params);
            if let Some(mut gx) = gx {
                act.backward_into(&mut gx, &cache.preacts[l - 1]);
                g = std::borrow::Cow::Owned(gx);
            }
        }
        per_layer.into_iter().rev().flatten().collect()
    }

    /// The frozen maps below the lowest trainable one and its base product, on `x`.
    fn prefix(&self, x: &Array2<T>) -> Prefix<T> {
        let k = self.lowest_trainable();
        let (act, mut cache) = (
            self.config.activation,
            MlpCache {
                inputs: vec![Arc::new(x.clone())],
                preacts: Vec::with_capacity(k),
                kept: Vec::new(),
            },
        );
        for layer in &self.layers[..k] {
            // Frozen maps ignore the ramp value.
            let z = layer.forward(cache.inputs.last().expect("input").view(), T::one());
            cache.push_hidden(z, act);
        }
        let base = mm_nt(cache.inputs[k].view(), self.layers[k].base().view());
        Prefix {
            layers: k,
            inputs: cache.inputs,
            preacts: cache.preacts,
            base: Some(Arc::new(base)),
        }
    }

    #[track_caller]
    fn forward_prefixed(&self, prefix: &Prefix<T>, u: T) -> (Array2<T>, MlpCache<T>) {
        let k = prefix.layers;
        assert!(
            k <= self.lowest_trainable() && prefix.inputs.len() == k + 1 && prefix.preacts.len() == k,
            "forward_prefixed: a prefix of {k} constant maps for a network whose lowest trainable map is {}",
            self.lowest_trainable()
        );
        let cache = MlpCache {
            inputs: prefix.inputs.clone(),
            preacts: prefix.preacts.clone(),
            kept: Vec::with_capacity(self.layers.len()),
        };
        let base = prefix.base.as_ref().map(|b| b.as_ref().clone());
        self.forward_from(cache, base, u)
    }

    fn params_info(&self) -> Vec<ModelParam> {
        self.names
            .iter()
            .zip(&self.layers)
            .flat_map(|(name, layer)| {
                layer.param_info().into_iter().map(move |info| ModelParam {
                    layer: name.clone(),
                    info,
                })
            })
            .collect()
    }

    fn params(&self) -> Vec<ArrayViewD<'_, T>> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    fn params_mut(&mut self) -> Vec<ArrayViewMutD<'_, T>> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }
}
