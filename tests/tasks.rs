//! Losses (gradients against finite differences), and the tasks: shapes, width independence of the data, and the
//! properties each task promises.

mod common;

use ndarray::{array, Array2};
use singlora::models::{MlpConfig, Model};
use singlora::tasks::{
    associative_recall, teacher_classification, teacher_regression, RecallConfig, ShiftKind,
    Teacher,
};
use singlora::train::{accuracy, cross_entropy, mse, Loss};

/// Both losses against central differences (f64, h = 1e-6: smooth functions with O(1) derivatives, error ~1e-10);
/// cross-entropy with one-hot, soft and ignored (all-zero) target rows.
#[test]
fn loss_gradients_match_finite_differences() {
    let y = common::gaussian(4, 3, 1, "y");
    let targets = array![[0., 1., 0.], [0.2, 0.3, 0.5], [0., 0., 0.], [1., 0., 0.]];
    for loss in [Loss::Mse, Loss::CrossEntropy] {
        let (_, g) = loss.eval(&y, &targets);
        let mut yp = y.clone();
        for idx in ndarray::indices(y.dim()) {
            let h = 1e-6;
            let o = yp[idx];
            yp[idx] = o + h;
            let p = loss.eval(&yp, &targets).0;
            yp[idx] = o - h;
            let m = loss.eval(&yp, &targets).0;
            yp[idx] = o;
            assert!(
                ((p - m) / (2.0 * h) - g[idx]).abs() < 1e-8,
                "{loss:?} at {idx:?}"
            );
        }
    }
    // The ignored row gets zero gradient; the mean is over the 3 scored rows.
    let (l, g) = cross_entropy(&y, &targets);
    assert!(g.row(2).iter().all(|&v| v == 0.0));
    let uniform = Array2::<f64>::zeros((4, 3));
    assert!(
        (cross_entropy(&uniform, &targets).0 - 3f64.ln()).abs() < 1e-15,
        "uniform logits give ln 3"
    );
    assert!(l.is_finite());
    // MSE: ½·mean over rows of squared norms. y − t = [[1, 1]] ⇒ L = ½·2 = 1.
    assert_eq!(mse(&array![[1., 2.]], &array![[0., 1.]]).0, 1.0);
    assert_eq!(
        accuracy(
            &array![[0.1, 2.0], [3.0, 0.0], [5.0, 1.0]],
            &array![[0., 1.], [0., 1.], [0., 0.]]
        ),
        0.5
    );
}

/// The inputs are the same at every width; the regression target's shift effect has rms exactly 1 on the training
/// split, so the initial loss of a student at the base is ½ at every width.
#[test]
fn regression_data_are_width_independent() {
    let mut xs = Vec::new();
    for width in [16, 64] {
        let cfg = MlpConfig::new(width);
        let d = teacher_regression::<f64>(&Teacher {
            mlp: &cfg,
            base_seed: 3,
            layer: "hidden.1",
            kind: ShiftKind::Nsd,
            rank: 2,
            train: 50,
            test: 20,
            data_seed: 4,
        })
        .unwrap();
        let mut frozen = cfg.clone();
        frozen.adapt.clear();
        let base = frozen
            .build(
                cfg.base_weights::<f64>(3),
                &singlora::adapters::AdapterConfig::default(),
                0,
            )
            .unwrap();
        let (y0, _) = base.forward(&d.x_train, 1.0);
        let (l, _) = mse(&y0, &d.y_train);
        assert!((l - 0.5).abs() < 1e-12, "initial loss {l} at width {width}");
        xs.push(d.x_train);
    }
    assert_eq!(xs[0], xs[1]);
}

#[test]
fn classification_labels_are_one_hot() {
    let mut cfg = MlpConfig::new(32);
    cfg.output_dim = 5;
    let d = teacher_classification::<f64>(&Teacher {
        mlp: &cfg,
        base_seed: 1,
        layer: "hidden.1",
        kind: ShiftKind::Asymmetric,
        rank: 2,
        train: 200,
        test: 50,
        data_seed: 2,
    })
    .unwrap();
    assert_eq!(d.y_train.dim(), (200, 5));
    assert!(d
        .y_train
        .outer_iter()
        .all(|r| r.sum() == 1.0 && r.iter().all(|&v| v == 0.0 || v == 1.0)));
    // All classes occur (the task is not degenerate).
    assert!(d
        .y_train
        .sum_axis(ndarray::Axis(0))
        .iter()
        .all(|&c| c > 0.0));
    cfg.output_dim = 1;
    assert!(teacher_classification::<f64>(&Teacher {
        mlp: &cfg,
        base_seed: 1,
        layer: "hidden.1",
        kind: ShiftKind::Psd,
        rank: 2,
        train: 10,
        test: 10,
        data_seed: 2
    })
    .unwrap_err()
    .to_string()
    .contains("output_dim"));
}

