//! The floating-point types singlora computes in.
//!
//! Proofs run in `f64`; studies may run in `f32`. Every heavy product goes through [`Scalar::gemm`], which calls
//! faer's matrix multiply on zero-copy views of ndarray storage (a thin row-major output, the adapters' $d\times r$
//! gradients, through a column-major scratch: [`thin_row_major`]; a large product whose left factor is stored by
//! columns, through a row-major copy of it: [`column_stored_left`]). Products run sequentially (`Par::Seq`) unless the
//! calling thread asked for more ([`with_product_threads`]; the study engine does for one wide run when a study has
//! fewer runs than free cores); then products of at least [`Scalar::PAR_MIN_WORK`] multiply–adds split their output tiles
//! over the threads of the current rayon pool. Each output entry is still one dot product over the same k-blocks in the same order, so the numbers do
//! not depend on the thread count (tests/threads.rs checks 1 against 2 threads bit for bit). Products with a single
//! output row or column stay sequential whatever was asked: faer's parallel matrix–vector kernel splits the inner
//! dimension and would round differently.

use std::cell::Cell;
use std::fmt::{Debug, Display};

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

/// The smallest product $m\cdot k\cdot n$ (multiply–adds) split over threads in f64: below it the split costs more
/// than it saves. Measured on the MLP step inside a 2-thread pool (`cargo bench --bench steps`, n = 128, whose
/// products are 64 × 128 by 128 × 128, 2²⁰ multiply–adds, about 35 µs on one core): splitting them took full
/// fine-tuning's step from 465 to 359 µs and SingLoRA's from 335 to 272 µs in that A/B. Over four later runs the gain
/// was not reliable (full 383–639 µs, SingLoRA 254–282, LoRA 228–496, against 498, 318 and 338 before). Part of the
/// cause, measured later (`examples/wake.rs`): a pool thread that has had no work for 20 µs or more falls asleep, and
/// handing it a job then costs 10–23 µs more than with the thread awake, as much as such a product takes.
pub const PAR_MIN_WORK_F64: usize = 1 << 19;

/// The same threshold in f32, whose products run twice as fast: the n = 128 products (about 17 µs) lost when split
/// (LoRA's step 153 → 301 µs, SingLoRA's 182 → 213 µs), so f32 splits only from 2²² multiply–adds (64 × 256 by
/// 256 × 256, about 70 µs).
pub const PAR_MIN_WORK_F32: usize = 1 << 22;

thread_local! {
    /// Threads the products of this thread may use (1: sequential).
    static PRODUCT_THREADS: Cell<usize> = const { Cell::new(1) };
}

/// Runs `f` with this thread's large products split over `threads` threads of the current rayon pool (see the
/// module doc; `threads` ≤ 1 means sequential), restoring the previous setting afterwards, even on a panic.
pub fn with_product_threads<R>(threads: usize, f: impl FnOnce() -> R) -> R {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            PRODUCT_THREADS.with(|t| t.set(self.0));
        }
    }
    let _restore = Restore(PRODUCT_THREADS.with(|t| t.replace(threads.max(1))));
    f()
}

/// The threads this thread's products may use ([`with_product_threads`]).
pub fn product_threads() -> usize {
    PRODUCT_THREADS.with(Cell::get)
}

/// The smallest element-wise or row-wise job (in scalar operations, a multiply–add or an `exp` counted as one)
/// [`part_len`] splits over threads: about 65 µs of work, against a hand-off of a few µs.
pub const PAR_MIN_OPS: usize = 1 << 16;

/// Items per part when `items` independent items of about `ops_per_item` scalar operations each (rows of a
/// LayerNorm, sequences of an attention, lanes of an element-wise map) are split over this thread's product threads
/// ([`with_product_threads`]): all of them (one part, run on this thread) unless more than one thread was asked for
/// and the job has at least [`PAR_MIN_OPS`] operations. Every item is computed by the same code whatever part it
/// falls in, so the numbers do not depend on the split.
pub fn part_len(items: usize, ops_per_item: usize) -> usize {
    let threads = product_threads();
    if threads > 1 && items > 1 && items.saturating_mul(ops_per_item) >= PAR_MIN_OPS {
        items.div_ceil(threads)
    } else {
        items.max(1)
    }
}

