//! `cargo bench --bench transformer`: one full training step of the transformer that
//! `singlora train --model transformer --width N --heads 4 --task recall` trains, for every method, and this
//! machine's GEMM throughput on the block's own product shapes in the same run.
//!
//! # What is timed
//!
//! `transformer_<method>/<dtype>-<k>t/<n>` (e.g. `transformer_singlora/f32-2t/512`): forward, cross-entropy loss,
//! backward and the Adam step (η = 0.01, u = 1) of 2 pre-LayerNorm blocks, 4 heads of size n/4, MLP ratio 4,
//! vocabulary 16 on the associative-recall task (T = 5), with `method` (`full`, `lora`, `dora`, `singlora`,
//! `singlora_dora`; rsLoRA and LoRA+ run LoRA's step with other constants) of rank r = 4, α = 4 on q, k, v, o, up,
//! down of both blocks. The batch is B = 256 sequences (1280 token rows) up to n = 1024 and B = 256·1024/n beyond
//! ([`sequences`]: 160 rows at n = 8192), so a step's work grows like n rather than n² there and the widest widths
//! stay seconds per step; `scripts/peers/torch_transformer.py` uses the same rule.
//!
//! On k threads the step runs as `singlora train` runs it on k free cores: inside a k-thread rayon pool with
//! [`singlora::scalar::with_product_threads`]`(k)` (one hand-off per sample, as a training loop runs on a pool
//! thread), so products large enough split their output tiles over the threads (the numbers are the same on any
//! thread count).
//!
//! # Same state
//!
//! Every timed step starts from the same state: the trainable tensors and Adam's moments after [`STATE_STEPS`] = 1
//! step from the base, restored (untimed) before each step; `torch_transformer.py` does the same. Without it a
//! step's time depends on how many steps came before, and so on criterion's iteration count. Full fine-tuning in f32
//! is where this shows: at η = 0.01 its attention saturates within a few steps, some softmax probabilities fall
//! below f32's normal range, and the subnormal entries they leave in ∂Q and ∂K slow every product that reads them
//! (a product whose input is 3% subnormal ran 4× slower here, in faer and in MKL alike). Measured at n = 1024 over
//! steps 2 … 7 of one run: singlora 2.3 → 6.3 s per step, PyTorch 3.7 → 8.4 s. The numbers are IEEE's either way:
//! neither side flushes subnormals to zero.
//!
//! `transformer_gemm/<dtype>-<k>t/<n>`: the six dense products of one block's forward at the step's row count R,
//! through `singlora::linalg::mm_nt` on k threads: X·W_qᵀ, X·W_kᵀ, X·W_vᵀ, C·W_oᵀ ((R×n)·(n×n)ᵀ), X·W_upᵀ
//! ((R×n)·(4n×n)ᵀ), H·W_downᵀ ((R×4n)·(n×4n)ᵀ), 24·R·n² FLOP: the ceiling a step could reach with these kernels.
//!
//! # FLOP count of a step (only the operations the step needs)
//!
//! Criterion's "elem/s" are FLOPs (`Gelem/s` reads as GFLOP/s). Matrix products count 2·m·k·n, the attention's dot
//! products and axpys 2 per multiply-add; element-wise work (LayerNorm, GELU, softmax, DoRA's norms, Adam) is not
//! counted. With R = B·T rows, V = 16, r = 4 and every block map adapted, a map d_in → d_out costs:
//!
//! - base: forward X·W0ᵀ 2·R·d_in·d_out; its input gradient G·W0 another 2·R·d_in·d_out where anything below
//!   trains: everywhere except block 0's q, k, v, whose input is the frozen embedding's (singlora skips it, as
//!   autograd does). One block's maps hold 12n² weights, so the base forward is 48·R·n² over both blocks and the
//!   input gradients 24·R·n² (block 1) + 18·R·n² (block 0).
//! - `full` (an engine training W = W0 + D): those, plus ∂D = GᵀX, 2·R·d_in·d_out per map: 48·R·n² more.
//! - `lora`, `singlora`: forward XAᵀ and (XAᵀ)Bᵀ (or X·A_in, (X·A_in)·A_outᵀ) 2·R·r·(d_in + d_out); backward GB, ∂A,
//!   ∂B 2·R·r·(d_in + 2·d_out); input gradient (GB)A 2·R·r·d_in where needed. Summed over q, k, v, o (n → n), up
//!   (n → 4n) and down (4n → n) of both blocks: 210·R·n·r.
//! - `dora`, `singlora_dora`: their update's count plus the cross term W0·Aᵀ (or W0·A_in) of the row norms,
//!   2·d_out·d_in·r per map: 48·n²·r (the Gram and B·AAᵀ are O(n·r²); the detached norm runs no projection term).
//! - frozen and attention, every method: the embedding 2·R·V·n, the readout forward and input gradient 4·R·V·n; per
//!   block the causal attention's T(T+1)/2 = 15 query–key pairs per head and sequence, 2·T(T+1)·n·B forward
//!   (scores, context) and 4·T(T+1)·n·B backward (∂P, ∂Q, ∂K, ∂V).
//!
//! Totals, with F₀ = 6·R·V·n + 12·(T+1)·R·n: full F₀ + 138·R·n²; lora and singlora F₀ + 90·R·n² + 210·R·n·r; dora
//! and singlora_dora F₀ + 90·R·n² + 210·R·n·r + 48·n²·r ([`step_flops`]).
//!
//! # Memory
//!
//! A step at n = 8192 holds 1.6·10⁹ base weights (6.4 GB in f32, 12.9 GB in f64); full fine-tuning adds per weight
//! the update, its gradient, the merged weight and two f64 Adam moments. A width whose [`footprint`] exceeds
//! `SINGLORA_BENCH_MAX_GIB` (default 16 GiB of this machine's 24) is skipped with a line on stderr saying so:
//! on the defaults full fine-tuning stops at n = 2048, the adapters reach 8192 in both dtypes.
//!
//! # Running it
//!
//! `cargo bench --bench transformer` runs every method, width 64 … 8192, f32 and f64, 1 and 2 threads (not yet
//! timed end to end: n = 64 … 1024 took about 20 minutes here; n = 8192 takes seconds per step). The environment narrows it: `SINGLORA_BENCH_METHODS=singlora,lora`,
//! `SINGLORA_BENCH_WIDTHS=128,512`, `SINGLORA_BENCH_THREADS=1`, `SINGLORA_BENCH_DTYPES=f32`; a criterion regex
//! filter also works (`cargo bench --bench transformer -- 'transformer_(lora|gemm)/f32-1t/512'`) but models are
//! built only for what it selects. `scripts/peers/compare_transformer.py` runs this bench and the PyTorch peer and
//! prints the ratios. Results land in `target/criterion/transformer_<method>/<dtype>-<k>t/<n>/new/` (times in ns).

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::{Array2, ArrayD};
use rayon::ThreadPool;
use singlora::adapters::{AdapterConfig, Method};
use singlora::linalg::mm_nt;
use singlora::models::{Model, Transformer, TransformerConfig, WidthMode};
use singlora::optim::{Optimizer, OptimizerConfig, Rule};
use singlora::rng::{normal_matrix, SeedRng};
use singlora::scalar::with_product_threads;
use singlora::tasks::{associative_recall, RecallConfig};
use singlora::train::Dataset;
use singlora::Scalar;

