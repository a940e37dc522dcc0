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
//! ($n\times n$), `block.K.up` ($kn\times n$), `block.K.down` ($n\times kn$, k = `mlp_ratio`, default 4), `readout`
//! ($W_R$, $\text{vocab}\times n$).
//! Base weights are Gaussian with fan-in variance $1/\text{fan}_{in}$; the readout is $\mathcal N(0, 1/n)$
//! (standard) or $\mathcal N(0, 1/n^2)$ (μP).
//!
//! Each piece's backward pass sits next to its forward pass: the ops in [`super::ops`] ([`layer_norm`],
//! [`softmax_rows`], [`attention`], [`gelu`], re-exported here), the two sublayers and the residual block of
//! [`Block`]; all are proven against finite differences in `tests/transformer.rs`.
//!
//! Cost of a step. Every linear map is one GEMM over all $B\cdot T$ rows (plus its adapter's rank-r products), in
//! the forward pass and in the backward pass; attention is one pass over the batch ([`attention`]), with no
//! per-sequence or per-head products. The forward pass keeps every map's output and the residual stream in the
//! cache ([`Transformer::map_outputs`], [`Transformer::block_activations`]), so probes recompute nothing.

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD, ArrayViewMutD};
use serde::{Deserialize, Serialize};

use super::linear::{any_trainable, with_input};
pub use super::ops::{
    attention, attention_backward, gelu, gelu_backward, layer_norm, layer_norm_backward,
    layer_norm_backward_in_place, softmax_rows, softmax_rows_backward, Attended, AttentionGrads,
    AttentionSpec, Gelu, Normalized, LAYER_NORM_EPS,
};
use super::{Linear, Model, ModelParam, Readout};
use crate::adapters::{AdapterConfig, Kept};
use crate::error::{Error, Result};
use crate::names::named_enum;
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

/// What [`Transformer::block_activations`] shows per block, in order.
pub const BLOCK_ACTIVATIONS: [&str; 6] = [
    "attn_logits",
    "attn_ctx",
    "attn_out",
    "resid_mid",
    "mlp_out",
    "resid_out",
];

/// The six linear maps of a block, in parameter order.
pub const BLOCK_MAPS: [&str; 6] = ["q", "k", "v", "o", "up", "down"];

/// The transformer's shape, base initialisation and which maps carry adapters (`[transformer]` in a study file; a
/// study sets `vocab` and `seq_len` from its task and the width per run, see [`TransformerConfig::with_width`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformerConfig {
    /// Input and output dimension (default 16, independent of width).
    pub vocab: usize,
    /// Sequence length T (default 8): a batch has B·T rows.
    pub seq_len: usize,
    /// Number of blocks (default 2).
    pub blocks: usize,
    /// Attention heads (default 4).
    pub heads: usize,
    /// Size of each head (default 8); the width is n = heads · head_dim.
    pub head_dim: usize,
    /// Which factor of n = heads · head_dim grows with the width (default `heads`: more heads of fixed size).
    pub width_mode: WidthMode,
    /// The MLP's hidden size as a multiple of n (default 4: n → 4n → n).
    pub mlp_ratio: usize,
    /// Whether position t attends only to positions ≤ t (default true).
    pub causal: bool,
    /// Attention logit multiplier (default standard, 1/√head_dim).
    pub logit_scale: LogitScale,
    /// Readout scale (default μP, as the MLP).
    pub readout: Readout,
    /// Maps carrying the adapter: any of `q`, `k`, `v`, `o`, `up`, `down` (in every block), `block.K.q` … (in block K
    /// only), `embed`, `readout` (default `["q", "v"]`).
    pub adapt: Vec<String>,
}

impl Default for TransformerConfig {
    /// Two causal blocks of 4 heads × 8 (n = 32), MLP ratio 4, standard logits, μP readout, vocabulary 16, T = 8,
    /// adapters on q and v; the width grows by heads.
    fn default() -> Self {
        Self::new(4, 8)
    }
}

