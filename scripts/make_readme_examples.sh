#!/usr/bin/env bash
# The pictures of the README section "Large images, colour, style mixing and
# regions", made by the commands it shows (the starter model, CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
ex=docs/examples
fastgram stylize $ex/cat.jpg --style $ex/retina.jpg --out $ex/plain
fastgram stylize $ex/cat.jpg --style $ex/retina.jpg --preserve-color --out $ex/preserve_color
fastgram stylize $ex/cat.jpg --style $ex/retina.jpg --style $ex/brick.jpg --style $ex/hubble_deep_field.jpg \
    --style-weights 0.5 0.3 0.2 --out $ex/mixed
fastgram stylize $ex/cat.jpg --style $ex/retina.jpg --style $ex/hubble_deep_field.jpg \
    --mask $ex/mask_left.png --mask $ex/mask_right.png --out $ex/regions
fastgram stylize $ex/cat.jpg --style $ex/retina.jpg --tile 128 --out $ex/tiled
