//! Transformer: every piece's hand-written backward pass (LayerNorm, softmax attention with and without the causal
//! mask, the GELU feed-forward sublayer, the residual block) and the whole model's gradient against central finite
//! differences in f64, for every adapter on every map; attaching adapters at initialisation leaves the output bit for
//! bit unchanged; both width notions build; the causal mask is exact; bad configs name their field.
//!
//! Error budget. With $L = \langle G, Y\rangle$ and central differences of step h, the error of one entry is
//! $h^2|L'''|/6$ (truncation) plus $\approx 2\varepsilon_L/(2h)$ (round-off, $\varepsilon_L$ the absolute error of one
//! evaluation of L). Every piece is smooth (LayerNorm on rows of Θ(1) variance, softmax, exact GELU, DoRA's row norms
//! away from 0), and at these sizes its third derivatives are O(1)–O(10), so with h = 1e-5 truncation is
//! ≲ 1e-9 per entry. L sums (B·T)·vocab = 40 products of Θ(1) numbers through a few hundred floating-point
//! operations, so $\varepsilon_L \lesssim 10^3\cdot 2^{-53}\cdot|L| \approx 10^{-12}$ and round-off is ≲ 1e-7 per
//! entry in the worst case, ~1e-10 typically (errors are random, not aligned). Gradient tensors have Frobenius norms
//! of order 1e-2 to 10, so the relative Frobenius error is ≲ 1e-8 typically; we assert 1e-6 relative, which a wrong
//! formula (a missing term, a transposed factor, a mask leak) misses by orders of magnitude.

mod common;

use std::collections::BTreeSet;

use common::{fd_matrix, fd_tensors, gaussian, rel_err};
use ndarray::{Array2, Axis};
use singlora::adapters::{AdapterConfig, DoraNorm, Method, Ramp};
use singlora::models::transformer::{
    attention, attention_backward, layer_norm, layer_norm_backward, layer_norm_backward_in_place,
    AttentionSpec, Block, LAYER_NORM_EPS,
};
use singlora::models::{
    Linear, LogitScale, Model, Readout, Transformer, TransformerConfig, WidthMode,
};

const H: f64 = 1e-5;
const TOL: f64 = 1e-6;
const ALL_MAPS: [&str; 8] = ["embed", "q", "k", "v", "o", "up", "down", "readout"];

/// Two sequences of 4 tokens, vocab 5, 2 heads of size 3 (n = 6), 2 blocks, adapters on `adapt`.
fn small_cfg(causal: bool, adapt: &[&str]) -> TransformerConfig {
    TransformerConfig {
        vocab: 5,
        seq_len: 4,
        blocks: 2,
        heads: 2,
        head_dim: 3,
        causal,
        logit_scale: LogitScale::Standard,
        readout: Readout::Standard,
        adapt: adapt.iter().map(|s| s.to_string()).collect(),
        ..TransformerConfig::default()
    }
}

/// A network of `cfg` with `method` (rank 2, α = 2, exact DoRA norm gradient) and every adapter in a random state.
fn random_net(cfg: &TransformerConfig, method: Method, u: f64) -> Transformer<f64> {
    let adapter = AdapterConfig::new(method)
        .rank_alpha(2, 2.0)
        .dora_norm(DoraNorm::Full);
    let mut net = cfg.build(cfg.base_weights::<f64>(3), &adapter, 4).unwrap();
    for (k, layer) in net.layers_mut().into_iter().enumerate() {
        if let Linear::Adapted(a) = layer {
            a.randomize(10 + k as u64, u);
        }
    }
    net
}

// --- (1) each piece on its own ---------------------------------------------------------------------------------

#[test]
fn layer_norm_matches_its_definition_and_finite_differences() {
    // By hand: [1, 2, 3] has mean 2 and biased variance 2/3, so y = [-1, 0, 1]/√(2/3 + ε).
    let ln = layer_norm(ndarray::array![[1.0f64, 2.0, 3.0]].view());
    let r = 1.0 / (2.0 / 3.0 + LAYER_NORM_EPS).sqrt();
    assert_eq!(ln.rstd[0], r);
    assert!(
        (&ln.y - &ndarray::array![[-r, 0.0, r]])
            .iter()
            .all(|d| d.abs() < 1e-15),
        "{:?}",
        ln.y
    );
    // Off-centre rows of different scales.
    let x = gaussian(6, 7, 1, "ln.x") * 1.7 + 0.4;
    let g = gaussian(6, 7, 1, "ln.g");
    let ln = layer_norm(x.view());
    let analytic = layer_norm_backward(&ln, g.view());
    let fd = fd_matrix(&x, H, |x| (&layer_norm(x.view()).y * &g).sum());
    let e = rel_err(&analytic, &fd);
    assert!(e <= TOL, "layer norm: rel err {e:e}");
}

