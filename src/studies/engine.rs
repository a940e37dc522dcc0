//! One resumable runner for every study kind.
//!
//! A [`Study`] is a typed grid of jobs with a function that runs one. [`run_study`] gives every study the same
//! guarantees:
//! - everything is checked before anything is written: the grid's run keys are unique, and the largest run times the
//!   number of workers fits in the machine's available memory;
//! - the output folder is locked for the duration (`.singlora.lock`, an exclusive OS file lock released when the
//!   process exits, however it exits); a second process gets a one-line refusal naming the holder;
//! - a folder holding a different study (another `config.toml`) is refused;
//! - finished runs (`runs/KEY.json`) are loaded, never recomputed; the others run in parallel, one group per worker
//!   (with fewer groups than workers, a group's large products use the idle threads; numbers never depend on the
//!   thread count either way), each written atomically under a unique temporary name as soon as
//!   it finishes, so an interrupted study loses no finished run;
//! - every run is read back, checked to be the run of its job, and returned in grid order.
//!
//! Jobs that share a frozen base (same width, base and data) can be handed out together ([`Study::share_key`],
//! [`Study::run_group`]) so that a group can be stepped as one computation.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::cost::Cost;
use super::store;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::scalar::with_product_threads;

/// A study kind: a grid of jobs and how to run one.
pub trait Study: Sync {
    /// One job of the grid; written into its run file so that a run file says which run it is.
    type Job: Clone + PartialEq + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync;
    /// What a finished job produces.
    type Run: Serialize + DeserializeOwned + Send;

    /// The command that runs this kind (`sweep`, `lr`, `limit`): the first line of `config.toml`.
    fn kind(&self) -> &'static str;

    /// The study's normalised config (TOML): its identity. A folder holding another is refused.
    fn config_text(&self) -> Result<String>;

    /// The grid, in a fixed order.
    fn jobs(&self) -> Vec<Self::Job>;

    /// The job's run-file stem (unique in the grid; letters, digits and `._+-=@` only).
    fn key(&self, job: &Self::Job) -> String;

    /// An upper estimate of the bytes one job needs at its peak.
    fn job_bytes(&self, job: &Self::Job) -> u64;

    /// Runs one job (on the calling thread; its large products may use the pool, see [`crate::scalar`]).
    fn run(&self, job: &Self::Job) -> Result<Self::Run>;

    /// Jobs with the same key share a frozen base (width, base weights and data) and are handed to
    /// [`Study::run_group`] together. `None`: the job runs alone.
    fn share_key(&self, _job: &Self::Job) -> Option<String> {
        None
    }

    /// Runs jobs that share a frozen base, handing each finished run to `done` (with its index in `jobs`) at once,
    /// so an interrupted group keeps its finished runs; the default runs them one after the other.
    fn run_group(
        &self,
        jobs: &[&Self::Job],
        done: &mut dyn FnMut(usize, Self::Run) -> Result<()>,
    ) -> Result<()> {
        for (i, job) in jobs.iter().enumerate() {
            done(i, self.run(job)?)?;
        }
        Ok(())
    }

    /// The step at which a run diverged (for the manifest).
    fn diverged_at(&self, _run: &Self::Run) -> Option<u64> {
        None
    }

    /// The job's estimated cost on one core ([`Cost`]: its own seconds and those of the work its share group computes
    /// once), for balancing shards and Slurm time limits.
    fn job_cost(&self, job: &Self::Job) -> Cost;
}

/// How to run a study.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Draw a progress bar on the terminal.
    pub progress: bool,
    /// Worker threads (default: one per core); capped at the number of cores and of pending runs.
    pub threads: Option<usize>,
    /// Refuse a study whose memory estimate exceeds this many bytes (default: what the machine has available).
    pub memory_limit: Option<u64>,
    /// Compute nothing: read the finished runs back, refusing a folder where some are missing (`singlora plot`).
    pub read_only: bool,
    /// Run only this deterministic slice of the grid (`--shard i/N`, see [`Shard`]).
    pub shard: Option<Shard>,
}

