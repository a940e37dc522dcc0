//! One adapted linear layer: a frozen base $W_0$, a factored update, the multiplier $c = s\,u$, and for DoRA the
//! magnitude vector.
//!
//! Plain adapters (full, LoRA, SingLoRA):
//! $$Y = XW_0^\top + c\,X\widetilde{\Delta W}^\top,\qquad c = s\,u,$$
//! so the scale never touches the base (bug B13 is impossible by construction). Full fine-tuning computes it as
//! $Y = X(W_0 + cD)^\top$ and $\partial X = G(W_0 + cD)$, one product each instead of two (the merged weight lives
//! for one forward–backward pair, in a buffer the layer reuses); at $D = 0$ the merged weight is $W_0$ exactly.
//!
//! DoRA (PEFT, `src/peft/tuners/lora/dora.py`), around any update: $V = W_0 + c\widetilde{\Delta W}$,
//! $\nu_i = \max(\lVert V_{i,:}\rVert_2, \varepsilon)$, $k = \omega/\nu$,
//! $$Y = (k - 1)\odot(XW_0^\top) + k\odot c\,X\widetilde{\Delta W}^\top + XW_0^\top = X\,(\mathrm{diag}(k)V)^\top.$$
//! The first form is PEFT's and is what we compute: at initialisation $\omega = \nu$ so $k = 1$ exactly and the layer
//! reproduces the base bit for bit. $V$ is never formed in a forward or backward pass: the row norms come from the
//! precomputed $\lVert W_{0,i}\rVert^2$, the cross term and the low-rank Gram ([`RowTerms`]),
//! $\lVert V_i\rVert^2 = \lVert W_{0,i}\rVert^2 + 2c\langle W_{0,i}, \widetilde{\Delta W}_i\rangle +
//! c^2\lVert\widetilde{\Delta W}_i\rVert^2$, the magnitude's gradient from $P = XV^\top = XW_0^\top +
//! c\,X\widetilde{\Delta W}^\top$ kept by the forward ([`Kept`]), and the full norm's projection term from
//! [`Update::grad_rows`].

use std::sync::{Arc, Mutex, OnceLock};

use ndarray::{Array1, Array2, ArrayD, ArrayView2, ArrayViewD, ArrayViewMutD};

use super::config::{AdapterConfig, DoraNorm, Init, Method};
use super::full::Dense;
use super::lora::LowRank;
use super::singlora::Symmetric;
use super::update::{row_dots, row_norms_sq, ParamInfo, Role, RowTerms, Update};
use crate::error::Result;
use crate::linalg::{mm_nt, scale_rows};
use crate::rng::{normal_matrix, uniform_matrix, SeedRng};
use crate::scalar::{for_each_part, part_len, Scalar};

/// Gradients of one backward pass: every trainable tensor (in [`AdaptedLinear::param_info`] order) and the input.
pub struct LayerGrads<T: Scalar> {
    /// $\partial L/\partial\theta$ per trainable tensor, in logical shape.
    pub params: Vec<ArrayD<T>>,
    /// $\partial L/\partial X$ ($b\times d_{in}$).
    pub x: Array2<T>,
}

/// A frozen base weight plus a trainable adapter.
pub struct AdaptedLinear<T: Scalar> {
    /// The frozen base $W_0 \in \mathbb R^{d_{out}\times d_{in}}$.
    pub w0: Array2<T>,
    /// The factored update $\widetilde{\Delta W}$.
    pub update: Box<dyn Update<T>>,
    /// DoRA's magnitude $\omega \in \mathbb R^{d_{out}}$ (`lora_magnitude_vector`), if any.
    pub magnitude: Option<Array1<T>>,
    /// The multiplier $s$ (α/r or α/√r, times $n^{-\gamma}$; 1 for full fine-tuning).
    pub scale: f64,
    /// The configuration this layer was built from.
    pub config: AdapterConfig,
    /// $\lVert W_{0,i}\rVert^2$ per row (DoRA's norms; computed on first use, $W_0$ being frozen).
    w0_sq: OnceLock<Array1<T>>,
    /// Full fine-tuning's merged weight $W_0 + cD$, reused from step to step (see [`AdaptedLinear::forward_kept`]).
    merged: Mutex<Option<Arc<Array2<T>>>>,
}

