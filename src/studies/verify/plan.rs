//! What `singlora verify` runs for a preset, and the runner that measures and judges the chosen claims.
//!
//! Every study is an ordinary study of its kind: a width sweep or a learning-rate study stated as `--set` overrides of
//! the command's default study (so the report can print the command that reproduces or resumes it), or a synthetic
//! grid; each runs through the study engine into `OUT/<folder>/` (locked, resumable, its runs shared by every claim
//! that reads it). The invariance and parameter-count measurements take milliseconds and are computed directly.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{
    budget, compose, counts, invariance, maps, sensitivity, symmetry, width, Check, Claim,
    ClaimResult, Preset,
};
use crate::adapters::Method;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::studies::attention::{
    attention_csv, AttentionConfig, AttentionStudy, ScoreFit, Student, STUDENTS,
};
use crate::studies::config::StudyConfig;
use crate::studies::engine::{run_study, workers, RunOptions, Study, StudyLock};
use crate::studies::lr::{self, LrResults, LrStudy};
use crate::studies::report::lr::write_lr_tables;
use crate::studies::report::{fit_all, group, write_tables, FitRow, Grouped};
use crate::studies::sweep::{check_sweep, results, RunResult, Sweep};
use crate::studies::synthetic::{
    SyntheticArm, SyntheticConfig, SyntheticGrid, SyntheticResult, SyntheticStudy,
};
use crate::tasks::ShiftKind;

/// What to verify and where.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// How much to measure.
    pub preset: Preset,
    /// The claims to judge, in order.
    pub claims: Vec<Claim>,
    /// The output folder (each study in a sub-folder).
    pub out: PathBuf,
    /// Worker threads per study (default: every core).
    pub threads: Option<usize>,
    /// Progress bars and a line per study on stderr.
    pub progress: bool,
}

/// The command a study runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StudyKind {
    /// `singlora sweep`.
    Sweep,
    /// `singlora lr`.
    Lr,
}

/// A sweep or learning-rate study of the plan: the command's default study with `--set` overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyPlan {
    /// Its folder under the output folder (also its name).
    pub folder: &'static str,
    /// Its command.
    pub kind: StudyKind,
    /// The overrides of the command's default study.
    pub sets: Vec<String>,
}

impl StudyPlan {
    /// The resolved and validated study.
    pub fn config(&self) -> Result<StudyConfig> {
        let mut sets = vec![format!("name=\"{}\"", self.folder)];
        sets.extend(self.sets.iter().cloned());
        let cfg = match self.kind {
            StudyKind::Sweep => StudyConfig::load(None, &sets)?,
            StudyKind::Lr => lr::load(None, &sets)?,
        };
        if self.kind == StudyKind::Sweep {
            check_sweep(&cfg)?;
        }
        Ok(cfg)
    }

    /// The command line that runs (or resumes) the same study in `out/<folder>`.
    pub fn command(&self, out: &Path) -> String {
        let kind = match self.kind {
            StudyKind::Sweep => "sweep",
            StudyKind::Lr => "lr",
        };
        let mut s = format!("singlora {kind} --set 'name=\"{}\"'", self.folder);
        for set in &self.sets {
            s += &format!(" --set '{set}'");
        }
        s + &format!(" --out {}", out.join(self.folder).display())
    }
}

fn by_preset<T>(p: Preset, quick: T, full: T) -> T {
    match p {
        Preset::Quick => quick,
        Preset::Full => full,
    }
}

fn grid(p: Preset) -> Vec<String> {
    by_preset(
        p,
        vec![
            "widths=[64,128,256,512,1024]".into(),
            "seeds=[0,1,2,3,4]".into(),
        ],
        vec![
            "widths=[64,128,256,512,1024,2048]".into(),
            "seeds=[0,1,2,3,4,5,6,7]".into(),
        ],
    )
}

