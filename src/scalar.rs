//! The floating-point types singlora computes in.
//!
//! Proofs run in `f64`; studies may run in `f32`. Every heavy product goes through [`Scalar::gemm`], which calls
//! faer's matrix multiply on zero-copy views of ndarray storage. It always runs sequentially (`Par::Seq`), so a run's
//! numbers never depend on the thread count: parallelism lives one level up, across independent runs.

use std::fmt::{Debug, Display};

use ndarray::{ArrayView2, ArrayViewMut2};

/// A real floating-point scalar: `f32` or `f64`.
pub trait Scalar:
    num_traits::Float
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + num_traits::FromPrimitive
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
{
    /// The dtype name used in metadata and on the command line (`"f32"` or `"f64"`).
    const DTYPE: &'static str;

    /// Converts from `f64`, rounding to nearest.
    fn of(x: f64) -> Self;

    /// Widens to `f64` (exact).
    fn f64(self) -> f64;

    /// $C \leftarrow \alpha\,A B$, or $C \leftarrow C + \alpha\,A B$ when `accumulate` is true.
    ///
    /// Any strides are accepted, so transposed views (`a.t()`) cost nothing.
    fn gemm(
        alpha: Self,
        a: ArrayView2<'_, Self>,
        b: ArrayView2<'_, Self>,
        accumulate: bool,
        c: ArrayViewMut2<'_, Self>,
    );

    /// Little-endian bytes of a contiguous slice (the safetensors payload).
    fn write_le(values: &[Self]) -> Vec<u8>;

    /// Reads little-endian bytes back.
    fn read_le(bytes: &[u8]) -> Vec<Self>;
}

/// Clears the upper halves of the AVX registers (`vzeroupper`) after a faer product.
///
/// faer's AVX kernels can return with the upper halves dirty; every later mix of legacy-SSE and VEX code (glibc's
/// `exp` wrapper is SSE, its body VEX; this crate is compiled for baseline x86-64, i.e. SSE) then stalls on the
/// state transition, measured at ~100 ns per `exp` call in the attention softmax and the GELU backward. One
/// instruction per product; no effect on any value.
#[inline]
fn clear_upper_simd_state() {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx")]
        fn zeroupper() {
            std::arch::x86_64::_mm256_zeroupper();
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports AVX (checked just above), the only requirement of `vzeroupper`.
            unsafe { zeroupper() }
        }
    }
}

macro_rules! impl_scalar {
    ($t:ty, $name:literal) => {
        impl Scalar for $t {
            const DTYPE: &'static str = $name;

            #[inline]
            fn of(x: f64) -> Self {
                x as $t
            }

            #[inline]
            fn f64(self) -> f64 {
                self as f64
            }

            #[track_caller]
            fn gemm(
                alpha: Self,
                a: ArrayView2<'_, Self>,
                b: ArrayView2<'_, Self>,
                accumulate: bool,
                mut c: ArrayViewMut2<'_, Self>,
            ) {
                assert!(
                    a.ncols() == b.nrows() && c.nrows() == a.nrows() && c.ncols() == b.ncols(),
                    "gemm shape mismatch: ({}x{})·({}x{}) into ({}x{})",
                    a.nrows(),
                    a.ncols(),
                    b.nrows(),
                    b.ncols(),
                    c.nrows(),
                    c.ncols()
                );
                let (m, n) = (c.nrows(), c.ncols());
                if m == 0 || n == 0 {
                    return;
                }
                if a.ncols() == 0 {
                    if !accumulate {
                        c.fill(0.0);
                    }
                    return;
                }
                let (as0, as1) = (a.strides()[0], a.strides()[1]);
                let (bs0, bs1) = (b.strides()[0], b.strides()[1]);
                let (cs0, cs1) = (c.strides()[0], c.strides()[1]);
                // SAFETY: the pointers and strides come from live ndarray views of exactly these shapes, and `c` is
                // borrowed mutably, so it cannot alias `a` or `b`.
                let (fa, fb, fc) = unsafe {
                    (
                        faer::MatRef::from_raw_parts(a.as_ptr(), a.nrows(), a.ncols(), as0, as1),
                        faer::MatRef::from_raw_parts(b.as_ptr(), b.nrows(), b.ncols(), bs0, bs1),
                        faer::MatMut::from_raw_parts_mut(c.as_mut_ptr(), m, n, cs0, cs1),
                    )
                };
                let accum = if accumulate {
                    faer::Accum::Add
                } else {
                    faer::Accum::Replace
                };
                faer::linalg::matmul::matmul(fc, accum, fa, fb, alpha, faer::Par::Seq);
                clear_upper_simd_state();
            }

            fn write_le(values: &[Self]) -> Vec<u8> {
                values.iter().flat_map(|v| v.to_le_bytes()).collect()
            }

            fn read_le(bytes: &[u8]) -> Vec<Self> {
                const W: usize = std::mem::size_of::<$t>();
                bytes
                    .chunks_exact(W)
                    .map(|c| <$t>::from_le_bytes(c.try_into().unwrap()))
                    .collect()
            }
        }
    };
}

impl_scalar!(f32, "f32");
impl_scalar!(f64, "f64");

/// The floating-point precision of a run (`precision = "f64"` in study configs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// Single precision (parameters and activations; optimiser moments stay in f64).
    F32,
    /// Double precision (default; every proof runs in it).
    #[default]
    F64,
}

impl Precision {
    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }

    /// Bytes per scalar.
    pub fn bytes(self) -> u64 {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }
}

crate::names::named_enum!(Precision, "precision", [Precision::F32, Precision::F64]);