/// DoRA's state at one ramp value: the [`RowTerms`], the floored row norms $\nu$ of $V = W_0 + c\widetilde{\Delta W}$,
/// the ratio $k = \omega/\nu$, and which rows sit on the floor.
pub struct DoraRatio<T: Scalar> {
    /// The row terms of the update against $W_0$.
    pub terms: RowTerms<T>,
    /// $\nu_i = \max(\lVert V_i\rVert, \varepsilon)$.
    pub nu: Array1<T>,
    /// $k = \omega/\nu$.
    pub k: Array1<T>,
    /// Rows whose norm is below ε (or NaN).
    pub floored: Vec<bool>,
}

/// What a layer's forward pass keeps for its backward, so that the backward recomputes no product of the forward.
///
/// (One value per layer and step, moved from the forward to the backward: boxing the larger variant would only add an
/// allocation to the step loop.)
#[allow(clippy::large_enum_variant)]
pub enum Kept<T: Scalar> {
    /// DoRA: its [`DoraRatio`] and $P = XV^\top = XW_0^\top + c\,X\widetilde{\Delta W}^\top$, the output before the
    /// magnitude scaling (what $\partial\omega$ needs).
    Dora {
        /// The row norms and ratio of the forward.
        ratio: DoraRatio<T>,
        /// $P = XW_0^\top + c\,X\widetilde{\Delta W}^\top$.
        p: Array2<T>,
    },
    /// Full fine-tuning: the merged weight $W = W_0 + cD$ the forward multiplied by, which $\partial X = GW$ reuses.
    Merged(Arc<Array2<T>>),
}

impl<T: Scalar> AdaptedLinear<T> {
    /// Builds the adapter of `config` on the frozen base `w0`, initialising its factors from `seed`.
    ///
    /// Random streams are named per tensor (`"lora_A"`, `"lora_B"`, `"singlora_A"`), so the same seed gives the same
    /// A whatever the method around it.
    pub fn new(w0: Array2<T>, config: &AdapterConfig, seed: u64) -> Result<Self> {
        let (d_out, d_in) = w0.dim();
        config.validate(d_in, d_out)?;
        let n = config.knob_width(d_in, d_out) as f64;
        let r = config.rank;
        let init = config.effective_init();
        let update: Box<dyn Update<T>> = match config.method {
            Method::Full => Box::new(Dense::zeros(d_in, d_out)),
            Method::Lora | Method::Dora => {
                let a = draw(
                    init,
                    r,
                    d_in,
                    &mut SeedRng::new(seed, "lora_A"),
                    FanInfo {
                        fan_in: d_in,
                        rank: r,
                        m: d_in.max(d_out),
                        n,
                    },
                );
                let b = draw(
                    config.init_b,
                    d_out,
                    r,
                    &mut SeedRng::new(seed, "lora_B"),
                    FanInfo {
                        fan_in: r,
                        rank: r,
                        m: d_in.max(d_out),
                        n,
                    },
                );
                Box::new(LowRank::new(a, b))
            }
            Method::Singlora | Method::SingloraDora => {
                let m = d_in.max(d_out);
                let a = draw(
                    init,
                    m,
                    r,
                    &mut SeedRng::new(seed, "singlora_A"),
                    FanInfo {
                        fan_in: r,
                        rank: r,
                        m,
                        n,
                    },
                );
                Box::new(Symmetric::new(a, d_in, d_out).with_ratio(T::of(config.role_ratio)))
            }
        };
        Ok(Self::from_parts(w0, update, config.clone()))
    }

    /// Assembles a layer from an explicit update (for user-defined updates). DoRA's magnitude, if the method has
    /// one, is initialised to the row norms of $W_0 + s\,u(0)\widetilde{\Delta W}$ with the ramp at step 0, exactly
    /// as PEFT initialises it from the current weight.
    pub fn from_parts(w0: Array2<T>, update: Box<dyn Update<T>>, config: AdapterConfig) -> Self {
        assert_eq!(
            w0.dim(),
            (update.d_out(), update.d_in()),
            "base weight and update shapes differ"
        );
        let scale = config.scale(update.d_in(), update.d_out());
        let mut layer = Self {
            w0,
            update,
            magnitude: None,
            scale,
            config,
            w0_sq: OnceLock::new(),
            merged: Mutex::new(None),
        };
        if layer.config.method.has_magnitude() {
            layer.reset_magnitude(T::of(layer.config.ramp.u(0)));
        }
        layer
    }