/// C3, C4, C5: the default width study (LoRA, LoRA+ with ratio 16, SingLoRA; Adam at η = 0.05·n^(−c), c = 1/2 and
/// 1) over the preset's widths and seeds.
pub fn adam_sweep(p: Preset) -> StudyPlan {
    let mut sets = grid(p);
    sets.push(by_preset(p, "steps=4", "steps=12").into());
    sets.push(
        by_preset(
            p,
            r#"probes=["dz_rms","update_out_rms","bottleneck_rms","loss"]"#,
            "probes=[]",
        )
        .into(),
    );
    StudyPlan {
        folder: "adam-sweep",
        kind: StudyKind::Sweep,
        sets,
    }
}

/// Adam's rate prefactor η₀ in the default study (η = η₀·n^(−c)).
const ADAM_LR: f64 = 0.05;

/// Steps of C3's balanced sweep: enough for LoRA's balanced regime at c = 1/2 at the smallest width, 64. Its
/// prediction leads the initial term by a gap of 1/2 one order up (`theory::reach`), so it is reached once
/// η₀·t·√64 ≥ 10 (`reach::REACHED`): t ≥ 10/(0.05·8) = 25; 32 steps give 12.8.
const BALANCED_STEPS: u64 = 32;

/// C3: LoRA against SingLoRA at one shared Adam rate, η = 0.05·n^(−1/2), run long enough to reach the balanced
/// regime both adapters' Δz predictions are stated in (see `BALANCED_STEPS`), over the preset's widths and seeds.
pub fn balanced_sweep(p: Preset) -> StudyPlan {
    let mut sets = grid(p);
    sets.extend([
        format!("steps={BALANCED_STEPS}"),
        format!("lr={ADAM_LR}"),
        r#"probes=["dz_rms","loss"]"#.into(),
        "lr_exponents=[0.5]".into(),
        r#"arms=[{name="lora",method="lora"},{name="singlora",method="singlora"}]"#.into(),
    ]);
    StudyPlan {
        folder: "balanced-sweep",
        kind: StudyKind::Sweep,
        sets,
    }
}

/// C4: SingLoRA with the public implementations' Kaiming-r init (U(±1/√r), width-independent) at c = 1/2.
pub fn kaiming_sweep(p: Preset) -> StudyPlan {
    let mut sets = grid(p);
    sets.extend([
        by_preset(p, "steps=1", "steps=4").to_string(),
        r#"probes=["update_out_rms","dz_rms","loss"]"#.into(),
        "lr_exponents=[0.5]".into(),
        r#"adapter.init="kaiming_r""#.into(),
        r#"arms=[{name="singlora-kaiming_r",method="singlora"}]"#.into(),
    ]);
    StudyPlan {
        folder: "kaiming-sweep",
        kind: StudyKind::Sweep,
        sets,
    }
}

/// One of C5's studies: SingLoRA alone under plain SGD at η = 0.5·n^(−c), over the preset's widths and seeds (full:
/// `full_widths` and 12 seeds).
struct SgdStudy {
    folder: &'static str,
    full_widths: &'static str,
    /// Steps in the quick and the full preset.
    steps: (u64, u64),
    probes: &'static str,
    lr_exponents: &'static str,
}

impl SgdStudy {
    fn plan(&self, p: Preset) -> StudyPlan {
        let full = vec![
            format!("widths={}", self.full_widths),
            "seeds=[0,1,2,3,4,5,6,7,8,9,10,11]".into(),
        ];
        let mut sets = by_preset(p, grid(p), full);
        sets.extend([
            format!("steps={}", by_preset(p, self.steps.0, self.steps.1)),
            format!("probes={}", self.probes),
            r#"optimizer.rule={kind="sgd"}"#.into(),
            "lr=0.5".into(),
            format!("lr_exponents={}", self.lr_exponents),
            r#"arms=[{name="singlora",method="singlora"}]"#.into(),
        ]);
        StudyPlan {
            folder: self.folder,
            kind: StudyKind::Sweep,
            sets,
        }
    }
}