#[test]
fn attention_gradients_match_finite_differences_with_and_without_mask() {
    // 2 sequences of 4 tokens, 2 heads of size 3.
    let (q, k, v) = (
        gaussian(8, 6, 2, "att.q"),
        gaussian(8, 6, 2, "att.k"),
        gaussian(8, 6, 2, "att.v"),
    );
    let g = gaussian(8, 6, 2, "att.g");
    for causal in [false, true] {
        for tau in [1.0 / 3f64.sqrt(), 1.0 / 3.0] {
            let spec = AttentionSpec {
                seq_len: 4,
                heads: 2,
                head_dim: 3,
                tau,
                causal,
            };
            let out = attention(q.view(), k.view(), v.view(), &spec);
            // Probabilities: rows sum to 1, masked entries exactly 0, unmasked positive.
            for ((b, j, t), row) in out
                .probs
                .lanes(Axis(3))
                .into_iter()
                .enumerate()
                .map(|(i, r)| ((i / 8, (i / 4) % 2, i % 4), r))
            {
                assert!((row.sum() - 1.0).abs() < 1e-14, "seq {b} head {j} row {t}");
                for (t2, &p) in row.iter().enumerate() {
                    assert!(
                        if causal && t2 > t { p == 0.0 } else { p > 0.0 },
                        "causal {causal}: P[{t},{t2}] = {p}"
                    );
                }
            }
            let grads =
                attention_backward(q.view(), k.view(), v.view(), &out.probs, g.view(), &spec);
            let probe = |q: &Array2<f64>, k: &Array2<f64>, v: &Array2<f64>| {
                (&attention(q.view(), k.view(), v.view(), &spec).ctx * &g).sum()
            };
            for (name, analytic, fd) in [
                ("q", &grads.q, fd_matrix(&q, H, |q| probe(q, &k, &v))),
                ("k", &grads.k, fd_matrix(&k, H, |k| probe(&q, k, &v))),
                ("v", &grads.v, fd_matrix(&v, H, |v| probe(&q, &k, v))),
            ] {
                let e = rel_err(analytic, &fd);
                assert!(
                    e <= TOL,
                    "attention causal={causal} τ={tau}: ∂{name} rel err {e:e}"
                );
            }
            if causal {
                // The last key of each sequence is seen only by the last query: its gradient comes from one row.
                assert!(grads.k.row(3).iter().any(|&x| x != 0.0));
            }
        }
    }
}

/// The GELU feed-forward sublayer $\mathrm{GELU}(\mathrm{LN}(h)W_{up}^\top)W_{down}^\top$: input and parameter
/// gradients, frozen and with adapters on up and down.
#[test]
fn feed_forward_sublayer_gradients_match_finite_differences() {
    let h = gaussian(8, 6, 3, "ff.h");
    let g = gaussian(8, 6, 3, "ff.g");
    let u = 0.6;
    for method in [None, Some(Method::Lora), Some(Method::SingloraDora)] {
        let cfg = small_cfg(
            true,
            if method.is_some() {
                &["up", "down"]
            } else {
                &[]
            },
        );
        let mut net = random_net(&cfg, method.unwrap_or(Method::Lora), u);
        let block = &mut net.blocks[0];
        let (_, cache) = block.feed_forward(h.view(), u);
        let (grads, gh) = block.feed_forward_backward(&cache, g.view(), u);
        let fd = fd_matrix(&h, H, |h| (&block.feed_forward(h.view(), u).0 * &g).sum());
        let e = rel_err(&gh, &fd);
        assert!(e <= TOL, "feed-forward {method:?}: ∂h rel err {e:e}");
        let fd = fd_tensors(block, Block::params_mut, H, |b| {
            (&b.feed_forward(h.view(), u).0 * &g).sum()
        });
        assert_eq!(grads.len(), fd.len());
        assert_eq!(grads.len(), if method.is_some() { 4 } else { 0 });
        for (k, (a, f)) in grads.iter().zip(&fd).enumerate() {
            let e = rel_err(a, f);
            assert!(
                e <= TOL,
                "feed-forward {method:?}: tensor {k} rel err {e:e}"
            );
        }
    }
}

/// The residual block $h' = h + F_{attn}(h)$, $h'' = h' + F_{ff}(h')$ with adapters on all six maps.
#[test]
fn residual_block_gradients_match_finite_differences() {
    let h = gaussian(8, 6, 4, "block.h");
    let g = gaussian(8, 6, 4, "block.g");
    let u = 0.6;
    for causal in [true, false] {
        for method in [Method::Lora, Method::Dora, Method::Singlora] {
            let mut net = random_net(
                &small_cfg(causal, &["q", "k", "v", "o", "up", "down"]),
                method,
                u,
            );
            let block = &mut net.blocks[1];
            let (_, cache) = block.forward(h.view(), u);
            let (grads, gh) = block.backward(&cache, g.view(), u);
            let fd = fd_matrix(&h, H, |h| (&block.forward(h.view(), u).0 * &g).sum());
            let e = rel_err(&gh, &fd);
            assert!(e <= TOL, "block {method} causal={causal}: ∂h rel err {e:e}");
            // The attention sublayer's input gradient on its own, too.
            let (_, ac) = block.attention_forward(h.view(), u);
            let fd_a = fd_matrix(&h, H, |h| {
                (&block.attention_forward(h.view(), u).0 * &g).sum()
            });
            let e = rel_err(&block.attention_backward(&ac, g.view(), u).1, &fd_a);
            assert!(
                e <= TOL,
                "attention sublayer {method} causal={causal}: ∂h rel err {e:e}"
            );
            let fd = fd_tensors(block, Block::params_mut, H, |b| {
                (&b.forward(h.view(), u).0 * &g).sum()
            });
            assert_eq!(grads.len(), fd.len());
            for (k, (a, f)) in grads.iter().zip(&fd).enumerate() {
                let e = rel_err(a, f);
                assert!(
                    e <= TOL,
                    "block {method} causal={causal}: tensor {k} rel err {e:e}"
                );
            }
        }
    }
}

// --- (2) the whole model ---------------------------------------------------------------------------------------

