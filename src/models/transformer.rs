//! A pre-LayerNorm transformer of width $n = \text{heads}\cdot\text{head\_dim}$ with fixed input/output dimension
//! (`vocab`), no biases, and adapters attachable to any of its linear maps.
//!
//! Rows are tokens: $X \in \mathbb R^{(B\cdot T)\times\text{vocab}}$, consecutive groups of $T$ rows are one sequence.
//! With $\mathrm{LN}$ a LayerNorm without affine parameters and every map $Y = XW^\top$:
//! $$h_0 = X W_E^\top,\qquad h' = h + \mathrm{Attn}(\mathrm{LN}(h))\,W_O^\top,\qquad
//! h'' = h' + \mathrm{GELU}\bigl(\mathrm{LN}(h')\,W_{up}^\top\bigr)W_{down}^\top,\qquad f = \mathrm{LN}(h_L)\,W_R^\top.$$
//! Attention splits the columns of $Q = aW_Q^\top$, $K = aW_K^\top$, $V = aW_V^\top$ into heads of `head_dim` columns;
//! per sequence and head, $P = \mathrm{softmax}(\tau\,Q_sK_s^\top)$ over keys (keys $t' > t$ masked out when
//! causal), $\mathrm{Attn} = PV_s$, with $\tau = 1/\sqrt{d_{head}}$ (standard) or $1/d_{head}$ (μP).
//!
//! Layer names: `embed` ($W_E$, $n\times\text{vocab}$), `block.K.q`, `block.K.k`, `block.K.v`, `block.K.o`
//! ($n\times n$), `block.K.up` ($4n\times n$), `block.K.down` ($n\times 4n$), `readout` ($W_R$, $\text{vocab}\times n$).
//! Base weights are Gaussian with fan-in variance $1/\text{fan}_{in}$; the readout is $\mathcal N(0, 1/n)$
//! (standard) or $\mathcal N(0, 1/n^2)$ (μP).
//!
//! Each piece's backward pass sits next to its forward pass ([`layer_norm`], [`softmax_rows`], [`attention`],
//! [`gelu`], the two sublayers and the residual block of [`Block`]); all are proven against finite differences in
//! `tests/transformer.rs`.

use std::fmt;
use std::str::FromStr;

use ndarray::{
    s, Array1, Array2, Array4, ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, ArrayViewMutD, Zip,
};
use serde::{Deserialize, Serialize};

use super::{Activation, Linear, Model, ModelParam, Readout};
use crate::adapters::config::{named_enum, serde_via_str};
use crate::adapters::AdapterConfig;
use crate::error::{Error, Result};
use crate::linalg::{mm, mm_nt, mm_tn};
use crate::rng::{normal_matrix, SeedRng};
use crate::scalar::Scalar;

/// Which factor of the width $n = \text{heads}\cdot\text{head\_dim}$ grows in a width sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WidthMode {
    /// More heads of a fixed size.
    Heads,
    /// A fixed number of heads, each wider.
    HeadDim,
}

impl WidthMode {
    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            WidthMode::Heads => "heads",
            WidthMode::HeadDim => "head_dim",
        }
    }
}

named_enum!(
    WidthMode,
    "width_mode",
    [WidthMode::Heads, WidthMode::HeadDim]
);

/// The attention logit multiplier τ in $\mathrm{softmax}(\tau\,QK^\top)$.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitScale {
    /// $\tau = 1/\sqrt{d_{head}}$ (Vaswani et al., PyTorch).
    Standard,
    /// $\tau = 1/d_{head}$ (μP: query and key become correlated during training, so their dot product grows like
    /// $d_{head}$).
    Mup,
}

impl LogitScale {
    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            LogitScale::Standard => "standard",
            LogitScale::Mup => "mup",
        }
    }

    /// τ for heads of size `head_dim`.
    pub fn tau(self, head_dim: usize) -> f64 {
        match self {
            LogitScale::Standard => 1.0 / (head_dim as f64).sqrt(),
            LogitScale::Mup => 1.0 / head_dim as f64,
        }
    }
}

named_enum!(
    LogitScale,
    "logit_scale",
    [LogitScale::Standard, LogitScale::Mup]
);

/// The six linear maps of a block, in parameter order.
pub const BLOCK_MAPS: [&str; 6] = ["q", "k", "v", "o", "up", "down"];

