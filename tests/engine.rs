//! The study engine's guarantees, each with the defect it rules out: a locked folder refuses a second process; a grid
//! with two runs of the same name is refused before anything is written; a study that fails validation leaves no
//! folder; a run file holding another run is refused; concurrent atomic writes never share a temporary name; the
//! worker count is capped; a study that cannot fit in memory is refused; a loss blown far past its start is recorded
//! as divergence with its step.

use std::path::PathBuf;

use singlora::studies::config::StudyConfig;
use singlora::studies::engine::{run_study, workers, RunOptions, StudyLock};
use singlora::studies::sweep::{run_sweep, Sweep};
use singlora::train::Divergence;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("singlora-engine-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn small(sets: &[&str]) -> StudyConfig {
    let mut all: Vec<String> = vec![
        "widths=[16,32]".into(),
        "seeds=[0]".into(),
        "steps=2".into(),
        "arms=[{name=\"s\",method=\"singlora\"}]".into(),
        "lr_exponents=[0.5]".into(),
    ];
    all.extend(sets.iter().map(|s| s.to_string()));
    StudyConfig::load(None, &all).unwrap()
}

/// While one process holds a folder, a second study into it is refused with a one-line error naming the holder, and
/// writes nothing into it; once the holder lets go, the study runs.
#[test]
fn a_locked_folder_refuses_a_second_process() {
    let out = tmp("locked");
    let lock = StudyLock::acquire(&out, "test holder").unwrap();
    let o = out.to_str().unwrap();
    let args = [
        "sweep",
        "--set",
        "widths=[16,32]",
        "--set",
        "seeds=[0]",
        "--set",
        "steps=1",
        "--out",
        o,
    ];
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_singlora"))
            .args(args)
            .output()
            .unwrap()
    };
    let refused = run();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("locked by pid {}", std::process::id()))
            && stderr.contains("test holder"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!out.join("config.toml").exists(), "nothing written");
    drop(lock);
    let ok = run();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// Two arms of one name, duplicate seeds or exponents: refused by validation, naming the field.
#[test]
fn duplicate_names_seeds_and_exponents_are_refused() {
    let err = |sets: &[&str]| {
        let all: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        StudyConfig::load(None, &all).unwrap_err().to_string()
    };
    assert!(
        err(&["arms=[{name=\"a\",method=\"lora\"},{name=\"a\",method=\"singlora\"}]"])
            .contains("invalid --set arms.name = a: expected a name used by one arm only")
    );
    assert!(err(&["seeds=[1,2,1]"]).contains("expected distinct seeds (1 appears twice)"));
    assert!(
        err(&["lr_exponents=[0.5,1,0.5]"]).contains("expected distinct values (0.5 appears twice)")
    );
    assert!(err(&["probe_steps=[1,1]"]).contains("expected distinct values"));
}

/// Two runs whose file names collide would overwrite each other: in a limit study the arms `lora+-sgd` and
/// `loraplus-sgd` both become the file stem `loraplus-sgd`. The engine refuses the grid before it creates the folder.
#[test]
fn colliding_run_keys_are_refused_before_writing() {
    use singlora::studies::limit::{run_limit_study, LimitConfig};
    let mut cfg = LimitConfig::load(None, &["widths=[32,64]".into(), "steps=2".into()]).unwrap();
    let mut twin = cfg.arms[3].clone();
    twin.name = twin.name.replace('+', "plus");
    cfg.arms.push(twin);
    let out = tmp("collide");
    let e = run_limit_study(&cfg, &cfg, &out, &RunOptions::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("invalid grid = loraplus-sgd-n32-s0: expected distinct runs"),
        "{e}"
    );
    assert!(!out.exists(), "nothing written");
}