/// A slice of a study's grid: shard `index` of `count` (0-based). Jobs are dealt to shards by estimated cost, largest
/// first, each to the shard with the least total so far (ties: the lower shard; jobs of equal cost in grid order), so
/// every process computes the same partition and the shards finish at about the same time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, 0-based.
    pub index: usize,
    /// The number of shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = Error;

    /// `i/N` with 0 ≤ i < N.
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || Error::invalid("--shard", s, "i/N with 0 ≤ i < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The shard a Slurm array task is (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN` of `SLURM_ARRAY_TASK_COUNT`),
    /// when those are set.
    pub fn from_slurm() -> Result<Option<Shard>> {
        let var = |k: &str| std::env::var(k).ok();
        let (Some(id), Some(count)) = (var("SLURM_ARRAY_TASK_ID"), var("SLURM_ARRAY_TASK_COUNT"))
        else {
            return Ok(None);
        };
        let min = var("SLURM_ARRAY_TASK_MIN").unwrap_or_else(|| "0".into());
        let num = |k: &str, v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| Error::invalid(k, v, "a non-negative integer (set by Slurm)"))
        };
        let (id, min, count) = (
            num("SLURM_ARRAY_TASK_ID", &id)?,
            num("SLURM_ARRAY_TASK_MIN", &min)?,
            num("SLURM_ARRAY_TASK_COUNT", &count)?,
        );
        format!("{}/{count}", id.saturating_sub(min))
            .parse()
            .map(Some)
    }

    /// The folder of this shard's runs inside a study folder: `DIR/shards/I-of-N`.
    pub fn folder(&self, dir: &Path) -> PathBuf {
        dir.join("shards")
            .join(format!("{}-of-{}", self.index, self.count))
    }

    /// Which of `costs` (one per job, in grid order) this shard runs, in grid order.
    pub fn select(&self, costs: &[f64]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..costs.len()).collect();
        order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
        let mut load = vec![0.0f64; self.count];
        let mut mine = Vec::new();
        for j in order {
            let k = (0..self.count)
                .min_by(|&x, &y| load[x].total_cmp(&load[y]).then(x.cmp(&y)))
                .expect("count ≥ 1");
            load[k] += costs[j].max(0.0);
            if k == self.index {
                mine.push(j);
            }
        }
        mine.sort_unstable();
        mine
    }
}

/// One finished job as written to `runs/KEY.json`.
#[derive(Serialize, Deserialize)]
pub struct RunFile<J, R> {
    /// The job.
    pub job: J,
    /// Its wall time in seconds.
    pub wall_seconds: f64,
    /// Its result.
    pub run: R,
}

/// A study's runs in grid order.
pub struct Finished<S: Study> {
    /// `(job, wall seconds, run)` for every job.
    pub runs: Vec<RunFile<S::Job, S::Run>>,
    /// How many were computed by this call (the rest were loaded).
    pub computed: usize,
}

/// The number of workers for `pending` runs: `threads` (default: every core), at most one per core and per run.
pub fn workers(threads: Option<usize>, pending: usize) -> Result<usize> {
    if threads == Some(0) {
        return Err(Error::invalid("--threads", 0, "a positive integer"));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(threads.unwrap_or(cores).min(cores).min(pending.max(1)))
}

/// Bytes of memory the machine has available (`MemAvailable` in /proc/meminfo), if it says.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The cores other processes leave free: the cores this process may use minus the 1-minute load average (rounded
/// down; `/proc/loadavg`), at least 1; every core when the system does not say. A product split over a core another
/// process is busy on waits for it (measured on a shared 2-core machine: 0.4–0.9× the sequential step), so a study
/// splits products only over free cores unless `--threads` asks for them explicitly.
pub fn free_cores() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok());
    match load {
        Some(l) if l.is_finite() && l >= 0.0 => cores.saturating_sub(l as usize).clamp(1, cores),
        _ => cores,
    }
}

