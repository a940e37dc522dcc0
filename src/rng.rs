//! Seeded, portable randomness.
//!
//! Every random draw in singlora comes from a [`SeedRng`]: ChaCha8 keyed by a user seed and a named *stream*, so
//! adding a new random tensor never shifts the numbers of existing ones, and the same seed gives the same numbers on
//! every platform and thread count.

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};

use crate::scalar::Scalar;

/// A deterministic random stream: `(seed, stream name)` ↦ ChaCha8.
pub struct SeedRng(ChaCha8Rng);

impl SeedRng {
    /// The stream named `stream` of `seed`. The name is hashed with FNV-1a (stable across Rust versions, unlike
    /// `std`'s hasher) into ChaCha's stream id.
    pub fn new(seed: u64, stream: &str) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(fnv1a(stream.as_bytes()));
        Self(rng)
    }

    /// A standard normal draw.
    pub fn normal(&mut self) -> f64 {
        StandardNormal.sample(&mut self.0)
    }

    /// A uniform draw on $[-b, b)$.
    pub fn uniform(&mut self, bound: f64) -> f64 {
        if bound == 0.0 {
            return 0.0;
        }
        Uniform::new(-bound, bound)
            .expect("finite bound")
            .sample(&mut self.0)
    }

    /// A uniform integer in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        Uniform::new(0, n).expect("n > 0").sample(&mut self.0)
    }

    /// Access to the underlying generator for other `rand_distr` distributions.
    pub fn inner(&mut self) -> &mut ChaCha8Rng {
        &mut self.0
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// $M_{ij} \sim \mathcal N(0, \sigma^2)$, drawn in f64 and rounded to `T` (so f32 and f64 runs see the same draws).
pub fn normal_matrix<T: Scalar>(
    rng: &mut SeedRng,
    rows: usize,
    cols: usize,
    std: f64,
) -> Array2<T> {
    Array2::from_shape_simple_fn((rows, cols), || T::of(std * rng.normal()))
}

/// $M_{ij} \sim \mathcal U(-b, b)$.
pub fn uniform_matrix<T: Scalar>(
    rng: &mut SeedRng,
    rows: usize,
    cols: usize,
    bound: f64,
) -> Array2<T> {
    Array2::from_shape_simple_fn((rows, cols), || T::of(rng.uniform(bound)))
}

/// A Haar-random orthogonal $r\times r$ matrix: modified Gram–Schmidt on a Gaussian matrix, with the sign fix that
/// makes the distribution uniform (Mezzadri 2007).
pub fn orthogonal_matrix(rng: &mut SeedRng, r: usize) -> Array2<f64> {
    let mut q: Array2<f64> = normal_matrix(rng, r, r, 1.0);
    for j in 0..r {
        for k in 0..j {
            let d = q.column(j).dot(&q.column(k));
            let qk = q.column(k).to_owned();
            q.column_mut(j).scaled_add(-d, &qk);
        }
        let n = q.column(j).dot(&q.column(j)).sqrt();
        q.column_mut(j).mapv_inplace(|v| v / n);
    }
    q
}

/// A random signed permutation matrix of size $r$.
pub fn signed_permutation(rng: &mut SeedRng, r: usize) -> Array2<f64> {
    let mut perm: Vec<usize> = (0..r).collect();
    for i in (1..r).rev() {
        perm.swap(i, rng.below(i + 1));
    }
    let mut p = Array2::zeros((r, r));
    for (i, &j) in perm.iter().enumerate() {
        p[[i, j]] = if rng.uniform(1.0) < 0.0 { -1.0 } else { 1.0 };
    }
    p
}