/// C5: SingLoRA under plain SGD at η = 0.5·n^(−c), c = 1 − ρ = 0 (μP readout) and c = −1/2 (THEORY P8–P10); its
/// stability is read at a fixed t (8 or 40 steps, where every width is still in the same phase of training).
pub fn sgd_sweep(p: Preset) -> StudyPlan {
    SgdStudy {
        folder: "sgd-sweep",
        full_widths: "[128,256,512,1024,2048,4096]",
        steps: (8, 40),
        probes: r#"["dz_rms","update_out_rms","loss"]"#,
        lr_exponents: "[0,-0.5]",
    }
    .plan(p)
}

/// C5's delay: SingLoRA under SGD at c = 0, long enough for the loss to move at every width, so that THEORY P9's
/// Θ(ln n) delay is measured over the widest range a full-preset run affords here: n = 128 … 16384, 12 seeds, 160
/// steps (the median seed's 10% loss drop comes at about 64 steps at n = 16384, the slowest seed's at 82, measured;
/// about 2½ minutes on 2 cores, 4.3 GiB per run; n = 32768 would need 17 GiB per run). Quick: n = 64 … 1024, 5 seeds,
/// 80 steps.
pub fn sgd_delay(p: Preset) -> StudyPlan {
    SgdStudy {
        folder: "sgd-delay",
        full_widths: "[128,256,512,1024,2048,4096,8192,16384]",
        steps: (80, 160),
        probes: r#"["loss"]"#,
        lr_exponents: "[0]",
    }
    .plan(p)
}

/// C3, C4, C5 on transformer blocks: `configs/transformer.toml`'s study stated as `--set` overrides of the default
/// study (pre-LayerNorm blocks pre-trained with Adam on associative recall, frozen, and fine-tuned on permuted recall
/// with an adapter on every map q, k, v, o, up, down at rank 4; Adam at η = 0.02·n^(−c), c = 1/2 and 1; widths grow
/// by heads of 8). Full: the file's study exactly (two blocks, n = 16 … 256, three seeds, 10 steps, a 30-step
/// pre-trained base, LoRA, LoRA+ and SingLoRA, every probe). Quick: one block, n = 16 … 128, three seeds (with two,
/// t₀.₉₇₅,₁/√2 = 9.0 against t₀.₉₇₅,₂/√3 = 2.5 would make every interval 3.6 times wider), 3 steps, a 10-step
/// pre-trained base, LoRA and SingLoRA (what the checks read), Δz and loss probes.
pub fn transformer_sweep(p: Preset) -> StudyPlan {
    let transformer = r#"transformer={width_mode="heads",head_dim=8,heads=4,mlp_ratio=4,causal=true,logit_scale="standard",readout="mup",adapt=["q","k","v","o","up","down"],blocks="#;
    let mut sets: Vec<String> = vec![
        r#"model="transformer""#.into(),
        by_preset(p, "widths=[16,32,64,128]", "widths=[16,32,64,128,256]").into(),
        "seeds=[0,1,2]".into(),
        by_preset(p, "steps=3", "steps=10").into(),
        "lr=0.02".into(),
        "optimizer.lr=0.02".into(),
        format!("{transformer}{}}}", by_preset(p, 1, 2)),
        format!(
            "pretrain={{steps={},lr=0.01,lr_exponent=1.0}}",
            by_preset(p, 10, 30)
        ),
        r#"task={kind="recall",pairs=2,keys=8,values=8,permute_values=true,examples=64,test_examples=64}"#
            .into(),
    ];
    if p == Preset::Quick {
        sets.extend([
            r#"probes=["dz_rms","loss"]"#.to_string(),
            r#"arms=[{name="lora",method="lora"},{name="singlora",method="singlora"}]"#.into(),
        ]);
    }
    StudyPlan {
        folder: TRANSFORMER_SWEEP,
        kind: StudyKind::Sweep,
        sets,
    }
}