/// `bytes` in GiB with two decimals.
pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// The study's grid checked in memory: unique keys, and the memory of `workers` concurrent runs within `limit`.
fn check_grid<S: Study>(
    study: &S,
    jobs: &[S::Job],
    workers: usize,
    limit: Option<u64>,
) -> Result<()> {
    let mut seen = BTreeMap::new();
    for (i, job) in jobs.iter().enumerate() {
        let key = study.key(job);
        if let Some(j) = seen.insert(key.clone(), i) {
            return Err(Error::invalid(
                "grid",
                &key,
                &format!("distinct runs (jobs {j} and {i} of the grid are both {key}: rename an arm or drop a duplicate)"),
            ));
        }
    }
    let Some((job, bytes)) = jobs
        .iter()
        .map(|j| (j, study.job_bytes(j)))
        .max_by_key(|(_, b)| *b)
    else {
        return Ok(());
    };
    let need = bytes.saturating_mul(workers as u64);
    if let Some(limit) = limit.or_else(available_memory) {
        if need > limit {
            return Err(Error::invalid(
                "memory",
                format!(
                    "{} ({workers} worker(s) × {} for {})",
                    gib(need),
                    gib(bytes),
                    study.key(job)
                ),
                &format!(
                    "at most the {} this machine has available: use smaller widths, f32, or --threads 1",
                    gib(limit)
                ),
            ));
        }
    }
    Ok(())
}

/// An exclusive lock on a study folder, held until dropped (or the process ends).
pub struct StudyLock {
    _file: File,
}

impl StudyLock {
    /// Locks `dir` (created if missing) for this process, or refuses naming the process that holds it.
    pub fn acquire(dir: &Path, what: &str) -> Result<StudyLock> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(".singlora.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match try_lock_briefly(&file) {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(Error::invalid(
                    "--out",
                    dir.display(),
                    &format!(
                        "a folder no other process is writing (it is locked by {})",
                        holder.trim()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let note = format!(
            "pid {} ({what}, since unix time {since})",
            std::process::id()
        );
        let written = file
            .set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(note.as_bytes()))
            .and_then(|_| file.flush());
        written.map_err(|e| Error::io(&path, e))?;
        Ok(StudyLock { _file: file })
    }
}

/// `file.try_lock()`, retried for up to [`LOCK_GRACE`]. A lock released a moment ago can still be held by a copy of
/// its descriptor in a child this process is spawning (fork copies descriptors; they close at exec), so one refusal
/// on the first try would blame a holder that is about to vanish. A lock another process really holds still refuses,
/// after the grace.
fn try_lock_briefly(file: &File) -> std::result::Result<(), std::fs::TryLockError> {
    let start = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < LOCK_GRACE => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// How long [`StudyLock::acquire`] waits for a held lock before refusing.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// The first line of a study folder's `config.toml`: `# singlora KIND study`.
fn stamp_header(kind: &str) -> String {
    format!("# singlora {kind} study\n")
}

/// The study kind recorded in `dir/config.toml`, if any.
pub fn folder_kind(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("config.toml")).ok()?;
    let first = text.lines().next()?;
    let kind = first.strip_prefix("# singlora ")?.strip_suffix(" study")?;
    Some(kind.to_string())
}

/// Claims `out` for the study (the caller holds its lock): [`stamp_folder`], then the runs folder, which it returns.
pub fn claim_folder(out: &Path, kind: &str, config_text: &str) -> Result<PathBuf> {
    stamp_folder(out, kind, config_text)?;
    let runs = out.join("runs");
    std::fs::create_dir_all(&runs).map_err(|e| Error::io(&runs, e))?;
    Ok(runs)
}

/// Stamps `out` (the caller holds its lock) with the study's `config.toml` (`# singlora KIND study` and the config),
/// or refuses a folder that holds a different one.
pub fn stamp_folder(out: &Path, kind: &str, config_text: &str) -> Result<()> {
    let text = stamp_header(kind) + config_text;
    let stamp = out.join("config.toml");
    match std::fs::read_to_string(&stamp) {
        Ok(existing) if existing != text => {
            return Err(Error::invalid(
                "--out",
                out.display(),
                "a folder without results, or one holding this same study (it holds a different config.toml)",
            ))
        }
        Ok(_) => {}
        Err(_) => write_atomic(&stamp, text.as_bytes())?,
    }
    Ok(())
}