/// A study that fails validation writes nothing: no folder, no config.toml, no runs/ (so the corrected study is then
/// accepted in the same folder).
#[test]
fn a_failed_validation_writes_nothing() {
    let out = tmp("invalid");
    let o = out.to_str().unwrap();
    for bad in ["steps=0", "adapter.rank=100", "task.layer=\"hidden.7\""] {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_singlora"))
            .args(["sweep", "--set", "widths=[16,32]", "--set", bad, "--out", o])
            .output()
            .unwrap();
        assert_eq!(status.status.code(), Some(2), "{bad}");
        assert!(!out.exists(), "{bad}: wrote {}", out.display());
    }
}

/// A run file whose job is not the one its name says (another study's file copied in) is refused, not mixed in.
#[test]
fn a_run_file_of_another_run_is_refused() {
    let cfg = small(&[]);
    let out = tmp("mixed");
    run_sweep(&cfg, &out, &RunOptions::default()).unwrap();
    let runs = out.join("runs");
    let (a, b) = (
        runs.join("s@c=0.5__n16__s0.json"),
        runs.join("s@c=0.5__n32__s0.json"),
    );
    std::fs::copy(&a, &b).unwrap();
    let e = run_sweep(&cfg, &out, &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("this file holds another run"), "{e}");
    let _ = std::fs::remove_dir_all(&out);
}

/// Threads writing the same file at once each use their own temporary name: no write fails, and the file is whole.
#[test]
fn concurrent_atomic_writes_never_collide() {
    let dir = tmp("atomic");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("same.json");
    std::thread::scope(|s| {
        for k in 0..8u8 {
            let path = &path;
            s.spawn(move || {
                for _ in 0..50 {
                    singlora::io::write_atomic(path, &[k; 4096]).unwrap();
                }
            });
        }
    });
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 4096);
    assert!(bytes.iter().all(|&b| b == bytes[0]), "a torn file");
    let leftovers = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(leftovers, 1, "temporary files left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The worker count never exceeds the cores or the runs; zero is refused.
#[test]
fn workers_are_capped() {
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(workers(Some(100_000), 1_000_000).unwrap(), cores);
    assert_eq!(workers(Some(100_000), 1).unwrap(), 1);
    assert_eq!(workers(None, 3).unwrap(), cores.min(3));
    assert!(workers(Some(0), 3)
        .unwrap_err()
        .to_string()
        .contains("invalid --threads = 0"));
}

/// A study whose runs need more memory than allowed is refused with the estimate, before anything is written; the
/// widths a machine cannot hold are refused at validation, before anything is built.
#[test]
fn a_study_that_cannot_fit_is_refused() {
    let cfg = small(&[]);
    let out = tmp("memory");
    let opts = RunOptions {
        memory_limit: Some(1 << 20),
        ..RunOptions::default()
    };
    let e = run_study(&Sweep(&cfg), &out, &opts)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.starts_with("invalid memory = "), "{e}");
    assert!(e.contains("expected at most the 0.00 GiB"), "{e}");
    assert!(!out.exists());
    let sets = vec!["widths=[65536,131072]".to_string()];
    let e = StudyConfig::load(None, &sets).unwrap_err().to_string();
    assert!(
        e.contains("expected widths whose runs fit in memory (one run at n = 131072 needs about"),
        "{e}"
    );
}