/// Every adapter on every map (the six of each block, the embedding and the readout), adapter states random,
/// u = 0.6, causal with standard logits and a standard readout, and non-causal with μP logits and a μP readout.
#[test]
fn transformer_gradients_match_finite_differences() {
    let x = gaussian(8, 5, 5, "model.x");
    let g = gaussian(8, 5, 5, "model.g");
    let u = 0.6;
    // Both width notions at n = 6: 3 heads of 2 (heads grow, head_dim = 2 fixed) and 2 heads of 3 (head_dim grows,
    // heads = 2 fixed); both logit scales; MLP ratios 4 and 2.
    for (causal, logits, readout, mode, ratio) in [
        (
            true,
            LogitScale::Standard,
            Readout::Standard,
            WidthMode::Heads,
            4,
        ),
        (false, LogitScale::Mup, Readout::Mup, WidthMode::HeadDim, 2),
    ] {
        for method in Method::ALL {
            let mut cfg = small_cfg(causal, &ALL_MAPS);
            cfg.logit_scale = logits;
            cfg.readout = readout;
            cfg.width_mode = mode;
            cfg.mlp_ratio = ratio;
            cfg.head_dim = 2;
            let cfg = cfg.with_width(6).unwrap();
            assert_eq!(
                (cfg.heads, cfg.head_dim),
                if mode == WidthMode::Heads {
                    (3, 2)
                } else {
                    (2, 3)
                }
            );
            let mut net = random_net(&cfg, method, u);
            let (y, cache) = net.forward(&x, u);
            assert_eq!(y.dim(), (8, 5));
            let grads = net.backward(&cache, &g, u);

            // Nothing missing: one gradient per tensor, of its shape, every map present, none trivially zero.
            let info = net.params_info();
            let per_layer = match method {
                Method::Full | Method::Singlora => 1,
                Method::Lora | Method::SingloraDora => 2,
                Method::Dora => 3,
            };
            assert_eq!(info.len(), per_layer * (2 + 6 * cfg.blocks), "{method}");
            assert_eq!(grads.len(), info.len());
            assert_eq!(net.params().len(), info.len());
            let layers: BTreeSet<&str> = info.iter().map(|p| p.layer.as_str()).collect();
            assert_eq!(
                layers,
                net.names.iter().map(String::as_str).collect(),
                "{method}: a map without gradients"
            );
            for ((grad, p), i) in grads.iter().zip(net.params()).zip(&info) {
                assert_eq!(grad.shape(), p.shape(), "{}", i.full_name());
                assert_eq!(grad.shape(), i.info.shape.as_slice(), "{}", i.full_name());
                assert!(
                    grad.iter().any(|&v| v != 0.0),
                    "{method}: {} gradient is zero",
                    i.full_name()
                );
            }

            let fd = fd_tensors(&mut net, Model::params_mut, H, |n| {
                (&n.forward(&x, u).0 * &g).sum()
            });
            for (k, (a, f)) in grads.iter().zip(&fd).enumerate() {
                let e = rel_err(a, f);
                assert!(
                    e <= TOL,
                    "{method} causal={causal}: {} rel err {e:e}",
                    info[k].full_name()
                );
            }
        }
    }
}

/// With only some maps adapted, the backward pass skips what no trainable tensor needs: block 0's three input
/// products ∂Q·W_Q + ∂K·W_K + ∂V·W_V and its LayerNorm backward when the embedding is frozen, all of block 0's
/// attention sublayer below O when only later maps train, everything below the lowest trainable map. Every gradient is
/// still the one the full chain gives (every input gradient, through `Block::backward`), bit for bit, and matches
/// central finite differences.
#[test]
fn frozen_lower_maps_skip_input_gradients_exactly() {
    let x = gaussian(8, 5, 5, "skip.x");
    let g = gaussian(8, 5, 5, "skip.g");
    let u = 0.7;
    let subsets: [&[&str]; 6] = [
        &["q", "k", "v", "o", "up", "down"],
        &["up"],
        &["v"],
        &["down", "readout"],
        &["readout"],
        &["embed", "up"],
    ];
    for adapt in subsets {
        for method in [Method::Lora, Method::Full] {
            let mut net = random_net(&small_cfg(true, adapt), method, u);
            let (_, cache) = net.forward(&x, u);
            let grads = net.backward(&cache, &g, u);

            // The full chain, every input gradient computed.
            let (readout_grads, mut gh) =
                net.readout.backward(cache.final_ln.y.view(), g.view(), u);
            layer_norm_backward_in_place(&cache.final_ln, &mut gh);
            let mut block_grads = Vec::new();
            for (block, bc) in net.blocks.iter().zip(&cache.blocks).rev() {
                let (grads, g_in) = block.backward(bc, gh.view(), u);
                block_grads.push(grads);
                gh = g_in;
            }
            let (embed_grads, _) = net.embed.backward(cache.x.view(), gh.view(), u);
            let chain: Vec<_> = (embed_grads.into_iter())
                .chain(block_grads.into_iter().rev().flatten())
                .chain(readout_grads)
                .collect();
            assert_eq!(
                grads, chain,
                "{adapt:?} {method}: not the full chain's gradients"
            );

            let fd = fd_tensors(&mut net, Model::params_mut, H, |n| {
                (&n.forward(&x, u).0 * &g).sum()
            });
            assert_eq!(fd.len(), grads.len());
            for (a, f) in grads.iter().zip(&fd) {
                let e = rel_err(a, f);
                assert!(e <= TOL, "{adapt:?} {method}: rel err {e:e}");
            }
        }
    }
}

// --- (3) attaching adapters at initialisation ------------------------------------------------------------------