    /// Sets DoRA's magnitude to the row norms of the current weight at ramp value `u`, $\omega = \nu(u)$, so that
    /// the layer at `u` equals $W_0 + c\,\widetilde{\Delta W}$ exactly (a no-op when the update is zero). No effect
    /// on layers without a magnitude.
    pub fn reset_magnitude(&mut self, u: T) {
        if self.magnitude.is_some() || self.config.method.has_magnitude() {
            self.magnitude = Some(self.row_norms_sq(u).0.mapv(|v| v.sqrt()));
        }
    }

    /// $d_{in}$.
    pub fn d_in(&self) -> usize {
        self.w0.ncols()
    }

    /// $d_{out}$.
    pub fn d_out(&self) -> usize {
        self.w0.nrows()
    }

    /// The multiplier $c = s\,u$ at ramp value `u`.
    pub fn c(&self, u: T) -> T {
        T::of(self.scale) * u
    }

    /// The base output $XW_0^\top$.
    pub fn base_forward(&self, x: ArrayView2<'_, T>) -> Array2<T> {
        mm_nt(x, self.w0.view())
    }

    /// $V = W_0 + c\,\widetilde{\Delta W}$ (dense; DoRA's direction before normalisation).
    fn direction(&self, u: T) -> Array2<T> {
        let mut v = self.update.delta_w();
        let c = self.c(u);
        v.zip_mut_with(&self.w0, |d, &w| *d = merged_entry(w, c, *d));
        v
    }

    /// $\lVert V_i\rVert^2$ for $V = W_0 + c\widetilde{\Delta W}$ at ramp value `u`, from $\lVert W_{0,i}\rVert^2$
    /// and the update's factored [`RowTerms`] (which are returned too): never a dense $V$.
    fn row_norms_sq(&self, u: T) -> (Array1<T>, RowTerms<T>) {
        let w0_sq = self
            .w0_sq
            .get_or_init(|| row_dots(self.w0.view(), self.w0.view()));
        let terms = self.update.row_terms(self.w0.view());
        (row_norms_sq(w0_sq.view(), &terms, self.c(u)), terms)
    }

    /// DoRA's [`DoraRatio`] for magnitude `omega` at ramp value `u`.
    fn dora_ratio(&self, omega: &Array1<T>, u: T) -> DoraRatio<T> {
        let (sq, terms) = self.row_norms_sq(u);
        let eps = T::of(self.config.dora_eps);
        let raw = sq.mapv(|v| v.sqrt());
        // Below the floor, or NaN (which the floor replaces too).
        let floored: Vec<bool> = raw
            .iter()
            .map(|x| matches!(x.partial_cmp(&eps), None | Some(std::cmp::Ordering::Less)))
            .collect();
        let nu = raw.mapv(|x| if x >= eps { x } else { eps });
        let k = omega / &nu;
        DoraRatio {
            terms,
            nu,
            k,
            floored,
        }
    }

    /// The forward pass on a batch $X \in \mathbb R^{b\times d_{in}}$ at ramp value `u`, in factored form.
    #[track_caller]
    pub fn forward(&self, x: ArrayView2<'_, T>, u: T) -> Array2<T> {
        self.forward_kept(x, None, u).0
    }

    /// The forward pass given the base product `base` $= XW_0^\top$ (which a full-batch run computes once): bit for
    /// bit [`AdaptedLinear::forward`].
    #[track_caller]
    pub fn forward_on_base(&self, x: ArrayView2<'_, T>, base: Array2<T>, u: T) -> Array2<T> {
        self.forward_kept(x, Some(base), u).0
    }

