//! `cargo bench --bench adapters`: forward and backward of every adapter on a square layer at n = 256 … 4096, batch 64,
//! f32 and f64, as GFLOP/s of the frozen-base products (2·b·n² per product; the base dominates, so this is how close a
//! training step runs to the machine's GEMM peak) and as time per call. Best of several repetitions (this VM's
//! two-thread figures dip for whole runs; single-threaded products are steadier). No external bench crate: plain
//! `std::time`, so nothing is added to the test build.

use std::time::Instant;

use ndarray::Array2;
use singlora::adapters::{AdaptedLinear, AdapterConfig, Method};
use singlora::rng::{normal_matrix, SeedRng};
use singlora::Scalar;

fn best_of<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn bench<T: Scalar>() {
    let b = 64;
    println!(
        "{:<14} {:>6} {:>12} {:>12} {:>12} {:>12}",
        format!("method ({})", T::DTYPE),
        "n",
        "fwd ms",
        "fwd GF/s",
        "fwd+bwd ms",
        "f+b GF/s"
    );
    for n in [256usize, 1024, 4096] {
        let w0: Array2<T> =
            normal_matrix(&mut SeedRng::new(0, "w0"), n, n, 1.0 / (n as f64).sqrt());
        let x: Array2<T> = normal_matrix(&mut SeedRng::new(0, "x"), b, n, 1.0);
        let g: Array2<T> = normal_matrix(&mut SeedRng::new(0, "g"), b, n, 1.0);
        for method in Method::ALL {
            let mut layer = AdaptedLinear::new(
                w0.clone(),
                &AdapterConfig::new(method).rank_alpha(8, 8.0),
                1,
            )
            .unwrap();
            layer.randomize(2, T::one());
            let reps = if n >= 4096 { 3 } else { 10 };
            let fwd = best_of(reps, || {
                std::hint::black_box(layer.forward(x.view(), T::one()));
            });
            let both = best_of(reps, || {
                std::hint::black_box(layer.forward(x.view(), T::one()));
                std::hint::black_box(layer.backward(x.view(), g.view(), T::one()));
            });
            // Base products: forward XW0ᵀ; backward GW0 (and DoRA's extra XVᵀ, full's GᵀX, not counted).
            let flop = 2.0 * (b * n * n) as f64;
            println!(
                "{:<14} {:>6} {:>12.3} {:>12.1} {:>12.3} {:>12.1}",
                method.name(),
                n,
                fwd * 1e3,
                flop / fwd / 1e9,
                both * 1e3,
                3.0 * flop / both / 1e9
            );
        }
    }
}

fn main() {
    bench::<f64>();
    bench::<f32>();
}