mod common;
use common::timing::{configure, guess_seconds, names, sizes};

/// Widths n of the benchmark.
const WIDTHS: [usize; 8] = [64, 128, 256, 512, 1024, 2048, 4096, 8192];
/// The step's rate assumed to size criterion's samples (measured here: 25–40 GFLOP/s at n = 64, 100–150 from
/// n = 512 on one thread), so that a wide width gets about the minimum of 10 iterations.
const GUESS_GFLOPS: f64 = 100.0;
/// Adapter rank r (α = r, so the scale α/r is 1).
const RANK: usize = 4;
/// Untimed steps from the base before the state every timed step starts from (see the module doc, "Same state").
const STATE_STEPS: usize = 1;
/// Transformer blocks.
const BLOCKS: usize = 2;
/// The recall task: 8 keys, 8 values (vocabulary 16), 2 pairs per sequence (T = 5).
const RECALL: RecallConfig = RecallConfig {
    keys: 8,
    values: 8,
    pairs: 2,
    permute: false,
};

/// Sequences per batch at width n: 256 up to n = 1024, 256·1024/n beyond (at least 1).
fn sequences(n: usize) -> usize {
    if n <= 1024 {
        256
    } else {
        (256 * 1024 / n).max(1)
    }
}

/// The sizes the FLOP and memory counts need: width n, rows R = B·T, sequences B, length T, vocabulary V.
#[derive(Clone, Copy)]
struct Shape {
    n: u64,
    rows: u64,
    sequences: u64,
    seq_len: u64,
    vocab: u64,
}