impl TransformerConfig {
    /// The default transformer with `heads` heads of size `head_dim`.
    pub fn new(heads: usize, head_dim: usize) -> Self {
        Self {
            vocab: 16,
            seq_len: 8,
            blocks: 2,
            heads,
            head_dim,
            width_mode: WidthMode::Heads,
            mlp_ratio: 4,
            causal: true,
            logit_scale: LogitScale::Standard,
            readout: Readout::Mup,
            adapt: vec!["q".into(), "v".into()],
        }
    }

    /// This transformer at width n: `heads` grows (n/head_dim heads of `head_dim`) or `head_dim` grows (`heads` heads
    /// of n/heads), as [`TransformerConfig::width_mode`] says; everything else is kept. Errors name the fixed factor.
    pub fn with_width(&self, width: usize) -> Result<Self> {
        let fixed = match self.width_mode {
            WidthMode::Heads => self.head_dim,
            WidthMode::HeadDim => self.heads,
        };
        let shape = Self::at_width(width, self.width_mode, fixed)?;
        Ok(Self {
            heads: shape.heads,
            head_dim: shape.head_dim,
            ..self.clone()
        })
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
        let mut cfg = match mode {
            WidthMode::Heads => Self::new(width / fixed, fixed),
            WidthMode::HeadDim => Self::new(fixed, width / fixed),
        };
        cfg.width_mode = mode;
        Ok(cfg)
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
            ("mlp_ratio", self.mlp_ratio),
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

    /// Whether the map called `name` carries the adapter.
    pub fn is_adapted(&self, name: &str) -> bool {
        self.adapt.iter().any(|a| {
            a == name
                || (BLOCK_MAPS.contains(&a.as_str())
                    && name.starts_with("block.")
                    && name.rsplit('.').next() == Some(a.as_str()))
        })
    }

    /// Shape (d_out, d_in) of the map called `name`.
    pub fn shape(&self, name: &str) -> (usize, usize) {
        let n = self.width();
        match name {
            "embed" => (n, self.vocab),
            "readout" => (self.vocab, n),
            _ => match name.rsplit('.').next() {
                Some("up") => (self.mlp_ratio * n, n),
                Some("down") => (n, self.mlp_ratio * n),
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
        let mut maps = self.attach(&names, base, adapter, seed)?;
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

    /// Attaches `adapter` to the base weights of the maps `names` (checking each weight's shape), in order.
    fn attach<T: Scalar>(
        &self,
        names: &[String],
        base: Vec<Array2<T>>,
        adapter: &AdapterConfig,
        seed: u64,
    ) -> Result<Vec<Linear<T>>> {
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
        Ok(maps)
    }
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
    /// $W_{up}$ ($kn\times n$, k = `mlp_ratio`).
    pub up: Linear<T>,
    /// $W_{down}$ ($n\times kn$).
    pub down: Linear<T>,
    /// The attention's shape.
    pub attention: AttentionSpec,
}

/// What [`Block::attention_forward`] keeps: every intermediate of the attention sublayer, each computed once.
pub struct AttentionCache<T: Scalar> {
    /// $a = \mathrm{LN}(h)$, the input of Q, K, V.
    pub ln: Normalized<T>,
    /// $Q = aW_Q^\top$ (the output of `q`).
    pub q: Array2<T>,
    /// $K = aW_K^\top$ (the output of `k`).
    pub k: Array2<T>,
    /// $V = aW_V^\top$ (the output of `v`).
    pub v: Array2<T>,
    /// The heads' outputs $C$ (input of O), probabilities and logits.
    pub attended: Attended<T>,
    /// $C\,W_O^\top$, the output of `o` and of the sublayer (what the residual adds).
    pub out: Array2<T>,
    /// What the forward of q, k, v, o (in that order) kept for their backward ([`Kept`]: DoRA's ratio and
    /// pre-scaling output, full fine-tuning's merged weight), so that the backward recomputes no forward product.
    pub kept: [Option<Kept<T>>; 4],
}

/// What [`Block::feed_forward`] keeps.
pub struct FeedForwardCache<T: Scalar> {
    /// $a = \mathrm{LN}(h)$, the input of Up.
    pub ln: Normalized<T>,
    /// $z = aW_{up}^\top$ (the output of `up`).
    pub z: Array2<T>,
    /// $\mathrm{GELU}(z)$ (`gelu.act`, the input of Down) and $\Phi(z)$.
    pub gelu: Gelu<T>,
    /// $\mathrm{GELU}(z)\,W_{down}^\top$, the output of `down` and of the sublayer.
    pub out: Array2<T>,
    /// What the forward of up and down (in that order) kept for their backward ([`Kept`]).
    pub kept: [Option<Kept<T>>; 2],
}

/// What [`Block::forward`] keeps.
pub struct BlockCache<T: Scalar> {
    /// The attention sublayer's cache.
    pub attention: AttentionCache<T>,
    /// The residual stream after attention, $h' = h + F_{attn}(h)$ (the input of the feed-forward sublayer).
    pub resid_mid: Array2<T>,
    /// The feed-forward sublayer's cache.
    pub feed_forward: FeedForwardCache<T>,
    /// The block's output, $h'' = h' + F_{ff}(h')$.
    pub resid_out: Array2<T>,
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

    /// The attention sublayer without its residual, $\mathrm{Attn}(\mathrm{LN}(h))\,W_O^\top$, kept in the cache
    /// (`out`); one GEMM per map over all rows, [`attention`] batched over sequences and heads.
    pub fn attention_cached(&self, h: ArrayView2<'_, T>, u: T) -> AttentionCache<T> {
        let ln = layer_norm(h);
        let (q, kept_q) = self.q.forward_kept(ln.y.view(), None, u);
        let (k, kept_k) = self.k.forward_kept(ln.y.view(), None, u);
        let (v, kept_v) = self.v.forward_kept(ln.y.view(), None, u);
        let attended = attention(q.view(), k.view(), v.view(), &self.attention);
        let (out, kept_o) = self.o.forward_kept(attended.ctx.view(), None, u);
        AttentionCache {
            ln,
            q,
            k,
            v,
            attended,
            out,
            kept: [kept_q, kept_k, kept_v, kept_o],
        }
    }

    /// [`Block::attention_cached`] returning a copy of its output beside the cache.
    pub fn attention_forward(&self, h: ArrayView2<'_, T>, u: T) -> (Array2<T>, AttentionCache<T>) {
        let cache = self.attention_cached(h, u);
        (cache.out.clone(), cache)
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
        with_input(self.attention_grads(cache, g, u, true))
    }

    /// [`Block::attention_backward`]'s parameter gradients and, when `input` is true, $\partial h$: without it the
    /// three input products $\partial Q\,W_Q + \partial K\,W_K + \partial V\,W_V$ and the LayerNorm backward are
    /// skipped (and everything below O when q, k, v are frozen). The parameter gradients are bit for bit the same.
    pub fn attention_grads(
        &self,
        cache: &AttentionCache<T>,
        g: ArrayView2<'_, T>,
        u: T,
        input: bool,
    ) -> (Vec<ArrayD<T>>, Option<Array2<T>>) {
        let qkv_train = any_trainable(&[&self.q, &self.k, &self.v]);
        let [kept_q, kept_k, kept_v, kept_o] = cache.kept.each_ref().map(Option::as_ref);
        let (o_grads, g_ctx) =
            self.o
                .grads_kept(cache.attended.ctx.view(), g, u, input || qkv_train, kept_o);
        let Some(g_ctx) = g_ctx else {
            return (o_grads, None);
        };
        let ag = attention_backward(
            cache.q.view(),
            cache.k.view(),
            cache.v.view(),
            &cache.attended.probs,
            g_ctx.view(),
            &self.attention,
        );
        drop(g_ctx);
        let a = cache.ln.y.view();
        let (mut grads, mut ga) = self.q.grads_kept(a, ag.q.view(), u, input, kept_q);
        for (map, g_out, kept) in [(&self.k, &ag.k, kept_k), (&self.v, &ag.v, kept_v)] {
            let (map_grads, ga_map) = map.grads_kept(a, g_out.view(), u, input, kept);
            if let (Some(ga), Some(ga_map)) = (&mut ga, ga_map) {
                *ga += &ga_map;
            }
            grads.extend(map_grads);
        }
        grads.extend(o_grads);
        if let Some(ga) = &mut ga {
            layer_norm_backward_in_place(&cache.ln, ga);
        }
        (grads, ga)
    }

    /// The feed-forward sublayer without its residual, $\mathrm{GELU}(\mathrm{LN}(h)\,W_{up}^\top)\,W_{down}^\top$,
    /// kept in the cache (`out`).
    pub fn feed_forward_cached(&self, h: ArrayView2<'_, T>, u: T) -> FeedForwardCache<T> {
        let ln = layer_norm(h);
        let (z, kept_up) = self.up.forward_kept(ln.y.view(), None, u);
        let gelu = gelu(z.view());
        let (out, kept_down) = self.down.forward_kept(gelu.act.view(), None, u);
        FeedForwardCache {
            ln,
            z,
            gelu,
            out,
            kept: [kept_up, kept_down],
        }
    }

    /// [`Block::feed_forward_cached`] returning a copy of its output beside the cache.
    pub fn feed_forward(&self, h: ArrayView2<'_, T>, u: T) -> (Array2<T>, FeedForwardCache<T>) {
        let cache = self.feed_forward_cached(h, u);
        (cache.out.clone(), cache)
    }

    /// The feed-forward sublayer's backward pass: parameter gradients of up, down (in that order) and $\partial h$,
    /// through Down, [`gelu_backward`], Up and [`layer_norm_backward`].
    pub fn feed_forward_backward(
        &self,
        cache: &FeedForwardCache<T>,
        g: ArrayView2<'_, T>,
        u: T,
    ) -> (Vec<ArrayD<T>>, Array2<T>) {
        with_input(self.feed_forward_grads(cache, g, u, true))
    }

    /// [`Block::feed_forward_backward`]'s parameter gradients and, when `input` is true, $\partial h$ (without it,
    /// Up's input product and the LayerNorm backward are skipped, and everything below Down when Up is frozen). The
    /// parameter gradients are bit for bit the same.
    pub fn feed_forward_grads(
        &self,
        cache: &FeedForwardCache<T>,
        g: ArrayView2<'_, T>,
        u: T,
        input: bool,
    ) -> (Vec<ArrayD<T>>, Option<Array2<T>>) {
        let below = input || self.up.is_trainable();
        let [kept_up, kept_down] = cache.kept.each_ref().map(Option::as_ref);
        let (down_grads, g_act) =
            self.down
                .grads_kept(cache.gelu.act.view(), g, u, below, kept_down);
        let Some(g_act) = g_act else {
            return (down_grads, None);
        };
        let gz = gelu_backward(cache.z.view(), &cache.gelu, g_act);
        let (mut grads, mut ga) =
            self.up
                .grads_kept(cache.ln.y.view(), gz.view(), u, input, kept_up);
        drop(gz);
        grads.extend(down_grads);
        if let Some(ga) = &mut ga {
            layer_norm_backward_in_place(&cache.ln, ga);
        }
        (grads, ga)
    }

    /// The block, every intermediate kept: $h' = h + F_{attn}(h)$, $h'' = h' + F_{ff}(h')$.
    pub fn forward_cached(&self, h: ArrayView2<'_, T>, u: T) -> BlockCache<T> {
        let attention = self.attention_cached(h, u);
        let resid_mid = &attention.out + &h;
        let feed_forward = self.feed_forward_cached(resid_mid.view(), u);
        let resid_out = &feed_forward.out + &resid_mid;
        BlockCache {
            attention,
            resid_mid,
            feed_forward,
            resid_out,
        }
    }

    /// [`Block::forward_cached`] returning a copy of the block's output $h''$ beside the cache.
    pub fn forward(&self, h: ArrayView2<'_, T>, u: T) -> (Array2<T>, BlockCache<T>) {
        let cache = self.forward_cached(h, u);
        (cache.resid_out.clone(), cache)
    }

    /// The block's backward pass: parameter gradients in [`BLOCK_MAPS`] order and $\partial h$. Each residual adds
    /// the identity's share: $\partial h' = g + J_{ff}^\top g$, $\partial h = \partial h' + J_{attn}^\top\,\partial h'$.
    pub fn backward(
        &self,
        cache: &BlockCache<T>,
        g: ArrayView2<'_, T>,
        u: T,
    ) -> (Vec<ArrayD<T>>, Array2<T>) {
        with_input(self.grads(cache, g, u, true))
    }

    /// [`Block::backward`]'s parameter gradients and, when `input` is true, $\partial h$: the lowest block of a
    /// network whose embedding is frozen skips what only $\partial h$ needs ([`Block::attention_grads`],
    /// [`Block::feed_forward_grads`]), as autograd does for an input that requires no gradient. The parameter
    /// gradients are bit for bit the same either way.
    pub fn grads(
        &self,
        cache: &BlockCache<T>,
        g: ArrayView2<'_, T>,
        u: T,
        input: bool,
    ) -> (Vec<ArrayD<T>>, Option<Array2<T>>) {
        let attention_trains = any_trainable(&[&self.q, &self.k, &self.v, &self.o]);
        let ff_input = input || attention_trains;
        let (ff_grads, g1) = self.feed_forward_grads(&cache.feed_forward, g, u, ff_input);
        let Some(mut g1) = g1 else {
            return (ff_grads, None);
        };
        g1 += &g;
        let (mut grads, gh) = self.attention_grads(&cache.attention, g1.view(), u, input);
        let gh = gh.map(|mut gh| {
            gh += &g1;
            gh
        });
        grads.extend(ff_grads);
        (grads, gh)
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

impl<T: Scalar> BlockCache<T> {
    /// The six maps' outputs in [`BLOCK_MAPS`] order: $Q, K, V$, $CW_O^\top$, $z$, $\mathrm{GELU}(z)W_{down}^\top$.
    pub fn map_outputs(&self) -> [&Array2<T>; 6] {
        let (a, f) = (&self.attention, &self.feed_forward);
        [&a.q, &a.k, &a.v, &a.out, &f.z, &f.out]
    }

    /// What a μP coordinate check of the block looks at, named `block.{index}.{what}` (see
    /// [`Transformer::block_activations`]).
    pub fn activations(&self, index: usize) -> Vec<(String, &Array2<T>)> {
        let a = &self.attention;
        let arrays = [
            &a.attended.logits,
            &a.attended.ctx,
            &a.out,
            &self.resid_mid,
            &self.feed_forward.out,
            &self.resid_out,
        ];
        BLOCK_ACTIVATIONS
            .iter()
            .zip(arrays)
            .map(|(what, m)| (format!("block.{index}.{what}"), m))
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

/// What [`Transformer`]'s forward pass keeps: every map's input and output and the residual stream, each computed
/// once (see [`Transformer::map_outputs`] and [`Transformer::block_activations`]).
pub struct TransformerCache<T: Scalar> {
    /// The input (input of `embed`).
    pub x: Array2<T>,
    /// $h_0 = XW_E^\top$, the output of `embed` and the input of block 0.
    pub embed_out: Array2<T>,
    /// Each block's cache (block $K$'s `resid_out` is block $K+1$'s input).
    pub blocks: Vec<BlockCache<T>>,
    /// The final LayerNorm (its output is the readout's input).
    pub final_ln: Normalized<T>,
    /// $f = \mathrm{LN}(h_L)W_R^\top$, the output of `readout` (a copy of the model output).
    pub out: Array2<T>,
    /// What the forward of `embed` and `readout` (in that order) kept for their backward ([`Kept`]).
    pub kept: [Option<Kept<T>>; 2],
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

    /// Every linear map's output on the batch of `cache`, in [`Transformer::names`] order (the order of
    /// [`TransformerConfig::layer_names`] and of [`crate::models::Inspect::taps`]): `embed` ($h_0$), per block
    /// `q`, `k`, `v` ($Q, K, V$), `o` ($CW_O^\top$), `up` ($z$), `down`, then `readout` (the model output). Nothing
    /// is recomputed: these are the forward pass's own arrays.
    pub fn map_outputs<'a>(&self, cache: &'a TransformerCache<T>) -> Vec<&'a Array2<T>> {
        std::iter::once(&cache.embed_out)
            .chain(cache.blocks.iter().flat_map(|b| b.map_outputs()))
            .chain(std::iter::once(&cache.out))
            .collect()
    }

    /// What a μP coordinate check of a transformer shows, per block K in forward order, from the cache:
    /// - `block.K.attn_logits`: the pre-softmax scores $\tau\,Q_{sj}K_{sj}^\top$, $(B\cdot H\cdot T)\times T$, row
    ///   $(sH + j)T + t$ for query $t$ of head $j$ of sequence $s$; masked entries ($t' > t$ when causal) are 0,
    ///   so a statistic over them should take only the $t' \le t$ entries;
    /// - `block.K.attn_ctx`: the heads' outputs $C = PV$ side by side, before $W_O$ (the input of `o`);
    /// - `block.K.attn_out`: the attention sublayer's output $CW_O^\top$, after $W_O$ (the output of `o`);
    /// - `block.K.resid_mid`: the residual stream after attention, $h' = h + CW_O^\top$;
    /// - `block.K.mlp_out`: the MLP sublayer's output $\mathrm{GELU}(z)W_{down}^\top$ (the output of `down`);
    /// - `block.K.resid_out`: the residual stream after the MLP, $h'' = h' + \mathrm{GELU}(z)W_{down}^\top$, the
    ///   block's output.
    ///
    /// All but the logits are $(B\cdot T)\times n$ with rows as tokens.
    pub fn block_activations<'a>(
        &self,
        cache: &'a TransformerCache<T>,
    ) -> Vec<(String, &'a Array2<T>)> {
        cache
            .blocks
            .iter()
            .enumerate()
            .flat_map(|(k, b)| b.activations(k))
            .collect()
    }
}

impl<T: Scalar> Model<T> for Transformer<T> {
    type Cache = TransformerCache<T>;

    /// The output $(B\cdot T)\times\text{vocab}$ for $X \in \mathbb R^{(B\cdot T)\times\text{vocab}}$.
    ///
    /// # Panics
    /// If X has other than `vocab` columns or its rows are not whole sequences.
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
        let (embed_out, kept_embed) = self.embed.forward_kept(x.view(), None, u);
        let mut blocks: Vec<BlockCache<T>> = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let h = blocks.last().map_or(&embed_out, |c| &c.resid_out);
            let cache = block.forward_cached(h.view(), u);
            blocks.push(cache);
        }
        let h = blocks.last().map_or(&embed_out, |c| &c.resid_out);
        let final_ln = layer_norm(h.view());
        let (out, kept_readout) = self.readout.forward_kept(final_ln.y.view(), None, u);
        let cache = TransformerCache {
            x: x.clone(),
            embed_out,
            blocks,
            final_ln,
            out: out.clone(),
            kept: [kept_embed, kept_readout],
        };
        (out, cache)
    }

    /// Readout, final [`layer_norm_backward`], each [`Block::backward`] from the last, then the embedding.
    fn backward(&self, cache: &TransformerCache<T>, g: &Array2<T>, u: T) -> Vec<ArrayD<T>> {
        let [kept_embed, kept_readout] = cache.kept.each_ref().map(Option::as_ref);
        let (readout_grads, gh) =
            self.readout
                .grads_kept(cache.final_ln.y.view(), g.view(), u, true, kept_readout);
        let mut gh = gh.expect("the input gradient was asked for");
        layer_norm_backward_in_place(&cache.final_ln, &mut gh);
        // Block i needs its input gradient only when something below it trains.
        let mut below_trains: Vec<bool> = Vec::with_capacity(self.blocks.len());
        let mut trains = self.embed.is_trainable();
        for block in &self.blocks {
            below_trains.push(trains);
            trains |= any_trainable(&block.maps());
        }
        let mut block_grads = Vec::with_capacity(self.blocks.len());
        let mut gh = Some(gh);
        for ((block, bc), &input) in self
            .blocks
            .iter()
            .zip(&cache.blocks)
            .zip(&below_trains)
            .rev()
        {
            let Some(g) = gh else { break };
            let (grads, g_in) = block.grads(bc, g.view(), u, input);
            block_grads.push(grads);
            gh = g_in;
        }
        let embed_grads = match gh {
            Some(gh) => {
                let grads = self
                    .embed
                    .grads_kept(cache.x.view(), gh.view(), u, false, kept_embed);
                grads.0
            }
            None => Vec::new(),
        };
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