/// Runs `f` on every part (chunks of the outputs zipped together, built by the caller with [`part_len`]): on this
/// thread, allocating nothing, when there is one part (the unsplit case, every call in a one-thread step loop);
/// otherwise the parts are collected and run in parallel over the current rayon pool.
pub fn for_each_part<P: Send>(parts: impl Iterator<Item = P>, f: impl Fn(P) + Sync + Send) {
    let mut parts = parts.peekable();
    let Some(first) = parts.next() else {
        return;
    };
    if parts.peek().is_none() {
        return f(first);
    }
    use rayon::prelude::*;
    let parts: Vec<P> = std::iter::once(first).chain(parts).collect();
    parts.into_par_iter().for_each(|part| {
        clear_upper_simd_state();
        f(part)
    });
}

/// faer's parallelism for an $(m\times k)(k\times n)$ product of `T`s on this thread.
fn product_par<T: Scalar>(m: usize, k: usize, n: usize) -> faer::Par {
    let threads = product_threads();
    let big = m.saturating_mul(k).saturating_mul(n) >= T::PAR_MIN_WORK;
    if threads > 1 && big && m > 1 && n > 1 && k > 1 {
        faer::Par::rayon(threads)
    } else {
        faer::Par::Seq
    }
}

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

    /// The smallest product (multiply–adds) split over threads ([`PAR_MIN_WORK_F64`], [`PAR_MIN_WORK_F32`]).
    const PAR_MIN_WORK: usize;

    /// The smallest product [`column_stored_left`] reroutes ([`TRANSPOSE_MIN_WORK_F64`], [`TRANSPOSE_MIN_WORK_F32`]).
    const TRANSPOSE_MIN_WORK: usize;

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