impl Shape {
    fn at(n: usize) -> Self {
        let (b, t) = (sequences(n) as u64, RECALL.seq_len() as u64);
        Self {
            n: n as u64,
            rows: b * t,
            sequences: b,
            seq_len: t,
            vocab: RECALL.vocab() as u64,
        }
    }
}

/// FLOPs of the products and attention one training step needs, summed map by map over the model's own shapes
/// (`TransformerConfig::shape`) with the per-map rules of the file's documentation; its closed forms are these sums.
fn step_flops(method: Method, s: Shape, cfg: &TransformerConfig) -> u64 {
    let (rows, r) = (s.rows, RANK as u64);
    let attention = 6 * s.seq_len * (s.seq_len + 1) * s.n * s.sequences;
    let mut total = 6 * rows * s.vocab * s.n + BLOCKS as u64 * attention;
    for name in cfg.layer_names() {
        let (d_out, d_in) = cfg.shape(&name);
        let (d_out, d_in) = (d_out as u64, d_in as u64);
        if name == "embed" || name == "readout" {
            continue; // frozen, counted in the first term
        }
        // Block 0's q, k, v read the frozen embedding's output: no input gradient.
        let map = name.rsplit('.').next().unwrap_or_default();
        let input = !(name.starts_with("block.0.") && ["q", "k", "v"].contains(&map));
        let base = 2 * rows * d_in * d_out * (1 + u64::from(input));
        total += base
            + match method {
                Method::Full => 2 * rows * d_in * d_out,
                _ => {
                    let low_rank = 2 * rows * r * (2 * d_in + 3 * d_out + u64::from(input) * d_in);
                    let cross = if method.has_magnitude() {
                        2 * d_out * d_in * r
                    } else {
                        0
                    };
                    low_rank + cross
                }
            };
    }
    total
}

/// FLOPs of one block's six forward products at the step's rows (`transformer_gemm`).
fn block_gemm_flops(s: Shape) -> u64 {
    24 * s.rows * s.n * s.n
}

/// An upper estimate of a step's resident bytes: every weight of the two blocks in T (full fine-tuning: the base,
/// the update, its gradient and the merged weight in T, Adam's two f64 moments, and the restored start state's copy
/// of the update and the moments), and 40·R·n values per block
/// for the forward's cache and the backward's temporaries (about 20 R × n arrays are kept per block; twice that
/// covers what the backward holds at once).
fn footprint(method: Method, s: Shape, bytes: u64) -> u64 {
    let weights = BLOCKS as u64 * 12 * s.n * s.n;
    let per_weight = match method {
        Method::Full => 5 * bytes + 32,
        _ => bytes,
    };
    weights * per_weight + BLOCKS as u64 * 40 * s.rows * s.n * bytes
}

/// The memory budget in bytes (`SINGLORA_BENCH_MAX_GIB`, default 16).
fn budget() -> u64 {
    (sizes("SINGLORA_BENCH_MAX_GIB", &[16])[0] as u64) << 30
}

/// The model, data and optimiser of one `singlora train --model transformer` run at width n, and the state every
/// timed step starts from ([`Setup::restore`]).
struct Setup<T: Scalar> {
    net: Transformer<T>,
    data: Dataset<T>,
    opt: Optimizer,
    factors: Vec<f64>,
    /// The trainable tensors and the optimiser after [`STATE_STEPS`] steps from the base.
    start: (Vec<ArrayD<T>>, Optimizer),
}