/// The transformer sweep's folder.
pub const TRANSFORMER_SWEEP: &str = "transformer-sweep";

/// C6, C8: the default learning-rate study (one raw rate at every width, Adam, 20 steps, its LoRA+ plane) with DoRA,
/// SingLoRA+DoRA and SingLoRA+ (SingLoRA's role split at λ = 16, LoRA+'s ratio here; THEORY O10) beside LoRA, LoRA+
/// and SingLoRA, over eight seeds; the quick preset on a coarser grid, three widths and five seeds, without LoRA+ and
/// its plane.
pub fn lr_plan(p: Preset) -> StudyPlan {
    let quick = r#"arms=[{name="lora",method="lora"},{name="singlora",method="singlora"},{name="singlora+",method="singlora",loraplus_ratio=16.0},{name="dora",method="dora"},{name="singlora_dora",method="singlora_dora"}]"#;
    let full = r#"arms=[{name="lora",method="lora"},{name="lora+",method="lora",loraplus_ratio=16.0},{name="singlora",method="singlora"},{name="singlora+",method="singlora",loraplus_ratio=16.0},{name="dora",method="dora"},{name="singlora_dora",method="singlora_dora"}]"#;
    let mut sets = vec![by_preset(p, quick, full).to_string()];
    sets.extend(match p {
        Preset::Quick => vec![
            "widths=[64,128,256]".to_string(),
            "seeds=[0,1,2,3,4]".into(),
            "lr_grid={rates={from=0.004,to=0.36,per_octave=2},near_best=0.01}".into(),
        ],
        Preset::Full => vec!["seeds=[0,1,2,3,4,5,6,7]".to_string()],
    });
    StudyPlan {
        folder: "lr",
        kind: StudyKind::Lr,
        sets,
    }
}

/// The rank of the synthetic target and of LoRA (SingLoRA runs at it and at twice it).
pub const SYNTHETIC_RANK: usize = 4;

/// C1, C7: THEORY §6.1's single-layer fits (n = 64, N = 512, Adam η = 0.03) on every target symmetry, with LoRA at
/// rank r and SingLoRA at r and 2r.
pub fn synthetic_grid(p: Preset) -> SyntheticGrid {
    let r = SYNTHETIC_RANK;
    SyntheticGrid {
        fit: SyntheticConfig {
            rank: r,
            steps: by_preset(p, 300, 1000),
            ..SyntheticConfig::default()
        },
        targets: vec![ShiftKind::Psd, ShiftKind::Nsd, ShiftKind::Asymmetric],
        arms: vec![
            SyntheticArm {
                method: Method::Lora,
                rank: r,
            },
            SyntheticArm {
                method: Method::Singlora,
                rank: r,
            },
            SyntheticArm {
                method: Method::Singlora,
                rank: 2 * r,
            },
        ],
        seeds: by_preset(p, vec![0, 1, 2], vec![0, 1, 2, 3, 4]),
    }
}

/// C9: the invariance trajectories' layer and optimisers.
pub fn invariance_setup(p: Preset) -> invariance::InvarianceSetup {
    invariance::InvarianceSetup {
        width: by_preset(p, 32, 64),
        rank: by_preset(p, 4, 8),
        examples: by_preset(p, 64, 128),
        steps: by_preset(p, 20, 50),
        lr_sgd: 0.05,
        lr_adam: 0.01,
        seed: 0,
    }
}

