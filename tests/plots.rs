//! Figures, checked in the SVG files the tool writes (never pixels): every figure a study should write is there and
//! no temporary file is left; no figure asked for a NaN or infinite coordinate (plotters would pin it to an edge of
//! the plot as a false point; `Figure::non_finite` counts them); legends sit in the key strip of the figure's reported
//! layout, never over the panels, and every data line lies in the panels; width axes are labelled with the widths
//! themselves; a redraw from the stored runs writes the same bytes as the study command did. Studies that are hard to draw (a single seed, a
//! diverging arm, hand-made results full of NaN, ∞ and zeros) draw every figure. A transformer study writes five
//! figures, one per question, with a line per map and a panel per step.

use std::path::{Path, PathBuf};
use std::process::Command;

use singlora::plots::{Figure, Rect};
use singlora::probes::Quantity;
use singlora::studies::config::StudyConfig;
use singlora::studies::engine::RunOptions;
use singlora::studies::limit::{run_limit_study, LimitConfig};
use singlora::studies::report::{fit_all, group, FitKey, Grouped};
use singlora::studies::store::from_toml;

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

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("singlora-plots-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The figure stems in `dir` (each must come as PNG and SVG), sorted; no temporary file may be left.
fn stems_in(dir: &Path) -> Vec<String> {
    let files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.iter().all(|f| !f.contains(".tmp.")),
        "temporary files left: {files:?}"
    );
    let mut stems: Vec<String> = files
        .iter()
        .filter_map(|f| f.strip_suffix(".svg"))
        .map(String::from)
        .collect();
    for s in &stems {
        assert!(files.contains(&format!("{s}.png")), "{s}.png missing");
    }
    assert_eq!(stems.len() * 2, files.len(), "{files:?}");
    stems.sort();
    stems
}

// ---------------------------------------------------------------------------------------------------------------
// A reader of the SVG plotters writes: text elements, and the points of every shape.

/// A `<text>` element: its anchor point and its content.
#[derive(Debug)]
struct Text {
    at: (f64, f64),
    content: String,
}

/// A drawn shape: its tag, its colour (stroke or fill) and its points.
#[derive(Debug)]
struct Shape {
    tag: String,
    colour: String,
    points: Vec<(f64, f64)>,
}

struct Svg {
    size: (f64, f64),
    texts: Vec<Text>,
    shapes: Vec<Shape>,
}

/// The value of attribute `name` in a tag's attribute text.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    Some(&tag[start..start + tag[start..].find('"')?])
}

/// A coordinate attribute as a number; one that does not parse (NaN, empty) becomes NaN, which no canvas contains.
fn num(tag: &str, name: &str) -> f64 {
    attr(tag, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The points of a shape's tag.
fn points_of(name: &str, tag: &str) -> Vec<(f64, f64)> {
    match name {
        "polyline" | "polygon" => attr(tag, "points")
            .unwrap_or("")
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap_or((p, ""));
                (x.parse().unwrap_or(f64::NAN), y.parse().unwrap_or(f64::NAN))
            })
            .collect(),
        "circle" => vec![(num(tag, "cx"), num(tag, "cy"))],
        "line" => vec![
            (num(tag, "x1"), num(tag, "y1")),
            (num(tag, "x2"), num(tag, "y2")),
        ],
        "rect" => {
            let (x, y) = (num(tag, "x"), num(tag, "y"));
            vec![(x, y), (x + num(tag, "width"), y + num(tag, "height"))]
        }
        _ => Vec::new(),
    }
}

fn read_svg(path: &Path) -> Svg {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut svg = Svg {
        size: (f64::NAN, f64::NAN),
        texts: Vec::new(),
        shapes: Vec::new(),
    };
    for piece in s.split('<').skip(1) {
        let (tag, rest) = piece.split_once('>').unwrap_or((piece, ""));
        let name = tag.split_whitespace().next().unwrap_or("");
        match name {
            "svg" => svg.size = (num(tag, "width"), num(tag, "height")),
            "text" => svg.texts.push(Text {
                at: (num(tag, "x"), num(tag, "y")),
                content: rest.trim().replace("&apos;", "'").replace("&amp;", "&"),
            }),
            "polyline" | "polygon" | "circle" | "line" | "rect" => svg.shapes.push(Shape {
                tag: name.into(),
                colour: attr(tag, "stroke")
                    .filter(|c| *c != "none")
                    .or(attr(tag, "fill"))
                    .unwrap_or("")
                    .into(),
                points: points_of(name, tag),
            }),
            _ => {}
        }
    }
    svg
}

