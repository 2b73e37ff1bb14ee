#!/usr/bin/env bash
# Trains the starter model shipped as fastgram/data/models/starter.pt.
#
# The training images come from the wheels of scikit-image 0.26 and
# matplotlib (public-domain / CC0 sample images; licences in
# fastgram/data/LICENSES.md). The images the evaluation holds out (camera,
# rocket, gravel, grass, retina) are not used.
#
#   bash scripts/train_starter.sh [RUN_DIR] [STEPS]
#
# Needs bf16-capable CPU cores (AMX or AVX512-BF16) to run at the speed
# the README states; elsewhere --amp-cpu does nothing and training runs in
# float32, about 4x slower. Ctrl-C saves; the same command resumes.
set -euo pipefail
run=${1:-runs/starter}
steps=${2:-3000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

pip download -q --no-deps -d "$work" "scikit-image==0.26.0" matplotlib
( cd "$work" && for wheel in *.whl; do python -m zipfile -e "$wheel" unpacked; done )
sk="$work/unpacked/skimage/data"
mpl="$work/unpacked/matplotlib/mpl-data/sample_data"
mkdir -p "$run/data/content" "$run/data/style"
# Styles: textures, a nebula, stained tissue, a fundus angiogram and photos;
# the trainer changes their palettes at random (--style-augment 1).
for name in brick.png hubble_deep_field.jpg ihc.png microaneurysms.png \
            astronaut.png chelsea.png coffee.png coins.png; do
    cp "$sk/$name" "$run/data/style/"
done
cp "$mpl/grace_hopper.jpg" "$run/data/style/"
# Contents: the decoder learns to render VGG19 features of anything, so the
# non-photographic images serve as content too.
for name in astronaut.png chelsea.png coffee.png coins.png clock_motion.png cell.png \
            brick.png hubble_deep_field.jpg ihc.png microaneurysms.png; do
    cp "$sk/$name" "$run/data/content/"
done
cp "$mpl/grace_hopper.jpg" "$run/data/content/"

# Two phases, as the shipped model was trained: the first 610 steps with a
# content weight of 1e-5, then (resumed, with a notice) 2e-4 up to the end.
# At 1e-5 the relu3_1 content term was about 1/16 of the style term and the
# outputs kept only contours; 2e-4 brings the two to the same order.
train() {
    fastgram train --content "$run/data/content" --style "$run/data/style" --out "$run" \
        --generator adain --adain-layer relu3_1 --ngf 32 --size 128 --batch-size 4 \
        --style-weight 2e-5 --style-rec-weight 0.02 --adv-weight 0.3 \
        --tv-weight 2 --style-augment 1.0 --ema-decay 0.995 --style-size 512 --amp-cpu \
        --log-every 25 --sample-every 100 --checkpoint-every 100 --quiet --resume "$@"
}
train --steps 610 --content-weight 1e-5
train --steps "$steps" --content-weight 2e-4

# The shipped file: the EMA weights and the configuration, no optimiser state.
python - "$run" <<'EOF'
import sys
from fastgram import StyleTransferGAN
StyleTransferGAN.load(f"{sys.argv[1]}/checkpoint.pt", device="cpu").save("fastgram/data/models/starter.pt")
EOF