/// LoRA, DoRA and full fine-tuning start at the base model at u = 1 (B = 0, ΔW = 0, ω = ‖W₀‖ row-wise); SingLoRA's
/// initial update is non-zero, so it starts at the base model only through the ramp at u(0) = 0. Bitwise equality.
#[test]
fn attaching_adapters_at_init_leaves_the_output_unchanged() {
    for (heads, head_dim) in [(2, 3), (4, 4)] {
        let mut cfg = small_cfg(true, &ALL_MAPS);
        (cfg.heads, cfg.head_dim) = (heads, head_dim);
        let x = gaussian(8, 5, 6, "init.x");
        let base = cfg.base_weights::<f64>(1);
        let plain_cfg = TransformerConfig {
            adapt: vec![],
            ..cfg.clone()
        };
        let plain = plain_cfg
            .build(base.clone(), &AdapterConfig::default(), 0)
            .unwrap();
        assert_eq!(plain.num_trainable(), 0);
        let (y0, _) = plain.forward(&x, 1.0);
        for method in Method::ALL {
            let mut adapter = AdapterConfig::new(method).rank_alpha(2, 2.0);
            if method.is_singlora() {
                adapter.ramp = Ramp {
                    steps: 5,
                    u_min: 0.0,
                };
            }
            let u = adapter.ramp.u(0);
            let net = cfg.build(base.clone(), &adapter, 9).unwrap();
            assert!(net.num_trainable() > 0);
            let (y, _) = net.forward(&x, u);
            assert_eq!(
                y,
                y0,
                "{method} at n = {}, u = {u}: attaching changed the output",
                cfg.width()
            );
            if method.is_singlora() {
                // Control: without the ramp SingLoRA's width-aware initial update does move the output.
                assert_ne!(net.forward(&x, 1.0).0, y0, "{method} at u = 1");
            }
        }
    }
}

// --- (4) width notions and the causal mask ---------------------------------------------------------------------

#[test]
fn both_width_notions_build_and_give_vocab_outputs() {
    let more_heads = TransformerConfig::at_width(12, WidthMode::Heads, 3).unwrap();
    let wider_heads = TransformerConfig::at_width(12, WidthMode::HeadDim, 2).unwrap();
    assert_eq!((more_heads.heads, more_heads.head_dim), (4, 3));
    assert_eq!((wider_heads.heads, wider_heads.head_dim), (2, 6));
    for cfg in [more_heads, wider_heads] {
        assert_eq!(cfg.width(), 12);
        assert_eq!(cfg.attention_spec().tau, 1.0 / (cfg.head_dim as f64).sqrt());
        let net = cfg
            .build(
                cfg.base_weights::<f64>(0),
                &AdapterConfig::new(Method::Singlora).rank_alpha(2, 2.0),
                1,
            )
            .unwrap();
        // Defaults: vocab 16, seq_len 8, 2 blocks, adapters on q and v.
        let adapted: BTreeSet<String> = net.params_info().iter().map(|p| p.layer.clone()).collect();
        assert_eq!(
            adapted,
            ["block.0.q", "block.0.v", "block.1.q", "block.1.v"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
        let x = gaussian(3 * 8, 16, 7, "width.x");
        let (y, _) = net.forward(&x, 1.0);
        assert_eq!(
            y.dim(),
            (3 * 8, 16),
            "{} heads of {}",
            cfg.heads,
            cfg.head_dim
        );
        assert!(y.iter().all(|v| v.is_finite()));
        // f32 builds and runs too.
        let net32 = cfg
            .build(
                cfg.base_weights::<f32>(0),
                &AdapterConfig::new(Method::Lora).rank_alpha(2, 2.0),
                1,
            )
            .unwrap();
        assert_eq!(
            net32.forward(&x.mapv(|v| v as f32), 1.0).0.dim(),
            (3 * 8, 16)
        );
    }
    // Base weights: shapes in layer order and fan-in scale.
    let cfg = TransformerConfig::new(2, 3);
    let shapes: Vec<_> = cfg.base_weights::<f64>(0).iter().map(|w| w.dim()).collect();
    assert_eq!(
        shapes[..8],
        [
            (6, 16),
            (6, 6),
            (6, 6),
            (6, 6),
            (6, 6),
            (24, 6),
            (6, 24),
            (6, 6)
        ]
    );
    assert_eq!(*shapes.last().unwrap(), (16, 6));
}

/// Perturbing token t' of one sequence leaves every output at positions t < t' of that sequence, and the whole
/// other sequence, exactly unchanged; without the mask the earlier positions move.
#[test]
fn causal_mask_blocks_the_future_exactly() {
    let x = gaussian(8, 5, 8, "causal.x");
    for causal in [true, false] {
        let net = random_net(&small_cfg(causal, &ALL_MAPS), Method::Dora, 0.6);
        let (y, _) = net.forward(&x, 0.6);
        for t_prime in 0..4 {
            let mut xp = x.clone();
            xp.row_mut(t_prime).mapv_inplace(|v| v + 0.5);
            let (yp, _) = net.forward(&xp, 0.6);
            for t in 0..8 {
                let same = yp.row(t) == y.row(t);
                let expected = if t >= 4 {
                    true
                } else if causal {
                    t < t_prime
                } else {
                    false
                };
                assert_eq!(
                    same, expected,
                    "causal={causal}: perturbing token {t_prime}, output row {t} same = {same}"
                );
            }
        }
    }
}

// --- (5) bad configs -------------------------------------------------------------------------------------------

#[test]
fn bad_transformer_configs_name_their_field() {
    let err = |cfg: &TransformerConfig| cfg.validate().unwrap_err().to_string();
    let mut cfg = TransformerConfig::new(2, 3);
    cfg.adapt = vec!["q".into(), "qq".into()];
    let e = err(&cfg);
    assert!(
        e.starts_with("invalid adapt = qq: expected one of q, k, v, o, up, down"),
        "{e}"
    );
    cfg.adapt = vec!["block.2.q".into()];
    let e = err(&cfg);
    assert!(
        e.contains("invalid adapt = block.2.q") && e.contains("K in 0..2"),
        "{e}"
    );
    cfg.adapt = vec!["block.1.up".into(), "embed".into(), "readout".into()];
    assert!(cfg.validate().is_ok());
    for field in ["vocab", "seq_len", "blocks", "heads", "head_dim"] {
        let mut bad = TransformerConfig::new(2, 3);
        match field {
            "vocab" => bad.vocab = 0,
            "seq_len" => bad.seq_len = 0,
            "blocks" => bad.blocks = 0,
            "heads" => bad.heads = 0,
            _ => bad.head_dim = 0,
        }
        assert_eq!(
            err(&bad),
            format!("invalid {field} = 0: expected a positive integer")
        );
    }
    let e = TransformerConfig::at_width(10, WidthMode::Heads, 4)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "invalid width = 10: expected a positive multiple of head_dim = 4"
    );
    let e = TransformerConfig::at_width(8, WidthMode::HeadDim, 0)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "invalid heads = 0: expected a positive integer");
    // A rank the adapted map cannot hold names the map.
    let cfg = TransformerConfig::new(2, 3);
    let e = cfg
        .build(
            cfg.base_weights::<f64>(0),
            &AdapterConfig::new(Method::Lora).rank_alpha(7, 1.0),
            0,
        )
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("invalid rank = 7") && e.contains("layer block.0.q"),
        "{e}"
    );
    // Base weights of the wrong shape.
    let mut base = cfg.base_weights::<f64>(0);
    base[1] = Array2::zeros((6, 5));
    let e = cfg
        .build(base, &AdapterConfig::default(), 0)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(e, "invalid base = 6x5 for block.0.q: expected 6x6");
}

