//! `singlora slurm KIND [STUDY FLAGS] --shards N`: prints a ready submission script for a Slurm cluster: the resolved
//! study, an sbatch array of N shards (each a `--shard` run; the array task picks its shard) and a merge job chained
//! with `--dependency=afterok`.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;

use super::args::StudyArgs;
use super::verify::VerifyChoice;
use crate::error::{Error, Result};
use crate::studies::config::StudyConfig;
use crate::studies::engine::{gib, plan, shard_costs, Plan, Study};
use crate::studies::limit::{LimitConfig, LimitStudy};
use crate::studies::lr::LrStudy;
use crate::studies::sweep::Sweep;
use crate::studies::verify::plan::{visit_studies, VisitStudy};
use crate::studies::verify::shard::VerifyStamp;

#[derive(Args, Debug)]
pub struct SlurmArgs {
    /// The study command: sweep, lr, limit or verify.
    kind: String,
    #[command(flatten)]
    study: StudyArgs,
    #[command(flatten)]
    verify: VerifyChoice,
    /// Number of shards (array tasks).
    #[arg(long, default_value_t = 4)]
    shards: usize,
    /// Cores per shard (each shard runs its runs on this many threads).
    #[arg(long, default_value_t = 1)]
    cpus_per_task: usize,
    /// Time limit per shard, HH:MM:SS (default: an estimate, see the script's header).
    #[arg(long)]
    time: Option<String>,
    /// An extra sbatch option for every job, e.g. --sbatch=--partition=short (repeatable).
    #[arg(long = "sbatch", value_name = "OPTION", allow_hyphen_values = true)]
    sbatch: Vec<String>,
    /// The singlora binary the jobs run (default: this one).
    #[arg(long)]
    binary: Option<PathBuf>,
}

/// `seconds` as HH:MM:SS.
fn hms(seconds: f64) -> String {
    let s = seconds.ceil() as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// What the script submits: the study's plan, its config text, its name, its shards' estimated costs, and the
/// arguments of the array's command after the binary.
struct Resolved {
    plan: Plan,
    text: String,
    name: String,
    costs: Vec<f64>,
    command: String,
}

fn resolve(a: &SlurmArgs) -> Result<Resolved> {
    if a.kind == "verify" {
        return resolve_verify(a);
    }
    if let Some(flag) = a.verify.given() {
        return Err(Error::invalid(
            flag,
            &a.kind,
            "the verify study (slurm verify)",
        ));
    }
    let (config, sets) = (a.study.config.as_deref(), &a.study.sets);
    let threads = Some(a.cpus_per_task);
    fn go<S: Study>(s: &S, t: Option<usize>, n: usize) -> Result<(Plan, String, Vec<f64>)> {
        Ok((plan(s, t)?, s.config_text()?, shard_costs(s, n)))
    }
    let (plan, text, costs, name) = match a.kind.as_str() {
        "sweep" => {
            let cfg = StudyConfig::load(config, sets)?;
            crate::studies::sweep::check_sweep(&cfg)?;
            let (p, t, c) = go(&Sweep(&cfg), threads, a.shards)?;
            (p, t, c, cfg.name)
        }
        "lr" => {
            let cfg = crate::studies::lr::load(config, sets)?;
            let (p, t, c) = go(&LrStudy(&cfg), threads, a.shards)?;
            (p, t, c, cfg.name)
        }
        "limit" => {
            let cfg = LimitConfig::load(config, sets)?;
            let (p, t, c) = go(&LimitStudy::new(&cfg, &cfg)?, threads, a.shards)?;
            (p, t, c, cfg.name)
        }
        other => return Err(Error::invalid("KIND", other, "sweep, lr, limit or verify")),
    };
    let command = format!(
        "{} --config '$OUT/study.toml' --out '$OUT' --threads {}",
        a.kind, a.cpus_per_task
    );
    Ok(Resolved {
        plan,
        text,
        name,
        costs,
        command,
    })
}

/// Sums verify's engine studies: runs, the largest run, and each shard's cost over every study.
struct VerifyCosts {
    threads: usize,
    plan: Plan,
    costs: Vec<f64>,
}

impl VisitStudy for VerifyCosts {
    fn visit<S: Study>(&mut self, _folder: &str, study: &S) -> Result<()> {
        let p = plan(study, Some(self.threads))?;
        self.plan.runs += p.runs;
        self.plan.workers = self.plan.workers.max(p.workers);
        self.plan.largest_run = self.plan.largest_run.max(p.largest_run);
        self.plan.available = p.available;
        let costs = shard_costs(study, self.costs.len());
        for (total, c) in self.costs.iter_mut().zip(costs) {
            *total += c;
        }
        Ok(())
    }
}

fn resolve_verify(a: &SlurmArgs) -> Result<Resolved> {
    if a.study.config.is_some() || !a.study.sets.is_empty() {
        return Err(Error::invalid(
            "--config/--set",
            "verify",
            "no study file or overrides (verify's studies are its preset's; choose them with --full and --claims)",
        ));
    }
    let (preset, claims) = (a.verify.preset(), a.verify.claims()?);
    let mut v = VerifyCosts {
        threads: a.cpus_per_task,
        plan: Plan {
            runs: 0,
            workers: 0,
            largest_run: 0,
            available: None,
        },
        costs: vec![0.0; a.shards],
    };
    visit_studies(preset, &claims, &mut v)?;
    let list: Vec<String> = claims.iter().map(|c| c.to_string()).collect();
    let command = format!(
        "verify --{preset} --claims {} --out '$OUT' --threads {}",
        list.join(","),
        a.cpus_per_task
    );
    let text = VerifyStamp {
        preset,
        claims: claims.clone(),
    }
    .text();
    Ok(Resolved {
        plan: v.plan,
        text,
        name: format!("verify-{preset}"),
        costs: v.costs,
        command,
    })
}

pub fn run(a: SlurmArgs) -> Result<()> {
    if a.shards == 0 {
        return Err(Error::invalid("--shards", 0, "a positive integer"));
    }
    if a.cpus_per_task == 0 {
        return Err(Error::invalid("--cpus-per-task", 0, "a positive integer"));
    }
    if let Some(t) = &a.time {
        let ok = t.split(':').count() == 3 && t.split(':').all(|p| p.parse::<u32>().is_ok());
        if !ok {
            return Err(Error::invalid("--time", t, "HH:MM:SS"));
        }
    }
    let Resolved {
        plan,
        text,
        name,
        costs,
        command,
    } = resolve(&a)?;
    let out = a.study.out_dir(&name);
    let out = std::path::absolute(&out).map_err(|e| Error::io(&out, e))?;
    let bin = match &a.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|e| Error::io("singlora", e))?,
    };
    let largest = costs.iter().copied().fold(0.0, f64::max);
    let seconds = largest / a.cpus_per_task as f64;
    let time = a
        .time
        .clone()
        .unwrap_or_else(|| hms((3.0 * seconds).max(600.0)));
    let mem_mb = (plan.largest_run * a.cpus_per_task as u64 * 2)
        .div_ceil(1 << 20)
        .max(256);
    print!(
        "{}",
        script(
            &a,
            &Script {
                name: &name,
                text: &text,
                out: &out,
                bin: &bin,
                time: &time,
                mem_mb,
                plan: &plan,
                seconds,
                command: &command,
            }
        )
    );
    Ok(())
}