// ---------------------------------------------------------------------------------------------------------------
// The properties every figure must have.

/// The figure's drawing met no non-finite coordinate.
fn assert_finite(fig: &Figure) {
    assert_eq!(
        fig.non_finite, 0,
        "{}: NaN or ∞ coordinates reached the drawing",
        fig.stem
    );
}

/// The figure's canvas is its frame, the key strip does not overlap the panels, every line of three or more points
/// (a data line: legend glyphs and ticks have two) lies in the panels, and each of `keys` is written in the key strip
/// and nowhere in the panels.
fn assert_keys_beside_panels(fig: &Figure, svg: &Svg, keys: &[&str]) {
    let (panels, strip) = (fig.frame.panels(), fig.frame.key_strip());
    let name = &fig.stem;
    assert_eq!(
        svg.size,
        (fig.frame.width as f64, fig.frame.height as f64),
        "{name}"
    );
    assert!(!panels.overlaps(&strip), "{name}: {panels:?} {strip:?}");
    let grow = |r: Rect| Rect {
        left: r.left - 2,
        top: r.top - 2,
        right: r.right + 2,
        bottom: r.bottom + 2,
    };
    for s in svg
        .shapes
        .iter()
        .filter(|s| s.tag == "polyline" && s.points.len() >= 3)
    {
        assert!(
            s.points.iter().all(|p| grow(panels).contains(*p)),
            "{name}: a line of {} leaves the panels {panels:?}",
            s.colour
        );
    }
    for key in keys {
        let at: Vec<(f64, f64)> = svg
            .texts
            .iter()
            .filter(|t| t.content == *key)
            .map(|t| t.at)
            .collect();
        assert!(
            at.iter().any(|p| strip.contains(*p)),
            "{name}: key {key:?} not in the key strip {strip:?}: {at:?}"
        );
        assert!(
            !at.iter().any(|p| panels.contains(*p)),
            "{name}: key {key:?} over the panels at {at:?}"
        );
    }
}

/// Each width is written as a tick label at least `panels` times, inside the panels; no axis says "log2".
fn assert_width_ticks(fig: &Figure, svg: &Svg, widths: &[usize], panels: usize) {
    for w in widths {
        let n = svg
            .texts
            .iter()
            .filter(|t| t.content == w.to_string() && fig.frame.panels().contains(t.at))
            .count();
        assert!(
            n >= panels,
            "{}: width {w} labelled {n} times, expected ≥ {panels}",
            fig.stem
        );
    }
    assert!(
        svg.texts
            .iter()
            .all(|t| !t.content.to_lowercase().contains("log2")),
        "{}: an axis still reads log2",
        fig.stem
    );
}

/// How many texts of `svg` contain `part`.
fn count_texts(svg: &Svg, part: &str) -> usize {
    svg.texts
        .iter()
        .filter(|t| t.content.contains(part))
        .count()
}

// ---------------------------------------------------------------------------------------------------------------
// Redraws from a study folder through the library, which report each figure's layout.

fn reread() -> RunOptions {
    RunOptions {
        read_only: true,
        ..RunOptions::default()
    }
}

fn folder_config(out: &Path) -> StudyConfig {
    let stamp = out.join("config.toml");
    from_toml(&std::fs::read_to_string(&stamp).unwrap(), &stamp).unwrap()
}

/// Redraws a finished sweep in `out` into `out/redrawn`; every redrawn SVG equals the one the command wrote.
fn redraw_sweep(out: &Path) -> (StudyConfig, Vec<Figure>) {
    let cfg = folder_config(out);
    let runs = singlora::studies::sweep::run_sweep(&cfg, out, &reread()).unwrap();
    let grouped = group(&cfg, &runs);
    let fits = fit_all(&cfg, &grouped);
    let dir = out.join("redrawn");
    let figs =
        singlora::plots::draw_sweep(&cfg, &grouped, &fits, &cfg.summary_layer(), &dir).unwrap();
    assert_same_files(out, &figs);
    (cfg, figs)
}

/// The figures redrawn into `out/redrawn` are the command's own, byte for byte, and the command wrote no others.
fn assert_same_files(out: &Path, figs: &[Figure]) {
    let mut stems: Vec<String> = figs.iter().map(|f| f.stem.clone()).collect();
    stems.sort();
    assert_eq!(stems, stems_in(&out.join("figures")));
    for f in figs {
        let name = format!("{}.svg", f.stem);
        let (a, b) = (
            out.join("figures").join(&name),
            out.join("redrawn").join(&name),
        );
        assert!(
            std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
            "{name} differs on a redraw"
        );
    }
}

