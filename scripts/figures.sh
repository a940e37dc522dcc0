#!/bin/sh
# Regenerates the figures committed in figures/ (the ones the README shows) from the default studies: the MLP width
# sweep, the transformer width sweep, the learning-rate study and the limit study (8 minutes measured after the build,
# on 2 cores shared with other work), and `singlora verify --full` (about 2 minutes). The studies are written to DIR (default: results/); finished runs there are
# reused, not recomputed.
#
#   sh scripts/figures.sh [DIR]
set -eu
cd "$(dirname "$0")/.."
out=${1:-results}
cargo build --release
bin=target/release/singlora
$bin sweep --out "$out/default"
$bin sweep --config configs/transformer.toml --out "$out/transformer"
$bin lr --out "$out/lr"
$bin limit --out "$out/limit"
$bin verify --full --out "$out/verify-full"
mkdir -p figures
for f in coord_dz_rms slopes_dz_rms steps_by_series loss; do
    cp "$out/default/figures/$f.png" figures/
done
for f in coord_maps coord_blocks slopes_maps; do
    cp "$out/transformer/figures/$f.png" "figures/transformer_$f.png"
done
for f in lr_loss lr_best lr_plane_n256; do
    cp "$out/lr/figures/$f.png" figures/
done
for f in limit_singlora-sign limit_singlora-sgd limit_convergence; do
    cp "$out/limit/figures/$f.png" figures/
done
for f in synthetic invariance; do
    cp "$out/verify-full/$f/$f.png" "figures/verify_$f.png"
done
# C3's balanced sweep and C5's SGD delay, as verify --full draws them.
cp "$out/verify-full/balanced-sweep/figures/steps_by_series.png" figures/verify_c3_balanced_steps.png
cp "$out/verify-full/sgd-delay/figures/loss.png" figures/verify_c5_sgd_delay.png
echo "figures/ regenerated from $out"
