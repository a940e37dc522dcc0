//! PT8: trainable-parameter counts come from the tensors actually allocated, and match r(d_in + d_out) for LoRA,
//! r·max(d_in, d_out) for SingLoRA, d_in·d_out for full fine-tuning, plus d_out for DoRA's magnitude; and the
//! LLaMA-7B block ratio of THEORY §1.4.

use ndarray::Array2;
use singlora::adapters::lora::LowRank;
use singlora::adapters::singlora::Symmetric;
use singlora::adapters::{AdaptedLinear, AdapterConfig, Method, Update};

#[test]
fn counts_per_layer() {
    for &(d_in, d_out) in &[(6, 6), (5, 9), (9, 5), (1, 13)] {
        for r in 1..=d_in.min(d_out) {
            let count = |m: Method| {
                AdaptedLinear::<f64>::new(
                    Array2::zeros((d_out, d_in)),
                    &AdapterConfig::new(m).rank_alpha(r, 1.0),
                    0,
                )
                .unwrap()
                .num_trainable()
            };
            assert_eq!(count(Method::Lora), r * (d_in + d_out));
            assert_eq!(count(Method::Dora), r * (d_in + d_out) + d_out);
            assert_eq!(count(Method::Singlora), r * d_in.max(d_out));
            assert_eq!(count(Method::SingloraDora), r * d_in.max(d_out) + d_out);
            assert_eq!(count(Method::Full), d_in * d_out);
            if d_in == d_out {
                assert_eq!(
                    2 * count(Method::Singlora),
                    count(Method::Lora),
                    "square: exactly half"
                );
            }
        }
    }
}

/// LLaMA-7B block, 7 projections: q, k, v, o (4096×4096), gate, up (11008×4096), down (4096×11008).
/// LoRA: r·(4·8192 + 3·15104) = 78 080·r; SingLoRA: r·(4·4096 + 3·11008) = 49 408·r; ratio 0.6328.
/// q and v only: 16 384·r vs 8 192·r, ratio exactly 1/2. At r = 8 over 32 blocks: 19.99M vs 12.65M.
#[test]
fn llama_7b_block_ratio() {
    let r = 8;
    let shapes_all = [
        (4096, 4096),
        (4096, 4096),
        (4096, 4096),
        (4096, 4096),
        (4096, 11008),
        (4096, 11008),
        (11008, 4096),
    ];
    let lora = |shapes: &[(usize, usize)]| -> usize {
        shapes
            .iter()
            .map(|&(d_in, d_out)| {
                LowRank::<f32>::new(Array2::zeros((r, d_in)), Array2::zeros((d_out, r)))
                    .num_trainable()
            })
            .sum()
    };
    let sing = |shapes: &[(usize, usize)]| -> usize {
        shapes
            .iter()
            .map(|&(d_in, d_out)| {
                Symmetric::<f32>::new(Array2::zeros((d_in.max(d_out), r)), d_in, d_out)
                    .num_trainable()
            })
            .sum()
    };
    assert_eq!(lora(&shapes_all), 78_080 * r);
    assert_eq!(sing(&shapes_all), 49_408 * r);
    let ratio = sing(&shapes_all) as f64 / lora(&shapes_all) as f64;
    assert!((ratio - 0.6328).abs() < 5e-5, "ratio {ratio}");
    assert_eq!(32 * lora(&shapes_all), 19_988_480);
    assert_eq!(32 * sing(&shapes_all), 12_648_448);
    let qv = [(4096, 4096), (4096, 4096)];
    assert_eq!(2 * sing(&qv), lora(&qv));
}