    /// [`AdaptedLinear::forward`] (given the base product `base` $= XW_0^\top$ if it is known) and what the backward
    /// reuses ([`Kept`]; DoRA and full fine-tuning). Full fine-tuning multiplies by the merged $W = W_0 + cD$, one
    /// product instead of two, and so ignores `base` (except as the output's storage): the result does not depend on
    /// whether `base` was given.
    #[track_caller]
    pub fn forward_kept(
        &self,
        x: ArrayView2<'_, T>,
        base: Option<Array2<T>>,
        u: T,
    ) -> (Array2<T>, Option<Kept<T>>) {
        self.check_input(x, "forward");
        if let Some(b) = &base {
            assert_eq!(
                b.dim(),
                (x.nrows(), self.d_out()),
                "forward: the base product is {:?}, need {}x{}",
                b.dim(),
                x.nrows(),
                self.d_out()
            );
        }
        let c = self.c(u);
        if self.update.dense().is_some() {
            let w = self.merged_buffer(c);
            let y = match base {
                // The base's storage, overwritten (the product reads none of it).
                Some(mut y) => {
                    T::gemm(T::one(), x, w.t(), false, y.view_mut());
                    y
                }
                None => crate::linalg::mm(x, w.t()),
            };
            return (y, Some(Kept::Merged(w)));
        }
        let mut base = base.unwrap_or_else(|| self.base_forward(x));
        let Some(omega) = &self.magnitude else {
            self.update.apply_acc(x, c, base.view_mut());
            return (base, None);
        };
        let (y, kept) = self.dora_forward(x, base, self.dora_ratio(omega, u), c);
        (y, Some(kept))
    }

    /// DoRA's forward from the base product: PEFT's $(k - 1)\odot b + k\odot d + b$ with $d = c\,X\widetilde{\Delta
    /// W}^\top$, and $P = b + d$ for the backward, in one pass over the output (no temporary of its size).
    fn dora_forward(
        &self,
        x: ArrayView2<'_, T>,
        base: Array2<T>,
        ratio: DoraRatio<T>,
        c: T,
    ) -> (Array2<T>, Kept<T>) {
        let mut y = standard(self.update.apply(x));
        let mut base = standard(base);
        let k = ratio.k.as_slice().expect("k is contiguous");
        let (ys, bs) = (y.as_slice_mut(), base.as_slice_mut());
        dora_rows(
            ys.expect("standard layout"),
            bs.expect("standard layout"),
            k,
            c,
        );
        (y, Kept::Dora { ratio, p: base })
    }

    /// The merged weight $W_0 + cD$ of full fine-tuning, written into the layer's buffer when no earlier forward pass
    /// still holds it (so steady training allocates no $d_{out}\times d_{in}$ matrix per step).
    fn merged_buffer(&self, c: T) -> Arc<Array2<T>> {
        let d = self
            .update
            .dense()
            .expect("full fine-tuning has a dense update");
        let mut slot = self.merged.lock().unwrap_or_else(|e| e.into_inner());
        let mut w = match slot.take() {
            Some(w) if Arc::strong_count(&w) == 1 && Arc::weak_count(&w) == 0 => w,
            _ => Arc::new(Array2::zeros(self.w0.raw_dim())),
        };
        let buf = Arc::get_mut(&mut w).expect("the buffer is not shared");
        match (buf.as_slice_mut(), self.w0.as_slice(), d.as_slice()) {
            (Some(m), Some(w0), Some(dv)) => {
                // Split over the product threads when large (a memory-bound pass of 3 × d_out·d_in elements).
                let len = part_len(m.len(), 1);
                let parts = m.chunks_mut(len).zip(w0.chunks(len)).zip(dv.chunks(len));
                for_each_part(parts, |((m, w0), dv)| merge_slices(m, w0, dv, c));
            }
            _ => ndarray::Zip::from(buf)
                .and(&self.w0)
                .and(d)
                .for_each(|m, &w0, &dv| *m = merged_entry(w0, c, dv)),
        }
        *slot = Some(Arc::clone(&w));
        w
    }

    #[track_caller]
    fn check_input(&self, x: ArrayView2<'_, T>, what: &str) {
        assert_eq!(
            x.ncols(),
            self.d_in(),
            "{what}: X has {} columns, layer has d_in = {}",
            x.ncols(),
            self.d_in()
        );
    }

