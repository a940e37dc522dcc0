//! Networks at growing width, with adapters attachable to any chosen subset of their linear maps.
//!
//! Every model implements [`Model`]: a forward pass that keeps what its backward pass needs, and a hand-written
//! backward pass proven against finite differences in `tests/models.rs`.

pub mod activation;
pub mod linear;
pub mod mlp;
pub mod transformer;

use ndarray::{Array2, ArrayD, ArrayViewD, ArrayViewMutD};

pub use activation::Activation;
pub use linear::Linear;
pub use mlp::{Mlp, MlpConfig, Readout};
pub use transformer::{Block, LogitScale, Transformer, TransformerConfig, WidthMode};

use crate::adapters::ParamInfo;
use crate::scalar::Scalar;

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

/// A network with a forward pass, a backward pass and a list of trainable tensors.
pub trait Model<T: Scalar>: Send + Sync {
    /// What the forward pass keeps for the backward pass.
    type Cache;

    /// The output for a batch $X$ at ramp value `u`, and the cache.
    fn forward(&self, x: &Array2<T>, u: T) -> (Array2<T>, Self::Cache);

    /// Gradients of every trainable tensor (in [`Model::params_info`] order) given $G = \partial L/\partial\,\text{out}$.
    fn backward(&self, cache: &Self::Cache, g: &Array2<T>, u: T) -> Vec<ArrayD<T>>;

    /// The trainable tensors.
    fn params_info(&self) -> Vec<ModelParam>;

    /// Read-only views of the trainable tensors.
    fn params(&self) -> Vec<ArrayViewD<'_, T>>;

    /// Mutable views of the trainable tensors.
    fn params_mut(&mut self) -> Vec<ArrayViewMutD<'_, T>>;

    /// Number of trainable scalars.
    fn num_trainable(&self) -> usize {
        self.params_info().iter().map(|p| p.info.shape.iter().product::<usize>()).sum()
    }
}
