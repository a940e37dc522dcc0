//! `singlora verify`: runs the studies behind the paper's claims (resuming), prints the verdict table and writes
//! `verdicts.csv`, `report.md` and the figures.

use std::path::{Path, PathBuf};

use clap::Args;

use super::args::{shard_done, split_list};
use crate::error::Result;
use crate::studies::engine::Shard;
use crate::studies::verify::{self, report, Claim, Preset, VerifyOptions};

/// What a verify judges: the preset and the claims (the flags `verify` and `slurm verify` share).
#[derive(Args, Debug, Clone)]
pub struct VerifyChoice {
    /// verify: the quick preset (the default): small widths and few steps, a few minutes on 2 cores (what CI runs).
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// verify: the full preset: wider ranges, more seeds and steps, under 30 minutes on 2 cores.
    #[arg(long)]
    full: bool,
    /// verify: the claims to judge, comma-separated (default: all of C1, …, C9).
    #[arg(long, value_name = "C1,C4,…")]
    claims: Option<String>,
}

impl VerifyChoice {
    /// The preset asked for.
    pub fn preset(&self) -> Preset {
        if self.full {
            Preset::Full
        } else {
            Preset::Quick
        }
    }

    /// The claims of `--claims` (default: every claim), each once, in the order given.
    pub fn claims(&self) -> Result<Vec<Claim>> {
        let Some(list) = &self.claims else {
            return Ok(Claim::ALL.to_vec());
        };
        let mut out: Vec<Claim> = Vec::new();
        for name in split_list(list) {
            let c: Claim = name.to_uppercase().parse()?;
            if !out.contains(&c) {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// The first of these flags given, if any (for commands other than verify, which refuse them).
    pub fn given(&self) -> Option<&'static str> {
        [
            ("--quick", self.quick),
            ("--full", self.full),
            ("--claims", self.claims.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    choice: VerifyChoice,
    /// Output folder (default results/verify-PRESET).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads per study (default: all cores). Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Run only slice I of N of every study the claims need (each study's runs balanced by estimated cost) into
    /// OUT/STUDY/shards/I-of-N; `singlora merge OUT` then gathers them and writes the verdicts. Default: the Slurm
    /// array task (SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT) when set.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
}

pub fn run(a: VerifyArgs) -> Result<()> {
    let preset = a.choice.preset();
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| Path::new("results").join(format!("verify-{preset}")));
    let opts = VerifyOptions {
        preset,
        claims: a.choice.claims()?,
        out: out.clone(),
        threads: a.threads,
        progress: true,
    };
    let shard = match &a.shard {
        Some(s) => Some(s.parse::<Shard>()?),
        None => Shard::from_slurm()?,
    };
    match shard {
        Some(shard) => {
            let tally = verify::shard::run_shard(&opts, shard)?;
            println!(
                "verify shard {shard}: {} studies; {}",
                tally.studies,
                shard_done(shard, tally.other, tally.runs, &out)
            );
            Ok(())
        }
        None => judge_and_report(&opts),
    }
}

/// Measures and judges `opts`' claims (resuming every study), draws the figures, writes `verdicts.csv` and
/// `report.md`, and prints the verdict table.
pub fn judge_and_report(opts: &VerifyOptions) -> Result<()> {
    let measured = verify::run(opts)?;
    let out = &opts.out;
    let figures = crate::plots::verify::draw_verify(&measured, out)?;
    report::write(&measured, out)?;
    print!("{}", report::table(&measured));
    println!(
        "wrote {0}/verdicts.csv, {0}/report.md and {figures} figure files",
        out.display()
    );
    Ok(())
}