fn svg_of(dir: &Path, fig: &Figure) -> Svg {
    read_svg(&dir.join(format!("{}.svg", fig.stem)))
}

/// The checks every sweep figure gets: on the canvas, keys beside the panels (the series, or the parts of a block),
/// widths on every width axis.
fn check_sweep_figures(cfg: &StudyConfig, dir: &Path, figs: &[Figure]) {
    let series: Vec<String> = cfg.series().into_iter().map(|s| s.0).collect();
    for fig in figs {
        let svg = svg_of(dir, fig);
        assert_finite(fig);
        let keys: Vec<&str> = match fig.stem.as_str() {
            "coord_maps" => vec!["q", "k", "v", "o", "up", "down"],
            "coord_blocks" => vec!["attention logits", "MLP output", "residual after the block"],
            "loss" => vec!["training loss", "held-out loss"],
            "steps_by_series" => vec!["step t"],
            _ => series.iter().map(String::as_str).collect(),
        };
        assert_keys_beside_panels(fig, &svg, &keys);
        if fig.stem.starts_with("coord_") {
            let steps = count_texts(&svg, "t = ");
            assert!(steps >= 1, "{}: no step panels", fig.stem);
            assert_width_ticks(fig, &svg, &cfg.widths, steps);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------

const MLP_FIGURES: [&str; 10] = [
    "coord_bottleneck_rms",
    "coord_dw_op",
    "coord_dz_rms",
    "coord_update_out_rms",
    "loss",
    "slopes_bottleneck_rms",
    "slopes_dw_op",
    "slopes_dz_rms",
    "slopes_update_out_rms",
    "steps_by_series",
];

#[test]
fn a_single_seed_sweep_draws_every_figure() {
    let out = tmp("one-seed");
    let o = out.to_str().unwrap();
    let sets = ["widths=[16,32,64]", "seeds=[0]", "steps=2"];
    let mut args = vec!["sweep", "--out", o];
    sets.iter().for_each(|s| args.extend(["--set", s]));
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("10 figures"), "{stdout}");
    let fits = std::fs::read_to_string(out.join("fits.csv")).unwrap();
    assert!(
        fits.contains("no_interval"),
        "a single seed gives no interval"
    );
    assert_eq!(stems_in(&out.join("figures")), MLP_FIGURES);
    let (cfg, figs) = redraw_sweep(&out);
    check_sweep_figures(&cfg, &out.join("figures"), &figs);
    let slopes = svg_of(
        &out.join("figures"),
        figs.iter().find(|f| f.stem == "slopes_dz_rms").unwrap(),
    );
    assert!(
        count_texts(&slopes, "no interval (one seed)") == 1,
        "the hollow marker is explained"
    );
}

#[test]
fn a_sweep_with_a_diverging_arm_draws_every_figure() {
    let out = tmp("diverging");
    let o = out.to_str().unwrap();
    let arms =
        r#"arms=[{name="lora",method="lora"},{name="boom",method="lora",loraplus_ratio=1e5}]"#;
    let sets = [
        "widths=[16,32,64]",
        "seeds=[0,1]",
        "steps=4",
        "lr_exponents=[0]",
        "lr=0.5",
        arms,
    ];
    let mut args = vec!["sweep", "--out", o];
    sets.iter().for_each(|s| args.extend(["--set", s]));
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("diverged runs"),
        "the boom arm diverges:\n{stdout}"
    );
    assert_eq!(stems_in(&out.join("figures")), MLP_FIGURES);
    let (cfg, figs) = redraw_sweep(&out);
    check_sweep_figures(&cfg, &out.join("figures"), &figs);
}

/// The default MLP widths read 64 … 2048 on the coordinate check, five step panels each labelled with every width.
#[test]
fn the_default_widths_label_the_width_axes() {
    let out = tmp("default-widths");
    let o = out.to_str().unwrap();
    let sets = [
        "seeds=[0,1]",
        "steps=8",
        "probes=[\"dz_rms\",\"loss\",\"test_loss\"]",
    ];
    let mut args = vec!["sweep", "--out", o];
    sets.iter().for_each(|s| args.extend(["--set", s]));
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    let (cfg, figs) = redraw_sweep(&out);
    assert_eq!(cfg.widths, [64, 128, 256, 512, 1024, 2048]);
    let coord = figs
        .iter()
        .find(|f| f.stem == "coord_dz_rms")
        .expect("coord_dz_rms");
    let svg = svg_of(&out.join("figures"), coord);
    // Steps 1, 2, 4 and 8 (= the last) are recorded: four panels.
    assert_eq!(count_texts(&svg, "step t = "), 4);
    assert_width_ticks(coord, &svg, &cfg.widths, 4);
    check_sweep_figures(&cfg, &out.join("figures"), &figs);
}

#[test]
fn a_transformer_study_writes_one_figure_per_question() {
    let out = tmp("transformer");
    let o = out.to_str().unwrap();
    let sets = [
        "widths=[16,32]",
        "seeds=[0,1]",
        "steps=2",
        "pretrain.steps=2",
        "transformer.blocks=1",
        "task.examples=16",
        "task.test_examples=16",
    ];
    let mut args = vec!["sweep", "--config", "configs/transformer.toml", "--out", o];
    sets.iter().for_each(|s| args.extend(["--set", s]));
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("5 figures"), "{stdout}");
    let expected = [
        "coord_blocks",
        "coord_maps",
        "loss",
        "slopes_blocks",
        "slopes_maps",
    ];
    assert_eq!(stems_in(&out.join("figures")), expected);
    let (cfg, figs) = redraw_sweep(&out);
    check_sweep_figures(&cfg, &out.join("figures"), &figs);
    let series = cfg.series().len();
    let svg = |stem: &str| {
        svg_of(
            &out.join("figures"),
            figs.iter().find(|f| f.stem == stem).unwrap(),
        )
    };
    // A row per series and a panel per recorded step: steps 1 and 2 (the last) for dz_rms, and 0 too for the
    // block's activations.
    let (maps, blocks) = (svg("coord_maps"), svg("coord_blocks"));
    assert_eq!(count_texts(&maps, ", t = "), series * 2);
    assert_eq!(count_texts(&blocks, ", t = "), series * 3);
    let exactly = |svg: &Svg, s: &str| svg.texts.iter().filter(|t| t.content == s).count();
    assert_eq!(exactly(&maps, "lora@c=0.5, t = 1"), 1);
    // A panel per map of block 0, and per activation.
    let slopes = svg("slopes_maps");
    for m in ["q", "k", "v", "o", "up", "down"] {
        assert_eq!(
            count_texts(&slopes, &format!("block.0.{m}")),
            1,
            "panel of {m}"
        );
    }
    assert_eq!(count_texts(&svg("slopes_blocks"), "(resid_out_rms)"), 1);
}

