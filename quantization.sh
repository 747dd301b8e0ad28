#!/usr/bin/env bash
# Quantization of your own model: edit this block, then `bash quantization.sh`. As shipped it runs on the
# embedded default (SFace on the ORL faces; `make data` prepares them). So far: half precision (--fp16).
set -euo pipefail
cd "$(dirname "$0")"

# ---- edit here ---------------------------------------------------------------------------------------------
PY=${PY:-.venv/bin/python}
MODEL=sface                                             # zoo name, or path/to/file.py:factory
BEST_MODEL_PATH=work_space/model_train_best/sface.pth   # also a pruned checkpoint from prune.sh
FROM_DATA_PARALLEL=""                                   # "--from_data_parallel" if keys start with module.
TEST_ROOT_PATH=data/test_data/orl_112x112
PAIRS=$TEST_ROOT_PATH/pair_list/orl_pairs.txt
DATA_SOURCE=lfw                                         # lfw (10-fold accuracy) | company (TPR@FPR)
DEVICE=cpu
QUANTIZED_SAVE_MODEL_PATH=work_space/quantized_model
# ------------------------------------------------------------------------------------------------------------

$PY main.py --mode quantization --fp16 --model $MODEL --best_model_path $BEST_MODEL_PATH $FROM_DATA_PARALLEL \
    --test_root_path $TEST_ROOT_PATH --img_list_label_path $PAIRS --data_source $DATA_SOURCE --device $DEVICE \
    --quantized_save_model_path $QUANTIZED_SAVE_MODEL_PATH