    /// The backward pass: gradients of $L$ with respect to every trainable tensor and to $X$, given
    /// $G = \partial L/\partial Y$.
    ///
    /// Plain: $\partial\theta = c\cdot$ [`Update::grad`]$(X, G)$, $\partial X = GW_0 + c\,G\widetilde{\Delta W}$
    /// (full fine-tuning: $G(W_0 + cD)$ with the forward's merged weight).
    ///
    /// DoRA, with $P = XV^\top$, $q_i = \sum_b G_{bi}P_{bi} = \langle (G_W)_{i,:}, V_{i,:}\rangle$:
    /// $\partial\omega_i = q_i/\nu_i$; detached: $\partial V = \mathrm{diag}(k)G_W$, i.e. the plain backward with
    /// $G' = G\,\mathrm{diag}(k)$; full: additionally $-\mathrm{diag}(\omega_i q_i/\nu_i^3)\,V$ (zero on floored rows,
    /// where $\nu$ is the constant ε). $\partial X = G'W_0 + c\,G'\widetilde{\Delta W}$ in both cases.
    #[track_caller]
    pub fn backward(&self, x: ArrayView2<'_, T>, g: ArrayView2<'_, T>, u: T) -> LayerGrads<T> {
        let (params, gx) = self.grads(x, g, u, true);
        LayerGrads {
            params,
            x: gx.expect("the input gradient was asked for"),
        }
    }

    /// [`AdaptedLinear::backward`]'s parameter gradients and, when `input` is true, its $\partial L/\partial X$
    /// (the lowest trainable map of a network skips it: $GW_0$ is a full-size product nothing needs). The parameter
    /// gradients are bit for bit the same either way.
    #[track_caller]
    pub fn grads(
        &self,
        x: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
        u: T,
        input: bool,
    ) -> (Vec<ArrayD<T>>, Option<Array2<T>>) {
        self.grads_kept(x, g, u, input, None)
    }

    /// [`AdaptedLinear::grads`] given what the forward pass on `x` kept (`kept`, DoRA only; recomputed when `None`).
    #[track_caller]
    pub fn grads_kept(
        &self,
        x: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
        u: T,
        input: bool,
        kept: Option<&Kept<T>>,
    ) -> (Vec<ArrayD<T>>, Option<Array2<T>>) {
        self.check_input(x, "backward");
        assert_eq!(
            g.ncols(),
            self.d_out(),
            "backward: G has {} columns, layer has d_out = {}",
            g.ncols(),
            self.d_out()
        );
        assert_eq!(
            x.nrows(),
            g.nrows(),
            "backward: X and G have different batch sizes"
        );
        let c = self.c(u);
        let needs_kept = self.magnitude.is_some() || (input && self.update.dense().is_some());
        let recomputed;
        let kept = match kept {
            None if needs_kept => {
                recomputed = self.forward_kept(x, None, u).1;
                recomputed.as_ref()
            }
            kept => kept,
        };
        match (kept, &self.magnitude) {
            (Some(Kept::Dora { ratio, p }), Some(omega)) => {
                self.dora_grads(omega, (ratio, p), (x, g), c, input)
            }
            (Some(Kept::Merged(w)), None) if input => {
                let params = self.update.grad(x, g);
                (scaled_dyn(params, c), Some(crate::linalg::mm(g, w.view())))
            }
            (Some(Kept::Dora { .. }), None) | (None, Some(_)) => {
                panic!("backward: the kept forward state is not this layer's (DoRA and plain mixed up)")
            }
            _ => self.plain_grads((x, g), c, input),
        }
    }

    /// The plain branch of [`AdaptedLinear::grads_kept`]: $\partial\theta = c\cdot$ [`Update::grad`],
    /// $\partial X = GW_0 + c\,G\widetilde{\Delta W}$.
    fn plain_grads(
        &self,
        (x, g): (ArrayView2<'_, T>, ArrayView2<'_, T>),
        c: T,
        input: bool,
    ) -> (Vec<ArrayD<T>>, Option<Array2<T>>) {
        let (params, gx) = if input {
            let mut gx = crate::linalg::mm(g, self.w0.view());
            let p = self.update.grad_and_adjoint_acc(x, g, c, gx.view_mut());
            (p, Some(gx))
        } else {
            (self.update.grad(x, g), None)
        };
        (scaled_dyn(params, c), gx)
    }

