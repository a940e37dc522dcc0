//! `singlora layer`: one adapted layer, its inputs, outputs and every gradient, written to a `.safetensors` file that
//! a PyTorch or NumPy user can recompute independently. The layout is a contract (README, "Layer dumps").
//!
//! Tensors: `x` \[b, d_in\], `w0` \[d_out, d_in\], `grad_y` \[b, d_out\], `y` \[b, d_out\], `grad_x` \[b, d_in\]; the
//! trainable parameters under PEFT's names (`lora_A.weight` \[r, d_in\], `lora_B.weight` \[d_out, r\],
//! `lora_magnitude_vector` \[d_out\], `singlora_A.weight` \[m, r\], `delta.weight` \[d_out, d_in\]); and `grad.P` for every
//! parameter P. Metadata: `method`, `d_in`, `d_out`, `rank`, `alpha`, `scaling`, `scale`, `u`, `dora_norm`, `init`,
//! `state`, `seed`, `dtype`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use ndarray::{Array2, ArrayD, IxDyn};
use safetensors::tensor::Dtype;

use crate::adapters::{AdaptedLinear, AdapterConfig};
use crate::error::{Error, Result};
use crate::rng::{normal_matrix, SeedRng};
use crate::scalar::Scalar;

/// Which adapter state to dump.
///
/// `Init` is the freshly initialised adapter, with DoRA's magnitude set to the row norms at the dumped u.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpState {
    /// The freshly initialised adapter.
    Init,
    /// Every trainable tensor drawn at random, so no gradient is trivially zero: each 2-D factor
    /// $\sim \mathcal N(0, 1/\text{cols})$, DoRA magnitudes $= \nu_i\,(1 + \tfrac12 U(-1,1))$.
    Random,
}

impl fmt::Display for DumpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DumpState::Init => "init",
            DumpState::Random => "random",
        })
    }
}

impl FromStr for DumpState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "init" => Ok(DumpState::Init),
            "random" => Ok(DumpState::Random),
            _ => Err(Error::invalid("state", s, "init or random")),
        }
    }
}

/// Everything that defines a dump.
#[derive(Clone, Debug)]
pub struct LayerDumpConfig {
    /// The adapter.
    pub adapter: AdapterConfig,
    /// $d_{in}$.
    pub d_in: usize,
    /// $d_{out}$.
    pub d_out: usize,
    /// Batch size b.
    pub batch: usize,
    /// The ramp value u at which the layer is evaluated.
    pub u: f64,
    /// Initialised or random adapter.
    pub state: DumpState,
    /// Seed of every draw.
    pub seed: u64,
}

impl LayerDumpConfig {
    /// Checks the fields.
    pub fn validate(&self) -> Result<()> {
        self.adapter.validate(self.d_in, self.d_out)?;
        if self.batch == 0 {
            return Err(Error::invalid("batch", self.batch, "a positive integer"));
        }
        if !(self.u.is_finite() && (0.0..=1.0).contains(&self.u)) {
            return Err(Error::invalid("u", self.u, "a number in [0, 1]"));
        }
        Ok(())
    }
}

/// A tensor ready for safetensors: logical shape and values.
struct Named<T: Scalar> {
    name: String,
    value: ArrayD<T>,
}

/// Builds the layer of `cfg`, runs forward and backward, and returns the safetensors bytes.
pub fn dump_layer<T: Scalar>(cfg: &LayerDumpConfig) -> Result<Vec<u8>> {
    cfg.validate()?;
    let (tensors, meta) = compute::<T>(cfg)?;
    let dtype = if T::DTYPE == "f32" { "F32" } else { "F64" };
    Ok(super::safetensors_bytes(
        &tensors
            .into_iter()
            .map(|t| (t.name, t.value))
            .collect::<Vec<_>>(),
        dtype,
        &meta,
    ))
}

/// A dump's tensors and its metadata.
type Dump<T> = (Vec<Named<T>>, BTreeMap<String, String>);

