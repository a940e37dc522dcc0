//! `cargo bench --bench ratios [-- WIDTH ...]`: the step of `steps.rs` for every method, timed interleaved (one step
//! of each method in turn, round after round) and reported as the minimum over rounds, with each method's ratio to
//! LoRA's step.
//!
//! Why a second step bench: criterion's `steps` measures one method at a time, for seconds each, so on a shared
//! machine whose load changes from minute to minute its ratios between methods measure the load as much as the code.
//! Interleaving exposes every method to the same load, and the minimum over rounds is the least-disturbed step (a
//! step only ever gets slower under load). Each width runs at least `ROUNDS` rounds and at least `SECONDS` seconds.
//! Widths default to 64, 256, 1024, 2048 (f64 and f32); single-threaded like `steps`.
//!
//! `cargo bench --bench ratios -- --threads [WIDTH ...]` instead times LoRA's and full fine-tuning's step with the
//! products on one thread and split over two (`scalar::with_product_threads`), interleaved, and prints the speed-up.

use std::time::Instant;

use singlora::adapters::Method;
use singlora::scalar::with_product_threads;
use singlora::Scalar;

mod common;
use common::Step;

/// Rounds per width, at least.
const ROUNDS: usize = 7;
/// Seconds per width, at least.
const SECONDS: f64 = 6.0;

/// The minimum step time (seconds) of every method at width `n`, interleaved.
fn interleaved<T: Scalar>(n: usize) -> Vec<(Method, f64)> {
    let mut steps: Vec<(Method, Step<T>)> =
        Method::ALL.iter().map(|&m| (m, Step::new(m, n))).collect();
    for (_, s) in &mut steps {
        s.run(); // warm-up: first-touch allocations, the optimiser's state
    }
    let mut best = vec![f64::INFINITY; steps.len()];
    let (start, mut rounds) = (Instant::now(), 0);
    while rounds < ROUNDS || start.elapsed().as_secs_f64() < SECONDS {
        for ((method, s), b) in steps.iter_mut().zip(&mut best) {
            let t = Instant::now();
            let loss = s.run();
            *b = b.min(t.elapsed().as_secs_f64());
            assert!(
                loss.is_finite(),
                "{method}/{}/{n}: the loss became {loss}",
                T::DTYPE
            );
        }
        rounds += 1;
    }
    steps.iter().map(|(m, _)| *m).zip(best).collect()
}

fn report<T: Scalar>(widths: &[usize]) {
    println!(
        "{} — minimum ms per step over interleaved rounds (ratio to lora)",
        T::DTYPE
    );
    let names: Vec<String> = Method::ALL.iter().map(|m| m.name().to_string()).collect();
    println!(
        "{:>6}{}",
        "n",
        names.iter().map(|m| format!("{m:>22}")).collect::<String>()
    );
    for &n in widths {
        let times = interleaved::<T>(n);
        let lora = times
            .iter()
            .find(|(m, _)| *m == Method::Lora)
            .map_or(f64::NAN, |t| t.1);
        let cells: String = times
            .iter()
            .map(|&(m, t)| {
                let ratio = if m == Method::Lora {
                    String::new()
                } else {
                    format!(" ({:.2}×)", t / lora)
                };
                format!("{:>22}", format!("{:.3}{ratio}", t * 1e3))
            })
            .collect();
        println!("{n:>6}{cells}");
    }
}

/// The minimum step time of `method` at width `n` with its products on one thread and split over two (a two-thread
/// pool, `with_product_threads(2)`), interleaved step by step so both see the same load.
fn thread_scaling<T: Scalar>(method: Method, n: usize) -> (f64, f64) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a two-thread pool");
    let mut s = Step::<T>::new(method, n);
    s.run();
    let (mut one, mut two) = (f64::INFINITY, f64::INFINITY);
    let (start, mut rounds) = (Instant::now(), 0);
    while rounds < ROUNDS || start.elapsed().as_secs_f64() < SECONDS {
        let t = Instant::now();
        s.run();
        one = one.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        pool.install(|| with_product_threads(2, || s.run()));
        two = two.min(t.elapsed().as_secs_f64());
        rounds += 1;
    }
    (one, two)
}

fn report_threads<T: Scalar>(widths: &[usize]) {
    println!(
        "{} — minimum ms per step, products on 1 and 2 threads",
        T::DTYPE
    );
    for &n in widths {
        for method in [Method::Lora, Method::Full] {
            let (one, two) = thread_scaling::<T>(method, n);
            let name = method.name();
            println!(
                "{n:>6} {name:>8} {:>10.3} {:>10.3}  ({:.2}× faster)",
                one * 1e3,
                two * 1e3,
                one / two
            );
        }
    }
}

fn main() {
    // As the `singlora` binary does.
    singlora::alloc::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let widths: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let widths = if widths.is_empty() {
        vec![64, 256, 1024, 2048]
    } else {
        widths
    };
    if args.iter().any(|a| a == "--threads") {
        report_threads::<f64>(&widths);
        report_threads::<f32>(&widths);
    } else {
        report::<f64>(&widths);
        report::<f32>(&widths);
    }
}