    /// DoRA's branch of [`AdaptedLinear::grads_kept`], with $q_i = \sum_b G_{bi}P_{bi}$ and $G' = G\,\mathrm{diag}(k)$.
    fn dora_grads(
        &self,
        omega: &Array1<T>,
        (ratio, p): (&DoraRatio<T>, &Array2<T>),
        (x, g): (ArrayView2<'_, T>, ArrayView2<'_, T>),
        c: T,
        input: bool,
    ) -> (Vec<ArrayD<T>>, Option<Array2<T>>) {
        let DoraRatio {
            terms,
            nu,
            k,
            floored,
        } = ratio;
        let (q, g_prime) = magnitude_terms(g, p, k);
        let d_omega = &q / nu;
        // With the input gradient, the update's products shared between its factors' gradients and its adjoint
        // (G'B once, not twice): bit for bit the separate calls.
        let mut gx = input.then(|| crate::linalg::mm(g_prime.view(), self.w0.view()));
        let mut params = match &mut gx {
            Some(gx) => self
                .update
                .grad_and_adjoint_acc(x, g_prime.view(), c, gx.view_mut()),
            None => self.update.grad(x, g_prime.view()),
        };
        for p in &mut params {
            scale_in_place(p, c);
        }
        if self.config.dora_norm == DoraNorm::Full {
            let e = Array1::from_iter((0..self.d_out()).map(|i| {
                if floored[i] {
                    T::zero()
                } else {
                    -(omega[i] * q[i]) / (nu[i] * nu[i] * nu[i])
                }
            }));
            let extra = self.update.grad_rows(e.view(), self.w0.view(), c, terms);
            for (acc, extra) in params.iter_mut().zip(extra) {
                acc.scaled_add(c, &extra);
            }
        }
        let mut params: Vec<ArrayD<T>> = params.into_iter().map(|p| p.into_dyn()).collect();
        params.push(d_omega.into_dyn());
        (params, gx)
    }

    /// The effective update $W - W_0$ at ramp value `u`, materialised: $c\,\widetilde{\Delta W}$, or for DoRA
    /// $\mathrm{diag}(k)V - W_0$.
    pub fn delta_w(&self, u: T) -> Array2<T> {
        match &self.magnitude {
            None => self.update.delta_w() * self.c(u),
            Some(_) => self.merged_weight(u) - &self.w0,
        }
    }

    /// The merged weight $W = W_0 + c\,\widetilde{\Delta W}$ (DoRA: $\mathrm{diag}(\omega/\nu)V$) at ramp value `u`,
    /// so that `X·merged_weight(u)ᵀ` equals `forward(X, u)`. It never mutates the layer, so merging at one step and
    /// "unmerging" at another (bug B7) cannot happen.
    pub fn merged_weight(&self, u: T) -> Array2<T> {
        match &self.magnitude {
            None => self.direction(u),
            Some(omega) => {
                let k = self.dora_ratio(omega, u).k;
                scale_rows(k.view(), self.direction(u).view())
            }
        }
    }

    /// Draws every trainable tensor at random so that no gradient is trivially zero (LoRA's B ≠ 0, DoRA's
    /// magnitude ≠ the row norms): each 2-D factor entry $\sim \mathcal N(0, 1/\text{cols})$, then
    /// $\omega_i = \nu_i(u)\,(1 + \tfrac12 U(-1, 1))$.
    pub fn randomize(&mut self, seed: u64, u: T) {
        let infos = self.update.param_info();
        for (info, mut p) in infos.iter().zip(self.update.params_mut()) {
            let cols = *info.shape.last().unwrap_or(&1);
            let mut rng = SeedRng::new(seed, &format!("random.{}", info.name));
            let draw: Array2<T> =
                normal_matrix(&mut rng, p.len() / cols, cols, 1.0 / (cols as f64).sqrt());
            let dim = p.raw_dim();
            p.assign(&draw.into_shape_with_order(dim).expect("same size"));
        }
        if self.magnitude.is_some() {
            let nu = self.row_norms_sq(u).0.mapv(|v| v.sqrt());
            let mut rng = SeedRng::new(seed, "random.lora_magnitude_vector");
            self.magnitude = Some(nu.mapv(|x| x * T::of(1.0 + 0.5 * rng.uniform(1.0))));
        }
    }

    /// Names, roles and shapes of the trainable tensors (update factors, then the magnitude).
    pub fn param_info(&self) -> Vec<ParamInfo> {
        let mut info = self.update.param_info();
        if self.magnitude.is_some() {
            info.push(ParamInfo {
                name: Role::Magnitude.tensor_name(),
                role: Role::Magnitude,
                shape: vec![self.d_out()],
            });
        }
        info
    }

