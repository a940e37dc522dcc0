//! Numbers do not depend on the thread count: a product split over threads ([`with_product_threads`], one wide run
//! when a study has fewer runs than cores) is bit for bit the sequential product, and so are whole training runs and
//! a study run with one thread or two.
//!
//! Why exact equality is the right assertion: faer's parallel product (private-gemm) deals the output's tiles to the
//! threads, and each entry is accumulated by the same micro-kernel over the same depth blocks (k in blocks of at most
//! 512, fixed by the shape, not the thread count) in the same order; packing copies operands without arithmetic.
//! Matrix–vector shapes, whose parallel kernel splits the inner dimension, stay sequential (`scalar`). So any
//! difference is a bug, not round-off.

use ndarray::{Array2, ArrayView2};
use singlora::adapters::{AdapterConfig, Method};
use singlora::linalg::{mm, mm_nt, mm_tn};
use singlora::models::{MlpConfig, Model, TransformerConfig, WidthMode};
use singlora::optim::{OptimizerConfig, Rule};
use singlora::rng::{normal_matrix, SeedRng};
use singlora::scalar::{part_len, with_product_threads};
use singlora::studies::config::StudyConfig;
use singlora::studies::engine::{run_study, RunOptions};
use singlora::studies::sweep::Sweep;
use singlora::tasks::{associative_recall, RecallConfig};
use singlora::Scalar;

fn two_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| with_product_threads(2, f))
}

fn matrix<T: Scalar>(rows: usize, cols: usize, stream: &str) -> Array2<T> {
    normal_matrix(&mut SeedRng::new(7, stream), rows, cols, 1.0)
}

fn check_products<T: Scalar>() {
    // (m, k, n): the step's shapes (b × n by n × n and back, Gᵀ X), odd edges, and one below the threshold.
    let shapes = [
        (64, 256, 256),
        (64, 1024, 1024),
        (1024, 64, 1024),
        (300, 517, 259),
        (13, 4096, 97),
        (2048, 64, 33),
        (64, 128, 128),
        (128, 64, 128),
        (8, 64, 64),
    ];
    let mut parallel = 0;
    for (m, k, n) in shapes {
        let (a, b) = (matrix::<T>(m, k, "a"), matrix::<T>(k, n, "b"));
        let (at, bt) = (a.t().to_owned(), b.t().to_owned());
        let seq = [
            mm(a.view(), b.view()),
            mm_nt(a.view(), bt.view()),
            mm_tn(at.view(), b.view()),
        ];
        let par = two_threads(|| {
            [
                mm(a.view(), b.view()),
                mm_nt(a.view(), bt.view()),
                mm_tn(at.view(), b.view()),
            ]
        });
        for (form, (s, p)) in ["A·B", "A·Bᵀ", "Aᵀ·B"].iter().zip(seq.iter().zip(&par)) {
            assert!(
                s == p,
                "{} {m}x{k}x{n} {form}: two threads differ from one",
                T::DTYPE
            );
        }
        parallel += usize::from(m * k * n >= T::PAR_MIN_WORK);
    }
    assert!(parallel >= 6, "most shapes must take the parallel path");
}

#[test]
fn products_are_the_same_on_one_and_two_threads() {
    check_products::<f64>();
    check_products::<f32>();
}

/// A rerouted product family of `Scalar::gemm`, with the predicate that picks it and which factor its shapes store
/// by columns (a transposed view of a row-major matrix).
#[derive(Clone, Copy, Debug)]
enum Route {
    /// `scalar::thin_row_major`: $A = X^\top$, a thin output (the adapters' $X^\top G$).
    Thin,
    /// `scalar::column_stored_left`: $A = X^\top$, a large output (full fine-tuning's $G^\top X$).
    ColumnStoredLeft,
    /// `scalar::short_row_major`: $B = W^\top$, a short output (the mini-batch forward $XW^\top$).
    Short,
}