/// C1's attention measurement: its settings and students. Full: `singlora attention`'s defaults (n = 32, r = 4, 128
/// sequences, 400 Adam steps at 0.01) over five seeds, every student; quick: n = 16, r = 2, 32 sequences, 200 steps
/// at 0.03, three seeds, LoRA r and SingLoRA r and 2r (what the checks read; full fine-tuning, the ceiling, is left
/// out).
pub fn attention_setup(p: Preset) -> (AttentionConfig, Vec<Student>) {
    let quick = AttentionConfig {
        width: 16,
        rank: 2,
        examples: 32,
        steps: 200,
        lr: 0.03,
        ..AttentionConfig::default()
    };
    let full = AttentionConfig {
        seeds: vec![0, 1, 2, 3, 4],
        ..AttentionConfig::default()
    };
    by_preset(
        p,
        (quick, STUDENTS[1..].to_vec()),
        (full, STUDENTS.to_vec()),
    )
}

/// The attention measurement's folder.
pub const ATTENTION: &str = "attention";

/// The synthetic grid's folder.
pub const SYNTHETIC: &str = "synthetic";
/// The invariance measurement's folder.
pub const INVARIANCE: &str = "invariance";

/// A finished width sweep with its fits.
pub struct SweepOutput {
    /// Its plan.
    pub plan: StudyPlan,
    /// The study.
    pub cfg: StudyConfig,
    /// Every run.
    pub runs: Vec<RunResult>,
    /// The records grouped by (series, layer, quantity, step).
    pub grouped: Grouped,
    /// Every fit (what `fits.csv` holds).
    pub fits: Vec<FitRow>,
}

/// A finished learning-rate study.
pub struct LrOutput {
    /// Its plan.
    pub plan: StudyPlan,
    /// The study.
    pub cfg: StudyConfig,
    /// Its tables.
    pub results: LrResults,
}

impl LrOutput {
    /// The series of arm `arm` (its first rate exponent), if the study has that arm.
    pub fn series_of_arm(&self, arm: &str) -> Option<String> {
        self.cfg
            .series()
            .into_iter()
            .find(|(_, a, _)| a.name == arm)
            .map(|(name, _, _)| name)
    }

    /// `f` of the rate line's runs of `series` (every rate) at each width (rows) and seed (columns); `None` where the
    /// cell has no runs or `f` gives none.
    pub fn per_cell<R>(
        &self,
        series: &str,
        f: impl Fn(&[&lr::LrRun]) -> Option<R>,
    ) -> Vec<Vec<Option<R>>> {
        let by = lr::by_seed(&self.results.runs);
        let cell = |w: usize, s: u64| f(by.get(&(series.to_string(), w, s))?);
        (self.cfg.widths.iter())
            .map(|&w| self.cfg.seeds.iter().map(|&s| cell(w, s)).collect())
            .collect()
    }
}