#[test]
fn learning_rate_figures_keep_their_keys_beside_the_data() {
    let out = tmp("lr");
    let o = out.to_str().unwrap();
    let sets = [
        "widths=[16,32]",
        "seeds=[0,1]",
        "steps=3",
        "task.examples=16",
        "task.test_examples=16",
        "lr_grid.rates={from=0.004,to=0.256,per_octave=1}",
        "lr_grid.loraplus.widths=[16]",
        "lr_grid.loraplus.rates_a=[0.01,0.1]",
        "lr_grid.loraplus.rates_b=[0.01,0.1,1.0]",
    ];
    let mut args = vec!["lr", "--out", o];
    sets.iter().for_each(|s| args.extend(["--set", s]));
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    let cfg = folder_config(&out);
    let results = singlora::studies::lr::run_lr(&cfg, &out, &reread()).unwrap();
    let figs = singlora::plots::lr::draw_lr(&cfg, &results, &out.join("redrawn")).unwrap();
    assert_same_files(&out, &figs);
    let stems: Vec<&str> = figs.iter().map(|f| f.stem.as_str()).collect();
    assert_eq!(stems, ["lr_loss", "lr_best", "lr_plane_n16"]);
    for fig in &figs {
        let svg = svg_of(&out.join("figures"), fig);
        assert_finite(fig);
        let keys = match fig.stem.as_str() {
            "lr_loss" => vec!["n = 16", "n = 32", "best rate η* (median)"],
            "lr_best" => vec!["fitted η* ∝ n^slope", "one seed's η*"],
            _ => vec!["final loss", "within 1% of the best"],
        };
        assert_keys_beside_panels(fig, &svg, &keys);
    }
    let best = &figs[1];
    assert_width_ticks(best, &svg_of(&out.join("figures"), best), &cfg.widths, 1);
}