/// Adam at η = 10⁶ drives the loss far past its start without overflowing: that is divergence, recorded with its
/// step and reason (before the loss-factor rule the run went on to a loss of 10²⁴ with no divergence recorded).
#[test]
fn a_blown_up_loss_is_divergence() {
    let cfg = small(&["lr=1e6", "steps=8"]);
    let out = tmp("blowup");
    let runs = run_study(&Sweep(&cfg), &out, &RunOptions::default()).unwrap();
    for r in &runs.runs {
        let t = r.run.diverged_at.expect("diverged");
        assert_eq!(r.run.divergence, Some(Divergence::LossBlowUp));
        let losses: Vec<f64> = r
            .run
            .records
            .iter()
            .filter(|x| x.layer == "model" && x.quantity == singlora::probes::Quantity::Loss)
            .map(|x| x.value)
            .collect();
        assert_eq!(
            losses.len() as u64,
            t + 1,
            "records stop at the divergence step"
        );
        assert!(losses[t as usize] > 100.0 * losses[0] && losses[t as usize].is_finite());
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// Shards partition the grid: every job in exactly one shard, the same partition in every process, loads balanced
/// to within the largest job (greedy largest-first onto the least-loaded shard).
#[test]
fn shards_partition_the_grid_and_balance_it() {
    use singlora::studies::engine::Shard;
    let costs: Vec<f64> = (0..37).map(|i| ((i * 7919) % 13 + 1) as f64).collect();
    for count in [1usize, 2, 3, 5] {
        let parts: Vec<Vec<usize>> = (0..count)
            .map(|index| Shard { index, count }.select(&costs))
            .collect();
        let mut all: Vec<usize> = parts.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..costs.len()).collect::<Vec<_>>(), "{count} shards");
        let loads: Vec<f64> = parts
            .iter()
            .map(|p| p.iter().map(|&i| costs[i]).sum())
            .collect();
        let (lo, hi) = loads
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(a, b), &l| (a.min(l), b.max(l)));
        assert!(hi - lo <= 13.0, "{count} shards: loads {loads:?}");
        assert_eq!(
            parts[0],
            Shard { index: 0, count }.select(&costs),
            "deterministic"
        );
    }
    for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
        let e = bad.parse::<Shard>().unwrap_err().to_string();
        assert!(e.contains("expected i/N with 0 ≤ i < N"), "{bad}: {e}");
    }
}

/// Shards run one by one in this process and merged give the tables of one process, byte for byte; merging refuses
/// a missing shard (naming it) and a shard of another study.
#[test]
fn merged_shards_equal_one_process() {
    use singlora::studies::engine::Shard;
    use singlora::studies::merge::{gather, Shards};
    use singlora::studies::report::{fit_all, group, write_tables};
    let cfg = small(&["seeds=[0,1]"]);
    let (one, split) = (tmp("one"), tmp("split"));
    let runs = run_sweep(&cfg, &one, &RunOptions::default()).unwrap();
    write_tables(&one, &runs, &fit_all(&cfg, &group(&cfg, &runs))).unwrap();
    let shard = |index: usize| {
        let s = Shard { index, count: 2 };
        let opts = RunOptions {
            shard: Some(s),
            ..RunOptions::default()
        };
        run_study(&Sweep(&cfg), &s.folder(&split), &opts).unwrap();
    };
    shard(1);
    let e = gather(&Sweep(&cfg), &split, &Shards::read(&split).unwrap())
        .err()
        .expect("a shard is missing")
        .to_string();
    assert!(e.contains("missing: 0 of 2"), "{e}");
    shard(0);
    gather(&Sweep(&cfg), &split, &Shards::read(&split).unwrap()).unwrap();
    let merged = run_sweep(&cfg, &split, &RunOptions::default()).unwrap();
    write_tables(&split, &merged, &fit_all(&cfg, &group(&cfg, &merged))).unwrap();
    for f in ["results.csv", "fits.csv"] {
        assert_eq!(
            std::fs::read(one.join(f)).unwrap(),
            std::fs::read(split.join(f)).unwrap(),
            "{f}"
        );
    }
    // A shard of another study in the same split is refused.
    let other = small(&["seeds=[0,1]", "steps=3"]);
    let s = Shard { index: 1, count: 2 };
    let folder = s.folder(&split);
    std::fs::remove_dir_all(&folder).unwrap();
    let opts = RunOptions {
        shard: Some(s),
        ..RunOptions::default()
    };
    run_study(&Sweep(&other), &folder, &opts).unwrap();
    let e = Shards::read(&split).err().expect("refused").to_string();
    assert!(e.contains("its config.toml differs"), "{e}");
    let _ = (
        std::fs::remove_dir_all(&one),
        std::fs::remove_dir_all(&split),
    );
}
