//! `cargo bench --bench ratios [-- WIDTH ...]`: the step of `steps.rs` for every method, timed interleaved (one step
//! of each method in turn, round after round) and reported as the minimum over rounds, with each method's ratio to
//! LoRA's step.
//!
//! Why a second step bench: criterion's `steps` measures one method at a time, for seconds each, so on a shared
//! machine whose load changes from minute to minute its ratios between methods measure the load as much as the code.
//! Interleaving exposes every method to the same load, and the minimum over rounds is the least-disturbed step (a
//! step only ever gets slower under load). Each width runs at least `ROUNDS` rounds and at least `SECONDS` seconds.
//! Widths default to 64, 256, 1024, 2048 (f64 and f32); single-threaded like `steps`.

use std::time::Instant;

use singlora::adapters::Method;
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

fn main() {
    // As the `singlora` binary does.
    singlora::alloc::keep_freed_memory();
    let widths: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let widths = if widths.is_empty() {
        vec![64, 256, 1024, 2048]
    } else {
        widths
    };
    report::<f64>(&widths);
    report::<f32>(&widths);
}
