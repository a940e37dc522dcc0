//! The binary as a user runs it: bad input gives one line naming the field, the value and what is accepted, a
//! non-zero exit, and no file; good input writes a file atomically.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_singlora"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("singlora-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn bad_layer_arguments_fail_with_one_line() {
    let out = tmp("bad.safetensors");
    let o = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["layer", "--method", "lorax", "--d-in", "4", "--d-out", "4", "--out", o], "invalid --method = lorax: expected one of full, lora, dora, singlora, singlora_dora"),
        (&["layer", "--method", "lora", "--d-in", "4", "--d-out", "6", "--rank", "5", "--out", o], "invalid --rank = 5: expected an integer in 1..=4"),
        (&["layer", "--method", "singlora", "--d-in", "4", "--d-out", "6", "--rank", "7", "--out", o], "invalid --rank = 7: expected an integer in 1..=6"),
        (&["layer", "--method", "lora", "--d-in", "0", "--d-out", "6", "--out", o], "invalid --d-in = 0: expected a positive integer"),
        (&["layer", "--method", "lora", "--d-in", "4", "--d-out", "4", "--dtype", "f16", "--out", o], "invalid --dtype = f16: expected f32 or f64"),
        (&["layer", "--method", "singlora", "--d-in", "4", "--d-out", "4", "--u", "1.5", "--out", o], "invalid --u = 1.5: expected a number in [0, 1]"),
        (&["layer", "--method", "lora", "--d-in", "4", "--d-out", "4", "--alpha", "-2", "--out", o], "invalid --alpha = -2"),
        (&["layer", "--method", "lora", "--d-in", "4", "--d-out", "4", "--init", "kaiming_r", "--out", o], "invalid --init = kaiming_r: expected for method lora"),
        (&["layer", "--method", "dora", "--d-in", "4", "--d-out", "4", "--dora-norm", "half", "--out", o], "invalid --dora-norm = half"),
        (&["layer", "--method", "lora", "--d-in", "4", "--d-out", "4", "--state", "trained", "--out", o], "invalid --state = trained"),
        (&["layer", "--method", "lora", "--d-in", "4", "--d-out", "4", "--out", "/nonexistent-singlora-dir/x.safetensors"], "/nonexistent-singlora-dir/x.safetensors: No such file or directory"),
        (&["layer", "--method", "lora", "--d-in", "four", "--d-out", "4", "--out", o], "invalid --d-in = four: expected a non-negative integer"),
        (&["train", "--width", "-3"], "invalid --width = -3: expected a non-negative integer"),
        (&["train", "--lr", "fast"], "invalid --lr = fast: expected a number"),
        (&["synthetic", "--lr", "0"], "invalid --lr = 0: expected a finite number > 0"),
        (&["attention", "--rank", "20"], "invalid --rank = 20: expected at most width/2 = 16 (SingLoRA 2r is compared)"),
        (&["attention", "--seq-len", "0"], "invalid --seq-len = 0: expected a positive integer"),
        (&["train", "--width", "0"], "invalid --width = 0: expected a positive integer"),
        (&["train", "--width", "8", "--method", "lora", "--rank", "9"], "invalid --rank = 9: expected an integer in 1..=8 (min(d_in, d_out) for this 8x8 layer) (layer hidden.1)"),
        (&["train", "--lr", "-0.1"], "invalid --lr = -0.1: expected a finite number > 0"),
        (&["train", "--method", "qlora"], "invalid --method = qlora"),
        (&["train", "--optimizer", "lion"], "invalid --optimizer = lion"),
        (&["train", "--shift", "diagonal"], "invalid --shift = diagonal"),
        (&["train", "--model", "transformer", "--width", "30", "--heads", "4"], "invalid --heads = 4: expected a positive divisor of the width 30"),
        (&["train", "--pretrain-steps", "5", "--pretrain-lr", "0"], "invalid --pretrain-lr = 0: expected a finite number > 0"),
        (&["sweep", "--set", "steps=0"], "invalid --set steps = 0: expected a positive integer"),
        (&["sweep", "--set", "widths=[128,64]"], "invalid --set widths = [128, 64]: expected strictly increasing widths"),
        (&["sweep", "--set", "arms=[{name=\"a\",method=\"lorax\"}]"], "invalid --set arms: method = lorax: expected one of full, lora"),
        (&["sweep", "--set", "task.kind=\"x\""], "invalid --set task.kind = \"x\": expected one of regression, classification, toy, recall"),
        (&["sweep", "--config", "configs/transformer.toml", "--set", "pretrain.lr=0"], "invalid --set pretrain.lr = 0: expected a finite number > 0"),
        (&["sweep", "--config", "configs/transformer.toml", "--set", "pretrain.steps=0"], "invalid --set pretrain.steps = 0: expected a positive integer"),
        (&["sweep", "--set", "stepz=3"], "invalid --set stepz = 3: expected a known field (stepz is not one; expected one of `name`"),
        (&["sweep", "--set", "steps"], "invalid --set = steps: expected path=value"),
        (&["sweep", "--config", "/nonexistent-singlora.toml"], "/nonexistent-singlora.toml: No such file or directory"),
        (&["sweep", "--set", "widths=[8,16]", "--set", "steps=1", "--out", "/proc/singlora-cannot-write"], "/proc/singlora-cannot-write: No such file or directory"),
        (&["plot", "/nonexistent-singlora-dir"], "invalid dir = /nonexistent-singlora-dir: expected a folder written by singlora sweep, lr or limit"),
        (&["merge", "/nonexistent-singlora-dir"], "invalid dir = /nonexistent-singlora-dir: expected a study folder with shards (DIR/shards/I-of-N"),
    ];
    for (args, expected) in cases {
        let (code, stdout, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: exit code");
        assert!(stdout.is_empty(), "{args:?}: printed {stdout}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?}: stderr is not one line: {stderr}"
        );
        assert!(stderr.starts_with("singlora: error: "), "{stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: {stderr:?} lacks {expected:?}"
        );
        assert!(!out.exists(), "{args:?}: a file was written");
    }
}