#[test]
fn transformer_config_round_trips_through_toml() {
    let mut cfg = TransformerConfig::at_width(16, WidthMode::HeadDim, 2).unwrap();
    cfg.causal = false;
    cfg.logit_scale = LogitScale::Mup;
    cfg.readout = Readout::Standard;
    cfg.adapt = vec!["k".into(), "block.1.down".into()];
    let text = toml::to_string(&cfg).unwrap();
    assert_eq!(
        toml::from_str::<TransformerConfig>(&text).unwrap(),
        cfg,
        "{text}"
    );
    assert_eq!(
        toml::from_str::<TransformerConfig>("heads = 2\nhead_dim = 3").unwrap(),
        TransformerConfig::new(2, 3)
    );
    let e = toml::from_str::<TransformerConfig>("heads = 2\nhead_dim = 3\nhaeds = 4")
        .unwrap_err()
        .to_string();
    assert!(e.contains("haeds"), "{e}");
    let e = toml::from_str::<TransformerConfig>("heads = 2\nhead_dim = 3\nlogit_scale = \"mpu\"")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("invalid logit_scale = mpu: expected one of standard, mup"),
        "{e}"
    );
    assert_eq!("head_dim".parse::<WidthMode>().unwrap(), WidthMode::HeadDim);
}

#[test]
#[should_panic(expected = "not whole sequences")]
fn partial_sequences_are_refused() {
    let cfg = small_cfg(true, &[]);
    let net = cfg
        .build(cfg.base_weights::<f64>(0), &AdapterConfig::default(), 0)
        .unwrap();
    net.forward(&gaussian(6, 5, 0, "x"), 1.0);
}

/// The probes see every map of the transformer with the input it was applied to: re-applying each map to its tapped
/// input reproduces the next quantity of the forward pass (checked on the readout, whose output is the model output).
#[test]
fn taps_expose_every_map_and_its_input() {
    use singlora::models::{Inspect, Model};
    let cfg = TransformerConfig::new(2, 3);
    let net = cfg
        .build(
            cfg.base_weights::<f64>(1),
            &AdapterConfig::new(Method::Lora).rank_alpha(2, 2.0),
            2,
        )
        .unwrap();
    let x = singlora::rng::normal_matrix(
        &mut singlora::rng::SeedRng::new(0, "x"),
        2 * cfg.seq_len,
        cfg.vocab,
        1.0,
    );
    let (out, cache) = net.forward(&x, 1.0);
    let taps = net.taps(&cache, &out);
    assert_eq!(taps.len(), 2 + 6 * cfg.blocks);
    for tap in &taps {
        assert_eq!(
            tap.linear.forward(tap.input.view(), 1.0),
            *tap.output,
            "{}: the tap's output is the map's output",
            tap.name
        );
    }
    let names: Vec<&str> = taps.iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        net.names.iter().map(|s| s.as_str()).collect::<Vec<_>>()
    );
    let last = taps.last().unwrap();
    assert_eq!(last.linear.forward(last.input.view(), 1.0), out);
}

// --- (6) the batched attention against the per-sequence formula ------------------------------------------------