fn progress_bar(pending: usize, total: usize) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(pending as u64);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} runs  {elapsed} elapsed, ETA {eta}  {msg}",
        )
        .expect("template"),
    );
    if total > pending {
        b.println(format!(
            "resuming: {} of {total} runs already finished",
            total - pending
        ));
    }
    b
}

/// A study whose folder is checked, locked and claimed, ready to run its pending jobs.
pub struct Opened<'a, S: Study> {
    study: &'a S,
    out: PathBuf,
    runs_dir: PathBuf,
    config_text: String,
    jobs: Vec<S::Job>,
    opts: RunOptions,
    _lock: StudyLock,
}

/// Checks `study` (unique run keys, memory), locks `out`, claims it for the study and finds its finished runs; nothing
/// is written before the checks pass.
pub fn open<'a, S: Study>(study: &'a S, out: &Path, opts: &RunOptions) -> Result<Opened<'a, S>> {
    let mut jobs = study.jobs();
    let config_text = study.config_text()?;
    let max_workers = workers(opts.threads, jobs.len())?;
    let limit = if opts.read_only {
        Some(u64::MAX)
    } else {
        opts.memory_limit
    };
    check_grid(study, &jobs, max_workers, limit)?;
    if let Some(shard) = opts.shard {
        let costs = amortised_costs(study, &jobs);
        jobs = shard
            .select(&costs)
            .into_iter()
            .map(|i| jobs[i].clone())
            .collect();
    }
    if opts.read_only && !out.join("config.toml").exists() {
        let stamp = out.join("config.toml");
        return Err(Error::io(
            &stamp,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no study here"),
        ));
    }
    let lock = StudyLock::acquire(out, study.kind())?;
    let runs_dir = claim_folder(out, study.kind(), &config_text)?;
    if let Some(shard) = opts.shard {
        let marker = out.join("shard.json");
        write_atomic(&marker, &serde_json::to_vec(&shard).expect("shard"))?;
    }
    Ok(Opened {
        study,
        out: out.to_path_buf(),
        runs_dir,
        config_text,
        jobs,
        opts: opts.clone(),
        _lock: lock,
    })
}

impl<S: Study> Opened<'_, S> {
    fn path_of(&self, job: &S::Job) -> PathBuf {
        self.runs_dir.join(format!("{}.json", self.study.key(job)))
    }

    /// The jobs without a finished run.
    pub fn pending(&self) -> Vec<&S::Job> {
        self.jobs
            .iter()
            .filter(|j| !self.path_of(j).exists())
            .collect()
    }

    /// Runs the pending jobs in parallel, each written atomically as it finishes, then reads every run back.
    pub fn run(self) -> Result<Finished<S>> {
        let (study, opts) = (self.study, &self.opts);
        let pending = self.pending();
        self.check_writable(&pending)?;
        let threads = workers(opts.threads, usize::MAX)?;
        let workers = threads.min(pending.len().max(1));
        let groups = deal(study, &pending, workers);
        let bar = (opts.progress && !pending.is_empty())
            .then(|| progress_bar(pending.len(), self.jobs.len()));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::invalid("--threads", e, "a usable thread count"))?;
        // Workers take the groups in order (largest first) from one queue, so the last to finish is a small one. With
        // fewer groups than threads, each group's large products use the idle threads (numbers unchanged: see scalar),
        // if other processes leave them free or `--threads` asked for them.
        let loopers = workers.min(groups.len()).max(1);
        let spare = if opts.threads.is_some() {
            threads
        } else {
            threads.min(free_cores())
        };
        let product_threads = (spare / loopers).max(1);
        let (next, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
        pool.install(|| {
            (0..loopers).into_par_iter().try_for_each(|_| {
                with_product_threads(product_threads, || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= groups.len() || failed.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    if let Err(e) = self.run_group(&groups[i], bar.as_ref()) {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                })
            })
        })?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let runs = self
            .jobs
            .iter()
            .map(|job| read_run::<S>(&self.path_of(job), job))
            .collect::<Result<Vec<_>>>()?;
        write_manifest(study, &self.out, &self.config_text, &runs)?;
        Ok(Finished {
            runs,
            computed: pending.len(),
        })
    }

    /// Refuses a read-only open (a merge, a report) whose folder still misses runs, naming them.
    fn check_writable(&self, pending: &[&S::Job]) -> Result<()> {
        if self.opts.read_only && !pending.is_empty() {
            return Err(Error::invalid(
                "dir",
                self.out.display(),
                &format!(
                    "a folder whose runs are all finished ({} of {} missing, e.g. {}: run singlora {} --config DIR/config.toml --out DIR)",
                    pending.len(),
                    self.jobs.len(),
                    self.study.key(pending[0]),
                    self.study.kind()
                ),
            ));
        }
        Ok(())
    }

    fn run_group(&self, group: &[&S::Job], bar: Option<&indicatif::ProgressBar>) -> Result<()> {
        let mut start = Instant::now();
        self.study.run_group(group, &mut |i, run| {
            let job = group[i];
            let file = RunFile {
                job: job.clone(),
                wall_seconds: start.elapsed().as_secs_f64(),
                run,
            };
            let json = serde_json::to_vec(&file).expect("serialisable run");
            write_atomic(&self.path_of(job), &json)?;
            if let Some(b) = bar {
                b.set_message(self.study.key(job));
                b.inc(1);
            }
            start = Instant::now();
            Ok(())
        })
    }
}

