//! The transformer's non-linear operations, one function per op with its backward pass beside it and the derivative
//! in its doc comment: LayerNorm ([`layer_norm`]), row softmax ([`softmax_rows`]), multi-head softmax attention over a
//! batch of sequences ([`attention`]) and the exact GELU ([`gelu`]). All are proven against finite differences in
//! `tests/transformer.rs`.
//!
//! Layout: rows are tokens, consecutive groups of T rows one sequence; head $j$ is columns $jd..(j+1)d$. Every op
//! works on whole batches in one pass over contiguous rows: attention reads the heads as strided segments of the
//! $(B\cdot T)\times n$ matrices $Q, K, V$ (no reshaping copies, no per-sequence products), LayerNorm and softmax
//! work in place on each row, and no op allocates per row. The big products around them (the linear maps) are one
//! GEMM each over all $B\cdot T$ rows; only the $T\times T$ score products per (sequence, head), $O(BHT^2d)$ in all,
//! are direct loops here. When the calling thread may use more than one thread for its products
//! ([`crate::scalar::with_product_threads`]), the ops split their independent items (attention's sequences,
//! LayerNorm's rows, GELU's elements in whole vector lanes) into contiguous parts computed in parallel
//! ([`crate::scalar::part_len`]); each item runs the same code whatever part it falls in, so the split changes no
//! number (`tests/threads.rs`).
//!
//! Summation order. Reductions over a row or a head (length $n$ or $d$) use [`dot`] or [`sum`]: eight interleaved
//! partial sums combined in a fixed order, then the tail; the short ones over the $\le T$ keys of a query run in
//! order. Every order depends only on the lengths, never on the thread count or the data, so results are
//! deterministic; against any other order a sum of $m$ terms differs by at most $\gamma_m\sum|a_ib_i|$,
//! $\gamma_m = m\varepsilon/(1-m\varepsilon)$ (Higham, Thm 3.1), the round-off bound `tests/transformer.rs` checks
//! against the per-sequence formula this module replaced.

use ndarray::{Array1, Array2, Array4, ArrayView2, ArrayViewMut2};

use crate::scalar::{for_each_part, part_len, Scalar};

// ---------------------------------------------------------------------------------------------------------------
// Reductions in a fixed order
// ---------------------------------------------------------------------------------------------------------------