/// The per-sequence, per-head attention the batched one replaced, kept as an oracle: for each sequence and head,
/// $P = \mathrm{softmax}(\tau QK^\top)$ and $C = PV$ through faer products, and the backward pass
/// $\partial V = P^\top G$, $\partial S = P\odot(GV^\top - \mathrm{rowsum}(P\odot GV^\top))\,\tau$,
/// $\partial Q = \partial S\,K$, $\partial K = \partial S^\top Q$.
fn per_sequence_attention(
    q: &Array2<f64>,
    k: &Array2<f64>,
    v: &Array2<f64>,
    g: &Array2<f64>,
    spec: &AttentionSpec,
) -> [Array2<f64>; 4] {
    use ndarray::s;
    use singlora::linalg::{mm, mm_nt, mm_tn};
    use singlora::models::transformer::{softmax_rows, softmax_rows_backward};
    let (tt, hd) = (spec.seq_len, spec.head_dim);
    let mut out = [(); 4].map(|_| Array2::zeros(q.dim()));
    for b in 0..q.nrows() / tt {
        for j in 0..spec.heads {
            let blk = s![b * tt..(b + 1) * tt, j * hd..(j + 1) * hd];
            let (qb, kb, vb, gb) = (q.slice(blk), k.slice(blk), v.slice(blk), g.slice(blk));
            let mut p = mm_nt(qb, kb);
            softmax_rows(p.view_mut(), spec.tau, spec.causal);
            out[0].slice_mut(blk).assign(&mm(p.view(), vb));
            let ds = softmax_rows_backward(p.view(), mm_nt(gb, vb).view()) * spec.tau;
            out[1].slice_mut(blk).assign(&mm(ds.view(), kb));
            out[2].slice_mut(blk).assign(&mm_tn(ds.view(), qb));
            out[3].slice_mut(blk).assign(&mm_tn(p.view(), gb));
        }
    }
    out
}

/// The batched [`attention`] and [`attention_backward`] equal the per-sequence oracle up to round-off from the
/// changed summation order, with a derived bound. With $\varepsilon = 2^{-53}$, $\gamma_m = m\varepsilon/(1-m\varepsilon)$
/// and $Q, K, V, G$ the largest entries of the inputs: two orders of a logit $\tau\sum_c q_ck_c$ differ by at most
/// $\delta = 2\gamma_d\,\tau d QK$ (Higham Thm 3.1, twice); softmax turns a logit change $\le\delta$ into
/// $|\Delta p| \le p\,(e^{2\delta}-1) \approx 2\delta p$, and each implementation's own exp, sum of $\le T$ terms and
/// division add $\le (T+3)\varepsilon\,p$; so every probability moves by at most $p\,\beta$,
/// $\beta = 2\delta + 2(T+3)\varepsilon$. Then $C = \sum_{t'} p_{t'}V_{t'}$ moves by $\le V(\beta + 2\gamma_T)$
/// ($\sum p = 1$); $\partial V = \sum_t P_{tt'}G_t$ by $\le TG(\beta + 2\gamma_T)$; $\partial P = G\cdot V$ by
/// $\le 2\gamma_d dGV$, so $\partial S = \tau P(\partial P - P\cdot\partial P)$ by
/// $\le \tau\,dGV(3\beta + 8\gamma_d + 4\gamma_T)$, and $\partial Q = \sum_{t'}\partial S\,K$ (resp. $\partial K$) by
/// $T$ times that times $K$ (resp. $Q$), plus $2\gamma_T$ of $T\cdot 2\tau dGV\cdot K$. A formula error (a transposed
/// head, a mask leak, a missing τ) is O(1) and misses these bounds (1e-14 to 1e-10 here) by orders of magnitude.
#[test]
fn batched_attention_matches_the_per_sequence_formula_to_round_off() {
    let eps = f64::EPSILON / 2.0;
    let gamma = |m: usize| m as f64 * eps / (1.0 - m as f64 * eps);
    let max = |a: &Array2<f64>| a.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let (q, k, v, g) = (
        gaussian(30, 12, 9, "oracle.q") * 2.0,
        gaussian(30, 12, 9, "oracle.k"),
        gaussian(30, 12, 9, "oracle.v"),
        gaussian(30, 12, 9, "oracle.g"),
    );
    let (qm, km, vm, gm) = (max(&q), max(&k), max(&v), max(&g));
    for (causal, head_dim) in [(true, 3), (false, 3), (true, 6), (false, 12)] {
        for tau in [1.0 / (head_dim as f64).sqrt(), 1.0 / head_dim as f64] {
            let spec = AttentionSpec {
                seq_len: 5,
                heads: 12 / head_dim,
                head_dim,
                tau,
                causal,
            };
            let (tt, d) = (spec.seq_len as f64, head_dim);
            let delta = 2.0 * gamma(d) * tau * d as f64 * qm * km;
            let beta = 2.0 * delta + 2.0 * (tt + 3.0) * eps;
            let (gt, gd) = (gamma(spec.seq_len), gamma(d));
            let ds = tau * d as f64 * gm * vm * (3.0 * beta + 8.0 * gd + 4.0 * gt);
            let dqk = |m: f64| tt * m * (ds + 2.0 * gt * 2.0 * tau * d as f64 * gm * vm);
            let bounds = [
                vm * (beta + 2.0 * gt),
                dqk(km),
                dqk(qm),
                tt * gm * (beta + 2.0 * gt),
            ];
            let out = attention(q.view(), k.view(), v.view(), &spec);
            let grads =
                attention_backward(q.view(), k.view(), v.view(), &out.probs, g.view(), &spec);
            let oracle = per_sequence_attention(&q, &k, &v, &g, &spec);
            for ((name, new), (old, bound)) in [
                ("C", &out.ctx),
                ("∂Q", &grads.q),
                ("∂K", &grads.k),
                ("∂V", &grads.v),
            ]
            .into_iter()
            .zip(oracle.iter().zip(bounds))
            {
                let err = (new - old).iter().fold(0.0f64, |m, x| m.max(x.abs()));
                assert!(
                    err <= bound,
                    "{name} causal={causal} d={d} τ={tau}: max |new − oracle| = {err:e} > bound {bound:e}"
                );
                assert!(bound < 1e-9, "the bound itself must be tight: {bound:e}");
            }
        }
    }
}

