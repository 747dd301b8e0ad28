#!/usr/bin/env bash
# The main job on the embedded default (SFace on the ORL faces). `make demo` runs this after set-up.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PY:-.venv/bin/python}
MODEL=sface
CHECKPOINT=work_space/model_train_best/sface.pth
TEST_ROOT=data/test_data/orl_112x112
PAIRS=$TEST_ROOT/pair_list/orl_pairs.txt

echo "== SFace on ORL (3,600 pairs, 10-fold)"
$PY main.py --mode test --model $MODEL --best_model_path $CHECKPOINT --test_root_path $TEST_ROOT \
    --img_list_label_path $PAIRS --data_source lfw --target_fpr 1e-2 1e-3 --device cpu
