//! Flags several commands share: those of a study ([`StudyArgs`]) and those of an adapter ([`AdapterArgs`]).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::adapters::{AdapterConfig, DoraNorm, Init, Method, Scaling};
use crate::error::Result;
use crate::studies::engine::{Finished, Opened, RunOptions, Shard, Study};

/// The flags of every study command.
#[derive(Args, Debug, Clone)]
pub struct StudyArgs {
    /// Study file (TOML), stating what differs from the command's default study (default: the embedded default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    // The doc comment is clap's --help text, where the brackets are literal TOML, not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// Override a field with a TOML value: --set steps=4 --set adapter.rank=2 --set 'widths=[64,128,256]'.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub sets: Vec<String>,
    /// Output folder (default results/NAME).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Worker threads (default: all cores; capped at the cores and the runs). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the resolved config, the grid and its memory estimate, and exit without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Run only slice I of N of the grid (balanced by estimated cost) into DIR/shards/I-of-N; `singlora merge DIR`
    /// then combines the shards. Default: the Slurm array task (SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT) when set.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
}

impl StudyArgs {
    /// The output folder: `--out`, or `results/NAME`.
    pub fn out_dir(&self, name: &str) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| Path::new("results").join(name))
    }

    /// The shard to run: `--shard`, else the Slurm array task, else none.
    pub fn shard(&self) -> Result<Option<Shard>> {
        match &self.shard {
            Some(s) => s.parse().map(Some),
            None => Shard::from_slurm(),
        }
    }

    /// Where the study's runs go and how the engine runs them (with a progress bar): `results/NAME` or `--out`, or
    /// its shard's folder inside it.
    pub fn target(&self, name: &str) -> Result<(PathBuf, RunOptions)> {
        let shard = self.shard()?;
        let dir = self.out_dir(name);
        let out = shard.map_or(dir.clone(), |s| s.folder(&dir));
        let opts = RunOptions {
            progress: true,
            threads: self.threads,
            shard,
            ..RunOptions::default()
        };
        Ok((out, opts))
    }
}

/// The flags that define an adapter.
#[derive(Args, Debug, Clone)]
#[command(allow_negative_numbers = true)]
pub struct AdapterArgs {
    /// Adapter: full, lora, dora, singlora, singlora_dora.
    #[arg(long)]
    pub method: Option<String>,
    /// Rank r.
    #[arg(long, default_value_t = 4)]
    pub rank: usize,
    /// LoRA alpha.
    #[arg(long, default_value_t = 4.0)]
    pub alpha: f64,
    /// Use s = α/√r (rsLoRA) instead of α/r.
    #[arg(long)]
    pub rslora: bool,
    /// Initialisation of the random factor (default: the method's): kaiming_uniform, peft_gaussian, width_aware,
    /// kaiming_r, gaussian(std=σ,beta=β).
    #[arg(long)]
    pub init: Option<String>,
    /// DoRA norm gradient: detached (PEFT default) or full.
    #[arg(long, default_value = "detached")]
    pub dora_norm: String,
}

impl AdapterArgs {
    /// The adapter config; `default` is the method when `--method` is absent (`None`: the flag is required).
    pub fn config(&self, default: Option<Method>) -> Result<AdapterConfig> {
        let method = match (&self.method, default) {
            (Some(m), _) => m.parse()?,
            (None, Some(m)) => m,
            (None, None) => {
                return Err(crate::Error::invalid(
                    "--method",
                    "(absent)",
                    "one of full, lora, dora, singlora, singlora_dora",
                ))
            }
        };
        let mut adapter = AdapterConfig::new(method).rank_alpha(self.rank, self.alpha);
        adapter.scaling = if self.rslora {
            Scaling::AlphaOverSqrtR
        } else {
            Scaling::AlphaOverR
        };
        adapter.dora_norm = self.dora_norm.parse::<DoraNorm>()?;
        if let Some(init) = &self.init {
            adapter.init = Some(init.parse::<Init>()?);
        }
        Ok(adapter)
    }
}

/// `a,b, c` → `["a", "b", "c"]`.
pub fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Prints `start` (the study's one-line description), runs the opened study and returns its runs; or, when `shard`
/// is set, prints what the shard did and how to merge the study in `merge_dir`, and returns `None`.
pub fn run_opened<S: Study>(
    opened: Opened<'_, S>,
    start: &str,
    shard: Option<Shard>,
    merge_dir: &Path,
) -> Result<Option<Finished<S>>> {
    println!("{start}");
    let finished = opened.run()?;
    match shard {
        Some(shard) => {
            let (computed, total) = (finished.computed, finished.runs.len());
            println!("{}", shard_done(shard, computed, total, merge_dir));
            Ok(None)
        }
        None => Ok(Some(finished)),
    }
}

/// What a shard prints when its runs are done.
pub fn shard_done(shard: Shard, computed: usize, total: usize, dir: &Path) -> String {
    format!(
        "shard {shard}: {computed} of its {total} runs computed this time, all finished; when every shard is done: singlora merge {}",
        dir.display()
    )
}