#[test]
fn a_single_seed_limit_study_draws_every_figure() {
    let out = tmp("limit");
    let o = out.to_str().unwrap();
    let sets = ["widths=[32,64]", "seeds=[0]", "steps=3"];
    let mut args = vec!["limit", "--arm", "singlora-sign", "--out", o];
    sets.iter().for_each(|s| args.extend(["--set", s]));
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    let stamp = out.join("config.toml");
    let study: LimitConfig = from_toml(&std::fs::read_to_string(&stamp).unwrap(), &stamp).unwrap();
    let cfg = study.select(&study.finished_arms(&out)).unwrap();
    let results = run_limit_study(&cfg, &study, &out, &reread()).unwrap();
    let figs = singlora::plots::limit::draw_limit(&cfg, &results, &out.join("redrawn")).unwrap();
    assert_same_files(&out, &figs);
    assert_eq!(
        stems_in(&out.join("figures")),
        ["limit_convergence", "limit_singlora-sign"]
    );
    for fig in &figs {
        assert_finite(fig);
        let svg = svg_of(&out.join("figures"), fig);
        // The convergence legend names the arm's fit, whose slope is whatever was measured: found by its words.
        let fit_key = svg
            .texts
            .iter()
            .find(|t| {
                t.content.starts_with("singlora-sign: slope") && t.content.ends_with("(one seed)")
            })
            .map(|t| t.content.as_str());
        let keys = match fig.stem.as_str() {
            "limit_convergence" => vec![
                fit_key.expect("the fit without interval says so"),
                "one seed",
            ],
            _ => vec!["n = 32", "n = 64", "limit n → ∞"],
        };
        assert_keys_beside_panels(fig, &svg, &keys);
    }
    let conv = figs.iter().find(|f| f.stem == "limit_convergence").unwrap();
    assert_width_ticks(conv, &svg_of(&out.join("figures"), conv), &cfg.widths, 1);
}

/// Values `[width][seed]` for one key: `f(width index, seed index)`.
fn values(cfg: &StudyConfig, f: impl Fn(usize, usize) -> f64) -> Vec<Vec<f64>> {
    (0..cfg.widths.len())
        .map(|w| (0..cfg.seeds.len()).map(|s| f(w, s)).collect())
        .collect()
}

/// A healthy series, one that diverges after step 1 (NaN, then ∞ loss), one that is all zeros.
fn handmade(cfg: &StudyConfig) -> Grouped {
    let mut grouped = Grouped::new();
    let key = |series: &str, layer: &str, quantity, step| FitKey {
        series: series.into(),
        layer: layer.into(),
        quantity,
        step,
    };
    for step in 0..=cfg.steps {
        let t = step as f64;
        let mut put = |series, layer, q, v| {
            grouped.insert(key(series, layer, q, step), v);
        };
        put(
            "lora@c=0.5",
            "hidden.1",
            Quantity::DzRms,
            values(cfg, |w, s| 1e-3 * (1.0 + w as f64 + s as f64)),
        );
        let diverged = |_, _| if step > 1 { f64::NAN } else { 1e-2 };
        put(
            "lora+@c=1",
            "hidden.1",
            Quantity::DzRms,
            values(cfg, diverged),
        );
        put(
            "singlora@c=1",
            "hidden.1",
            Quantity::BottleneckRms,
            values(cfg, |_, _| 0.0),
        );
        put(
            "lora@c=0.5",
            "model",
            Quantity::Loss,
            values(cfg, |w, _| 1.0 / (1.0 + t + w as f64)),
        );
        let blown = |_, s| {
            if step > 1 && s == 0 {
                f64::INFINITY
            } else {
                0.5
            }
        };
        put("lora+@c=1", "model", Quantity::Loss, values(cfg, blown));
        put(
            "lora+@c=1",
            "model",
            Quantity::TestLoss,
            values(cfg, |_, _| f64::NAN),
        );
    }
    grouped
}

#[test]
fn results_full_of_nan_infinity_and_zeros_still_draw_without_false_points() {
    let cfg = StudyConfig::default();
    let grouped = handmade(&cfg);
    let fits = fit_all(&cfg, &grouped);
    let dir = tmp("handmade");
    let figs =
        singlora::plots::draw_sweep(&cfg, &grouped, &fits, "hidden.1", &dir).expect("figures draw");
    let stems: Vec<&str> = figs.iter().map(|f| f.stem.as_str()).collect();
    for s in ["coord_dz_rms", "slopes_dz_rms", "steps_by_series", "loss"] {
        assert!(stems.contains(&s), "{s} missing from {stems:?}");
    }
    // dw_op was never recorded and bottleneck_rms is all zeros (no place on a log axis): nothing to draw, no file.
    for s in ["coord_dw_op", "coord_bottleneck_rms"] {
        assert!(!stems.contains(&s), "{s} drawn from nothing: {stems:?}");
    }
    for fig in &figs {
        assert_finite(fig);
        assert_keys_beside_panels(fig, &svg_of(&dir, fig), &[]);
    }
}