impl Route {
    /// Whether `Scalar::gemm` reroutes $C = AB$ this way.
    fn takes<T: Scalar>(
        self,
        a: ArrayView2<'_, T>,
        b: ArrayView2<'_, T>,
        c: ArrayView2<'_, T>,
    ) -> bool {
        match self {
            Route::Thin => singlora::scalar::thin_row_major(a, c),
            Route::ColumnStoredLeft => singlora::scalar::column_stored_left(a, c),
            Route::Short => singlora::scalar::short_row_major(b, c),
        }
    }

    /// $(A, B)$ for an $m\times k$ by $k\times n$ product, the factor this route reads stored by columns, as the
    /// owned row-major matrices whose views (one transposed) are the operands.
    fn operands<T: Scalar>(self, m: usize, k: usize, n: usize) -> (Array2<T>, Array2<T>) {
        match self {
            Route::Thin | Route::ColumnStoredLeft => (matrix(k, m, "x"), matrix(k, n, "g")),
            Route::Short => (matrix(m, k, "x"), matrix(n, k, "w")),
        }
    }

    /// The operand views of [`Route::operands`].
    fn views<'a, T: Scalar>(
        self,
        (a, b): &'a (Array2<T>, Array2<T>),
    ) -> (ArrayView2<'a, T>, ArrayView2<'a, T>) {
        match self {
            Route::Thin | Route::ColumnStoredLeft => (a.t(), b.view()),
            Route::Short => (a.view(), b.t()),
        }
    }
}

/// `route`'s products $C \leftarrow 0.37\,AB$ (or $C + 0.37\,AB$), $C$ $m\times n$, inner dimension $k$, for each
/// `(m, k, n)`, in f64 and f32, which the route's predicate must take, against faer's own product on the same views
/// (a padded row stride makes the output not standard layout, which every route requires): bit for bit, with and
/// without accumulation, on one thread and two.
fn check_route(route: Route, shapes: &[(usize, usize, usize)]) {
    check_route_in::<f64>(route, shapes);
    check_route_in::<f32>(route, shapes);
}

fn check_route_in<T: Scalar>(route: Route, shapes: &[(usize, usize, usize)]) {
    for &(m, k, n) in shapes {
        let owned = route.operands::<T>(m, k, n);
        let (a, b) = route.views(&owned);
        let c0 = matrix::<T>(m, n, "c0");
        assert!(
            route.takes(a, b, c0.view()),
            "{} {m}x{k}x{n} must take the {route:?} route, or this compares faer with itself",
            T::DTYPE
        );
        for accumulate in [false, true] {
            let faer_own = |c0: &Array2<T>| {
                let mut padded = Array2::<T>::zeros((m, n + 1));
                let mut c = padded.slice_mut(ndarray::s![.., ..n]);
                assert!(!c.is_standard_layout());
                c.assign(c0);
                T::gemm(T::of(0.37), a, b, accumulate, c.view_mut());
                c.to_owned()
            };
            let rerouted = |c0: &Array2<T>| {
                let mut c = c0.clone();
                T::gemm(T::of(0.37), a, b, accumulate, c.view_mut());
                c
            };
            let reference = faer_own(&c0);
            let label = format!("{} {m}x{k}x{n} accumulate={accumulate}", T::DTYPE);
            assert!(
                rerouted(&c0) == reference,
                "{label}: the {route:?} route differs"
            );
            assert!(
                two_threads(|| rerouted(&c0)) == reference,
                "{label}: the {route:?} route on two threads"
            );
        }
    }
}

/// A product with a thin row-major output and a column-stored left factor (the adapters' $X^\top G$, $d\times r$) is
/// computed in column-major scratch and copied back (`scalar::thin_row_major`).
#[test]
fn thin_outputs_are_faers_own_orientation_bit_for_bit() {
    check_route(
        Route::Thin,
        &[
            (512, 1280, 4),
            (1024, 64, 8),
            (128, 64, 16),
            (200, 33, 3),
            (2048, 300, 2),
        ],
    );
}