/// The softmax skips `exp` only where it is exactly 0: the bound below which it does so underflows in both types.
#[test]
fn exp_is_skipped_only_where_it_underflows_to_zero() {
    use singlora::models::ops::exp_zero_below;
    let (f64_floor, f32_floor) = (exp_zero_below::<f64>(), exp_zero_below::<f32>());
    assert!(
        f64_floor.exp() == 0.0 && (f64_floor + 1.0).exp() > 0.0,
        "{f64_floor}"
    );
    assert!(
        f32_floor.exp() == 0.0 && (f32_floor + 1.5).exp() > 0.0,
        "{f32_floor}"
    );
}

/// Every map's output in the cache is what the map gives on its tapped input (bit for bit: the same computation),
/// in layer order; the block activations are the residual stream and sublayer outputs they are documented to be.
#[test]
fn the_cache_holds_every_map_output_and_the_residual_stream() {
    use singlora::models::Inspect;
    let cfg = small_cfg(true, &["q", "k", "v", "o", "up", "down"]);
    let net = random_net(&cfg, Method::Singlora, 0.6);
    let x = gaussian(8, 5, 11, "outputs.x");
    let (out, cache) = net.forward(&x, 0.6);
    let outputs = net.map_outputs(&cache);
    let taps = net.taps(&cache, &out);
    assert_eq!(outputs.len(), net.names.len());
    for (tap, output) in taps.iter().zip(&outputs) {
        assert_eq!(
            &tap.linear.forward(tap.input.view(), 0.6),
            *output,
            "{}",
            tap.name
        );
    }
    assert_eq!(*outputs.last().unwrap(), &out);
    let acts = net.block_activations(&cache);
    let names: Vec<&str> = acts.iter().map(|(n, _)| n.as_str()).collect();
    let whats = [
        "attn_logits",
        "attn_ctx",
        "attn_out",
        "resid_mid",
        "mlp_out",
        "resid_out",
    ];
    let expected: Vec<String> = (0..cfg.blocks)
        .flat_map(|b| whats.map(|w| format!("block.{b}.{w}")))
        .collect();
    assert_eq!(names, expected);
    let mut h = &cache.embed_out;
    for (b, chunk) in acts.chunks(whats.len()).enumerate() {
        let [logits, ctx, attn_out, mid, mlp, resid] = [0, 1, 2, 3, 4, 5].map(|i| chunk[i].1);
        assert_eq!(ctx, &cache.blocks[b].attention.attended.ctx);
        assert_eq!(
            attn_out,
            outputs[1 + 6 * b + 3],
            "block {b}: attn_out is the output of o"
        );
        assert_eq!(mid, &(attn_out + h), "block {b}: h' = h + attention");
        assert_eq!(
            mlp,
            outputs[1 + 6 * b + 5],
            "block {b}: mlp_out is the output of down"
        );
        assert_eq!(resid, &(mlp + mid), "block {b}: h'' = h' + MLP");
        // Logits: softmax of each row's allowed entries is the probability row; masked entries are 0.
        let probs = &cache.blocks[b].attention.attended.probs;
        let p = probs.as_slice().unwrap().chunks(cfg.seq_len);
        for (i, (row, prow)) in logits.rows().into_iter().zip(p).enumerate() {
            let t = i % cfg.seq_len;
            let allowed = &row.as_slice().unwrap()[..=t];
            let m = allowed.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let z: f64 = allowed.iter().map(|l| (l - m).exp()).sum();
            for (t2, &pv) in prow.iter().enumerate() {
                let want = if t2 <= t {
                    (row[t2] - m).exp() / z
                } else {
                    0.0
                };
                assert!((pv - want).abs() < 1e-15, "block {b} row {i} key {t2}");
                assert!(t2 <= t || row[t2] == 0.0);
            }
        }
        h = resid;
    }
    assert_eq!(cache.final_ln.y, layer_norm(h.view()).y);
}

