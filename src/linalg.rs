//! Dense kernels on ndarray storage: products (through faer), norms, and the spectral norm by power iteration.
//!
//! Every product in the crate is one of the three helpers below, so "which side is transposed" is read off the name:
//! `mm(a, b) = A·B`, `mm_nt(a, b) = A·Bᵀ`, `mm_tn(a, b) = Aᵀ·B`.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};

use crate::rng::{normal_matrix, SeedRng};
use crate::scalar::Scalar;

/// $A B$, into a fresh array that is not zeroed first (the product overwrites every entry).
#[track_caller]
pub fn mm<T: Scalar>(a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Array2<T> {
    let mut c = Array2::<T>::uninit((a.nrows(), b.ncols()));
    // SAFETY: the view covers exactly `c`'s allocation, in its standard layout. `gemm` without `accumulate` writes
    // every entry of its output and reads none (faer's contract for `Accum::Replace`: "the preexisting values are not
    // read"; an empty inner dimension fills zeros; an empty output has no entries), so every entry of `c` is
    // initialised when `assume_init` runs.
    unsafe {
        let out = ArrayViewMut2::from_shape_ptr(c.raw_dim(), c.as_mut_ptr().cast::<T>());
        T::gemm(T::one(), a, b, false, out);
        c.assume_init()
    }
}

/// $A B^\top$.
#[track_caller]
pub fn mm_nt<T: Scalar>(a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Array2<T> {
    mm(a, b.t())
}

/// $A^\top B$.
#[track_caller]
pub fn mm_tn<T: Scalar>(a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Array2<T> {
    mm(a.t(), b)
}

/// $C \mathrel{+}= \alpha A B$.
#[track_caller]
pub fn mm_acc<T: Scalar>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    c: ArrayViewMut2<'_, T>,
) {
    T::gemm(alpha, a, b, true, c);
}

/// Frobenius norm $\lVert A \rVert_F$, accumulated in f64.
pub fn frobenius<T: Scalar, D: ndarray::Dimension>(
    a: &ndarray::ArrayBase<impl ndarray::Data<Elem = T>, D>,
) -> f64 {
    a.iter().map(|v| v.f64() * v.f64()).sum::<f64>().sqrt()
}

/// Coordinate size $\mathrm{rms}(v) = \lVert v \rVert_2 / \sqrt{d}$ (μP's `l2` statistic); 0 for an empty array.
pub fn rms<T: Scalar, D: ndarray::Dimension>(
    a: &ndarray::ArrayBase<impl ndarray::Data<Elem = T>, D>,
) -> f64 {
    if a.is_empty() {
        0.0
    } else {
        frobenius(a) / (a.len() as f64).sqrt()
    }
}

/// Mean absolute coordinate $\tfrac1d\sum_i |v_i|$ (μP's `l1` statistic).
pub fn mean_abs<T: Scalar, D: ndarray::Dimension>(
    a: &ndarray::ArrayBase<impl ndarray::Data<Elem = T>, D>,
) -> f64 {
    if a.is_empty() {
        0.0
    } else {
        a.iter().map(|v| v.f64().abs()).sum::<f64>() / a.len() as f64
    }
}

/// Euclidean norm of every row: $\nu_i = \lVert W_{i,:} \rVert_2$.
pub fn row_norms<T: Scalar>(w: ArrayView2<'_, T>) -> Array1<T> {
    w.map_axis(Axis(1), |row| row.iter().map(|&v| v * v).sum::<T>().sqrt())
}

/// $\mathrm{diag}(d)\,A$: scales row $i$ of `a` by $d_i$.
#[track_caller]
pub fn scale_rows<T: Scalar>(d: ArrayView1<'_, T>, a: ArrayView2<'_, T>) -> Array2<T> {
    assert_eq!(
        d.len(),
        a.nrows(),
        "scale_rows: {} factors for {} rows",
        d.len(),
        a.nrows()
    );
    &a * &d.insert_axis(Axis(1))
}

/// $A\,\mathrm{diag}(d)$: scales column $j$ of `a` by $d_j$.
#[track_caller]
pub fn scale_cols<T: Scalar>(a: ArrayView2<'_, T>, d: ArrayView1<'_, T>) -> Array2<T> {
    assert_eq!(
        d.len(),
        a.ncols(),
        "scale_cols: {} factors for {} columns",
        d.len(),
        a.ncols()
    );
    &a * &d.insert_axis(Axis(0))
}

/// Spectral norm $\lVert M \rVert_{op}$ of an operator given only by its products $v \mapsto Mv$ and
/// $w \mapsto M^\top w$, by power iteration on $M^\top M$ from a seeded Gaussian start.
///
/// Stops when the estimate changes by less than `rtol` (relative) or after `max_iter` iterations. No dense SVD, so
/// a factored $\Delta W$ costs $O((d_{in}+d_{out})\,r)$ per iteration.
pub fn op_norm_power<T: Scalar>(
    d_in: usize,
    apply: impl Fn(ArrayView2<'_, T>) -> Array2<T>,
    apply_t: impl Fn(ArrayView2<'_, T>) -> Array2<T>,
    seed: u64,
    max_iter: usize,
    rtol: f64,
) -> f64 {
    let mut rng = SeedRng::new(seed, "op_norm_power");
    // Column vector v ∈ R^{d_in×1}; `apply` maps it to Mv ∈ R^{d_out×1}.
    let mut v: Array2<T> = normal_matrix(&mut rng, d_in, 1, 1.0);
    let mut sigma = 0.0;
    for _ in 0..max_iter {
        let nv = frobenius(&v);
        if nv == 0.0 || !nv.is_finite() {
            return if nv.is_finite() { 0.0 } else { f64::NAN };
        }
        v.mapv_inplace(|x| x / T::of(nv));
        let mv = apply(v.view());
        let next = frobenius(&mv);
        v = apply_t(mv.view());
        if (next - sigma).abs() <= rtol * next {
            return next;
        }
        sigma = next;
    }
    sigma
}

/// Dense spectral norm via faer's singular values (for tests and small matrices).
pub fn op_norm_dense<T: Scalar>(m: ArrayView2<'_, T>) -> f64 {
    let f = faer::Mat::<f64>::from_fn(m.nrows(), m.ncols(), |i, j| m[[i, j]].f64());
    f.singular_values()
        .map(|s| s.first().copied().unwrap_or(0.0))
        .unwrap_or(f64::NAN)
}

/// Eigenvalues (ascending) of a symmetric matrix, via faer.
#[track_caller]
pub fn symmetric_eigenvalues<T: Scalar>(m: ArrayView2<'_, T>) -> Vec<f64> {
    assert_eq!(
        m.nrows(),
        m.ncols(),
        "symmetric_eigenvalues needs a square matrix"
    );
    let f = faer::Mat::<f64>::from_fn(m.nrows(), m.ncols(), |i, j| m[[i, j]].f64());
    f.self_adjoint_eigenvalues(faer::Side::Lower)
        .expect("symmetric eigenvalues did not converge")
}

/// Numerical rank: singular values above `rtol·σ_max`.
pub fn numerical_rank<T: Scalar>(m: ArrayView2<'_, T>, rtol: f64) -> usize {
    let f = faer::Mat::<f64>::from_fn(m.nrows(), m.ncols(), |i, j| m[[i, j]].f64());
    let s = f.singular_values().expect("svd did not converge");
    let top = s.first().copied().unwrap_or(0.0);
    s.iter().filter(|&&x| x > rtol * top).count()
}

/// Solves $AX = B$ for a symmetric positive-definite $A$ by Cholesky (faer); `None` if $A$ is not positive definite.
#[track_caller]
pub fn solve_spd(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Option<Array2<f64>> {
    use faer::linalg::solvers::Solve;
    assert_eq!(a.nrows(), a.ncols(), "solve_spd: A must be square");
    assert_eq!(a.nrows(), b.nrows(), "solve_spd: A and B differ in rows");
    let fa = faer::Mat::<f64>::from_fn(a.nrows(), a.ncols(), |i, j| a[[i, j]]);
    let fb = faer::Mat::<f64>::from_fn(b.nrows(), b.ncols(), |i, j| b[[i, j]]);
    let x = fa.llt(faer::Side::Lower).ok()?.solve(&fb);
    Some(Array2::from_shape_fn((x.nrows(), x.ncols()), |(i, j)| {
        x[(i, j)]
    }))
}

/// Casts every entry to another scalar type.
pub fn cast<S: Scalar, T: Scalar>(a: ArrayView2<'_, S>) -> Array2<T> {
    a.mapv(|v| T::of(v.f64()))
}

/// The ordinary least-squares slope of y on x, $\sum (x - \bar x)(y - \bar y) / \sum (x - \bar x)^2$.
pub fn ols_slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    sxy / sxx
}