    /// The trainable tensors, read-only.
    pub fn params(&self) -> Vec<ArrayViewD<'_, T>> {
        let mut p = self.update.params();
        if let Some(m) = &self.magnitude {
            p.push(m.view().into_dyn());
        }
        p
    }

    /// The trainable tensors, mutable.
    pub fn params_mut(&mut self) -> Vec<ArrayViewMutD<'_, T>> {
        let mut p = self.update.params_mut();
        if let Some(m) = &mut self.magnitude {
            p.push(m.view_mut().into_dyn());
        }
        p
    }

    /// Number of trainable scalars: $r(d_{in}+d_{out})$ for LoRA, $r\max(d_{in},d_{out})$ for SingLoRA,
    /// $d_{in}d_{out}$ for full fine-tuning, plus $d_{out}$ for DoRA's magnitude.
    pub fn num_trainable(&self) -> usize {
        self.update.num_trainable() + self.magnitude.as_ref().map_or(0, |m| m.len())
    }
}

/// `a` in standard (row-major, contiguous) layout, copied only if it is not.
fn standard<T: Scalar>(a: Array2<T>) -> Array2<T> {
    if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned()
    }
}

/// DoRA's $q_i = \sum_b G_{bi}P_{bi}$ and $G' = G\,\mathrm{diag}(k)$, row by row over contiguous slices (so the
/// loops vectorise); $q$ sums the rows in order.
fn magnitude_terms<T: Scalar>(
    g: ArrayView2<'_, T>,
    p: &Array2<T>,
    k: &Array1<T>,
) -> (Array1<T>, Array2<T>) {
    let n = k.len();
    let (g, p) = (g.as_standard_layout(), p.as_standard_layout());
    let (gs, ps) = (
        g.as_slice().expect("standard"),
        p.as_slice().expect("standard"),
    );
    let k = k.as_slice().expect("k is contiguous");
    let mut q = vec![T::zero(); n];
    let mut g_prime = Array2::<T>::uninit(g.raw_dim());
    let gp = g_prime.as_slice_mut().expect("a fresh array");
    magnitude_rows(gs, ps, k, &mut q, gp);
    // SAFETY: `magnitude_rows` wrote every entry of `g_prime` (its slice covers the array; the lengths are asserted
    // and `g` has whole rows of `k.len()` entries, so the row loop reaches the end).
    (Array1::from_vec(q), unsafe { g_prime.assume_init() })
}

crate::scalar::widest_vectors! {
    /// The loop of [`magnitude_terms`] over row-major $G$, $P$ and $G'$ with rows of `k.len()` entries:
    /// `q[i] += G[b,i]·P[b,i]` row after row, `G'[b,i] = G[b,i]·k[i]`; compiled for the CPU's widest vectors
    /// (correctly rounded multiplies and adds, no fusion: the same bits on every path).
    ///
    /// # Panics
    /// If the lengths disagree.
    #[track_caller]
    fn magnitude_rows<T: Scalar>(
        g: &[T],
        p: &[T],
        k: &[T],
        q: &mut [T],
        g_prime: &mut [std::mem::MaybeUninit<T>],
    ) {
        assert!(
            g.len() == p.len() && g.len() == g_prime.len() && q.len() == k.len() && g.len().is_multiple_of(k.len().max(1)),
            "magnitude_rows: lengths differ"
        );
    } => magnitude_rows_loop
}

#[inline(always)]
fn magnitude_rows_loop<T: Scalar>(
    g: &[T],
    p: &[T],
    k: &[T],
    q: &mut [T],
    g_prime: &mut [std::mem::MaybeUninit<T>],
) {
    let n = k.len();
    let rows = g.chunks_exact(n).zip(p.chunks_exact(n));
    for ((gr, pr), gpr) in rows.zip(g_prime.chunks_exact_mut(n)) {
        for ((q, &gv), &pv) in q.iter_mut().zip(gr).zip(pr) {
            *q += gv * pv;
        }
        for ((gp, &gv), &kv) in gpr.iter_mut().zip(gr).zip(k) {
            *gp = std::mem::MaybeUninit::new(gv * kv);
        }
    }
}

