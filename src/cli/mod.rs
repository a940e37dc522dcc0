//! The `singlora` command line. It parses, calls the library and prints what the library formats; every error is
//! one line from [`crate::Error`]. One file per command; the flags several commands share are [`args`].

pub mod args;
mod attention;
mod layer;
mod limit;
mod lr;
mod merge;
mod plot;
mod slurm;
mod sweep;
mod synthetic;
mod theory;
mod train;
mod verify;

use clap::{CommandFactory, Parser, Subcommand};

use crate::error::{Error, Result};

/// singlora: measure how low-rank adapters behave as networks get wider.
#[derive(Parser, Debug)]
#[command(name = "singlora", version, about, long_about = None, arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    // The doc comment is clap's --help text, where A[:d_out] is a literal slice, not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// Write one adapted layer (inputs, outputs, parameters, every gradient) to a .safetensors file.
    ///
    /// LoRA naming follows PEFT: B = output side (d_out × r), zero-init, LR × ratio under LoRA+; A = input side
    /// (r × d_in). SingLoRA's A is (max(d_in, d_out) × r) and ΔW = s·u·A[:d_out]·A[:d_in]ᵀ.
    Layer(layer::LayerArgs),
    /// Fit one adapted layer to PSD, NSD and asymmetric targets with LoRA and SingLoRA (THEORY §6.1).
    Synthetic(synthetic::SyntheticArgs),
    /// Fit a teacher whose attention-score change W_Qᵀ W_K is asymmetric (and a symmetric control) with full
    /// fine-tuning, LoRA and SingLoRA on q and k: losses, the achieved change and its skew fraction.
    Attention(attention::AttentionArgs),
    /// Fine-tune one model (MLP, transformer or the scalar toy) at width n with any adapter and print its losses.
    Train(train::TrainArgs),
    /// Run a width study: train every (arm, exponent, width, seed) cell with probes, fit width exponents, draw figures.
    ///
    /// With no arguments it runs configs/default.toml (embedded) into results/default. Running the same command again
    /// resumes: finished runs are loaded, not recomputed.
    Sweep(sweep::SweepArgs),
    /// Run a learning-rate study: final losses over a grid of rates at every width, the best rate and its drift with
    /// width, near-best windows, LoRA+ planes.
    ///
    /// With no arguments it runs configs/lr.toml (embedded) into results/lr. Running it again resumes.
    Lr(lr::LrArgs),
    /// Redraw the figures and tables of a finished sweep, learning-rate or limit folder.
    Plot(plot::PlotArgs),
    /// Combine the shards of a study (--shard I/N runs, e.g. a Slurm array) into one folder with its tables and
    /// figures, as if it had run at once; refuses shards of different studies and names missing ones.
    Merge(merge::MergeArgs),
    /// Print a ready Slurm submission script for a study: its resolved config, an sbatch array of shards and a merge
    /// job chained with --dependency=afterok (run it with bash).
    Slurm(slurm::SlurmArgs),
    /// Print the width exponents the theory predicts for every series of a study (initial state, first step, balanced
    /// regime, with derivations and conditions) and the stable rate exponent c*.
    Theory(theory::TheoryArgs),
    /// Compute the n → ∞ training trajectory of a linear MLP with LoRA, LoRA+ or SingLoRA (SGD, sign-SGD), train
    /// finite widths coupled to it, fit how fast they converge, and draw both.
    ///
    /// With no arguments it runs configs/limit.toml (embedded) into results/limit. Running it again resumes.
    Limit(limit::LimitArgs),
    /// Judge the paper's claims C1–C9 (THEORY §0) from measurements: runs the studies behind them (resuming), prints
    /// a verdict table (holds / holds under conditions / does not hold / inconclusive, with the numbers behind each)
    /// and writes OUT/verdicts.csv, OUT/report.md and the figures.
    Verify(verify::VerifyArgs),
}

/// The first line of a clap error, without clap's `error: ` prefix.
fn first_line(e: &clap::Error) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_string()
}

/// A value a flag's parser rejected (`--width -3`, `--lr fast`) as `invalid --FLAG = VALUE: expected WHAT`, where
/// WHAT is what that flag's type accepts; `None` for every other clap error and for types without a description.
fn rejected_value(e: &clap::Error, args: &[std::ffi::OsString]) -> Option<Error> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use std::any::TypeId;
    if e.kind() != ErrorKind::ValueValidation {
        return None;
    }
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (
        e.get(ContextKind::InvalidArg),
        e.get(ContextKind::InvalidValue),
    ) else {
        return None;
    };
    let flag = arg.split_whitespace().next()?;
    // No option comes before the command's name, so it is the first argument after the program's.
    let command = args.get(1)?.to_str()?;
    let parser = long_flag(command, flag.strip_prefix("--")?)?
        .get_value_parser()
        .type_id();
    let integers = [
        TypeId::of::<usize>(),
        TypeId::of::<u64>(),
        TypeId::of::<u32>(),
    ];
    let expected = if integers.iter().any(|t| parser == *t) {
        "a non-negative integer"
    } else if parser == TypeId::of::<f64>() {
        "a number"
    } else {
        return None;
    };
    Some(Error::invalid(flag, value, expected))
}

/// Runs the command line on `args` (including the program name).
pub fn run<I, S>(args: I) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    use clap::error::ErrorKind;
    use clap::FromArgMatches;
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let parsed = Cli::command()
        .try_get_matches_from(&args)
        .and_then(|m| Ok((Cli::from_arg_matches(&m)?, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.print().ok();
            return Ok(());
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprint!("{}", Cli::command().render_help());
            return Err(Error::Usage(
                "a command is required (see the list above, or singlora help COMMAND)".into(),
            ));
        }
        Err(e) => return Err(rejected_value(&e, &args).unwrap_or(Error::Usage(first_line(&e)))),
    };
    let command = matches.subcommand_name().unwrap_or_default().to_string();
    dispatch(cli.command).map_err(|e| as_flag(e, &command))
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Layer(a) => layer::run(a),
        Command::Synthetic(a) => synthetic::run(a),
        Command::Attention(a) => attention::run(a),
        Command::Train(a) => train::run(a),
        Command::Sweep(a) => sweep::run(a),
        Command::Lr(a) => lr::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Slurm(a) => slurm::run(a),
        Command::Theory(a) => theory::run(a),
        Command::Limit(a) => limit::run(a),
        Command::Verify(a) => verify::run(a),
    }
}

/// An invalid-value error whose field is one of `command`'s flags, spelt as the flag the user typed (`width` →
/// `--width`, `d_in` → `--d-in`); other fields (config paths, `--set` fields, positional folders) are left as they are.
fn as_flag(e: Error, command: &str) -> Error {
    let Error::Invalid {
        field,
        value,
        expected,
    } = e
    else {
        return e;
    };
    let flag = field.replace('_', "-");
    let is_flag = long_flag(command, &flag).is_some();
    Error::Invalid {
        field: if is_flag { format!("--{flag}") } else { field },
        value,
        expected,
    }
}

/// The argument `--LONG` of the subcommand `command`, if it has one.
fn long_flag(command: &str, long: &str) -> Option<clap::Arg> {
    let root = Cli::command();
    let sub = root.find_subcommand(command)?;
    let arg = sub.get_arguments().find(|a| a.get_long() == Some(long));
    arg.cloned()
}
