//! The full-batch shortcuts are the plain computation bit for bit: the frozen-prefix forward (the constant maps below
//! the lowest trainable one and its base product computed once) equals the plain forward, output and cache; the
//! lowest trainable map's skipped input gradient leaves every parameter gradient unchanged; the backward from a
//! network whose bottom maps are frozen matches finite differences; and runs sharing a frozen base (a study's group)
//! give the runs alone, record for record.

mod common;

use singlora::adapters::{AdapterConfig, DoraNorm, Method, Scaling};
use singlora::models::{Activation, Linear, Mlp, MlpConfig, Model, Readout};
use singlora::studies::config::StudyConfig;
use singlora::studies::engine::Study;
use singlora::studies::lr::LrStudy;
use singlora::studies::sweep::Sweep;

fn cfg(adapt: &[&str]) -> MlpConfig {
    MlpConfig {
        input_dim: 4,
        width: 7,
        depth: 3,
        output_dim: 2,
        activation: Activation::Gelu,
        readout: Readout::Standard,
        adapt: adapt.iter().map(|s| s.to_string()).collect(),
    }
}

/// Every method on every placement, every trainable tensor random.
fn networks() -> Vec<(String, Mlp<f64>)> {
    let placements: [&[&str]; 5] = [
        &["hidden.1"],
        &["hidden"],
        &["input"],
        &["readout"],
        &["hidden.2", "readout"],
    ];
    let mut nets = Vec::new();
    for method in Method::ALL {
        for adapt in placements {
            let c = cfg(adapt);
            let adapter = AdapterConfig::new(method)
                .rank_alpha(2, 2.0)
                .dora_norm(DoraNorm::Full);
            let mut net = c.build(c.base_weights::<f64>(3), &adapter, 4).unwrap();
            for (k, layer) in net.layers.iter_mut().enumerate() {
                if let Linear::Adapted(a) = layer {
                    a.randomize(10 + k as u64, 0.6);
                }
            }
            nets.push((format!("{method} on {adapt:?}"), net));
        }
    }
    nets
}

#[test]
fn the_prefixed_forward_is_the_plain_forward_bit_for_bit() {
    let x = common::gaussian(5, 4, 1, "x");
    for (name, net) in networks() {
        let prefix = net.prefix(&x);
        assert_eq!(prefix.layers, net.lowest_trainable(), "{name}");
        let (out, cache) = net.forward(&x, 0.6);
        let (out_p, cache_p) = net.forward_prefixed(&prefix, 0.6);
        assert_eq!(out, out_p, "{name}: output");
        assert_eq!(cache.inputs, cache_p.inputs, "{name}: inputs");
        assert_eq!(cache.preacts, cache_p.preacts, "{name}: pre-activations");
    }
}

#[test]
fn skipping_the_input_gradient_changes_no_parameter_gradient() {
    for method in Method::ALL {
        for norm in [DoraNorm::Detached, DoraNorm::Full] {
            for (d_in, d_out) in common::SHAPES {
                let layer =
                    common::random_layer(method, d_in, d_out, 2, Scaling::AlphaOverR, norm, 5);
                let (x, g) = (
                    common::gaussian(4, d_in, 2, "x"),
                    common::gaussian(4, d_out, 2, "g"),
                );
                let full = layer.backward(x.view(), g.view(), 0.7);
                let (params, gx) = layer.grads(x.view(), g.view(), 0.7, false);
                assert!(gx.is_none());
                assert_eq!(full.params, params, "{method} {norm:?} {d_in}x{d_out}");
            }
        }
    }
}

/// The backward of networks whose bottom maps are frozen (it stops at the lowest trainable map) against central
/// finite differences, with the error budget of tests/models.rs (1e-6 relative at h = 1e-5).
#[test]
fn backward_above_frozen_maps_matches_finite_differences() {
    let x = common::gaussian(5, 4, 1, "x");
    let g = common::gaussian(5, 2, 1, "g");
    for (name, mut net) in networks() {
        let u = 0.6;
        let (_, cache) = net.forward(&x, u);
        let grads = net.backward(&cache, &g, u);
        let probe = |n: &Mlp<f64>| (&n.forward(&x, u).0 * &g).sum();
        let fds = common::fd_tensors(&mut net, Model::params_mut, 1e-5, probe);
        assert_eq!(grads.len(), fds.len(), "{name}");
        for (k, fd) in fds.iter().enumerate() {
            let e = common::rel_err(&grads[k], fd);
            assert!(e <= 1e-6, "{name}: tensor {k} rel err {e:e}");
        }
    }
}

fn small_study(sets: &[&str]) -> StudyConfig {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    StudyConfig::load(None, &sets).unwrap()
}

/// A sweep's group (every series of one width and seed on one shared base, data and prefix) gives each run alone,
/// record for record, in f64 and f32.
#[test]
fn a_sweep_group_is_its_runs_alone() {
    for precision in ["\"f64\"", "\"f32\""] {
        let cfg = small_study(&[
            "widths=[16,32]",
            "seeds=[0]",
            "steps=2",
            &format!("precision={precision}"),
        ]);
        let study = Sweep(&cfg);
        let jobs = study.jobs();
        let group: Vec<&_> = jobs.iter().filter(|c| c.width == 32).collect();
        let key = study.share_key(group[0]);
        assert!(key.is_some() && group.iter().all(|c| study.share_key(c) == key));
        let together = group_runs(&study, &group);
        for (cell, run) in group.iter().zip(together) {
            let alone = study.run(cell).unwrap();
            assert_eq!(
                serde_json::to_string(&alone).unwrap(),
                serde_json::to_string(&run).unwrap(),
                "{precision} {}",
                Sweep::cell_key(cell)
            );
        }
    }
}

/// The learning-rate study's groups likewise.
#[test]
fn an_lr_group_is_its_runs_alone() {
    let cfg = singlora::studies::lr::load(
        None,
        &[
            "widths=[16,32]".into(),
            "seeds=[0]".into(),
            "steps=3".into(),
            "lr_grid.rates=[0.01,0.02,0.04]".into(),
            "lr_grid.loraplus.widths=[16]".into(),
            "lr_grid.loraplus.rates_a=[0.01,0.02]".into(),
            "lr_grid.loraplus.rates_b=[0.01,0.02]".into(),
        ],
    )
    .unwrap();
    let study = LrStudy(&cfg);
    let jobs = study.jobs();
    let group: Vec<&_> = jobs.iter().filter(|j| j.cell.width == 16).collect();
    assert!(group.iter().any(|j| j.plane) && group.iter().any(|j| !j.plane));
    let together = group_runs(&study, &group);
    for (job, run) in group.iter().zip(together) {
        let alone = study.run(job).unwrap();
        assert_eq!(
            serde_json::to_string(&alone).unwrap(),
            serde_json::to_string(&run).unwrap(),
            "{}",
            study.key(job)
        );
    }
}

/// The runs of `group` stepped together by [`Study::run_group`], in the group's order (each handed over once).
fn group_runs<S: Study>(study: &S, group: &[&S::Job]) -> Vec<S::Run> {
    let mut runs: Vec<Option<S::Run>> = group.iter().map(|_| None).collect();
    study
        .run_group(group, &mut |i, run| {
            assert!(runs[i].replace(run).is_none(), "run {i} handed over twice");
            Ok(())
        })
        .unwrap();
    runs.into_iter()
        .map(|r| r.expect("every run handed over"))
        .collect()
}