crate::scalar::widest_vectors! {
    /// DoRA's output from the base product, row by row over rows of `k.len()` entries: with $d = c\,y$ (`y` holding
    /// $X\widetilde{\Delta W}^\top$) and $b$ the base, `y ← ((k − 1)·b + k·d) + b` (PEFT's form) and `base ← b + d`
    /// (the $P$ the backward keeps); compiled for the CPU's widest vectors, the same bits on every path.
    ///
    /// # Panics
    /// If the lengths disagree.
    #[track_caller]
    fn dora_rows<T: Scalar>(y: &mut [T], base: &mut [T], k: &[T], c: T) {
        assert!(
            y.len() == base.len() && y.len().is_multiple_of(k.len().max(1)),
            "dora_rows: lengths differ"
        );
    } => dora_rows_loop
}

#[inline(always)]
fn dora_rows_loop<T: Scalar>(y: &mut [T], base: &mut [T], k: &[T], c: T) {
    let n = k.len();
    for (yr, br) in y.chunks_exact_mut(n).zip(base.chunks_exact_mut(n)) {
        for ((yv, bv), &k) in yr.iter_mut().zip(br.iter_mut()).zip(k) {
            let (delta, b) = (*yv * c, *bv);
            *yv = ((k - T::one()) * b + k * delta) + b;
            *bv = b + delta;
        }
    }
}

/// One entry of $W_0 + c\,\widetilde{\Delta W}$: the one place this arithmetic is written, so full fine-tuning's
/// merged buffer ([`AdaptedLinear::forward_kept`]) and the probes' direction agree bit for bit.
#[inline(always)]
fn merged_entry<T: Scalar>(w0: T, c: T, delta: T) -> T {
    w0 + c * delta
}

crate::scalar::widest_vectors! {
    /// `m[i] = merged_entry(w0[i], c, d[i])` (full fine-tuning's $W_0 + cD$), compiled for the CPU's widest vectors
    /// (a multiply and an add, correctly rounded and not fused: the same bits on every path).
    ///
    /// # Panics
    /// If the lengths differ.
    #[track_caller]
    fn merge_slices<T: Scalar>(m: &mut [T], w0: &[T], d: &[T], c: T) {
        assert!(
            m.len() == w0.len() && m.len() == d.len(),
            "merge: lengths differ"
        );
    } => merge_slices_loop
}

#[inline(always)]
fn merge_slices_loop<T: Scalar>(m: &mut [T], w0: &[T], d: &[T], c: T) {
    for ((m, &w0), &dv) in m.iter_mut().zip(w0).zip(d) {
        *m = merged_entry(w0, c, dv);
    }
}

/// Every gradient times `c` (in place), in the dynamic-dimension form optimisers consume.
fn scaled_dyn<T: Scalar>(grads: Vec<Array2<T>>, c: T) -> Vec<ArrayD<T>> {
    grads
        .into_iter()
        .map(|mut p| {
            scale_in_place(&mut p, c);
            p.into_dyn()
        })
        .collect()
}

/// $A \leftarrow cA$; no pass at all when $c = 1$, where $v\cdot 1 = v$ exactly (full fine-tuning's $s = 1$, and
/// LoRA's α = r, at u = 1).
fn scale_in_place<T: Scalar>(a: &mut Array2<T>, c: T) {
    if c != T::one() {
        a.mapv_inplace(|v| v * c);
    }
}

/// The fans an initialisation may need.
#[derive(Clone, Copy)]
struct FanInfo {
    fan_in: usize,
    rank: usize,
    m: usize,
    n: f64,
}

/// Draws a `rows × cols` tensor from `init`.
fn draw<T: Scalar>(
    init: Init,
    rows: usize,
    cols: usize,
    rng: &mut SeedRng,
    f: FanInfo,
) -> Array2<T> {
    match init {
        Init::Zeros => Array2::zeros((rows, cols)),
        Init::KaimingUniform => uniform_matrix(rng, rows, cols, 1.0 / (f.fan_in as f64).sqrt()),
        Init::PeftGaussian => normal_matrix(rng, rows, cols, 1.0 / f.rank as f64),
        Init::WidthAware => normal_matrix(rng, rows, cols, 1.0 / (f.m as f64).sqrt()),
        Init::KaimingR => uniform_matrix(rng, rows, cols, 1.0 / (f.rank as f64).sqrt()),
        Init::Gaussian { std, beta } => normal_matrix(rng, rows, cols, std * f.n.powf(-beta)),
    }
}