/// The f32 GELU (branch-free Φ in f64 arithmetic) against the f64 formula rounded to f32: equal except at rounding
/// midpoints (the fast Φ has relative error ≤ 2e-13, so at most one value in ~10⁵ may round the other way, by one
/// ulp), and in the far negative tail, where $\tfrac12(1 + \mathrm{erf})$ cancels in f64 and the reference is
/// $\tfrac12\mathrm{erfc}(-z/\sqrt2)$ (correctly rounded to ≤ 1 ulp). The backward factor likewise.
#[test]
fn f32_gelu_is_the_f64_formula_rounded_to_f32() {
    use singlora::models::transformer::{gelu, gelu_backward};
    let n = 400_001;
    let z: Array2<f32> =
        Array2::from_shape_fn((1, n), |(_, i)| -16.0 + 32.0 * i as f32 / (n - 1) as f32);
    let out = gelu(z.view());
    let ulp = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs();
    let (mut differ, mut worst) = (0usize, 0u64);
    for ((&zv, &a), &c) in z.iter().zip(&out.act).zip(&out.cdf) {
        let x = zv as f64;
        let old_phi = 0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
        let tail_phi = 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2);
        let (phi, act) = if x < -5.0 {
            (tail_phi, x * tail_phi)
        } else {
            (
                old_phi,
                0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
            )
        };
        let (d_act, d_cdf) = (ulp(a, act as f32), ulp(c, phi as f32));
        differ += usize::from(d_act + d_cdf > 0);
        worst = worst.max(d_act).max(d_cdf);
    }
    assert!(worst <= 1, "f32 GELU off by {worst} ulp");
    assert!(
        differ * 10_000 <= n,
        "{differ} of {n} values differ by an ulp"
    );
    // The vectorised lanes and the scalar tail (a 1×1 input) give the same bits.
    let dn = gelu_backward(z.view(), &out, Array2::from_elem((1, n), 1.0f32));
    for (i, &zv) in z.iter().enumerate().step_by(997) {
        let one = gelu(ndarray::array![[zv]].view());
        assert_eq!(
            (one.act[[0, 0]], one.cdf[[0, 0]]),
            (out.act[[0, i]], out.cdf[[0, i]]),
            "{zv}"
        );
        let d1 = gelu_backward(
            ndarray::array![[zv]].view(),
            &one,
            ndarray::array![[1.0f32]],
        );
        assert_eq!(d1[[0, 0]], dn[[0, i]], "GELU'({zv})");
    }
    // In f64 the GELU and its derivative are `Activation::Gelu`'s, bit for bit.
    let z64 = z.mapv(|v| v as f64 * 1.001);
    let out64 = gelu(z64.view());
    let dz64 = gelu_backward(z64.view(), &out64, Array2::from_elem((1, n), 1.0));
    for ((&zv, &a), &d) in z64.iter().zip(&out64.act).zip(&dz64) {
        assert_eq!(
            a,
            singlora::models::Activation::Gelu.apply(zv),
            "GELU({zv})"
        );
        assert_eq!(
            d,
            singlora::models::Activation::Gelu.derivative(zv),
            "GELU'({zv})"
        );
    }
    // Backward: g·(Φ + zφ) with the cached f32 Φ.
    let g = Array2::from_elem((1, n), 1.0f32);
    let dz = gelu_backward(z.view(), &out, g);
    for ((&zv, &c), &d) in z.iter().zip(&out.cdf).zip(&dz) {
        let x = zv as f64;
        let want =
            (c as f64 + x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()) as f32;
        assert!(ulp(d, want) <= 1, "GELU' at {zv}: {d} vs {want}");
    }
}

/// Arguments at and around every branch of `libm::erf` and of the `exp` inside it (the high words 2⁻²⁸, 0.84375,
/// 1.25, 1/0.35 and 6; ±0, subnormals, huge and non-finite values), then 2·10⁶ pseudo-random ones: uniform on
/// (−7, 7), log-uniform magnitudes 10⁻³¹⁰ … 10¹⁰, and raw bit patterns.
fn erf_arguments() -> Vec<f64> {
    let mut x = vec![
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        5e-324,
        1e-300,
        f64::MAX,
        f64::INFINITY,
        f64::NAN,
    ];
    for high in [
        0x3e30_0000u64,
        0x3feb_0000,
        0x3ff4_0000,
        0x4006_db6d,
        0x4018_0000,
    ] {
        for dh in [-1i64, 0, 1] {
            for low in [0u64, 1, 0x8000_0000, 0xffff_ffff] {
                x.push(f64::from_bits(((high as i64 + dh) as u64) << 32 | low));
            }
        }
    }
    use rand::Rng;
    let mut rng = singlora::rng::SeedRng::new(11, "erf");
    for i in 0..2_000_000u64 {
        x.push(match i % 3 {
            0 => 14.0 * rng.uniform(0.5),
            1 => 10f64.powf(rng.uniform(160.0) - 150.0),
            _ => f64::from_bits(rng.inner().next_u64()),
        });
    }
    let negated: Vec<f64> = x.iter().map(|v| -v).collect();
    x.extend(negated);
    x
}

/// `models::erf` (libm's algorithm with every branch evaluated and the right one kept, as the f64 GELU runs it eight
/// lanes at a time, `erf_slice`) is `libm::erf` bit for bit on every argument of [`erf_arguments`], and the f64 GELU built on it
/// (vector lanes and scalar tail alike) is the scalar formula with `libm::erf` bit for bit on the same arguments
/// scaled by √2. Exact equality is the claim: both evaluate the same IEEE operations in the same order.
#[test]
fn f64_erf_lanes_are_libm_bit_for_bit() {
    let x = erf_arguments();
    // As generated (chunks of eight mixing every range) and sorted by magnitude (chunks within one range, so the
    // chunks entirely below 1.25 take the path without the tail formula).
    let mut sorted = x.clone();
    sorted.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    for args in [&x, &sorted] {
        let mut got = vec![0.0; args.len()];
        singlora::models::erf::erf_slice(args, &mut got);
        for (&v, &got) in args.iter().zip(&got) {
            let want = libm::erf(v);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "erf({v:e} = {:#018x}): {got:e} vs libm {want:e}",
                v.to_bits()
            );
        }
    }
    let z: Array2<f64> =
        Array2::from_shape_fn((1, x.len()), |(_, i)| x[i] * std::f64::consts::SQRT_2);
    let out = singlora::models::transformer::gelu(z.view());
    for ((&zv, &a), &c) in z.iter().zip(&out.act).zip(&out.cdf) {
        let phi = 0.5 * (1.0 + libm::erf(zv / std::f64::consts::SQRT_2));
        let same = |p: f64, q: f64| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan());
        assert!(same(c, phi) && same(a, zv * phi), "GELU({zv:e})");
    }
}