/// What one study cost.
#[derive(Clone, Debug)]
pub struct StudyRecord {
    /// Its folder.
    pub folder: String,
    /// The command that reproduces it (none for the synthetic grid and the invariance trajectories).
    pub command: Option<String>,
    /// Its runs.
    pub runs: usize,
    /// How many were computed by this invocation (the rest were loaded).
    pub computed: usize,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Everything `singlora verify` measured and judged.
pub struct Measured {
    /// The preset.
    pub preset: Preset,
    /// The verdicts, in the order of the claims asked for.
    pub results: Vec<ClaimResult>,
    /// The width sweeps that ran.
    pub sweeps: Vec<SweepOutput>,
    /// The learning-rate study, if it ran.
    pub lr: Option<LrOutput>,
    /// The synthetic fits, if they ran.
    pub synthetic: Option<Vec<SyntheticResult>>,
    /// The invariance trajectories, if measured.
    pub invariance: Option<invariance::InvarianceMeasurements>,
    /// Cost per study, in the order they ran.
    pub studies: Vec<StudyRecord>,
    /// The output folder's lock, held until the report is written (dropped with this value).
    _lock: Option<StudyLock>,
}

impl Measured {
    /// The sweep of `plan`, if it ran.
    pub fn sweep(&self, plan: &StudyPlan) -> Option<&SweepOutput> {
        self.sweeps.iter().find(|s| s.plan.folder == plan.folder)
    }
}

/// The sweeps and learning-rate study `claims` need (each once), in the order they run.
pub fn plans_for(preset: Preset, claims: &[Claim]) -> Vec<StudyPlan> {
    let mut plans: Vec<StudyPlan> = Vec::new();
    for c in claims {
        let mut need = match c {
            Claim::C3 => vec![balanced_sweep(preset)],
            Claim::C4 => vec![adam_sweep(preset), kaiming_sweep(preset)],
            Claim::C5 => vec![adam_sweep(preset), sgd_sweep(preset), sgd_delay(preset)],
            Claim::C6 | Claim::C8 => vec![lr_plan(preset)],
            _ => vec![],
        };
        if matches!(c, Claim::C3 | Claim::C4 | Claim::C5) {
            need.push(transformer_sweep(preset));
        }
        for p in need {
            if !plans.contains(&p) {
                plans.push(p);
            }
        }
    }
    plans
}

/// Receives each engine study of a verify plan with its folder (see [`visit_studies`]).
pub trait VisitStudy {
    /// Called once per study, in the order [`run`] runs them.
    fn visit<S: Study>(&mut self, folder: &str, study: &S) -> Result<()>;
}

/// Hands every study `claims` need that runs through the study engine to `v`, built exactly as [`run`] builds it: the
/// sweeps and the learning-rate study ([`plans_for`]), the synthetic grid (C1, C7) and the attention fits (C1). The
/// invariance trajectories and the parameter counts take milliseconds and are not engine studies.
pub fn visit_studies(preset: Preset, claims: &[Claim], v: &mut impl VisitStudy) -> Result<()> {
    for plan in plans_for(preset, claims) {
        let cfg = plan.config()?;
        match plan.kind {
            StudyKind::Sweep => v.visit(plan.folder, &Sweep(&cfg))?,
            StudyKind::Lr => v.visit(plan.folder, &LrStudy(&cfg))?,
        }
    }
    if claims.iter().any(|c| matches!(c, Claim::C1 | Claim::C7)) {
        let grid = synthetic_grid(preset);
        grid.validate()?;
        v.visit(SYNTHETIC, &SyntheticStudy(&grid))?;
    }
    if claims.contains(&Claim::C1) {
        let (config, students) = attention_setup(preset);
        config.validate()?;
        v.visit(ATTENTION, &AttentionStudy { config, students })?;
    }
    Ok(())
}

struct Runner<'a> {
    opts: &'a VerifyOptions,
    m: Measured,
}