struct Script<'a> {
    name: &'a str,
    text: &'a str,
    out: &'a std::path::Path,
    bin: &'a std::path::Path,
    time: &'a str,
    mem_mb: u64,
    plan: &'a Plan,
    seconds: f64,
    command: &'a str,
}

fn script(a: &SlurmArgs, s: &Script<'_>) -> String {
    let extra: String = a.sbatch.iter().map(|o| format!(" {o}")).collect();
    let mut t = String::new();
    let _ = writeln!(t, "#!/usr/bin/env bash");
    let _ = writeln!(
        t,
        "# singlora {} study \"{}\" on Slurm: an array of {} shards and a merge job after them.",
        a.kind, s.name, a.shards
    );
    let _ = writeln!(
        t,
        "# {} runs; the largest shard is about {:.0} s on {} core(s) by the engine's cost model (src/studies/cost.rs), so --time {} (3× that, at least 10 min); memory: {} per run, --mem {}M.",
        s.plan.runs,
        s.seconds,
        a.cpus_per_task,
        s.time,
        gib(s.plan.largest_run),
        s.mem_mb
    );
    let _ = writeln!(t, "# Submit with: bash THIS_FILE");
    let _ = writeln!(t, "set -euo pipefail");
    let _ = writeln!(t, "OUT='{}'", s.out.display());
    let _ = writeln!(t, "BIN='{}'", s.bin.display());
    let _ = writeln!(t, "mkdir -p \"$OUT/slurm\"");
    let _ = writeln!(t, "cat > \"$OUT/study.toml\" <<'SINGLORA_STUDY'");
    t.push_str(s.text);
    let _ = writeln!(t, "SINGLORA_STUDY");
    let _ = writeln!(
        t,
        "array=$(sbatch --parsable --job-name=singlora-{name} --array=0-{last} --cpus-per-task={k} --mem={mem}M --time={time}{extra} --output=\"$OUT/slurm/shard-%a.out\" --wrap=\"'$BIN' {command}\")",
        name = s.name,
        last = a.shards - 1,
        k = a.cpus_per_task,
        mem = s.mem_mb,
        time = s.time,
        command = s.command
    );
    let _ = writeln!(
        t,
        "merge=$(sbatch --parsable --job-name=singlora-{name}-merge --dependency=afterok:$array --kill-on-invalid-dep=yes --cpus-per-task=1 --mem={mem}M --time={time}{extra} --output=\"$OUT/slurm/merge.out\" --wrap=\"'$BIN' merge '$OUT'\")",
        name = s.name,
        mem = s.mem_mb,
        time = s.time
    );
    let _ = writeln!(
        t,
        "echo \"submitted: shards $array (0-{}), merge $merge; results in $OUT\"",
        a.shards - 1
    );
    let _ = writeln!(t, "echo \"$array $merge\" > \"$OUT/slurm/jobs\"");
    t
}