/// The pending jobs dealt into groups for the workers: jobs of one [`Study::share_key`] together, a group split in
/// halves while there are fewer groups than `workers` (so no worker idles), the groups ordered by estimated cost,
/// largest first. The grouping changes no number: a group's runs are bit for bit the runs alone.
fn deal<'j, S: Study>(study: &S, pending: &[&'j S::Job], workers: usize) -> Vec<Vec<&'j S::Job>> {
    let mut keyed: BTreeMap<String, Vec<&S::Job>> = BTreeMap::new();
    for (i, job) in pending.iter().enumerate() {
        let key = study.share_key(job).unwrap_or_else(|| format!("#{i:09}"));
        keyed.entry(key).or_default().push(job);
    }
    let mut groups: Vec<Vec<&S::Job>> = keyed.into_values().collect();
    let cost = |g: &Vec<&S::Job>| {
        let shared = g.first().map_or(0.0, |j| study.job_cost(j).shared);
        shared + g.iter().map(|j| study.job_cost(j).own).sum::<f64>()
    };
    while groups.len() < workers {
        let Some(i) = (0..groups.len()).max_by_key(|&i| groups[i].len()) else {
            break;
        };
        if groups[i].len() < 2 {
            break;
        }
        let half = groups[i].len() / 2;
        let tail = groups[i].split_off(half);
        groups.push(tail);
    }
    let mut costed: Vec<(f64, Vec<&S::Job>)> = groups.into_iter().map(|g| (cost(&g), g)).collect();
    costed.sort_by(|a, b| b.0.total_cmp(&a.0));
    costed.into_iter().map(|(_, g)| g).collect()
}

/// Runs every unfinished job of `study` into `out` and returns all runs in grid order (see the module doc).
pub fn run_study<S: Study>(study: &S, out: &Path, opts: &RunOptions) -> Result<Finished<S>> {
    open(study, out, opts)?.run()
}

/// Reads the run file of `job`, refusing one that holds another job's run.
fn read_run<S: Study>(path: &Path, job: &S::Job) -> Result<RunFile<S::Job, S::Run>> {
    let file: RunFile<S::Job, S::Run> = store::read_json(path)?;
    if &file.job != job {
        return Err(Error::invalid(
            "run file",
            path.display(),
            "the run of the job its name says (this file holds another run: remove it to recompute)",
        ));
    }
    Ok(file)
}