impl Runner<'_> {
    fn engine(&self) -> RunOptions {
        RunOptions {
            progress: self.opts.progress,
            threads: self.opts.threads,
            ..RunOptions::default()
        }
    }

    fn log(&self, what: &str) {
        if self.opts.progress {
            eprintln!("verify: {what}");
        }
    }

    fn record(
        &mut self,
        folder: &str,
        command: Option<String>,
        runs: usize,
        computed: usize,
        start: Instant,
    ) {
        self.m.studies.push(StudyRecord {
            folder: folder.into(),
            command,
            runs,
            computed,
            seconds: start.elapsed().as_secs_f64(),
        });
    }

    /// Runs (or resumes) a sweep once, writing its results.csv and fits.csv.
    fn sweep(&mut self, plan: &StudyPlan) -> Result<()> {
        if self.m.sweep(plan).is_some() {
            return Ok(());
        }
        let start = Instant::now();
        let cfg = plan.config()?;
        let dir = self.opts.out.join(plan.folder);
        self.log(&format!("{} ({} runs)", plan.folder, cfg.cells().len()));
        let finished = run_study(&Sweep(&cfg), &dir, &self.engine())?;
        let computed = finished.computed;
        let runs = results(finished);
        let grouped = group(&cfg, &runs);
        let fits = fit_all(&cfg, &grouped);
        write_tables(&dir, &runs, &fits)?;
        let command = Some(plan.command(&self.opts.out));
        self.record(plan.folder, command, runs.len(), computed, start);
        self.m.sweeps.push(SweepOutput {
            plan: plan.clone(),
            cfg,
            runs,
            grouped,
            fits,
        });
        Ok(())
    }

    fn lr(&mut self, plan: &StudyPlan) -> Result<()> {
        if self.m.lr.is_some() {
            return Ok(());
        }
        let start = Instant::now();
        let cfg = plan.config()?;
        let dir = self.opts.out.join(plan.folder);
        self.log(plan.folder);
        let finished = run_study(&LrStudy(&cfg), &dir, &self.engine())?;
        let (runs, computed) = (finished.runs.len(), finished.computed);
        let results = lr::results(&cfg, finished);
        write_lr_tables(&dir, &results)?;
        self.record(
            plan.folder,
            Some(plan.command(&self.opts.out)),
            runs,
            computed,
            start,
        );
        self.m.lr = Some(LrOutput {
            plan: plan.clone(),
            cfg,
            results,
        });
        Ok(())
    }

    fn synthetic(&mut self) -> Result<Vec<SyntheticResult>> {
        if let Some(s) = &self.m.synthetic {
            return Ok(s.clone());
        }
        let start = Instant::now();
        let grid = synthetic_grid(self.opts.preset);
        grid.validate()?;
        let dir = self.opts.out.join(SYNTHETIC);
        self.log(SYNTHETIC);
        let finished = run_study(&SyntheticStudy(&grid), &dir, &self.engine())?;
        let (runs, computed) = (finished.runs.len(), finished.computed);
        let fits: Vec<SyntheticResult> = finished.runs.into_iter().map(|f| f.run).collect();
        write_atomic(
            &dir.join("synthetic.csv"),
            crate::studies::synthetic::results_csv(&fits).as_bytes(),
        )?;
        self.record(SYNTHETIC, None, runs, computed, start);
        self.m.synthetic = Some(fits.clone());
        Ok(fits)
    }

    fn invariance(&mut self) -> Result<invariance::InvarianceMeasurements> {
        if let Some(m) = &self.m.invariance {
            return Ok(m.clone());
        }
        let start = Instant::now();
        let m = invariance::measure(&invariance_setup(self.opts.preset))?;
        let dir = self.opts.out.join(INVARIANCE);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        write_atomic(&dir.join("invariance.csv"), invariance::csv(&m).as_bytes())?;
        self.record(INVARIANCE, None, 5, 5, start);
        self.m.invariance = Some(m.clone());
        Ok(m)
    }

    fn judge(&mut self, claim: Claim) -> Result<ClaimResult> {
        let p = self.opts.preset;
        Ok(match claim {
            Claim::C1 => {
                let fits = self.synthetic()?;
                let r = SYNTHETIC_RANK;
                let at_rank = fits.into_iter().filter(|f| f.rank == r).collect();
                symmetry::judge(&symmetry::measure(32, r, &[0, 1, 2], at_rank)?)
            }
            Claim::C2 => counts::judge(&counts::measure(8)?),
            Claim::C3 => {
                let inv = self.invariance()?;
                self.sweep(&balanced_sweep(p))?;
                let balanced = self.m.sweep(&balanced_sweep(p)).expect("ran");
                width::judge_c3(&width::c3_measurements(balanced, &inv))
            }
            Claim::C4 => {
                self.sweep(&adam_sweep(p))?;
                self.sweep(&kaiming_sweep(p))?;
                let (a, k) = (&adam_sweep(p), &kaiming_sweep(p));
                let m = width::c4_measurements(
                    self.m.sweep(a).expect("ran"),
                    self.m.sweep(k).expect("ran"),
                );
                width::judge_c4(&m)
            }
            Claim::C5 => {
                let (a, s, d) = (&adam_sweep(p), &sgd_sweep(p), &sgd_delay(p));
                for plan in [a, s, d] {
                    self.sweep(plan)?;
                }
                let m = width::c5_measurements(
                    self.m.sweep(a).expect("ran"),
                    self.m.sweep(s).expect("ran"),
                    self.m.sweep(d).expect("ran"),
                );
                width::judge_c5(&m)
            }
            Claim::C6 => {
                self.lr(&lr_plan(p))?;
                sensitivity::judge(&sensitivity::measure(self.m.lr.as_ref().expect("ran")))
            }
            Claim::C7 => {
                let width = synthetic_grid(p).fit.width;
                budget::judge(&budget::measure(&self.synthetic()?, width, SYNTHETIC_RANK)?)
            }
            Claim::C8 => {
                self.lr(&lr_plan(p))?;
                compose::judge(&compose::measure(self.m.lr.as_ref().expect("ran")))
            }
            Claim::C9 => invariance::judge(&self.invariance()?),
        })
    }

    fn attention(&mut self) -> Result<symmetry::AttentionMeasurements> {
        let start = Instant::now();
        let (config, students) = attention_setup(self.opts.preset);
        config.validate()?;
        self.log(ATTENTION);
        let dir = self.opts.out.join(ATTENTION);
        let study = AttentionStudy { config, students };
        let finished = run_study(&study, &dir, &self.engine())?;
        let (runs, computed) = (finished.runs.len(), finished.computed);
        let fits: Vec<ScoreFit> = finished.runs.into_iter().map(|f| f.run).collect();
        write_atomic(&dir.join("attention.csv"), attention_csv(&fits).as_bytes())?;
        self.record(ATTENTION, None, runs, computed, start);
        let config = study.config;
        Ok(symmetry::AttentionMeasurements { config, fits })
    }

    /// `r` with the parts of its claim measured on attention and transformer blocks: C1's attention checks
    /// (`symmetry::with_attention`), C3–C5's transformer maps (the transformer sweep, `maps`); other claims unchanged.
    fn extend(&mut self, claim: Claim, r: ClaimResult) -> Result<ClaimResult> {
        let checks: fn(&maps::TransformerMaps) -> Vec<Check> = match claim {
            Claim::C1 => return Ok(symmetry::with_attention(r, &self.attention()?)),
            Claim::C3 => maps::c3_checks,
            Claim::C4 => maps::c4_checks,
            Claim::C5 => maps::c5_checks,
            _ => return Ok(r),
        };
        let plan = transformer_sweep(self.opts.preset);
        self.sweep(&plan)?;
        let m = maps::measure(self.m.sweep(&plan).expect("ran"));
        Ok(maps::extend(r, &m, checks(&m)))
    }
}