/// $\sum_i a_i b_i$ with eight interleaved partial sums (term $i$ of the first $8\lfloor m/8\rfloor$ goes to lane
/// $i \bmod 8$), combined as $(((s_0+s_4)+(s_1+s_5))+(s_2+s_6))+(s_3+s_7)$, then the tail in order: ndarray's order
/// for a contiguous `sum`, which vectorises without reassociation.
///
/// # Panics
/// If the slices differ in length.
#[inline]
#[track_caller]
pub fn dot<T: Scalar>(a: &[T], b: &[T]) -> T {
    assert_eq!(a.len(), b.len(), "dot: lengths differ");
    let mut acc = [T::zero(); 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = ca.remainder().iter().zip(cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = combine(acc);
    for (&x, &y) in tail {
        s += x * y;
    }
    s
}

/// $\sum_i a_i$ in [`dot`]'s order (bit for bit ndarray's `sum` of a contiguous array).
#[inline]
pub fn sum<T: Scalar>(a: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let chunks = a.chunks_exact(8);
    let tail = chunks.remainder();
    for x in chunks {
        for i in 0..8 {
            acc[i] += x[i];
        }
    }
    let mut s = combine(acc);
    for &x in tail {
        s += x;
    }
    s
}

/// The eight lanes of [`dot`] and [`sum`] in ndarray's `unrolled_fold` order.
#[inline]
fn combine<T: Scalar>(s: [T; 8]) -> T {
    (((T::zero() + (s[0] + s[4])) + (s[1] + s[5])) + (s[2] + s[6])) + (s[3] + s[7])
}

/// $y \mathrel{+}= \alpha x$ (element-wise, so no ordering question).
#[inline]
fn axpy<T: Scalar>(alpha: T, x: &[T], y: &mut [T]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// A contiguous standard-layout copy of `a` only if it is not one already.
fn contiguous<'a, T: Scalar>(a: &'a ArrayView2<'_, T>) -> std::borrow::Cow<'a, [T]> {
    match a.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().copied().collect()),
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
/// $y = (x - \mu)\,r$, $\mu = \tfrac1n\sum_j x_j$, $r = (\tfrac1n\sum_j (x_j-\mu)^2 + \varepsilon)^{-1/2}$
/// (two passes, so the variance is a sum of squares of centred values). One allocation for $Y$, rows in place.
pub fn layer_norm<T: Scalar>(x: ArrayView2<'_, T>) -> Normalized<T> {
    let mut y = x.as_standard_layout().into_owned();
    let (n, eps) = (T::of(x.ncols() as f64), T::of(LAYER_NORM_EPS));
    let mut rstd = Array1::zeros(x.nrows());
    let cols = x.ncols();
    if cols > 0 {
        let per = part_len(x.nrows(), 4 * cols);
        let parts = (y
            .as_slice_mut()
            .expect("fresh array")
            .chunks_mut(per * cols))
        .zip(rstd.as_slice_mut().expect("fresh array").chunks_mut(per));
        for_each_part(parts, |(y, rstd)| {
            for (row, r) in y.chunks_exact_mut(cols).zip(rstd) {
                let mean = sum(row) / n;
                row.iter_mut().for_each(|v| *v -= mean);
                *r = T::one() / (dot(row, row) / n + eps).sqrt();
                let rv = *r;
                row.iter_mut().for_each(|v| *v *= rv);
            }
        });
    }
    Normalized { y, rstd }
}

/// LayerNorm's backward pass, per row: $\partial x = r\bigl(g - \overline{g} - y\,\overline{g\odot y}\bigr)$ with
/// $\overline{\cdot}$ the mean over the row (exact with ε inside $r$, since $\partial r/\partial x_j = -r^3(x_j-\mu)/n$).
///
/// # Panics
/// If `g` and the normalised output differ in shape.
#[track_caller]
pub fn layer_norm_backward<T: Scalar>(ln: &Normalized<T>, g: ArrayView2<'_, T>) -> Array2<T> {
    let mut gx = Array2::zeros(g.raw_dim());
    gx.assign(&g);
    layer_norm_backward_in_place(ln, &mut gx);
    gx
}

/// [`layer_norm_backward`] overwriting $G$ (standard layout) with $\partial x$, so a backward pass that owns $G$
/// allocates nothing.
///
/// # Panics
/// If `g` and the normalised output differ in shape, or `g` is not in standard layout.
#[track_caller]
pub fn layer_norm_backward_in_place<T: Scalar>(ln: &Normalized<T>, g: &mut Array2<T>) {
    assert_eq!(
        g.dim(),
        ln.y.dim(),
        "layer_norm_backward: G and Y differ in shape"
    );
    let cols = g.ncols();
    if cols == 0 {
        return;
    }
    let n = T::of(cols as f64);
    let y =
        ln.y.as_slice()
            .expect("LayerNorm output is standard layout");
    let g = g
        .as_slice_mut()
        .expect("layer_norm_backward: G in standard layout");
    let rstd = ln.rstd.as_slice().expect("fresh array");
    let per = part_len(rstd.len(), 5 * cols);
    let parts = (g.chunks_mut(per * cols))
        .zip(y.chunks(per * cols))
        .zip(rstd.chunks(per));
    for_each_part(parts, |((g, y), rstd)| {
        let rows = g.chunks_exact_mut(cols).zip(y.chunks_exact(cols));
        for ((row, yrow), &r) in rows.zip(rstd) {
            let mean_g = sum(row) / n;
            let mean_gy = dot(row, yrow) / n;
            for (d, &yv) in row.iter_mut().zip(yrow) {
                *d = r * (*d - mean_g - yv * mean_gy);
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------------------------
// Softmax
// ---------------------------------------------------------------------------------------------------------------

/// A bound below which $e^x$ rounds to exactly 0 in `T`: $\ln(\text{min normal}) + \ln\varepsilon - 1$
/// (−745.4 in f64, −104.3 in f32; the smallest subnormal is $e^{-744.4}$, resp. $e^{-103.3}$, and $e^x$ rounds to 0
/// below half of it). Checked in `tests/transformer.rs`.
pub fn exp_zero_below<T: Scalar>() -> T {
    T::min_positive_value().ln() + T::epsilon().ln() - T::one()
}

/// $e^x$, skipping the call where it is exactly 0 anyway: libm's underflow path costs ~100 ns a call, and saturated
/// softmax rows or large GELU inputs hit it for most entries.
#[inline]
fn exp_or_zero<T: Scalar>(x: T, floor: T) -> T {
    if x < floor {
        T::zero()
    } else {
        x.exp()
    }
}

/// In place: $p = \mathrm{softmax}(\ell)$ with the maximum subtracted, $p_i = e^{\ell_i - m}/\sum_k e^{\ell_k - m}$.
#[inline]
fn softmax_in_place<T: Scalar>(row: &mut [T]) {
    let (max, floor) = (
        row.iter().copied().fold(T::neg_infinity(), T::max),
        exp_zero_below(),
    );
    row.iter_mut()
        .for_each(|v| *v = exp_or_zero(*v - max, floor));
    let total = row.iter().copied().fold(T::zero(), |a, b| a + b);
    row.iter_mut().for_each(|v| *v = *v / total);
}

/// In place, row by row: $P_{t,:} = \mathrm{softmax}(\tau S_{t,:})$ over the allowed keys (all, or $t' \le t$ when
/// `causal`), with the row maximum subtracted; masked entries are set to exactly 0 and never read.
pub fn softmax_rows<T: Scalar>(mut scores: ArrayViewMut2<'_, T>, tau: T, causal: bool) {
    let cols = scores.ncols();
    let mut buf = vec![T::zero(); cols];
    for (t, mut row) in scores.rows_mut().into_iter().enumerate() {
        let allowed = if causal { (t + 1).min(cols) } else { cols };
        for (b, &v) in buf.iter_mut().zip(row.iter()).take(allowed) {
            *b = v * tau;
        }
        softmax_in_place(&mut buf[..allowed]);
        for (i, r) in row.iter_mut().enumerate() {
            *r = if i < allowed { buf[i] } else { T::zero() };
        }
    }
}

/// Softmax's backward pass, row by row: $\partial S_{tt'} = P_{tt'}\bigl(\partial P_{tt'} - \sum_{\tau}
/// P_{t\tau}\,\partial P_{t\tau}\bigr)$ (before the factor τ). Masked entries have $P = 0$, so their gradient is 0.
///
/// # Panics
/// If `p` and `dp` differ in shape.
#[track_caller]
pub fn softmax_rows_backward<T: Scalar>(p: ArrayView2<'_, T>, dp: ArrayView2<'_, T>) -> Array2<T> {
    assert_eq!(
        p.dim(),
        dp.dim(),
        "softmax_rows_backward: P and ∂P differ in shape"
    );
    let mut ds = Array2::zeros(dp.raw_dim());
    for ((mut row, prow), dprow) in ds.rows_mut().into_iter().zip(p.rows()).zip(dp.rows()) {
        let inner = prow.iter().zip(&dprow).map(|(&a, &b)| a * b).sum::<T>();
        for ((d, &pv), &g) in row.iter_mut().zip(&prow).zip(&dprow) {
            *d = pv * (g - inner);
        }
    }
    ds
}

// ---------------------------------------------------------------------------------------------------------------
// Multi-head softmax attention
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

    /// Keys query `t` may see: $t + 1$ when causal, $T$ otherwise.
    fn allowed(&self, t: usize) -> usize {
        if self.causal {
            t + 1
        } else {
            self.seq_len
        }
    }

    /// Offset of the $T$ scores of (sequence `b`, head `j`, query `t`) in a `[B, H, T, T]` array.
    fn score_row(&self, b: usize, j: usize, t: usize) -> usize {
        ((b * self.heads + j) * self.seq_len + t) * self.seq_len
    }
}

/// Head `j` of token `t` of sequence `b` in a contiguous $(B\cdot T)\times n$ matrix: a slice of `head_dim` values.
#[derive(Clone, Copy)]
struct Heads<'a, T> {
    data: &'a [T],
    spec: &'a AttentionSpec,
}

impl<'a, T> Heads<'a, T> {
    #[inline]
    fn at(&self, b: usize, t: usize, j: usize) -> &'a [T] {
        let s = self.spec;
        let start = (b * s.seq_len + t) * s.width() + j * s.head_dim;
        &self.data[start..start + s.head_dim]
    }
}

/// The mutable counterpart of [`Heads`].
fn head_mut<'a, T>(
    data: &'a mut [T],
    s: &AttentionSpec,
    b: usize,
    t: usize,
    j: usize,
) -> &'a mut [T] {
    let start = (b * s.seq_len + t) * s.width() + j * s.head_dim;
    &mut data[start..start + s.head_dim]
}

/// The output of [`attention`], the probabilities its backward pass needs, and the logits (for probes).
pub struct Attended<T: Scalar> {
    /// The heads' outputs side by side, $(B\cdot T)\times n$.
    pub ctx: Array2<T>,
    /// $P$ indexed `[sequence, head, query, key]`.
    pub probs: Array4<T>,
    /// The pre-softmax logits $\tau\,Q_{sj}K_{sj}^\top$, $(B\cdot H\cdot T)\times T$: row $(sH + j)T + t$ holds query
    /// $t$ of head $j$ of sequence $s$ against every key (the memory layout of `probs`); masked entries ($t' > t$
    /// when causal) are 0.
    pub logits: Array2<T>,
}

/// Multi-head softmax attention. For sequence $s$ (rows $sT..(s+1)T$) and head $j$ (columns
/// $jd..(j+1)d$): $P = \mathrm{softmax}(\tau\,Q_{sj}K_{sj}^\top)$ over the allowed keys (see [`softmax_rows`]),
/// $C_{sj} = PV_{sj}$. One pass over the batch: for each query row, every head's scores are dot products of
/// `head_dim`-long row segments, and $C$ accumulates $P_{tt'}V_{t'}$ segment by segment.
///
/// # Panics
/// If Q, K, V differ in shape, have other than heads·head_dim columns, or their rows are not whole sequences.
#[track_caller]
pub fn attention<T: Scalar>(
    q: ArrayView2<'_, T>,
    k: ArrayView2<'_, T>,
    v: ArrayView2<'_, T>,
    spec: &AttentionSpec,
) -> Attended<T> {
    let (rows, seqs) = check_attention_shapes(q, k, v, spec);
    let (tt, tau) = (spec.seq_len, T::of(spec.tau));
    let (qd, kd, vd) = (contiguous(&q), contiguous(&k), contiguous(&v));
    let (qh, kh, vh) = (
        Heads { data: &qd, spec },
        Heads { data: &kd, spec },
        Heads { data: &vd, spec },
    );
    let mut ctx = Array2::zeros((rows, spec.width()));
    let mut probs = Array4::zeros((seqs, spec.heads, tt, tt));
    let mut logits = Array2::zeros((seqs * spec.heads * tt, tt));
    // Sequences are independent: split them into parts (contiguous blocks of every output).
    let (seq_out, seq_scores) = (tt * spec.width(), spec.heads * tt * tt);
    let per = part_len(seqs, 2 * seq_scores * spec.head_dim);
    let parts = ctx
        .as_slice_mut()
        .expect("fresh array")
        .chunks_mut(per * seq_out)
        .zip(
            probs
                .as_slice_mut()
                .expect("fresh array")
                .chunks_mut(per * seq_scores),
        )
        .zip(
            logits
                .as_slice_mut()
                .expect("fresh array")
                .chunks_mut(per * seq_scores),
        )
        .enumerate();
    for_each_part(parts, |(i, ((c, p), l))| {
        for b in 0..c.len() / seq_out {
            let (at_seq, local) = (i * per + b, b * seq_scores);
            for t in 0..tt {
                let allowed = spec.allowed(t);
                for j in 0..spec.heads {
                    let at = local + spec.score_row(0, j, t);
                    let (lrow, prow) = (&mut l[at..at + allowed], &mut p[at..at + allowed]);
                    for (t2, lv) in lrow.iter_mut().enumerate() {
                        *lv = dot(qh.at(at_seq, t, j), kh.at(at_seq, t2, j)) * tau;
                    }
                    prow.copy_from_slice(lrow);
                    softmax_in_place(prow);
                    let crow = head_mut(c, spec, b, t, j);
                    for (t2, &pv) in prow.iter().enumerate() {
                        axpy(pv, vh.at(at_seq, t2, j), crow);
                    }
                }
            }
        }
    });
    Attended { ctx, probs, logits }
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
/// $\partial K = \tau\,\partial S^\top Q$. One pass over the query rows: for query $t$ and head $j$,
/// $\partial P_{tt'} = G_t\cdot V_{t'}$, $\partial S_{tt'} = P_{tt'}(\partial P_{tt'} - P_t\cdot\partial P_t)\,\tau$,
/// then $\partial Q_t \mathrel{+}= \partial S_{tt'}K_{t'}$, $\partial K_{t'} \mathrel{+}= \partial S_{tt'}Q_t$,
/// $\partial V_{t'} \mathrel{+}= P_{tt'}G_t$ over the allowed keys (masked ones have $P = 0$ and contribute 0).
///
/// # Panics
/// If the shapes disagree with `spec` (as [`attention`]), or `g` or `probs` have the wrong shape.
#[track_caller]
pub fn attention_backward<T: Scalar>(
    q: ArrayView2<'_, T>,
    k: ArrayView2<'_, T>,
    v: ArrayView2<'_, T>,
    probs: &Array4<T>,
    g: ArrayView2<'_, T>,
    spec: &AttentionSpec,
) -> AttentionGrads<T> {
    let seqs = check_backward_shapes((q, k, v), probs, g, spec);
    let (qd, kd, vd, gd) = (
        contiguous(&q),
        contiguous(&k),
        contiguous(&v),
        contiguous(&g),
    );
    let heads = |data| Heads { data, spec };
    let pd = probs.as_standard_layout();
    let inputs = BackwardInputs {
        q: heads(&qd),
        k: heads(&kd),
        v: heads(&vd),
        g: heads(&gd),
        p: pd.as_slice().expect("standard layout"),
        tau: T::of(spec.tau),
    };
    let (mut dq, mut dk, mut dv) = (
        Array2::zeros(q.dim()),
        Array2::zeros(k.dim()),
        Array2::zeros(v.dim()),
    );
    // Sequences are independent: each part owns a contiguous block of ∂Q, ∂K, ∂V.
    let tt = spec.seq_len;
    let (seq_out, seq_scores) = (tt * spec.width(), spec.heads * tt * tt);
    let per = part_len(seqs, 5 * seq_scores * spec.head_dim);
    let len = per * seq_out;
    let parts = (dq.as_slice_mut().expect("fresh array").chunks_mut(len))
        .zip(dk.as_slice_mut().expect("fresh array").chunks_mut(len))
        .zip(dv.as_slice_mut().expect("fresh array").chunks_mut(len))
        .enumerate();
    for_each_part(parts, |(i, ((dq, dk), dv))| {
        let mut ds = vec![T::zero(); tt];
        let mut out = PartGrads { dq, dk, dv };
        for b in 0..out.dq.len() / seq_out {
            for t in 0..tt {
                for j in 0..spec.heads {
                    inputs.query_head(spec, [i * per + b, b, t, j], &mut ds, &mut out);
                }
            }
        }
    });
    AttentionGrads {
        q: dq,
        k: dk,
        v: dv,
    }
}

/// Checks the inputs of [`attention_backward`]; returns the number of sequences.
#[track_caller]
fn check_backward_shapes<T: Scalar>(
    (q, k, v): (ArrayView2<'_, T>, ArrayView2<'_, T>, ArrayView2<'_, T>),
    probs: &Array4<T>,
    g: ArrayView2<'_, T>,
    spec: &AttentionSpec,
) -> usize {
    let (rows, seqs) = check_attention_shapes(q, k, v, spec);
    assert_eq!(
        g.dim(),
        (rows, spec.width()),
        "attention_backward: G has the wrong shape"
    );
    let tt = spec.seq_len;
    assert_eq!(
        probs.dim(),
        (seqs, spec.heads, tt, tt),
        "attention_backward: P has the wrong shape"
    );
    seqs
}

/// What attention's backward pass reads: the heads of Q, K, V and G, the probabilities (`[B, H, T, T]`, standard
/// layout) and τ.
struct BackwardInputs<'a, T> {
    q: Heads<'a, T>,
    k: Heads<'a, T>,
    v: Heads<'a, T>,
    g: Heads<'a, T>,
    p: &'a [T],
    tau: T,
}

/// One part's blocks of $\partial Q$, $\partial K$, $\partial V$ (whole sequences, indexed from the part's first).
struct PartGrads<'a, T> {
    dq: &'a mut [T],
    dk: &'a mut [T],
    dv: &'a mut [T],
}

impl<T: Scalar> BackwardInputs<'_, T> {
    /// Query `t` of head `j` of sequence `at_seq` (the part's sequence `b`), as in [`attention_backward`]'s doc:
    /// $\partial P_{tt'} = G_t\cdot V_{t'}$, $\partial S_{tt'} = P_{tt'}(\partial P_{tt'} - P_t\cdot\partial P_t)\,\tau$,
    /// then the three accumulations over the allowed keys. `ds` is scratch of length T.
    #[inline]
    fn query_head(
        &self,
        spec: &AttentionSpec,
        [at_seq, b, t, j]: [usize; 4],
        ds: &mut [T],
        out: &mut PartGrads<'_, T>,
    ) {
        let allowed = spec.allowed(t);
        let at = spec.score_row(at_seq, j, t);
        let (prow, ds) = (&self.p[at..at + allowed], &mut ds[..allowed]);
        let gt = self.g.at(at_seq, t, j);
        for (t2, d) in ds.iter_mut().enumerate() {
            *d = dot(gt, self.v.at(at_seq, t2, j));
        }
        let inner = prow.iter().zip(ds.iter()).map(|(&a, &b)| a * b).sum::<T>();
        for (d, &pv) in ds.iter_mut().zip(prow) {
            *d = pv * (*d - inner) * self.tau;
        }
        for (t2, (&d, &pv)) in ds.iter().zip(prow).enumerate() {
            axpy(d, self.k.at(at_seq, t2, j), head_mut(out.dq, spec, b, t, j));
            axpy(d, self.q.at(at_seq, t, j), head_mut(out.dk, spec, b, t2, j));
            axpy(pv, gt, head_mut(out.dv, spec, b, t2, j));
        }
    }
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

/// The exact GELU's output and the normal CDF its backward pass reuses.
pub struct Gelu<T: Scalar> {
    /// $\mathrm{GELU}(z) = z\,\Phi(z)$.
    pub act: Array2<T>,
    /// $\Phi(z) = \tfrac12\bigl(1 + \mathrm{erf}(z/\sqrt2)\bigr)$.
    pub cdf: Array2<T>,
}

/// Element-wise exact GELU, $z\,\Phi(z)$ (PyTorch's `approximate="none"`, [`super::Activation::Gelu`]), keeping
/// $\Phi(z)$ so that the backward pass needs no second `erf`.
///
/// In f64: $\tfrac12 z(1 + \mathrm{erf}(z/\sqrt2))$ through [`super::erf::gelu_f64`] (`libm::erf` eight lanes at a
/// time), bit for bit `Activation::Gelu.apply`. In
/// f32: [`super::normal_cdf::phi`] in f64 arithmetic (relative error ≤ 2e-13, branch-free, vectorised), rounded
/// once; it equals the f64 formula rounded to f32 except within 2e-13 of a rounding midpoint, and in the far negative
/// tail, where $1 + \mathrm{erf}$ cancels in f64 and this one is the more accurate (`tests/transformer.rs`).
pub fn gelu<T: Scalar>(z: ArrayView2<'_, T>) -> Gelu<T> {
    let z = z.as_standard_layout();
    let mut act = Array2::zeros(z.raw_dim());
    let mut cdf = Array2::zeros(z.raw_dim());
    let zs = z.as_slice().expect("standard layout");
    let per = lanes_part_len(zs.len(), GELU_OPS);
    let parts = (zs.chunks(per))
        .zip(act.as_slice_mut().unwrap().chunks_mut(per))
        .zip(cdf.as_slice_mut().unwrap().chunks_mut(per));
    for_each_part(parts, |((z, a), c)| gelu_part(z, a, c));
    Gelu { act, cdf }
}

/// Scalar operations per element of [`gelu`] and [`gelu_backward`] (an `erf` or `exp` counts as about 20).
const GELU_OPS: usize = 20;

/// [`gelu`] on one part of the elements.
fn gelu_part<T: Scalar>(z: &[T], act: &mut [T], cdf: &mut [T]) {
    if let (Some(z32), Some(a32), Some(c32)) = (as_f32(z), as_f32_mut(act), as_f32_mut(cdf)) {
        return super::normal_cdf::gelu_f32(z32, a32, c32);
    }
    if let (Some(z64), Some(a64), Some(c64)) = (as_f64(z), as_f64_mut(act), as_f64_mut(cdf)) {
        return super::erf::gelu_f64(z64, a64, c64);
    }
    unreachable!("a Scalar is f32 or f64")
}

/// Elements per part of an element-wise map over `len` elements of `ops` scalar operations each: [`part_len`]
/// over groups of [`super::normal_cdf::LANES`] elements, so that every part but the last is a whole number of vector
/// lanes and each element is computed exactly as on one thread.
fn lanes_part_len(len: usize, ops: usize) -> usize {
    let lanes = super::normal_cdf::LANES;
    part_len(len.div_ceil(lanes), lanes * ops) * lanes
}

/// GELU's backward pass, overwriting $G$ with $\partial z = g \odot (\Phi(z) + z\,\varphi(z))$,
/// $\varphi(z) = e^{-z^2/2}/\sqrt{2\pi}$, from the cached $\Phi(z)$: in f64 bit for bit
/// `Activation::Gelu.derivative`; in f32 with Φ rounded to f32 once and [`super::normal_cdf::pdf`].
///
/// # Panics
/// If `z`, the cache and `g` differ in shape.
#[track_caller]
pub fn gelu_backward<T: Scalar>(z: ArrayView2<'_, T>, gelu: &Gelu<T>, g: Array2<T>) -> Array2<T> {
    assert!(
        z.dim() == g.dim() && gelu.cdf.dim() == g.dim(),
        "gelu_backward: Z, Φ(Z) and G differ in shape"
    );
    let z = z.as_standard_layout();
    let mut g = if g.is_standard_layout() {
        g
    } else {
        g.as_standard_layout().into_owned()
    };
    let (zs, cs) = (
        z.as_slice().expect("standard layout"),
        gelu.cdf.as_slice().expect("fresh array"),
    );
    let per = lanes_part_len(zs.len(), GELU_OPS);
    let parts = (zs.chunks(per))
        .zip(cs.chunks(per))
        .zip(g.as_slice_mut().expect("standard layout").chunks_mut(per));
    for_each_part(parts, |((z, c), g)| gelu_backward_part(z, c, g));
    g
}

/// [`gelu_backward`] on one part of the elements.
fn gelu_backward_part<T: Scalar>(z: &[T], cdf: &[T], g: &mut [T]) {
    if let (Some(z32), Some(c32), Some(g32)) = (as_f32(z), as_f32(cdf), as_f32_mut(g)) {
        return super::normal_cdf::gelu_backward_f32(z32, c32, g32);
    }
    let (sqrt_2pi, floor) = ((2.0 * std::f64::consts::PI).sqrt(), exp_zero_below::<f64>());
    for ((d, &zv), &c) in g.iter_mut().zip(z).zip(cdf) {
        let x = zv.f64();
        let pdf = exp_or_zero(-0.5 * x * x, floor) / sqrt_2pi;
        *d *= T::of(c.f64() + x * pdf);
    }
}

/// `s` as an f32 slice when `T` is f32.
fn as_f32<T: Scalar>(s: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: T is f32, so the slice's memory is `s.len()` valid f32 values.
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) })
}

/// `s` as an f64 slice when `T` is f64.
fn as_f64<T: Scalar>(s: &[T]) -> Option<&[f64]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f64>())
        // SAFETY: T is f64, so the slice's memory is `s.len()` valid f64 values.
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f64>(), s.len()) })
}

/// `s` as a mutable f64 slice when `T` is f64.
fn as_f64_mut<T: Scalar>(s: &mut [T]) -> Option<&mut [f64]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f64>())
        // SAFETY: T is f64, and the slice is borrowed mutably for the result's lifetime.
        .then(|| unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<f64>(), s.len()) })
}

/// `s` as a mutable f32 slice when `T` is f32.
fn as_f32_mut<T: Scalar>(s: &mut [T]) -> Option<&mut [f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: T is f32, and the slice is borrowed mutably for the result's lifetime.
        .then(|| unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<f32>(), s.len()) })
}