fn compute<T: Scalar>(cfg: &LayerDumpConfig) -> Result<Dump<T>> {
    let (d_in, d_out, b) = (cfg.d_in, cfg.d_out, cfg.batch);
    let w0: Array2<T> = normal_matrix(
        &mut SeedRng::new(cfg.seed, "w0"),
        d_out,
        d_in,
        1.0 / (d_in as f64).sqrt(),
    );
    let x: Array2<T> = normal_matrix(&mut SeedRng::new(cfg.seed, "x"), b, d_in, 1.0);
    let grad_y: Array2<T> = normal_matrix(&mut SeedRng::new(cfg.seed, "grad_y"), b, d_out, 1.0);
    let mut layer = AdaptedLinear::new(w0.clone(), &cfg.adapter, cfg.seed)?;
    let u = T::of(cfg.u);
    match cfg.state {
        // DoRA's magnitude is initialised from the weight at the dumped u, as PEFT initialises it from the weight it
        // wraps: the fresh adapter is then exactly W0 + s·u·ΔW̃ at that u.
        DumpState::Init => layer.reset_magnitude(u),
        DumpState::Random => layer.randomize(cfg.seed, u),
    }
    let y = layer.forward(x.view(), u);
    let grads = layer.backward(x.view(), grad_y.view(), u);

    let named = |name: &str, value: ArrayD<T>| Named {
        name: name.into(),
        value,
    };
    let mut out = vec![
        named("x", x.into_dyn()),
        named("w0", w0.into_dyn()),
        named("grad_y", grad_y.into_dyn()),
        named("y", y.into_dyn()),
        named("grad_x", grads.x.into_dyn()),
    ];
    for ((info, value), grad) in layer
        .param_info()
        .iter()
        .zip(layer.params())
        .zip(grads.params)
    {
        let shape = IxDyn(&info.shape);
        let value = value.to_owned().into_shape_with_order(shape.clone());
        out.push(named(info.name, value.expect("logical shape")));
        let grad = grad.into_shape_with_order(shape).expect("logical shape");
        out.push(named(&format!("grad.{}", info.name), grad));
    }
    Ok((out, metadata::<T>(cfg, layer.scale)))
}

/// The dump's metadata: the layer's config, its scale `s`, and the format's name.
fn metadata<T: Scalar>(cfg: &LayerDumpConfig, scale: f64) -> BTreeMap<String, String> {
    let a = &cfg.adapter;
    [
        ("method", a.method.to_string()),
        ("d_in", cfg.d_in.to_string()),
        ("d_out", cfg.d_out.to_string()),
        ("rank", a.rank.to_string()),
        ("alpha", fmt_f64(a.alpha)),
        ("scaling", a.scaling.to_string()),
        ("scale", fmt_f64(scale)),
        ("u", fmt_f64(cfg.u)),
        ("dora_norm", a.dora_norm.to_string()),
        ("dora_eps", fmt_f64(a.dora_eps)),
        ("init", a.effective_init().to_string()),
        ("state", cfg.state.to_string()),
        ("seed", cfg.seed.to_string()),
        ("dtype", T::DTYPE.to_string()),
        ("batch", cfg.batch.to_string()),
        ("format", "singlora-layer-1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Shortest decimal that round-trips an f64 (Rust's `Display` guarantees this).
fn fmt_f64(v: f64) -> String {
    format!("{v}")
}

/// A dump read back: tensors (as f64) and metadata.
pub struct LayerDump {
    /// Tensors by name, widened to f64.
    pub tensors: HashMap<String, ArrayD<f64>>,
    /// The header's string map.
    pub metadata: HashMap<String, String>,
}

impl LayerDump {
    /// Parses safetensors bytes written by [`dump_layer`].
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| Error::Safetensors(e.to_string()))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| Error::Safetensors(e.to_string()))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let values: Vec<f64> = match view.dtype() {
                Dtype::F64 => <f64 as Scalar>::read_le(view.data()),
                Dtype::F32 => <f32 as Scalar>::read_le(view.data())
                    .into_iter()
                    .map(f64::from)
                    .collect(),
                other => {
                    return Err(Error::Safetensors(format!(
                        "tensor {name}: unexpected dtype {other:?}"
                    )))
                }
            };
            let arr = ArrayD::from_shape_vec(IxDyn(view.shape()), values)
                .map_err(|e| Error::Safetensors(e.to_string()))?;
            tensors.insert(name, arr);
        }
        Ok(Self { tensors, metadata })
    }

    /// A tensor as a matrix (1-D tensors become a column).
    pub fn matrix(&self, name: &str) -> Result<Array2<f64>> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::Safetensors(format!("missing tensor {name}")))?;
        let shape = t.shape().to_vec();
        let (r, c) = match shape.as_slice() {
            [r, c] => (*r, *c),
            [r] => (*r, 1),
            _ => {
                return Err(Error::Safetensors(format!(
                    "tensor {name}: shape {shape:?}"
                )))
            }
        };
        Ok(t.clone().into_shape_with_order((r, c)).expect("same size"))
    }
}