/// The folder's record of the study: config, version, commit, wall time and divergence per run.
#[derive(Serialize, Deserialize)]
pub struct Manifest {
    /// The study kind.
    pub kind: String,
    /// The full config as TOML.
    pub config: String,
    /// Crate version.
    pub version: String,
    /// Git commit of the code, if known.
    pub git_commit: Option<String>,
    /// Wall time per run, by run key.
    pub wall_seconds: BTreeMap<String, f64>,
    /// Divergence steps, by run key.
    pub diverged_at: BTreeMap<String, u64>,
}

/// The commit the binary was built from (empty when built outside a git checkout).
pub fn git_commit() -> Option<String> {
    let c = env!("SINGLORA_GIT_COMMIT");
    (!c.is_empty()).then(|| c.to_string())
}

fn write_manifest<S: Study>(
    study: &S,
    out: &Path,
    config_text: &str,
    runs: &[RunFile<S::Job, S::Run>],
) -> Result<()> {
    let manifest = Manifest {
        kind: study.kind().to_string(),
        config: config_text.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: git_commit(),
        wall_seconds: runs
            .iter()
            .map(|r| (study.key(&r.job), r.wall_seconds))
            .collect(),
        diverged_at: runs
            .iter()
            .filter_map(|r| study.diverged_at(&r.run).map(|t| (study.key(&r.job), t)))
            .collect(),
    };
    write_atomic(
        &out.join("manifest.json"),
        &serde_json::to_vec_pretty(&manifest).expect("manifest"),
    )
}

/// What running a study would take: its runs, workers and memory (`--dry-run` prints it).
#[derive(Clone, Debug)]
pub struct Plan {
    /// Runs in the grid.
    pub runs: usize,
    /// Workers that would run them.
    pub workers: usize,
    /// Peak bytes of the largest run.
    pub largest_run: u64,
    /// Bytes the machine has available, if known.
    pub available: Option<u64>,
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} runs on {} worker(s); memory: {} for the largest run, {} at once",
            self.runs,
            self.workers,
            gib(self.largest_run),
            gib(self.largest_run * self.workers as u64)
        )?;
        if let Some(a) = self.available {
            write!(f, " (this machine has {} available)", gib(a))?;
        }
        Ok(())
    }
}

/// The plan of `study` with `threads` workers requested.
pub fn plan<S: Study>(study: &S, threads: Option<usize>) -> Result<Plan> {
    let jobs = study.jobs();
    Ok(Plan {
        runs: jobs.len(),
        workers: workers(threads, jobs.len())?,
        largest_run: jobs.iter().map(|j| study.job_bytes(j)).max().unwrap_or(0),
        available: available_memory(),
    })
}

/// Each job's cost with its group's shared work spread evenly over the group's jobs in `jobs` (what
/// [`Shard::select`] balances: a whole group then weighs what it costs run together).
fn amortised_costs<S: Study>(study: &S, jobs: &[S::Job]) -> Vec<f64> {
    let keys: Vec<Option<String>> = jobs.iter().map(|j| study.share_key(j)).collect();
    let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for k in keys.iter().flatten() {
        *sizes.entry(k.as_str()).or_default() += 1;
    }
    jobs.iter()
        .zip(&keys)
        .map(|(j, k)| {
            let c = study.job_cost(j);
            let g = k.as_deref().map_or(1, |k| sizes[k]);
            c.own + c.shared / g as f64
        })
        .collect()
}

/// The estimated seconds on one core of each of `count` shards of `study`: its jobs' own work, and the shared work
/// of every share group it holds, once (what a shard computes: [`Shard::select`] may split a group).
pub fn shard_costs<S: Study>(study: &S, count: usize) -> Vec<f64> {
    let jobs = study.jobs();
    let costs = amortised_costs(study, &jobs);
    (0..count)
        .map(|index| {
            let mine = Shard { index, count }.select(&costs);
            let mut groups: BTreeMap<String, f64> = BTreeMap::new();
            let mut own = 0.0;
            for (i, j) in mine.into_iter().map(|i| (i, &jobs[i])) {
                let c = study.job_cost(j);
                own += c.own;
                let key = study.share_key(j).unwrap_or_else(|| format!("#{i}"));
                groups.insert(key, c.shared);
            }
            own + groups.values().sum::<f64>()
        })
        .collect()
}