/// Each recall sequence: p distinct keys with values, then a query key present earlier; the only scored target is
/// the value stored with that key.
#[test]
fn recall_sequences_are_well_formed() {
    let cfg = RecallConfig {
        keys: 6,
        values: 4,
        pairs: 3,
        permute: false,
    };
    let d = associative_recall::<f64>(&cfg, 40, 10, 5).unwrap();
    let t = cfg.seq_len();
    assert_eq!(d.rows_per_example, 7);
    assert_eq!(d.x_train.dim(), (40 * t, 10));
    let tok = |r: ndarray::ArrayView1<'_, f64>| r.iter().position(|&v| v == 1.0).unwrap();
    for s in 0..40 {
        let rows: Vec<usize> = (0..t).map(|i| tok(d.x_train.row(s * t + i))).collect();
        let keys: Vec<usize> = (0..3).map(|i| rows[2 * i]).collect();
        assert!(
            keys.iter().all(|&k| k < 6) && rows.iter().skip(1).step_by(2).take(3).all(|&v| v >= 6)
        );
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 3, "keys repeat");
        let q = rows[t - 1];
        let pos = keys
            .iter()
            .position(|&k| k == q)
            .expect("query key was shown");
        assert_eq!(tok(d.y_train.row(s * t + t - 1)), rows[2 * pos + 1]);
        assert!(
            (0..t - 1).all(|i| d.y_train.row(s * t + i).sum() == 0.0),
            "only the last position is scored"
        );
    }
    assert!(associative_recall::<f64>(
        &RecallConfig {
            keys: 2,
            values: 4,
            pairs: 3,
            permute: false,
        },
        1,
        1,
        0
    )
    .is_err());
}

/// With `permute`, the same sequences (same data streams) are answered by π(value) for one fixed permutation π of the
/// values: the answers map to a bijection of the value symbols, shared by every sequence, and (for 8 values, where
/// the identity has probability 1/8! ≈ 2.5e-5 per seed) not the identity.
#[test]
fn permuted_recall_relabels_every_answer_by_one_bijection() {
    let plain = RecallConfig {
        keys: 8,
        values: 8,
        pairs: 2,
        permute: false,
    };
    let permuted = RecallConfig {
        permute: true,
        ..plain
    };
    let a = associative_recall::<f64>(&plain, 200, 10, 3).unwrap();
    let b = associative_recall::<f64>(&permuted, 200, 10, 3).unwrap();
    assert_eq!(a.x_train, b.x_train, "the inputs do not depend on π");
    let t = plain.seq_len();
    let tok = |r: ndarray::ArrayView1<'_, f64>| r.iter().position(|&v| v == 1.0).unwrap();
    let mut pi = std::collections::BTreeMap::new();
    for s in 0..200 {
        let (va, vb) = (
            tok(a.y_train.row(s * t + t - 1)),
            tok(b.y_train.row(s * t + t - 1)),
        );
        assert!(va >= 8 && vb >= 8, "answers are value symbols");
        assert_eq!(*pi.entry(va).or_insert(vb), vb, "one π for every sequence");
    }
    let images: std::collections::BTreeSet<_> = pi.values().collect();
    assert_eq!(images.len(), pi.len(), "π is injective");
    assert!(pi.iter().any(|(k, v)| k != v), "π is not the identity");
}

/// A shift added a block of rows at a time (what the teacher does, so a wide layer never holds a dense f64 shift) is
/// bit for bit the dense shift added, for every kind, across a block boundary and a ragged last block, in f32 and f64:
/// each entry is the same length-r product in both, rounded to `T` once and added once.
#[test]
fn a_shift_added_by_blocks_is_the_dense_shift() {
    use singlora::tasks::regression::SHIFT_BLOCK;
    let (d_out, d_in, r) = (2 * SHIFT_BLOCK + 37, 300, 5);
    for kind in [
        ShiftKind::Psd,
        ShiftKind::Nsd,
        ShiftKind::Asymmetric,
        ShiftKind::Random,
    ] {
        let dense = kind.draw(d_in, d_out, r, 11);
        assert_eq!(dense.dim(), (d_out, d_in));
        let w0: Array2<f64> =
            Array2::from_shape_fn((d_out, d_in), |(i, j)| (i as f64 - j as f64) * 1e-3);
        let mut by_blocks = w0.clone();
        kind.factors(d_in, d_out, r, 11).add_to(&mut by_blocks);
        assert_eq!(by_blocks, &w0 + &dense, "{kind} f64");
        let w32 = w0.mapv(|v| v as f32);
        let mut by_blocks32 = w32.clone();
        kind.factors(d_in, d_out, r, 11).add_to(&mut by_blocks32);
        let mut dense32 = w32;
        dense32.zip_mut_with(&dense, |w, &d| *w += d as f32);
        assert_eq!(by_blocks32, dense32, "{kind} f32");
    }
}