/// A large product whose left factor is stored by columns (full fine-tuning's weight gradient $G^\top X$) is computed
/// from a row-major copy of that factor (`scalar::column_stored_left`). Shapes: the transformer's square and 4× maps
/// at 1280 token rows, odd edges, and a short inner dimension with a wide output (the MLP's batch of 64); each is
/// above the f32 threshold, so both dtypes take the route.
#[test]
fn column_stored_left_factors_are_faers_own_product_bit_for_bit() {
    check_route(
        Route::ColumnStoredLeft,
        &[
            (1024, 1280, 1024),
            (1024, 1280, 4096),
            (2100, 100, 2600),
            (2048, 64, 4096),
        ],
    );
}

/// A product with a short row-major output and a large column-stored right factor (the forward $XW_0^\top$ of a
/// mini-batch) is computed in column-major scratch and copied back (`scalar::short_row_major`). Shapes: the MLP's
/// batch of 64 at n = 1024 and a 4× map, 16 rows, odd edges, and 2 rows; each right factor has at least 2²⁰ entries.
#[test]
fn short_outputs_are_faers_own_orientation_bit_for_bit() {
    check_route(
        Route::Short,
        &[
            (64, 1024, 1024),
            (64, 1024, 4096),
            (16, 2048, 1024),
            (37, 1100, 1001),
            (2, 1500, 1500),
        ],
    );
}

/// Ten Adam steps of a 16 → 384 → 384 → 384 → 1 MLP (adapters on both hidden maps, batch 64: every big product is
/// above the threshold), returning the losses and the final trainable tensors.
fn train<T: Scalar>(method: Method) -> (Vec<f64>, Vec<Vec<T>>) {
    let n = 384;
    let mlp = MlpConfig {
        width: n,
        depth: 3,
        adapt: vec!["hidden".into()],
        ..MlpConfig::new(n)
    };
    let mut model = mlp
        .build(
            mlp.base_weights::<T>(0),
            &AdapterConfig::new(method).rank_alpha(8, 8.0),
            1,
        )
        .unwrap();
    let x: Array2<T> = matrix(64, 16, "x");
    let y: Array2<T> = matrix(64, 1, "y");
    adam_steps(&mut model, n, 1e-3, 10, &x, |out| {
        singlora::train::mse(out, &y)
    })
}

/// `steps` Adam steps of `model` at width `n` on inputs `x` with the given loss; the losses and the final trainable
/// tensors.
fn adam_steps<T: Scalar, M: Model<T>>(
    model: &mut M,
    n: usize,
    lr: f64,
    steps: usize,
    x: &Array2<T>,
    loss: impl Fn(&Array2<T>) -> (f64, Array2<T>),
) -> (Vec<f64>, Vec<Vec<T>>) {
    let opt = OptimizerConfig::new(Rule::adam(), lr);
    let factors = opt
        .groups
        .factors(model.params_info().into_iter().map(|p| p.info.role), n);
    let mut optimizer = opt.init().unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let (out, cache) = model.forward(x, T::one());
        let (l, g) = loss(&out);
        let grads = model.backward(&cache, &g, T::one());
        optimizer.step_views(model.params_mut(), &grads, &factors);
        losses.push(l);
    }
    let params = model
        .params_mut()
        .iter()
        .map(|p| p.iter().copied().collect())
        .collect();
    (losses, params)
}

#[test]
fn training_is_the_same_on_one_and_two_threads() {
    for method in Method::ALL {
        let one = train::<f64>(method);
        let two = two_threads(|| train::<f64>(method));
        assert!(
            one.0.iter().all(|l| l.is_finite()),
            "{method}: the loss is not finite"
        );
        assert_eq!(one, two, "{method} f64: two threads differ from one");
        assert_eq!(
            train::<f32>(method),
            two_threads(|| train::<f32>(method)),
            "{method} f32"
        );
    }
}