impl<T: Scalar> Setup<T> {
    /// Puts the trainable tensors and the optimiser back to `start`.
    fn restore(&mut self) {
        for (mut p, s) in self.net.params_mut().into_iter().zip(&self.start.0) {
            p.assign(s);
        }
        self.opt.clone_from(&self.start.1);
    }
}

/// The benchmark's transformer at width n: 4 heads, the recall task's vocabulary and length, every block map adapted.
fn config(width: usize) -> TransformerConfig {
    let mut cfg = TransformerConfig::at_width(width, WidthMode::Heads, width / 4).unwrap();
    cfg.vocab = RECALL.vocab();
    cfg.seq_len = RECALL.seq_len();
    cfg.blocks = BLOCKS;
    cfg.adapt = ["q", "k", "v", "o", "up", "down"]
        .map(String::from)
        .to_vec();
    cfg
}

fn setup<T: Scalar>(method: Method, width: usize) -> Setup<T> {
    let cfg = config(width);
    let adapter = AdapterConfig::new(method).rank_alpha(RANK, RANK as f64);
    let net = cfg.build(cfg.base_weights::<T>(0), &adapter, 2).unwrap();
    let data = associative_recall::<T>(&RECALL, sequences(width), 1, 1).unwrap();
    let optimizer = OptimizerConfig::new(Rule::adam(), 0.01);
    let factors = optimizer
        .groups
        .factors(net.params_info().into_iter().map(|p| p.info.role), width);
    let opt = optimizer.init().unwrap();
    let start = (Vec::new(), opt.clone());
    let mut s = Setup {
        net,
        data,
        opt,
        factors,
        start,
    };
    for _ in 0..STATE_STEPS {
        step(&mut s);
    }
    let params = s.net.params().into_iter().map(|p| p.to_owned()).collect();
    s.start = (params, s.opt.clone());
    s
}

/// Forward, loss, backward, optimiser step (u = 1: no ramp, as the default `singlora train`).
fn step<T: Scalar>(s: &mut Setup<T>) -> f64 {
    let (out, cache) = s.net.forward(&s.data.x_train, T::one());
    let (loss, g) = s.data.loss.eval(&out, &s.data.y_train);
    let grads = s.net.backward(&cache, &g, T::one());
    s.opt.step_views(s.net.params_mut(), &grads, &s.factors);
    loss
}

/// Runs `f` `iters` times on `pool` with products split over its k threads, and returns the elapsed time: one
/// hand-off into the pool per sample, as a training loop runs on a pool thread.
fn timed_on(pool: &ThreadPool, iters: u64, mut f: impl FnMut() + Send) -> std::time::Duration {
    timed_after(pool, iters, &mut (), |_| {}, |_| f())
}

/// [`timed_on`] on `state`, with an untimed `prepare(state)` before each timed `f(state)` (one hand-off per sample
/// all the same).
fn timed_after<S: Send>(
    pool: &ThreadPool,
    iters: u64,
    state: &mut S,
    mut prepare: impl FnMut(&mut S) + Send,
    mut f: impl FnMut(&mut S) + Send,
) -> std::time::Duration {
    let k = pool.current_num_threads();
    pool.install(|| {
        with_product_threads(k, || {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                prepare(state);
                let start = Instant::now();
                f(state);
                total += start.elapsed();
            }
            total
        })
    })
}

/// The benchmark's pools: one per `SINGLORA_BENCH_THREADS` entry (default 1 and 2).
fn pools() -> Vec<ThreadPool> {
    sizes("SINGLORA_BENCH_THREADS", &[1, 2])
        .into_iter()
        .map(|k| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(k)
                .build()
                .expect("a rayon pool")
        })
        .collect()
}

