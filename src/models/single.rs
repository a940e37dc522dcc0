//! Single adapted linear maps, the settings where the theory is sharpest.
//!
//! - LoRA+'s scalar toy (THEORY §5.1): $f(x) = (W^* + b\,a^\top)x$, $W^* \in \mathbb R^{1\times n}$, a rank-1 LoRA on a
//!   $1\times n$ layer ($B = b$, $A = a^\top$, PEFT init: $a \sim \mathcal U(\pm1/\sqrt n)$, $b = 0$); its SingLoRA
//!   counterpart $f(x) = (W^* + s\,u\,A_{\[0\]}A^\top)x$ with $A \in \mathbb R^{n\times 1}$.
//! - One square adapted layer fitted to a shifted target (THEORY §6.1).

use ndarray::{Array2, ArrayD, ArrayViewD, ArrayViewMutD};

use super::{Linear, Model, ModelParam};
use crate::adapters::{AdaptedLinear, AdapterConfig};
use crate::error::Result;
use crate::rng::{normal_matrix, SeedRng};
use crate::scalar::Scalar;

/// A model that is one (adapted) linear map, $f(x) = Wx$.
pub struct SingleLayer<T: Scalar> {
    /// The map, named `layer`.
    pub layer: Linear<T>,
}

impl<T: Scalar> SingleLayer<T> {
    /// An adapted layer on base `w0` (d_out × d_in).
    pub fn new(w0: Array2<T>, adapter: &AdapterConfig, seed: u64) -> Result<Self> {
        Ok(Self {
            layer: Linear::Adapted(AdaptedLinear::new(w0, adapter, seed)?),
        })
    }

    /// LoRA+'s toy at width n: $W^* \sim \mathcal N(0, 1/n)$ (1 × n) from `seed`, the adapter (use rank 1) on it.
    pub fn toy(width: usize, adapter: &AdapterConfig, seed: u64) -> Result<Self> {
        let w_star = normal_matrix(
            &mut SeedRng::new(seed, "toy.w_star"),
            1,
            width,
            1.0 / (width as f64).sqrt(),
        );
        Self::new(w_star, adapter, seed)
    }
}

impl<T: Scalar> Model<T> for SingleLayer<T> {
    type Cache = Array2<T>;

    fn forward(&self, x: &Array2<T>, u: T) -> (Array2<T>, Array2<T>) {
        (self.layer.forward(x.view(), u), x.clone())
    }

    fn backward(&self, x: &Array2<T>, g: &Array2<T>, u: T) -> Vec<ArrayD<T>> {
        self.layer.backward(x.view(), g.view(), u).0
    }

    fn params_info(&self) -> Vec<ModelParam> {
        self.layer
            .param_info()
            .into_iter()
            .map(|info| ModelParam {
                layer: "layer".into(),
                info,
            })
            .collect()
    }

    fn params(&self) -> Vec<ArrayViewD<'_, T>> {
        self.layer.params()
    }

    fn params_mut(&mut self) -> Vec<ArrayViewMutD<'_, T>> {
        self.layer.params_mut()
    }
}