/// Five Adam steps of a 2-block transformer at width 128 (4 heads, 64 recall sequences of T = 5: 320 token rows;
/// SingLoRA on every map), returning the losses and the final trainable tensors. At this size every row-wise and
/// element-wise op (attention per sequence, LayerNorm per row, GELU per element) is split into parts on two threads
/// (asserted below), besides the products.
fn train_transformer<T: Scalar>(causal: bool) -> (Vec<f64>, Vec<Vec<T>>) {
    let recall = RecallConfig {
        keys: 8,
        values: 8,
        pairs: 2,
        permute: false,
    };
    let mut cfg = TransformerConfig::at_width(128, WidthMode::Heads, 32).unwrap();
    (cfg.vocab, cfg.seq_len, cfg.causal) = (recall.vocab(), recall.seq_len(), causal);
    cfg.adapt = ["q", "k", "v", "o", "up", "down"]
        .map(String::from)
        .to_vec();
    let adapter = AdapterConfig::new(Method::Singlora).rank_alpha(4, 4.0);
    let mut net = cfg.build(cfg.base_weights::<T>(0), &adapter, 2).unwrap();
    let data = associative_recall::<T>(&recall, 64, 1, 1).unwrap();
    adam_steps(&mut net, 128, 1e-2, 5, &data.x_train, |out| {
        data.loss.eval(out, &data.y_train)
    })
}

#[test]
fn transformer_training_is_the_same_on_one_and_two_threads() {
    // The ops take the parallel path at this size: 64 sequences × 4 heads × 25 scores × 2·32 operations (attention),
    // 320 rows × 4·128 (LayerNorm), 320 · 512 elements (GELU) are all ≥ PAR_MIN_OPS = 65536.
    let parts = two_threads(|| [part_len(64, 2 * 4 * 25 * 32), part_len(320, 4 * 128)]);
    assert_eq!(parts, [32, 160], "two parts on two threads");
    for causal in [false, true] {
        let one = train_transformer::<f64>(causal);
        assert!(
            one.0.iter().all(|l| l.is_finite()),
            "the loss is not finite"
        );
        assert!(one.0[4] < one.0[0], "training lowers the loss: {:?}", one.0);
        let two = two_threads(|| train_transformer::<f64>(causal));
        assert_eq!(
            one, two,
            "f64, causal = {causal}: two threads differ from one"
        );
        assert_eq!(
            train_transformer::<f32>(causal),
            two_threads(|| train_transformer::<f32>(causal)),
            "f32, causal = {causal}"
        );
    }
}

/// One shard of a sweep holding a single run at width 1024 (so the engine, with one run and two threads, gives the
/// run both threads' products) equals itself run on one thread, record for record.
#[test]
fn a_one_run_study_is_the_same_on_one_and_two_threads() {
    let cfg = StudyConfig::load(
        None,
        &[
            "widths=[256,1024]".into(),
            "seeds=[0]".into(),
            "steps=3".into(),
            "lr_exponents=[0.5]".into(),
            "arms=[{name=\"lora\",method=\"lora\"}]".into(),
        ],
    )
    .unwrap();
    let run = |threads: usize| {
        let out =
            std::env::temp_dir().join(format!("singlora-threads-{}-{threads}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let opts = RunOptions {
            threads: Some(threads),
            shard: Some("0/2".parse().unwrap()),
            ..RunOptions::default()
        };
        let finished = run_study(&Sweep(&cfg), &out, &opts).unwrap();
        let _ = std::fs::remove_dir_all(&out);
        assert_eq!(finished.runs.len(), 1, "the shard holds one run");
        assert_eq!(
            finished.runs[0].job.width, 1024,
            "the shard holds the wide run"
        );
        serde_json::to_string(&finished.runs[0].run).unwrap()
    };
    assert_eq!(
        run(1),
        run(2),
        "the study's record depends on the thread count"
    );
}