/// `transformer_<method>/<dtype>-<k>t/<n>` for every selected method and thread count at width n; the model is
/// built on the first sample that criterion's filter lets through, and shared by the thread counts.
fn bench_steps<T: Scalar>(c: &mut Criterion, pools: &[ThreadPool], width: usize) {
    let shape = Shape::at(width);
    let methods = names("SINGLORA_BENCH_METHODS", &Method::ALL.map(Method::name));
    for method in Method::ALL
        .into_iter()
        .filter(|m| methods.contains(&m.name()))
    {
        let group_name = format!("transformer_{}", method.name());
        let need = footprint(method, shape, std::mem::size_of::<T>() as u64);
        if need > budget() {
            eprintln!(
                "{group_name}/{}-*/{width}: skipped, needs about {:.1} GiB, more than SINGLORA_BENCH_MAX_GIB = {}",
                T::DTYPE,
                need as f64 / (1u64 << 30) as f64,
                budget() >> 30
            );
            continue;
        }
        let mut group = c.benchmark_group(&group_name);
        let flops = step_flops(method, shape, &config(width));
        group.throughput(Throughput::Elements(flops));
        let mut s: Option<Setup<T>> = None;
        for pool in pools {
            let k = pool.current_num_threads();
            configure(&mut group, guess_seconds(flops, GUESS_GFLOPS) / k as f64);
            let id = BenchmarkId::new(format!("{}-{k}t", T::DTYPE), width);
            group.bench_function(id, |b| {
                let s = s.get_or_insert_with(|| setup::<T>(method, width));
                b.iter_custom(|iters| {
                    timed_after(pool, iters, s, Setup::restore, |s| {
                        black_box(step(s));
                    })
                });
            });
        }
        if let Some(mut s) = s {
            let loss = step(&mut s);
            assert!(
                loss.is_finite(),
                "{group_name}/{}/{width}: the loss became {loss} while benchmarking",
                T::DTYPE
            );
        }
        group.finish();
    }
}

/// `transformer_gemm/<dtype>-<k>t/<n>`: one block's six forward products at the step's shapes.
fn bench_gemm<T: Scalar>(c: &mut Criterion, pools: &[ThreadPool], width: usize) {
    let shape = Shape::at(width);
    let (rows, n) = (shape.rows as usize, width);
    let flops = block_gemm_flops(shape);
    let mut group = c.benchmark_group("transformer_gemm");
    group.throughput(Throughput::Elements(flops));
    let mut operands: Option<[Array2<T>; 5]> = None;
    let draw = |r, c, name| normal_matrix::<T>(&mut SeedRng::new(0, name), r, c, 1.0);
    for pool in pools {
        let k = pool.current_num_threads();
        configure(&mut group, guess_seconds(flops, GUESS_GFLOPS) / k as f64);
        let id = BenchmarkId::new(format!("{}-{k}t", T::DTYPE), width);
        group.bench_function(id, |b| {
            let [x, h, w, w_up, w_down] = operands.get_or_insert_with(|| {
                [
                    draw(rows, n, "x"),
                    draw(rows, 4 * n, "h"),
                    draw(n, n, "w"),
                    draw(4 * n, n, "w_up"),
                    draw(n, 4 * n, "w_down"),
                ]
            });
            b.iter_custom(|iters| {
                timed_on(pool, iters, || {
                    for _ in 0..4 {
                        black_box(mm_nt(x.view(), w.view()));
                    }
                    black_box(mm_nt(x.view(), w_up.view()));
                    black_box(mm_nt(h.view(), w_down.view()));
                })
            });
        });
    }
    group.finish();
}

fn bench_dtype<T: Scalar>(c: &mut Criterion) {
    if !names("SINGLORA_BENCH_DTYPES", &["f32", "f64"]).contains(&T::DTYPE) {
        return;
    }
    let pools = pools();
    for width in sizes("SINGLORA_BENCH_WIDTHS", &WIDTHS) {
        bench_steps::<T>(c, &pools, width);
        bench_gemm::<T>(c, &pools, width);
    }
}

fn transformer(c: &mut Criterion) {
    // As the `singlora` binary does.
    singlora::alloc::keep_freed_memory();
    bench_dtype::<f32>(c);
    bench_dtype::<f64>(c);
}

criterion_group!(benches, transformer);
criterion_main!(benches);