/// The transformer's shape, base initialisation and which maps carry adapters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// Input and output dimension (default 16, independent of width).
    #[serde(default = "d16")]
    pub vocab: usize,
    /// Sequence length T (default 8): a batch has B·T rows.
    #[serde(default = "eight")]
    pub seq_len: usize,
    /// Number of blocks (default 2).
    #[serde(default = "two")]
    pub blocks: usize,
    /// Attention heads (required).
    pub heads: usize,
    /// Size of each head (required); the width is n = heads · head_dim.
    pub head_dim: usize,
    /// Whether position t attends only to positions ≤ t (default true).
    #[serde(default = "yes")]
    pub causal: bool,
    /// Attention logit multiplier (default standard, 1/√head_dim).
    #[serde(default = "standard_logits")]
    pub logit_scale: LogitScale,
    /// Readout scale (default μP, as the MLP).
    #[serde(default)]
    pub readout: Readout,
    /// Maps carrying the adapter: any of `q`, `k`, `v`, `o`, `up`, `down` (in every block), `block.K.q` … (in block K
    /// only), `embed`, `readout` (default `["q", "v"]`).
    #[serde(default = "q_and_v")]
    pub adapt: Vec<String>,
}

fn d16() -> usize {
    16
}
fn eight() -> usize {
    8
}
fn two() -> usize {
    2
}
fn yes() -> bool {
    true
}
fn standard_logits() -> LogitScale {
    LogitScale::Standard
}
fn q_and_v() -> Vec<String> {
    vec!["q".into(), "v".into()]
}

impl TransformerConfig {
    /// The default transformer with `heads` heads of size `head_dim`.
    pub fn new(heads: usize, head_dim: usize) -> Self {
        Self {
            vocab: d16(),
            seq_len: eight(),
            blocks: two(),
            heads,
            head_dim,
            causal: true,
            logit_scale: LogitScale::Standard,
            readout: Readout::Mup,
            adapt: q_and_v(),
        }
    }

    /// The default transformer at width n, growing the factor `mode` names and keeping the other at `fixed`:
    /// `Heads` gives n/fixed heads of size `fixed`, `HeadDim` gives `fixed` heads of size n/fixed.
    pub fn at_width(width: usize, mode: WidthMode, fixed: usize) -> Result<Self> {
        let fixed_name = match mode {
            WidthMode::Heads => "head_dim",
            WidthMode::HeadDim => "heads",
        };
        if fixed == 0 {
            return Err(Error::invalid(fixed_name, fixed, "a positive integer"));
        }
        if width == 0 || !width.is_multiple_of(fixed) {
            return Err(Error::invalid(
                "width",
                width,
                &format!("a positive multiple of {fixed_name} = {fixed}"),
            ));
        }
        Ok(match mode {
            WidthMode::Heads => Self::new(width / fixed, fixed),
            WidthMode::HeadDim => Self::new(fixed, width / fixed),
        })
    }

    /// The width n = heads · head_dim.
    pub fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// What the attention of every block needs to know.
    pub fn attention_spec(&self) -> AttentionSpec {
        AttentionSpec {
            seq_len: self.seq_len,
            heads: self.heads,
            head_dim: self.head_dim,
            tau: self.logit_scale.tau(self.head_dim),
            causal: self.causal,
        }
    }

    /// Names of the 6·blocks + 2 linear maps, in parameter order.
    pub fn layer_names(&self) -> Vec<String> {
        let mut names = vec!["embed".to_string()];
        for b in 0..self.blocks {
            names.extend(BLOCK_MAPS.iter().map(|m| format!("block.{b}.{m}")));
        }
        names.push("readout".into());
        names
    }