/// Checks everything `opts` asks for before anything is written: the thread count, and every study the claims need
/// (each resolves and validates, with its memory estimate).
pub fn check(opts: &VerifyOptions) -> Result<()> {
    workers(opts.threads, 1)?;
    if opts.claims.is_empty() {
        return Err(Error::invalid(
            "--claims",
            "(none)",
            "at least one of C1, …, C9",
        ));
    }
    for plan in plans_for(opts.preset, &opts.claims) {
        plan.config()?;
    }
    attention_setup(opts.preset).0.validate()?;
    synthetic_grid(opts.preset).validate()
}

/// Measures and judges `opts.claims` (see the module doc). The output folder is locked while it runs; every study
/// resumes from its folder.
pub fn run(opts: &VerifyOptions) -> Result<Measured> {
    check(opts)?;
    let lock = StudyLock::acquire(&opts.out, "verify")?;
    let mut runner = Runner {
        opts,
        m: Measured {
            preset: opts.preset,
            results: Vec::new(),
            sweeps: Vec::new(),
            lr: None,
            synthetic: None,
            invariance: None,
            studies: Vec::new(),
            _lock: Some(lock),
        },
    };
    for &claim in &opts.claims {
        let r = runner.judge(claim)?;
        let r = runner.extend(claim, r)?;
        runner.m.results.push(r);
    }
    Ok(runner.m)
}