#[test]
fn layer_writes_a_loadable_file_and_nothing_else() {
    let out = tmp("ok.safetensors");
    let (code, stdout, stderr) = run(&[
        "layer",
        "--method",
        "singlora_dora",
        "--d-in",
        "5",
        "--d-out",
        "8",
        "--rank",
        "2",
        "--u",
        "0.4",
        "--seed",
        "7",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("wrote"));
    let bytes = std::fs::read(&out).unwrap();
    let d = singlora::io::layer_dump::LayerDump::parse(&bytes).unwrap();
    assert_eq!(d.metadata["u"], "0.4");
    assert_eq!(d.metadata["seed"], "7");
    assert_eq!(d.tensors["singlora_A.weight"].shape(), [8, 2]);
    // No temporary files left next to the output.
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
    // Same arguments, same bytes.
    let out2 = tmp("ok2.safetensors");
    run(&[
        "layer",
        "--method",
        "singlora_dora",
        "--d-in",
        "5",
        "--d-out",
        "8",
        "--rank",
        "2",
        "--u",
        "0.4",
        "--seed",
        "7",
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&out2).unwrap(), bytes);
}

#[test]
fn train_reports_a_falling_held_out_loss() {
    let (code, stdout, stderr) = run(&[
        "train",
        "--width",
        "64",
        "--steps",
        "60",
        "--activation",
        "gelu",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<Vec<f64>> = stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<f64> = l
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            (f.len() == 3).then_some(f)
        })
        .collect();
    assert!(rows.len() >= 2, "{stdout}");
    let (first, last) = (rows[0][2], rows[rows.len() - 1][2]);
    assert!(
        last < first / 2.0,
        "held-out loss {first} → {last}\n{stdout}"
    );
}

/// A small sweep through the binary: a table of slopes, every table and figure written; `plot` redraws them.
#[test]
fn sweep_and_plot_from_the_command_line() {
    let out = tmp("sweep");
    let o = out.to_str().unwrap();
    let (code, stdout, stderr) = run(&[
        "sweep",
        "--set",
        "widths=[16,32,64]",
        "--set",
        "seeds=[0,1]",
        "--set",
        "steps=2",
        "--out",
        o,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("width exponent of dz_rms at hidden.1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("singlora@c=0.5") && stdout.contains("lora+@c=1"),
        "{stdout}"
    );
    for f in [
        "results.csv",
        "fits.csv",
        "manifest.json",
        "config.toml",
        "figures/coord_dz_rms.png",
        "figures/coord_dz_rms.svg",
        "figures/slopes_dz_rms.png",
        "figures/loss.png",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let png = std::fs::read(out.join("figures/coord_dz_rms.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    std::fs::remove_dir_all(out.join("figures")).unwrap();
    let (code, stdout2, stderr) = run(&["plot", o]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.join("figures/coord_dz_rms.svg").exists());
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("@c="))
            .collect::<Vec<_>>(),
        stdout2
            .lines()
            .filter(|l| l.contains("@c="))
            .collect::<Vec<_>>()
    );
    // A folder missing a run is refused by `plot` (which computes nothing), naming a missing run, and nothing is
    // redrawn.
    let runs = out.join("runs");
    let mut files: Vec<_> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let total = files.len();
    let gone = files[0].file_stem().unwrap().to_str().unwrap().to_string();
    std::fs::remove_file(&files[0]).unwrap();
    std::fs::remove_dir_all(out.join("figures")).unwrap();
    let (code, _, stderr) = run(&["plot", o]);
    assert_eq!(code, 2, "{stderr}");
    let expected = format!(
        "expected a folder whose runs are all finished (1 of {total} missing, e.g. {gone}: run singlora sweep --config DIR/config.toml --out DIR)"
    );
    assert!(
        stderr.contains(&expected) && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(
        !out.join("figures").exists(),
        "plot drew from an unfinished folder"
    );
}

/// Streamed batches: each step sees fresh examples and the held-out loss still falls.
#[test]
fn streamed_training() {
    let (code, stdout, stderr) = run(&[
        "train",
        "--width",
        "64",
        "--batch",
        "16",
        "--stream",
        "--steps",
        "80",
        "--activation",
        "gelu",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let last: Vec<f64> = stdout
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let first: Vec<f64> = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("0 "))
        .unwrap()
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(last[2] < first[2] / 2.0, "{stdout}");
    let (code, _, stderr) = run(&["train", "--stream"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("invalid --stream = true: expected --batch B"),
        "{stderr}"
    );
}

/// `singlora limit` end to end: the summary names each arm with its convergence slope (and, for SGD, the exact
/// reduction's error), every table and figure is written, a second run resumes without recomputing, and bad input
/// gets one line naming the field with nothing written.
#[test]
fn limit_from_the_command_line() {
    let out = tmp("limit");
    let o = out.to_str().unwrap();
    let args = [
        "limit",
        "--arm",
        "lora+-sgd",
        "--arm",
        "singlora-sign",
        "--set",
        "widths=[32,64,128]",
        "--set",
        "seeds=[0,1]",
        "--set",
        "steps=4",
        "--out",
        o,
    ];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    let line = |arm: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(arm))
            .unwrap_or_else(|| panic!("{arm} missing:\n{stdout}"))
            .to_string()
    };
    assert!(line("lora+-sgd").contains("max error"), "{stdout}");
    assert!(
        line("singlora-sign").contains("sign updates leave the span"),
        "{stdout}"
    );
    assert!(
        !stdout.lines().any(|l| l.starts_with("lora-sign")),
        "only the chosen arms run:\n{stdout}"
    );
    for f in [
        "config.toml",
        "trajectories.csv",
        "convergence.csv",
        "convergence_fits.csv",
        "runs/loraplus-sgd-n64-s1.json",
        "figures/limit_convergence.png",
        "figures/limit_convergence.svg",
        "figures/limit_loraplus-sgd.png",
        "figures/limit_singlora-sign.svg",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let leftovers: Vec<String> = std::fs::read_dir(out.join("figures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.contains(".tmp."))
        .collect();
    assert!(
        leftovers.is_empty(),
        "figures are renamed into place: {leftovers:?}"
    );
    let traj = std::fs::read_to_string(out.join("trajectories.csv")).unwrap();
    assert!(
        traj.lines()
            .any(|l| l.starts_with("singlora-sign,inf,1,4,")),
        "the limit's rows are there"
    );
    assert_eq!(
        traj.lines().count(),
        1 + 2 * 2 * 5 * (3 + 1),
        "arms × seeds × steps × (widths + limit)"
    );
    let run_file = out.join("runs/singlora-sign-n128-s0.json");
    let before = std::fs::metadata(&run_file).unwrap().modified().unwrap();
    let (code, stdout2, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::metadata(&run_file).unwrap().modified().unwrap(),
        before,
        "finished runs are not recomputed"
    );
    assert_eq!(stdout, stdout2, "a resumed study reports the same numbers");
    // One thread gives the same bytes as the default pool.
    let single = tmp("limit-1thread");
    let mut one: Vec<&str> = args[..args.len() - 2].to_vec();
    one.extend(["--threads", "1", "--out", single.to_str().unwrap()]);
    let (code, _, stderr) = run(&one);
    assert_eq!(code, 0, "{stderr}");
    for f in [
        "trajectories.csv",
        "convergence.csv",
        "convergence_fits.csv",
    ] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(single.join(f)).unwrap(),
            "{f} depends on the thread count"
        );
    }
    // `plot` redraws a limit folder from its runs.
    std::fs::remove_dir_all(out.join("figures")).unwrap();
    let (code, replot, stderr) = run(&["plot", o]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.join("figures/limit_convergence.svg").exists());
    assert_eq!(
        std::fs::metadata(&run_file).unwrap().modified().unwrap(),
        before,
        "plot does not recompute finished runs"
    );
    assert!(
        stdout.lines().skip(1).eq(replot.lines()),
        "plot prints the same summary:\n{stdout}\n---\n{replot}"
    );
    // Another subset of the same study shares the folder and its finished runs.
    let other: Vec<&str> = args
        .iter()
        .map(|a| {
            if *a == "singlora-sign" {
                "lora-sign"
            } else {
                *a
            }
        })
        .collect();
    let (code, stdout3, stderr) = run(&other);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout3.lines().any(|l| l.starts_with("lora-sign")),
        "{stdout3}"
    );
    assert_eq!(
        std::fs::metadata(&run_file).unwrap().modified().unwrap(),
        before,
        "the other subset's runs are kept"
    );
    assert!(out.join("runs/lora-sign-n128-s1.json").exists());
    // A different study in the same folder is refused.
    let (code, _, stderr) = run(&[
        "limit",
        "--arm",
        "lora+-sgd",
        "--set",
        "steps=3",
        "--set",
        "widths=[32,64]",
        "--out",
        o,
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid --out"), "{stderr}");

    let bad_dir = tmp("limit-bad");
    let b = bad_dir.to_str().unwrap();
    let cfg = tmp("adam-limit.toml");
    std::fs::write(
        &cfg,
        "name = \"x\"\nwidths = [32, 64]\nseeds = [0]\nsteps = 2\n[adapter]\nmethod = \"lora\"\nrank = 2\n\
         [[arms]]\nname = \"a\"\nmethod = \"singlora\"\nrule = { kind = \"adam\" }\nlr = 0.1\nlr_exponent = { default = 0.5 }\n",
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let cfg2 = tmp("exponent-limit.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replace("{ kind = \"adam\" }", "{ kind = \"sign_sgd\" }");
    std::fs::write(&cfg2, text.replace("default = 0.5", "default = 0.25")).unwrap();
    let c2 = cfg2.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["limit", "--arm", "nope", "--out", b],
            "invalid --arm = nope: expected one of singlora-sign, lora+-sign",
        ),
        (
            &["limit", "--set", "widths=[8,64]", "--out", b],
            "invalid --set widths = 8: expected widths ≥ input_dim + 2 = 18",
        ),
        (
            &["limit", "--set", "widths=[64,32]", "--out", b],
            "invalid --set widths = [64, 32]",
        ),
        (
            &["limit", "--set", "steps=0", "--out", b],
            "invalid --set steps = 0",
        ),
        (
            &["limit", "--set", "name=\"../up\"", "--out", b],
            "invalid --set name = \"../up\": expected a non-empty name without path separators",
        ),
        (
            &["limit", "--set", "adapter.rank=0", "--out", b],
            "invalid --set adapter.rank = 0",
        ),
        (
            &["limit", "--config", c, "--out", b],
            "invalid arms.a.rule = adam: expected sgd or sign_sgd",
        ),
        (
            &["limit", "--config", c2, "--out", b],
            "invalid arms.a.lr_exponent = (c_A = 0.25, c_B = 0.25): expected singlora_a = 1/2",
        ),
        (
            &["limit", "--set", "adapter.init=\"kaiming_r\"", "--out", b],
            "invalid --set adapter.init = kaiming_r",
        ),
        (
            &["limit", "--set", "stepz=3", "--out", b],
            "invalid --set stepz = 3: expected a known field",
        ),
        (
            &["limit", "--set", "steps=1", "--out", "/proc/singlora-limit"],
            "/proc/singlora-limit",
        ),
    ];
    for (args, expected) in cases {
        let (code, stdout, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{args:?}: one line: {stderr}"
        );
    }
    assert!(!bad_dir.exists(), "bad input writes nothing");
}

/// A limit study whose finite runs diverge finishes and reports each divergence with its step (SingLoRA under SGD at
/// η = 20: the aligned overlaps grow ≈ 20× per step and overflow within ten steps).
#[test]
fn diverging_limit_runs_are_results() {
    let cfg = tmp("hot-limit.toml");
    std::fs::write(
        &cfg,
        "name = \"hot\"\nwidths = [32, 64]\nseeds = [0]\nsteps = 30\n[adapter]\nmethod = \"singlora\"\nrank = 2\n\
         [[arms]]\nname = \"hot\"\nmethod = \"singlora\"\nrule = { kind = \"sgd\" }\nlr = 20.0\nlr_exponent = { default = 0.0 }\n",
    )
    .unwrap();
    let out = tmp("hot-limit");
    let (code, stdout, stderr) = run(&[
        "limit",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("diverged: n=32, seed=0, t="), "{stdout}");
    assert!(stdout.contains("every run diverged"), "{stdout}");
    let conv = std::fs::read_to_string(out.join("convergence.csv")).unwrap();
    let rows: Vec<&str> = conv.lines().skip(1).collect();
    assert_eq!(rows.len(), 2);
    for row in rows {
        let cols: Vec<&str> = row.split(',').collect();
        assert_eq!(
            cols[3], "inf",
            "a diverged run's distance is infinite: {row}"
        );
        assert!(
            cols[4].parse::<u64>().unwrap() < 30,
            "its divergence step is recorded: {row}"
        );
    }
}

/// The reliability defects found by trying the tool as a new user, each refused with one line naming the flag or
/// field, the value and what is accepted, exit code 2 and nothing written.
#[test]
fn reliability_defects_are_refused() {
    let out = tmp("defects");
    let o = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["sweep", "--set", "steps=\"four\"", "--out", o],
            "invalid --set steps = \"four\": expected a non-negative integer",
        ),
        (
            &["sweep", "--set", "widths=[-64]", "--out", o],
            "invalid --set widths = [-64]: expected a non-negative integer",
        ),
        (
            &["sweep", "--set", "lr=[0.01,0.05]", "--out", o],
            "invalid --set lr = [0.01,0.05]: expected a number",
        ),
        (
            &["sweep", "--set", "task.test_examples=0", "--out", o],
            "invalid --set task.test_examples = 0: expected a positive integer",
        ),
        (
            &["sweep", "--set", "widths=[64]", "--out", o],
            "invalid --set widths = [64]: expected at least two widths",
        ),
        (
            &["sweep", "--set", "seeds=[0,0]", "--out", o],
            "invalid --set seeds = [0, 0]: expected distinct seeds",
        ),
        (
            &["sweep", "--set", "widths=[32768,65536]", "--out", o],
            "expected widths whose runs fit in memory",
        ),
        (
            &["sweep", "--set", "mlp.adapt=[]", "--out", o],
            "invalid --set mlp.adapt = []: expected at least one adapted layer",
        ),
        (
            &[
                "sweep",
                "--threads",
                "0",
                "--set",
                "widths=[8,16]",
                "--out",
                o,
            ],
            "invalid --threads = 0: expected a positive integer",
        ),
        (
            &["train", "--adapt", ""],
            "invalid --adapt = \"\": expected at least one layer to adapt",
        ),
        (
            &["train", "--model", "transformer", "--task", "regression"],
            "invalid --task = regression: expected for --model transformer: recall",
        ),
        (
            &["train", "--task", "classification", "--outputs", "1"],
            "invalid --outputs = 1: expected at least 2 classes",
        ),
        (
            &["train", "--model", "mlp", "--task", "recall"],
            "invalid --task = recall: expected for --model mlp: regression or classification",
        ),
        (
            &["synthetic", "--steps", "0"],
            "invalid --steps = 0: expected a positive integer",
        ),
        (
            &["lr", "--set", "lr_grid.rates=[0.1]", "--out", o],
            "invalid --set lr_grid.rates = [0.1]: expected at least two rates",
        ),
        (
            &["lr", "--set", "lr_grid.rates=[0.2,0.1]", "--out", o],
            "expected strictly increasing rates",
        ),
    ];
    for (args, expected) in cases {
        let (code, stdout, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: exit code; {stdout}{stderr}");
        assert!(stdout.is_empty(), "{args:?}: printed {stdout}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: {stderr:?} lacks {expected:?}"
        );
        assert!(!out.exists(), "{args:?}: wrote {o}");
    }
}

/// No arguments: the usage on stderr and exit code 2; a negative width exponent prints as a rate law, not `n^--5`;
/// `--threads` beyond the cores is capped, not obeyed.
#[test]
fn usage_rate_laws_and_thread_caps() {
    let (code, stdout, stderr) = run(&[]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("Usage: singlora <COMMAND>") && stderr.contains("sweep"),
        "{stderr}"
    );
    assert!(stderr
        .trim_end()
        .ends_with("a command is required (see the list above, or singlora help COMMAND)"));
    let (code, stdout, stderr) = run(&[
        "train",
        "--width",
        "8",
        "--steps",
        "1",
        "--lr-exponent",
        "-5",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("η = 0.01·n^5;") && !stdout.contains("--5"),
        "{stdout}"
    );
    let out = tmp("threads");
    let (code, stdout, stderr) = run(&[
        "sweep",
        "--threads",
        "100000",
        "--set",
        "widths=[8,16]",
        "--set",
        "seeds=[0]",
        "--set",
        "steps=1",
        "--out",
        out.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let cores = std::thread::available_parallelism().unwrap().get();
    assert!(
        stdout.contains(&format!("12 runs on {} worker(s)", cores.min(12))),
        "{stdout}"
    );
    assert!(!out.exists(), "--dry-run writes nothing");
}

/// `singlora lr` end to end on a small grid: the table, every CSV and figure; a second run resumes; `plot` redraws.
#[test]
fn lr_from_the_command_line() {
    let out = tmp("lr");
    let o = out.to_str().unwrap();
    let args = [
        "lr",
        "--set",
        "widths=[16,32]",
        "--set",
        "seeds=[0,1]",
        "--set",
        "steps=3",
        "--set",
        "task.examples=16",
        "--set",
        "task.test_examples=16",
        "--set",
        "lr_grid.rates={from=0.004,to=0.256,per_octave=1}",
        "--set",
        "lr_grid.loraplus.widths=[16]",
        "--set",
        "lr_grid.loraplus.rates_a=[0.01,0.1]",
        "--set",
        "lr_grid.loraplus.rates_b=[0.01,0.1,1.0]",
        "--out",
        o,
    ];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("width exponent of η*"), "{stdout}");
    for series in ["lora@c=0", "lora+@c=0", "singlora@c=0"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(series)),
            "{series}: {stdout}"
        );
    }
    for f in [
        "lr_runs.csv",
        "lr_summary.csv",
        "lr_best.csv",
        "lr_drift.csv",
        "lr_plane.csv",
        "manifest.json",
        "figures/lr_loss.png",
        "figures/lr_best.svg",
        "figures/lr_plane_n16.png",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let runs = std::fs::read_to_string(out.join("lr_runs.csv")).unwrap();
    // 3 series × 7 rates × 2 widths × 2 seeds on the line, 2 × 3 rates × 1 width × 2 seeds on the plane, and a header.
    assert_eq!(runs.lines().count(), 1 + 84 + 12);
    assert!(runs.starts_with("series,arm,method,lr,lr_exponent,loraplus_ratio,width,seed,"));
    let (code, again, _) = run(&args);
    assert_eq!(code, 0);
    assert!(!again.contains("runs  "), "resumed without recomputing");
    std::fs::remove_dir_all(out.join("figures")).unwrap();
    let (code, replot, stderr) = run(&["plot", o]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.join("figures/lr_loss.svg").exists());
    assert!(replot.contains("width exponent of η*"));
}

/// The cluster path without a cluster: a shard taken from Slurm's array variables, `merge` naming a missing shard and
/// then merging, and `slurm` printing an array script with its merge job chained after it. (The same path on a real
/// Slurm is scripts/slurm/integration.sh, which CI runs.)
#[test]
fn shards_merge_and_slurm_scripts() {
    let out = tmp("shards");
    let o = out.to_str().unwrap();
    let study = [
        "--set",
        "widths=[8,16]",
        "--set",
        "seeds=[0]",
        "--set",
        "steps=1",
    ];
    let shard = |task: &str| {
        let mut args = vec!["sweep"];
        args.extend(study);
        args.extend(["--out", o]);
        Command::new(env!("CARGO_BIN_EXE_singlora"))
            .args(&args)
            .env("SLURM_ARRAY_TASK_ID", task)
            .env("SLURM_ARRAY_TASK_COUNT", "2")
            .env("SLURM_ARRAY_TASK_MIN", "0")
            .output()
            .unwrap()
    };
    let first = shard("1");
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("shard 1/2:"));
    assert!(out.join("shards/1-of-2/shard.json").exists());
    let (code, _, stderr) = run(&["merge", o]);
    assert_eq!(code, 2);
    assert!(stderr.contains("missing: 0 of 2"), "{stderr}");
    assert_eq!(shard("0").status.code(), Some(0));
    let (code, stdout, stderr) = run(&["merge", o]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("merged 2 shards") && stdout.contains("width exponent of dz_rms"),
        "{stdout}"
    );
    assert!(out.join("results.csv").exists() && out.join("figures/coord_dz_rms.png").exists());
    let mut args = vec!["slurm", "sweep"];
    args.extend(study);
    args.extend([
        "--out",
        o,
        "--shards",
        "2",
        "--cpus-per-task",
        "2",
        "--sbatch=--partition=short",
    ]);
    let (code, script, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    for want in [
        "--array=0-1 --cpus-per-task=2",
        "--partition=short",
        "--dependency=afterok:$array",
        "merge '$OUT'",
        "cat > \"$OUT/study.toml\" <<'SINGLORA_STUDY'",
        "widths = [8, 16]",
    ] {
        assert!(script.contains(want), "{want} missing from\n{script}");
    }
    let (code, _, stderr) = run(&["slurm", "sweep", "--shards", "0"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid --shards = 0"), "{stderr}");
}

/// `verify --shard I/N` runs slice I of every study its claims need; `merge` refuses a missing shard and a shard of
/// another verify (other claims), then gathers the studies and writes the verdicts, byte for byte those of one
/// process; `slurm verify` prints the array with the verify command. (On a real Slurm: scripts/slurm/integration.sh.)
#[test]
fn verify_shards_merge_to_the_single_process_verdicts() {
    let (single, split) = (tmp("verify-single"), tmp("verify-split"));
    let (s, o) = (single.to_str().unwrap(), split.to_str().unwrap());
    let claims = ["--claims", "C3,C7"];
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", "--quick"];
        args.extend(extra);
        run(&args)
    };
    let (code, _, stderr) = verify(&[&claims[..], &["--out", s]].concat());
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = verify(&[&claims[..], &["--shard", "1/2", "--out", o]].concat());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("verify shard 1/2: 3 studies"), "{stdout}");
    assert!(split
        .join("balanced-sweep/shards/1-of-2/shard.json")
        .exists());
    let (code, _, stderr) = run(&["merge", o]);
    assert_eq!(code, 2);
    assert!(stderr.contains("missing: 0 of 2"), "{stderr}");
    // A shard of another verify (claim C7 only) shares C7's study folder, whose config it matches, so its runs are
    // valid; the merge refuses to combine it with shards of C3,C7.
    let (code, _, stderr) = verify(&["--claims", "C7", "--shard", "0/2", "--out", o]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(&["merge", o]);
    assert_eq!(code, 2);
    assert!(stderr.contains("its config.toml differs"), "{stderr}");
    let (code, _, stderr) = verify(&[&claims[..], &["--shard", "0/2", "--out", o]].concat());
    assert_eq!(code, 2, "its marker folder holds the other verify");
    assert!(stderr.contains("holding this same study"), "{stderr}");
    std::fs::remove_dir_all(split.join("shards/0-of-2")).unwrap();
    let (code, _, stderr) = verify(&[&claims[..], &["--shard", "0/2", "--out", o]].concat());
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(&["merge", o]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("merged 2 shards of verify"), "{stdout}");
    for table in [
        "verdicts.csv",
        "balanced-sweep/results.csv",
        "balanced-sweep/fits.csv",
        "transformer-sweep/fits.csv",
        "synthetic/synthetic.csv",
        "invariance/invariance.csv",
    ] {
        let read = |d: &std::path::Path| std::fs::read(d.join(table)).unwrap();
        assert!(read(&single) == read(&split), "{table} differs");
    }
    let (code, script, stderr) = run(&[
        "slurm", "verify", "--full", "--claims", "C7", "--shards", "3", "--out", o,
    ]);
    assert_eq!(code, 0, "{stderr}");
    for want in [
        "--array=0-2",
        "verify --full --claims C7 --out '$OUT'",
        "merge '$OUT'",
        "preset = \"full\"",
    ] {
        assert!(script.contains(want), "{want} missing from\n{script}");
    }
    let (code, _, stderr) = run(&["slurm", "sweep", "--claims", "C7"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid --claims = sweep"), "{stderr}");
}