/// Defines an element loop's entry point that runs it compiled for the CPU's widest vectors: a copy with AVX-512F
/// when the CPU has it, else one with AVX2, else the baseline build. `$check` runs first (the length asserts); `$body`
/// is the loop, `#[inline(always)]` so each copy inlines and vectorises it. The loops this serves (Adam's update, the
/// GELU maps) use only correctly rounded IEEE operations and Rust fuses no multiply–add, so every copy gives the same
/// bits and only the speed depends on the CPU.
macro_rules! widest_vectors {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident $(<$g:ident: $bound:path>)? ($($arg:ident: $ty:ty),* $(,)?)
        $check:block => $body:ident
    ) => {
        $(#[$meta])*
        $vis fn $name $(<$g: $bound>)? ($($arg: $ty),*) {
            $check
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512 $(<$g: $bound>)? ($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2 $(<$g: $bound>)? ($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F (checked just above), `avx512`'s only requirement.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked just above), `avx2`'s only requirement.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use widest_vectors;

/// Clears the upper halves of the AVX registers (`vzeroupper`), after a faer product and before each part a rayon
/// worker runs ([`for_each_part`]).
///
/// faer's AVX kernels can return with the upper halves dirty; every later mix of legacy-SSE and VEX code (glibc's
/// `exp` wrapper is SSE, its body VEX; this crate is compiled for baseline x86-64, i.e. SSE) then stalls on the
/// state transition, measured at ~100 ns per `exp` call in the attention softmax and the GELU backward, and 4× on
/// GELU's backward pass on a rayon worker that had just run a product. One instruction; no effect on any value.
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

/// Whether $C = AB$ is a product whose row-major output is a few columns wide (at most `THIN_COLS` = 16, at least four
/// times as many rows, an inner dimension of at least 32) and whose left factor is stored by columns (a transposed
/// view, as in $X^\top G$, the adapters' gradients of their $d\times r$ factors). faer computes such an output in the
/// transposed orientation, a vector register of 16 lanes holding $r$ of them; written into column-major storage it
/// uses full registers. Measured (f32, one thread): $X^\top G$ with $X$ 1280 × 512, $r = 4$: 384 → 124 µs;
/// 64 × 1024, $r = 8$: 32 → 11 µs. Each entry is the same dot product in the same order either way (checked bit for
/// bit in tests/threads.rs), so only the time changes.
pub fn thin_row_major<T: Scalar>(a: ArrayView2<'_, T>, c: ArrayView2<'_, T>) -> bool {
    let (m, n) = c.dim();
    c.is_standard_layout()
        && n > 1
        && n <= THIN_COLS
        && m >= 4 * n
        && a.strides()[0] == 1
        && a.ncols() >= 32
}

/// The widest output [`thin_row_major`] reroutes.
const THIN_COLS: usize = 16;

/// Whether $C = AB$ is a product whose row-major output has few rows (at most `SHORT_ROWS` = 64, a mini-batch)
/// and whose large right factor (at least `SHORT_MIN_RIGHT` entries) is stored by columns, as the forward
/// $XW_0^\top$ of a row-major weight. faer computes a row-major output as $C^\top = B^\top A^\top$, which makes the
/// weight its left factor, stored by rows there, so it packs the whole weight for a panel only $m$ columns wide;
/// written into column-major storage the weight is the right factor, read in place, and only the small $A$ is
/// packed. Measured (this Zen 5 host, the copy back included): $(64\times n)\cdot(n\times n)$ at n = 1024 1.65 → 1.33
/// ms in f64 and 0.84 → 0.65 ms in f32, n = 2048 7.8 → 5.9 and 4.2 → 3.0 ms, n = 4096 35 → 24 and 19 → 13 ms; 16 rows
/// at n = 2048 4.4 → 1.8 ms (f64); on two threads alike. At 128 rows the two ways are within 10% and from 256 rows on
/// faer's own is faster, hence the bound. Each entry is the same dot product in the same order either way (checked
/// bit for bit in tests/threads.rs), so only the time changes.
pub fn short_row_major<T: Scalar>(b: ArrayView2<'_, T>, c: ArrayView2<'_, T>) -> bool {
    let (m, n) = c.dim();
    c.is_standard_layout()
        && m > 1
        && m <= SHORT_ROWS
        && n > THIN_COLS
        && b.strides()[0] == 1
        && b.strides()[1] > 1
        && b.len() >= SHORT_MIN_RIGHT
}

/// The most output rows [`short_row_major`] reroutes.
const SHORT_ROWS: usize = 64;

/// The smallest right factor [`short_row_major`] reroutes: 1024 × 1024 (at 512 × 512 neither way is faster in f32,
/// and f64 gains 10% on one thread and nothing on two).
const SHORT_MIN_RIGHT: usize = 1 << 20;

/// Whether $C = AB$ is a large product (at least [`Scalar::TRANSPOSE_MIN_WORK`] multiply–adds, $A$'s inner dimension
/// at least 64) with a row-major output wider than [`thin_row_major`]'s and a left factor stored by columns, as full
/// fine-tuning's weight gradient $G^\top X$: faer then packs $A$ along its strided direction and runs at about half
/// its rate. Copying $A$ into row-major scratch first (`transpose_into`: about 3 ms for 1280 × 4096 f32 entries)
/// recovers most of it. Measured (one thread, the transformer's $G^\top X$ with 1280 token rows, best of 5, the
/// copy included; the product from an already row-major $A$ in parentheses): $1024\times 1024$ outputs 45 → 30 ms
/// (24) in f32 and 95 → 57–64 ms (43–61) in f64, $4096\times 1024$ 165 → 102–118 ms (82–103) and 405 → 217–248 ms
/// (182–196). Each entry is the same dot product in the same order either way (checked bit for bit in
/// tests/threads.rs), so only the time changes.
pub fn column_stored_left<T: Scalar>(a: ArrayView2<'_, T>, c: ArrayView2<'_, T>) -> bool {
    let (m, k) = a.dim();
    c.is_standard_layout()
        && m > 1
        && c.ncols() > THIN_COLS
        && k >= 64
        && a.strides()[0] == 1
        && a.strides()[1] > 1
        && m.saturating_mul(k).saturating_mul(c.ncols()) >= T::TRANSPOSE_MIN_WORK
}

/// The smallest product [`column_stored_left`] reroutes in f64: a 512 × 1280 by 1280 × 512 product (1.25·2²⁸) went
/// 23 → 16 ms there; in f32 the same product did not gain (6.4 ms either way), so f32 starts at twice the work.
pub const TRANSPOSE_MIN_WORK_F64: usize = 1 << 28;

/// [`TRANSPOSE_MIN_WORK_F64`] for f32.
pub const TRANSPOSE_MIN_WORK_F32: usize = 1 << 29;

/// `a` ($m\times k$, any strides) copied into `scratch` (grown as needed) as a row-major $m\times k$ view, in
/// 32 × 32 tiles so that both the strided reads and the writes stay in cache.
fn transpose_into<'s, T: Scalar>(
    a: ArrayView2<'_, T>,
    scratch: &'s mut Vec<T>,
) -> ArrayView2<'s, T> {
    const TILE: usize = 32;
    let (m, k) = a.dim();
    if scratch.len() < m * k {
        scratch.resize(m * k, T::zero());
    }
    let out = &mut scratch[..m * k];
    let (s0, s1) = (a.strides()[0], a.strides()[1]);
    let src = a.as_ptr();
    for i0 in (0..m).step_by(TILE) {
        for j0 in (0..k).step_by(TILE) {
            for j in j0..(j0 + TILE).min(k) {
                for i in i0..(i0 + TILE).min(m) {
                    // SAFETY: i < m and j < k, so the offset is inside the view `a` borrows.
                    out[i * k + j] = unsafe { *src.offset(i as isize * s0 + j as isize * s1) };
                }
            }
        }
    }
    ArrayView2::from_shape((m, k), out).expect("m·k entries")
}

/// An `m × n` column-major view of `scratch`, grown as needed (its entries are whatever an earlier product left).
fn column_major_scratch<T: Scalar>(
    scratch: &mut Vec<T>,
    m: usize,
    n: usize,
) -> ArrayViewMut2<'_, T> {
    if scratch.len() < m * n {
        scratch.resize(m * n, T::zero());
    }
    ArrayViewMut2::from_shape((m, n).f(), &mut scratch[..m * n]).expect("m·n entries")
}

/// faer's $C \leftarrow \alpha AB$ (or $C + \alpha AB$) on ndarray views of any strides, shapes already checked.
fn faer_gemm<T: Scalar + faer::traits::ComplexField>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    accumulate: bool,
    mut c: ArrayViewMut2<'_, T>,
) {
    let (m, n) = c.dim();
    let (as0, as1) = (a.strides()[0], a.strides()[1]);
    let (bs0, bs1) = (b.strides()[0], b.strides()[1]);
    let (cs0, cs1) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the pointers and strides come from live ndarray views of exactly these shapes, and `c` is borrowed
    // mutably, so it cannot alias `a` or `b`.
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
    let par = product_par::<T>(m, a.ncols(), n);
    faer::linalg::matmul::matmul(fc, accum, fa, fb, alpha, par);
    clear_upper_simd_state();
}

macro_rules! impl_scalar {
    ($t:ty, $name:literal, $par_min:expr, $transpose_min:expr) => {
        impl Scalar for $t {
            const DTYPE: &'static str = $name;
            const PAR_MIN_WORK: usize = $par_min;
            const TRANSPOSE_MIN_WORK: usize = $transpose_min;

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
                thread_local! {
                    /// [`column_major_scratch`]'s storage on this thread (thin and short outputs).
                    static THIN_SCRATCH: std::cell::RefCell<Vec<$t>> = const { std::cell::RefCell::new(Vec::new()) };
                    /// [`transpose_into`]'s storage on this thread (kept: the next step needs the same size).
                    static LEFT_SCRATCH: std::cell::RefCell<Vec<$t>> = const { std::cell::RefCell::new(Vec::new()) };
                }
                if thin_row_major(a, c.view()) || short_row_major(b, c.view()) {
                    return THIN_SCRATCH.with_borrow_mut(|scratch| {
                        let mut col = column_major_scratch(scratch, m, n);
                        if accumulate {
                            col.assign(&c);
                        }
                        faer_gemm(alpha, a, b, accumulate, col.view_mut());
                        c.assign(&col);
                    });
                }
                if column_stored_left(a, c.view()) {
                    return LEFT_SCRATCH.with_borrow_mut(|scratch| {
                        faer_gemm(alpha, transpose_into(a, scratch), b, accumulate, c);
                    });
                }
                faer_gemm(alpha, a, b, accumulate, c);
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

impl_scalar!(f32, "f32", PAR_MIN_WORK_F32, TRANSPOSE_MIN_WORK_F32);
impl_scalar!(f64, "f64", PAR_MIN_WORK_F64, TRANSPOSE_MIN_WORK_F64);

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
