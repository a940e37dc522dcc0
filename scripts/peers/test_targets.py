"""Checks of targets.py, the verdicts compare.py prints (standard library only; CI runs them with
`python3 -m unittest discover -s scripts/peers`). Every expected number is derived in the comment beside it."""

import unittest

from targets import Target, ceiling, grid_targets, step_targets


def step(method, dtype, width, threads, singlora, torch):
    """A row as compare.py's step_rows writes it."""
    return {"what": f"mlp step {method}", "width": width, "dtype": dtype, "threads": threads, "singlora": singlora,
            "torch": torch, "others": (0.0, 0.0)}


def by_name(targets, name):
    (t,) = [t for t in targets if t.name == name]
    return t


class Ceiling(unittest.TestCase):
    def test_harmonic_mean_of_the_step_products(self):
        rates = {"gemm_xwt": 100.0, "gemm_gw": 50.0, "gemm_gtx": 25.0}
        # LoRA: two X·W0ᵀ and one G·W0 of equal FLOPs F: time F(2/100 + 1/50) = 0.04 F for 3F, so 3/0.04 = 75.
        self.assertAlmostEqual(ceiling("lora", rates), 75.0)
        # Full fine-tuning adds two GᵀX: 5 / (2/100 + 1/50 + 2/25) = 5 / 0.12 = 41.666...
        self.assertAlmostEqual(ceiling("full", rates), 5 / 0.12)

    def test_a_missing_product_gives_no_ceiling(self):
        self.assertIsNone(ceiling("full", {"gemm_xwt": 100.0, "gemm_gw": 50.0}))


class Verdicts(unittest.TestCase):
    def test_met_short_and_not_measured(self):
        t = Target("t", 5.0, True, "x")
        self.assertEqual(t.verdict(), "not measured")
        t.add("a", 6.0)
        t.add("b", None)  # a peer that did not run: no cell
        t.add("c", float("nan"))
        self.assertEqual((len(t.cells), t.verdict()), (1, "met"))
        t.add("d", 4.0)
        t.add("e", 3.0)
        self.assertEqual(t.verdict(), "not met: 2 of 3 cells short, worst first: e 3.00x, d 4.00x")

    def test_an_upper_line_counts_cells_above_it(self):
        t = Target("t", 1.5, False, "x")
        for label, v in [("a", 1.2), ("b", 1.5), ("c", 1.6), ("d", 2.0)]:
            t.add(label, v)
        # 1.5 itself is within the line; 1.6 and 2.0 are over it, the larger one worse.
        self.assertEqual(t.verdict(), "not met: 2 of 4 cells short, worst first: d 2.00x, c 1.60x")

    def test_a_cell_off_the_line_never_prints_as_the_line(self):
        self.assertEqual(Target("t", 1.5, False, "x").fmt(1.5004), "1.5004x")
        self.assertEqual(Target("t", 85.0, True, "%").fmt(84.96), "84.96%")
        self.assertEqual(Target("t", 85.0, True, "%").fmt(85.0), "85.0%")
        self.assertEqual(Target("t", 85.0, True, "%").fmt(62.04), "62.0%")


class StepTargets(unittest.TestCase):
    def test_cells_come_from_the_rows(self):
        rows = [
            step("lora", "f64", 128, 1, 100e-6, 600e-6),   # 6x: at least 5x
            step("full", "f64", 128, 1, 150e-6, 600e-6),   # 4x: short; 1.5x LoRA's step: within
            step("dora", "f64", 128, 1, 160e-6, 900e-6),   # 1.6x LoRA's step: over
            step("lora", "f64", 1024, 1, 5e-3, 4e-3),      # 0.8x PyTorch: slower
            step("singlora", "f64", 1024, 1, 5e-3, None),  # no peer: no cell
        ]
        targets = step_targets(rows, [])
        narrow = by_name(targets, "MLP step n <= 128 at least 5x PyTorch")
        self.assertEqual(narrow.verdict(), "not met: 1 of 3 cells short, worst first: full f64 n=128 1t 4.00x")
        wide = by_name(targets, "MLP step n >= 1024 no slower than PyTorch")
        self.assertEqual(wide.verdict(), "not met: 1 of 1 cells short, worst first: lora f64 n=1024 1t 0.80x")
        dora = by_name(targets, "DoRA step within 1.5x of LoRA's (singlora)")
        self.assertEqual(dora.verdict(), "not met: 1 of 1 cells short, worst first: f64 n=128 1t 1.60x")
        full = by_name(targets, "full fine-tuning step within 1.5x of LoRA's")
        self.assertEqual(full.verdict(), "met")

    def test_gemm_share_per_method_at_wide_widths_only(self):
        rates = {"gemm_xwt": 100.0, "gemm_gw": 100.0, "gemm_gtx": 100.0, "lora": 90.0, "full": 50.0}
        gflops = [("f64", 128, dict(rates, lora=10.0)), ("f64", 1024, rates)]
        targets = step_targets([], gflops)
        # Ceiling 100 for both at n = 1024: LoRA 90% (met), full 50%; n = 128 is not a cell of this target.
        lora = by_name(targets, "lora step n >= 1024 at 85% of the GEMM ceiling (1 thread)")
        self.assertEqual((lora.cells, lora.verdict()), ([("f64 n=1024", 90.0)], "met"))
        full = by_name(targets, "full step n >= 1024 at 85% of the GEMM ceiling (1 thread)")
        self.assertEqual(full.verdict(), "not met: 1 of 1 cells short, worst first: f64 n=1024 50.0%")


class GridTargets(unittest.TestCase):
    def test_one_target_per_grid_and_workload(self):
        base = {"width": None, "dtype": "f64", "others": (0, 0), "grid": "default"}
        rows = [
            dict(base, what="default sweep", threads=1, singlora=1.0, torch=12.0, workload="every probe"),
            dict(base, what="  torch incl. start-up", threads=1, singlora=1.0, torch=15.0),  # not a target's cell
            dict(base, what="  dz", threads=1, singlora=0.5, torch=12.0, workload="dz_rms only"),
            dict(base, what="default sweep", threads=2, singlora=1.0, torch=9.0, workload="every probe"),
        ]
        targets = {t.name: t for t in grid_targets(rows)}
        every = targets["default grid, every probe, at least 10x PyTorch"]
        self.assertEqual(every.cells, [("1t", 12.0), ("2t", 9.0)])
        self.assertEqual(every.verdict(), "not met: 1 of 2 cells short, worst first: 2t 9.00x")
        self.assertEqual(targets["default grid, dz_rms only, at least 10x PyTorch"].verdict(), "met")


if __name__ == "__main__":
    unittest.main()