    /// Checks the fields.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            ("vocab", self.vocab),
            ("seq_len", self.seq_len),
            ("blocks", self.blocks),
            ("heads", self.heads),
            ("head_dim", self.head_dim),
        ];
        for (field, v) in sizes {
            if v == 0 {
                return Err(Error::invalid(field, v, "a positive integer"));
            }
        }
        let names = self.layer_names();
        for a in &self.adapt {
            if !BLOCK_MAPS.contains(&a.as_str()) && !names.contains(a) {
                return Err(Error::invalid(
                    "adapt",
                    a,
                    &format!("one of q, k, v, o, up, down (every block), block.K.<map> with K in 0..{}, embed, readout", self.blocks),
                ));
            }
        }
        Ok(())
    }

    fn is_adapted(&self, name: &str) -> bool {
        self.adapt.iter().any(|a| {
            a == name
                || (BLOCK_MAPS.contains(&a.as_str())
                    && name.starts_with("block.")
                    && name.rsplit('.').next() == Some(a.as_str()))
        })
    }

    /// Shape (d_out, d_in) of the map called `name`.
    fn shape(&self, name: &str) -> (usize, usize) {
        let n = self.width();
        match name {
            "embed" => (n, self.vocab),
            "readout" => (self.vocab, n),
            _ => match name.rsplit('.').next() {
                Some("up") => (4 * n, n),
                Some("down") => (n, 4 * n),
                _ => (n, n),
            },
        }
    }

    /// The frozen base weights in [`TransformerConfig::layer_names`] order, drawn from `seed` (one named stream per
    /// map, so a map's draws do not depend on which others are adapted).
    pub fn base_weights<T: Scalar>(&self, seed: u64) -> Vec<Array2<T>> {
        self.layer_names()
            .iter()
            .map(|name| {
                let (d_out, d_in) = self.shape(name);
                let std = if name == "readout" {
                    self.readout.std(self.width())
                } else {
                    1.0 / (d_in as f64).sqrt()
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

    /// Builds the network on given base weights, attaching `adapter` (width knob n = heads · head_dim) to the chosen
    /// maps; adapter seeds are derived per map from `seed`.
    pub fn build<T: Scalar>(
        &self,
        base: Vec<Array2<T>>,
        adapter: &AdapterConfig,
        seed: u64,
    ) -> Result<Transformer<T>> {
        self.validate()?;
        let names = self.layer_names();
        if base.len() != names.len() {
            return Err(Error::invalid(
                "base",
                format!("{} weights", base.len()),
                &format!("{} weights ({})", names.len(), names.join(", ")),
            ));
        }
        let mut cfg = adapter.clone();
        cfg.width = Some(cfg.width.unwrap_or(self.width()));
        let mut maps = Vec::with_capacity(names.len());
        for (l, (name, w)) in names.iter().zip(base).enumerate() {
            let (d_out, d_in) = self.shape(name);
            if w.dim() != (d_out, d_in) {
                return Err(Error::invalid(
                    "base",
                    format!("{}x{} for {name}", w.nrows(), w.ncols()),
                    &format!("{d_out}x{d_in}"),
                ));
            }
            maps.push(Linear::attach(
                w,
                &cfg,
                self.is_adapted(name),
                seed,
                l,
                name,
            )?);
        }
        let readout = maps.pop().expect("readout");
        let mut rest = maps.into_iter();
        let embed = rest.next().expect("embed");
        let spec = self.attention_spec();
        let blocks = (0..self.blocks)
            .map(|_| {
                let mut next = || rest.next().expect("six maps per block");
                Block {
                    q: next(),
                    k: next(),
                    v: next(),
                    o: next(),
                    up: next(),
                    down: next(),
                    attention: spec,
                }
            })
            .collect();
        Ok(Transformer {
            config: self.clone(),
            names,
            embed,
            blocks,
            readout,
        })
    }
}

// ---------------------------------------------------------------------------------------------------------------
// LayerNorm
// ---------------------------------------------------------------------------------------------------------------

/// LayerNorm's ε (PyTorch's default).
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// A LayerNorm's output and what its backward pass needs.
pub struct Normalized<T: Scalar> {
    /// $Y$, each row with mean 0 and (biased) variance $\sigma^2/(\sigma^2+\varepsilon)$.
    pub y: Array2<T>,
    /// $r_i = 1/\sqrt{\sigma_i^2 + \varepsilon}$ per row.
    pub rstd: Array1<T>,
}

/// LayerNorm over each row, without affine parameters (PyTorch's, biased variance, ε = 1e-5):
/// $y = (x - \mu)\,r$, $\mu = \tfrac1n\sum_j x_j$, $r = (\tfrac1n\sum_j (x_j-\mu)^2 + \varepsilon)^{-1/2}$.
pub fn layer_norm<T: Scalar>(x: ArrayView2<'_, T>) -> Normalized<T> {
    let n = T::of(x.ncols() as f64);
    let eps = T::of(LAYER_NORM_EPS);
    let mut y = x.to_owned();
    let mut rstd = Array1::zeros(x.nrows());
    for (mut row, r) in y.rows_mut().into_iter().zip(rstd.iter_mut()) {
        let mean = row.sum() / n;
        row.mapv_inplace(|v| v - mean);
        let var = row.iter().map(|&v| v * v).sum::<T>() / n;
        *r = T::one() / (var + eps).sqrt();
        let rv = *r;
        row.mapv_inplace(|v| v * rv);
    }
    Normalized { y, rstd }
}

/// LayerNorm's backward pass, per row: $\partial x = r\bigl(g - \overline{g} - y\,\overline{g\odot y}\bigr)$ with
/// $\overline{\cdot}$ the mean over the row (exact with ε inside $r$, since $\partial r/\partial x_j = -r^3(x_j-\mu)/n$).
#[track_caller]
pub fn layer_norm_backward<T: Scalar>(ln: &Normalized<T>, g: ArrayView2<'_, T>) -> Array2<T> {
    assert_eq!(
        g.dim(),
        ln.y.dim(),
        "layer_norm_backward: G and Y differ in shape"
    );
    let n = T::of(g.ncols() as f64);
    let mut gx = g.to_owned();
    for ((mut row, y), &r) in gx.rows_mut().into_iter().zip(ln.y.rows()).zip(&ln.rstd) {
        let mean_g = row.sum() / n;
        let mean_gy = row.iter().zip(y).map(|(&a, &b)| a * b).sum::<T>() / n;
        Zip::from(&mut row)
            .and(&y)
            .for_each(|d, &yv| *d = r * (*d - mean_g - yv * mean_gy));
    }
    gx
}

// ---------------------------------------------------------------------------------------------------------------
// Softmax attention
// ---------------------------------------------------------------------------------------------------------------

/// The shape of multi-head attention over a batch of sequences.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionSpec {
    /// Sequence length T.
    pub seq_len: usize,
    /// Number of heads.
    pub heads: usize,
    /// Columns per head.
    pub head_dim: usize,
    /// Logit multiplier τ.
    pub tau: f64,
    /// Whether keys after the query are masked out.
    pub causal: bool,
}

impl AttentionSpec {
    /// The width heads · head_dim.
    pub fn width(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// In place, row by row: $P_{t,:} = \mathrm{softmax}(\tau S_{t,:})$ over the allowed keys (all, or $t' \le t$ when
/// `causal`), with the row maximum subtracted; masked entries are set to exactly 0 and never read.
pub fn softmax_rows<T: Scalar>(mut scores: ArrayViewMut2<'_, T>, tau: T, causal: bool) {
    let cols = scores.ncols();
    for (t, mut row) in scores.rows_mut().into_iter().enumerate() {
        let allowed = if causal { (t + 1).min(cols) } else { cols };
        let mut logits = row.slice_mut(s![..allowed]);
        logits.mapv_inplace(|v| v * tau);
        let max = logits.iter().copied().fold(T::neg_infinity(), T::max);
        logits.mapv_inplace(|v| (v - max).exp());
        let sum = logits.sum();
        logits.mapv_inplace(|v| v / sum);
        row.slice_mut(s![allowed..]).fill(T::zero());
    }
}

/// Softmax's backward pass, row by row: $\partial S_{tt'} = P_{tt'}\bigl(\partial P_{tt'} - \sum_{\tau}
/// P_{t\tau}\,\partial P_{t\tau}\bigr)$ (before the factor τ). Masked entries have $P = 0$, so their gradient is 0.
#[track_caller]
pub fn softmax_rows_backward<T: Scalar>(p: ArrayView2<'_, T>, dp: ArrayView2<'_, T>) -> Array2<T> {
    assert_eq!(
        p.dim(),
        dp.dim(),
        "softmax_rows_backward: P and ∂P differ in shape"
    );
    let mut ds = dp.to_owned();
    for (mut row, prow) in ds.rows_mut().into_iter().zip(p.rows()) {
        let dot = row.iter().zip(prow).map(|(&a, &b)| a * b).sum::<T>();
        Zip::from(&mut row)
            .and(&prow)
            .for_each(|d, &pv| *d = pv * (*d - dot));
    }
    ds
}

/// The output of [`attention`] and the probabilities its backward pass needs.
pub struct Attended<T: Scalar> {
    /// The heads' outputs side by side, $(B\cdot T)\times n$.
    pub ctx: Array2<T>,
    /// $P$ indexed `[sequence, head, query, key]`.
    pub probs: Array4<T>,
}

/// Multi-head softmax attention. For sequence $s$ (rows $sT..(s+1)T$) and head $j$ (columns
/// $jd..(j+1)d$): $P = \mathrm{softmax}(\tau\,Q_{sj}K_{sj}^\top)$ (see [`softmax_rows`]), $C_{sj} = PV_{sj}$.
#[track_caller]
pub fn attention<T: Scalar>(
    q: ArrayView2<'_, T>,
    k: ArrayView2<'_, T>,
    v: ArrayView2<'_, T>,
    spec: &AttentionSpec,
) -> Attended<T> {
    let (rows, seqs) = check_attention_shapes(q, k, v, spec);
    let (tt, hd, tau) = (spec.seq_len, spec.head_dim, T::of(spec.tau));
    let mut ctx = Array2::zeros((rows, spec.width()));
    let mut probs = Array4::zeros((seqs, spec.heads, tt, tt));
    for b in 0..seqs {
        for j in 0..spec.heads {
            let blk = s![b * tt..(b + 1) * tt, j * hd..(j + 1) * hd];
            let mut p = probs.slice_mut(s![b, j, .., ..]);
            p.assign(&mm_nt(q.slice(blk), k.slice(blk)));
            softmax_rows(p.view_mut(), tau, spec.causal);
            ctx.slice_mut(blk).assign(&mm(p.view(), v.slice(blk)));
        }
    }
    Attended { ctx, probs }
}

/// Gradients of [`attention`] with respect to its three inputs.
pub struct AttentionGrads<T: Scalar> {
    /// $\partial L/\partial Q$.
    pub q: Array2<T>,
    /// $\partial L/\partial K$.
    pub k: Array2<T>,
    /// $\partial L/\partial V$.
    pub v: Array2<T>,
}

/// Attention's backward pass given $G = \partial L/\partial C$, per sequence and head: $\partial V = P^\top G$,
/// $\partial P = GV^\top$, $\partial S$ from [`softmax_rows_backward`], $\partial Q = \tau\,\partial S\,K$,
/// $\partial K = \tau\,\partial S^\top Q$.
#[track_caller]
pub fn attention_backward<T: Scalar>(
    q: ArrayView2<'_, T>,
    k: ArrayView2<'_, T>,
    v: ArrayView2<'_, T>,
    probs: &Array4<T>,
    g: ArrayView2<'_, T>,
    spec: &AttentionSpec,
) -> AttentionGrads<T> {
    let (rows, seqs) = check_attention_shapes(q, k, v, spec);
    assert_eq!(
        g.dim(),
        (rows, spec.width()),
        "attention_backward: G has the wrong shape"
    );
    assert_eq!(
        probs.dim(),
        (seqs, spec.heads, spec.seq_len, spec.seq_len),
        "attention_backward: P has the wrong shape"
    );
    let (tt, hd, tau) = (spec.seq_len, spec.head_dim, T::of(spec.tau));
    let mut grads = AttentionGrads {
        q: Array2::zeros(q.dim()),
        k: Array2::zeros(k.dim()),
        v: Array2::zeros(v.dim()),
    };
    for b in 0..seqs {
        for j in 0..spec.heads {
            let blk = s![b * tt..(b + 1) * tt, j * hd..(j + 1) * hd];
            let p = probs.slice(s![b, j, .., ..]);
            let gb = g.slice(blk);
            grads.v.slice_mut(blk).assign(&mm_tn(p, gb));
            let ds = softmax_rows_backward(p, mm_nt(gb, v.slice(blk)).view()) * tau;
            grads.q.slice_mut(blk).assign(&mm(ds.view(), k.slice(blk)));
            grads
                .k
                .slice_mut(blk)
                .assign(&mm_tn(ds.view(), q.slice(blk)));
        }
    }
    grads
}

/// Checks Q, K, V against `spec`; returns (rows, sequences).
#[track_caller]
fn check_attention_shapes<T: Scalar>(
    q: ArrayView2<'_, T>,
    k: ArrayView2<'_, T>,
    v: ArrayView2<'_, T>,
    spec: &AttentionSpec,
) -> (usize, usize) {
    let (rows, n) = q.dim();
    assert_eq!(
        n,
        spec.width(),
        "attention: Q has {n} columns, heads·head_dim = {}",
        spec.width()
    );
    assert!(
        k.dim() == q.dim() && v.dim() == q.dim(),
        "attention: Q, K, V differ in shape"
    );
    assert!(
        spec.seq_len > 0 && rows % spec.seq_len == 0,
        "attention: {rows} rows are not whole sequences of {}",
        spec.seq_len
    );
    (rows, rows / spec.seq_len)
}

// ---------------------------------------------------------------------------------------------------------------
// GELU
// ---------------------------------------------------------------------------------------------------------------

/// Element-wise exact GELU, $z\,\Phi(z)$ ([`Activation::Gelu`]).
pub fn gelu<T: Scalar>(z: ArrayView2<'_, T>) -> Array2<T> {
    z.mapv(|v| Activation::Gelu.apply(v))
}

/// GELU's backward pass: $\partial z = g \odot (\Phi(z) + z\,\varphi(z))$.
#[track_caller]
pub fn gelu_backward<T: Scalar>(z: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Array2<T> {
    assert_eq!(z.dim(), g.dim(), "gelu_backward: Z and G differ in shape");
    let mut gz = g.to_owned();
    Zip::from(&mut gz)
        .and(&z)
        .for_each(|d, &zv| *d *= Activation::Gelu.derivative(zv));
    gz
}

// ---------------------------------------------------------------------------------------------------------------
// The block
// ---------------------------------------------------------------------------------------------------------------

/// One pre-LayerNorm block: $h' = h + \mathrm{Attn}(\mathrm{LN}(h))W_O^\top$, then
/// $h'' = h' + \mathrm{GELU}(\mathrm{LN}(h')W_{up}^\top)W_{down}^\top$.
pub struct Block<T: Scalar> {
    /// $W_Q$ ($n\times n$).
    pub q: Linear<T>,
    /// $W_K$ ($n\times n$).
    pub k: Linear<T>,
    /// $W_V$ ($n\times n$).
    pub v: Linear<T>,
    /// $W_O$ ($n\times n$).
    pub o: Linear<T>,
    /// $W_{up}$ ($4n\times n$).
    pub up: Linear<T>,
    /// $W_{down}$ ($n\times 4n$).
    pub down: Linear<T>,
    /// The attention's shape.
    pub attention: AttentionSpec,
}

/// What [`Block::attention_forward`] keeps.
pub struct AttentionCache<T: Scalar> {
    /// $a = \mathrm{LN}(h)$, the input of Q, K, V.
    pub ln: Normalized<T>,
    /// $Q = aW_Q^\top$.
    pub q: Array2<T>,
    /// $K = aW_K^\top$.
    pub k: Array2<T>,
    /// $V = aW_V^\top$.
    pub v: Array2<T>,
    /// The heads' outputs (input of O) and probabilities.
    pub attended: Attended<T>,
}

/// What [`Block::feed_forward`] keeps.
pub struct FeedForwardCache<T: Scalar> {
    /// $a = \mathrm{LN}(h)$, the input of Up.
    pub ln: Normalized<T>,
    /// $z = aW_{up}^\top$.
    pub z: Array2<T>,
    /// $\mathrm{GELU}(z)$, the input of Down.
    pub act: Array2<T>,
}

/// What [`Block::forward`] keeps.
pub struct BlockCache<T: Scalar> {
    /// The attention sublayer's cache.
    pub attention: AttentionCache<T>,
    /// The feed-forward sublayer's cache.
    pub feed_forward: FeedForwardCache<T>,
}

impl<T: Scalar> Block<T> {
    /// The six maps in [`BLOCK_MAPS`] order.
    pub fn maps(&self) -> [&Linear<T>; 6] {
        [&self.q, &self.k, &self.v, &self.o, &self.up, &self.down]
    }

    /// The six maps in [`BLOCK_MAPS`] order, mutable.
    pub fn maps_mut(&mut self) -> [&mut Linear<T>; 6] {
        [
            &mut self.q,
            &mut self.k,
            &mut self.v,
            &mut self.o,
            &mut self.up,
            &mut self.down,
        ]
    }

    /// The attention sublayer without its residual: $\mathrm{Attn}(\mathrm{LN}(h))\,W_O^\top$.
    pub fn attention_forward(&self, h: ArrayView2<'_, T>, u: T) -> (Array2<T>, AttentionCache<T>) {
        let ln = layer_norm(h);
        let q = self.q.forward(ln.y.view(), u);
        let k = self.k.forward(ln.y.view(), u);
        let v = self.v.forward(ln.y.view(), u);
        let attended = attention(q.view(), k.view(), v.view(), &self.attention);
        let out = self.o.forward(attended.ctx.view(), u);
        (
            out,
            AttentionCache {
                ln,
                q,
                k,
                v,
                attended,
            },
        )
    }

    /// The attention sublayer's backward pass: parameter gradients of q, k, v, o (in that order) and $\partial h$.
    /// O's backward gives $\partial C$; [`attention_backward`] gives $\partial Q, \partial K, \partial V$; the three
    /// maps' input gradients add up to $\partial a$; [`layer_norm_backward`] gives $\partial h$.
    pub fn attention_backward(
        &self,
        cache: &AttentionCache<T>,
        g: ArrayView2<'_, T>,
        u: T,
    ) -> (Vec<ArrayD<T>>, Array2<T>) {
        let (o_grads, g_ctx) = self.o.backward(cache.attended.ctx.view(), g, u);
        let ag = attention_backward(
            cache.q.view(),
            cache.k.view(),
            cache.v.view(),
            &cache.attended.probs,
            g_ctx.view(),
            &self.attention,
        );
        let a = cache.ln.y.view();
        let (mut grads, mut ga) = self.q.backward(a, ag.q.view(), u);
        let (k_grads, ga_k) = self.k.backward(a, ag.k.view(), u);
        let (v_grads, ga_v) = self.v.backward(a, ag.v.view(), u);
        ga += &ga_k;
        ga += &ga_v;
        grads.extend(k_grads);
        grads.extend(v_grads);
        grads.extend(o_grads);
        (grads, layer_norm_backward(&cache.ln, ga.view()))
    }

    /// The feed-forward sublayer without its residual: $\mathrm{GELU}(\mathrm{LN}(h)\,W_{up}^\top)\,W_{down}^\top$.
    pub fn feed_forward(&self, h: ArrayView2<'_, T>, u: T) -> (Array2<T>, FeedForwardCache<T>) {
        let ln = layer_norm(h);
        let z = self.up.forward(ln.y.view(), u);
        let act = gelu(z.view());
        let out = self.down.forward(act.view(), u);
        (out, FeedForwardCache { ln, z, act })
    }

    /// The feed-forward sublayer's backward pass: parameter gradients of up, down (in that order) and $\partial h$,
    /// through Down, [`gelu_backward`], Up and [`layer_norm_backward`].
    pub fn feed_forward_backward(
        &self,
        cache: &FeedForwardCache<T>,
        g: ArrayView2<'_, T>,
        u: T,
    ) -> (Vec<ArrayD<T>>, Array2<T>) {
        let (down_grads, g_act) = self.down.backward(cache.act.view(), g, u);
        let gz = gelu_backward(cache.z.view(), g_act.view());
        let (mut grads, ga) = self.up.backward(cache.ln.y.view(), gz.view(), u);
        grads.extend(down_grads);
        (grads, layer_norm_backward(&cache.ln, ga.view()))
    }

    /// The block: $h' = h + F_{attn}(h)$, $h'' = h' + F_{ff}(h')$.
    pub fn forward(&self, h: ArrayView2<'_, T>, u: T) -> (Array2<T>, BlockCache<T>) {
        let (a, attention) = self.attention_forward(h, u);
        let h1 = a + h;
        let (f, feed_forward) = self.feed_forward(h1.view(), u);
        (
            f + h1,
            BlockCache {
                attention,
                feed_forward,
            },
        )
    }

    /// The block's backward pass: parameter gradients in [`BLOCK_MAPS`] order and $\partial h$. Each residual adds
    /// the identity's share: $\partial h' = g + J_{ff}^\top g$, $\partial h = \partial h' + J_{attn}^\top\,\partial h'$.
    pub fn backward(
        &self,
        cache: &BlockCache<T>,
        g: ArrayView2<'_, T>,
        u: T,
    ) -> (Vec<ArrayD<T>>, Array2<T>) {
        let (ff_grads, g_ff) = self.feed_forward_backward(&cache.feed_forward, g, u);
        let g1 = g_ff + g;
        let (mut grads, g_attn) = self.attention_backward(&cache.attention, g1.view(), u);
        grads.extend(ff_grads);
        (grads, g_attn + g1)
    }

    /// Read-only views of the adapters' tensors, in [`BLOCK_MAPS`] order.
    pub fn params(&self) -> Vec<ArrayViewD<'_, T>> {
        self.maps().into_iter().flat_map(|l| l.params()).collect()
    }

    /// Mutable views of the adapters' tensors, in [`BLOCK_MAPS`] order.
    pub fn params_mut(&mut self) -> Vec<ArrayViewMutD<'_, T>> {
        self.maps_mut()
            .into_iter()
            .flat_map(|l| l.params_mut())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The network
// ---------------------------------------------------------------------------------------------------------------

/// A transformer with adapters.
pub struct Transformer<T: Scalar> {
    /// Its configuration.
    pub config: TransformerConfig,
    /// Map names in parameter order (see [`TransformerConfig::layer_names`]).
    pub names: Vec<String>,
    /// $W_E$ ($n\times\text{vocab}$).
    pub embed: Linear<T>,
    /// The blocks.
    pub blocks: Vec<Block<T>>,
    /// $W_R$ ($\text{vocab}\times n$).
    pub readout: Linear<T>,
}

/// What [`Transformer`]'s forward pass keeps.
pub struct TransformerCache<T: Scalar> {
    /// The input (input of `embed`).
    pub x: Array2<T>,
    /// Each block's cache.
    pub blocks: Vec<BlockCache<T>>,
    /// The final LayerNorm (its output is the readout's input).
    pub final_ln: Normalized<T>,
    /// The ramp value of the forward pass.
    pub u: T,
}

impl<T: Scalar> Transformer<T> {
    /// Every linear map, in [`Transformer::names`] order.
    pub fn layers(&self) -> Vec<&Linear<T>> {
        std::iter::once(&self.embed)
            .chain(self.blocks.iter().flat_map(|b| b.maps()))
            .chain(std::iter::once(&self.readout))
            .collect()
    }

    /// Every linear map, mutable, in [`Transformer::names`] order.
    pub fn layers_mut(&mut self) -> Vec<&mut Linear<T>> {
        std::iter::once(&mut self.embed)
            .chain(self.blocks.iter_mut().flat_map(|b| b.maps_mut()))
            .chain(std::iter::once(&mut self.readout))
            .collect()
    }
}

impl<T: Scalar> Model<T> for Transformer<T> {
    type Cache = TransformerCache<T>;

    /// The output $(B\cdot T)\times\text{vocab}$ for $X \in \mathbb R^{(B\cdot T)\times\text{vocab}}$. Panics if the
    /// rows are not whole sequences.
    #[track_caller]
    fn forward(&self, x: &Array2<T>, u: T) -> (Array2<T>, TransformerCache<T>) {
        assert_eq!(
            x.ncols(),
            self.config.vocab,
            "transformer forward: X has {} columns, vocab = {}",
            x.ncols(),
            self.config.vocab
        );
        let (rows, seq_len) = (x.nrows(), self.config.seq_len);
        assert!(
            rows % seq_len == 0,
            "transformer forward: {rows} rows are not whole sequences of seq_len = {seq_len}"
        );
        let mut h = self.embed.forward(x.view(), u);
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let (next, cache) = block.forward(h.view(), u);
            h = next;
            blocks.push(cache);
        }
        let final_ln = layer_norm(h.view());
        let out = self.readout.forward(final_ln.y.view(), u);
        (
            out,
            TransformerCache {
                x: x.clone(),
                blocks,
                final_ln,
                u,
            },
        )
    }

    /// Readout, final [`layer_norm_backward`], each [`Block::backward`] from the last, then the embedding.
    fn backward(&self, cache: &TransformerCache<T>, g: &Array2<T>, u: T) -> Vec<ArrayD<T>> {
        let (readout_grads, g_f) = self.readout.backward(cache.final_ln.y.view(), g.view(), u);
        let mut gh = layer_norm_backward(&cache.final_ln, g_f.view());
        let mut block_grads = Vec::with_capacity(self.blocks.len());
        for (block, bc) in self.blocks.iter().zip(&cache.blocks).rev() {
            let (grads, g_in) = block.backward(bc, gh.view(), u);
            block_grads.push(grads);
            gh = g_in;
        }
        let (embed_grads, _) = self.embed.backward(cache.x.view(), gh.view(), u);
        embed_grads
            .into_iter()
            .chain(block_grads.into_iter().rev().flatten())
            .chain(readout_grads)
            .collect()
    }

    fn params_info(&self) -> Vec<ModelParam> {
        self.names
            .iter()
            .zip(self.layers())
            .flat_map(|(name, layer)| {
                layer.param_info().into_iter().map(move |info| ModelParam {
                    layer: name.clone(),
                    info,
                })
            })
            .collect()
    }

    fn params(&self) -> Vec<ArrayViewD<'_, T>> {
        self.layers().into_iter().flat_map(|l| l.params()).collect()
    }

    fn params_mut(&mut self) -> Vec<ArrayViewMutD<'_, T>> {
        self.layers_mut()
            .into_iter()
            .flat_map(|l| l.params_mut())
            .collect()
    }
}
