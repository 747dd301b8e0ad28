#!/usr/bin/env bash
# Pruning on your own model: edit this block, then `bash prune.sh`. As shipped it runs on the embedded
# default (SFace on the ORL faces; `make data` prepares them). Steps: sensitivity analysis -> schedule ->
# prune -> test the pruned checkpoint.
set -euo pipefail
cd "$(dirname "$0")"

# ---- edit here ---------------------------------------------------------------------------------------------
PY=${PY:-.venv/bin/python}
MODEL=sface                                             # zoo name, or path/to/file.py:factory
BEST_MODEL_PATH=work_space/model_train_best/sface.pth   # plain state_dict or a compression_tool checkpoint
FROM_DATA_PARALLEL=""                                   # "--from_data_parallel" if keys start with module.
INPUT_SIZE=112x112                                      # HxW, e.g. 144x122
TEST_ROOT_PATH=data/test_data/orl_112x112
SA_PAIRS=$TEST_ROOT_PATH/pair_list/orl_heldout_pairs.txt   # pairs the analysis and the schedule look at
TEST_PAIRS=$TEST_ROOT_PATH/pair_list/orl_pairs.txt         # pairs the before/after scores use
DATA_SOURCE=lfw                                         # lfw (10-fold accuracy) | company (TPR@FPR)
RANKING=""                                              # "" (L1) | --fpgm | --hrank
SPARSITIES=0.0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8
TARGET_MACS_RATIO=0.5                                   # or set EXPECTED_ACC for the original's rule
EXPECTED_ACC=""
TRAIN_DATA_PATH=data/train_data/orl_s1-20               # identities for the repair, never the test pairs
REPAIR="--reconstruct 64"           # "" for plain thinning; add --bn_recalibrate 64 to re-estimate BN statistics
DEVICE=cpu
SENSITIVITY_CSV_PATH=work_space/sensitivity_data
YAML_PATH=yaml_file/auto_yaml.yaml
PRUNED_SAVE_MODEL_PATH=work_space/pruned_model
# ------------------------------------------------------------------------------------------------------------

COMMON=(--model $MODEL --input_size $INPUT_SIZE --test_root_path $TEST_ROOT_PATH --data_source $DATA_SOURCE
        --device $DEVICE --train_data_path $TRAIN_DATA_PATH $RANKING)

$PY main.py --mode sa "${COMMON[@]}" --best_model_path $BEST_MODEL_PATH $FROM_DATA_PARALLEL \
    --img_list_label_path $SA_PAIRS --sparsities $SPARSITIES --sensitivity_csv_path $SENSITIVITY_CSV_PATH $REPAIR
CSV=$(ls -t $SENSITIVITY_CSV_PATH/sensitivity_$(basename ${MODEL%%.py*})_*.csv | head -1)

if [ -n "$EXPECTED_ACC" ]; then
    RULE=(--expected_acc $EXPECTED_ACC)
else
    RULE=(--target_macs_ratio $TARGET_MACS_RATIO --best_model_path $BEST_MODEL_PATH
          --test_root_path $TEST_ROOT_PATH --img_list_label_path $SA_PAIRS --train_data_path $TRAIN_DATA_PATH $REPAIR)
fi
# --overwrite: this script regenerates the schedule on every run; drop it to keep a hand-edited one safe
$PY pruning_analysis_tools/auto_make_yaml.py --csv "$CSV" --model $MODEL --input_size $INPUT_SIZE \
    --output $YAML_PATH "${RULE[@]}" --overwrite

$PY main.py --mode prune "${COMMON[@]}" --best_model_path $BEST_MODEL_PATH $FROM_DATA_PARALLEL \
    --img_list_label_path $TEST_PAIRS --yaml_path $YAML_PATH $REPAIR --save_model_pt \
    --pruned_save_model_path $PRUNED_SAVE_MODEL_PATH --overwrite

$PY main.py --mode test --best_model_path $PRUNED_SAVE_MODEL_PATH/model_$(basename ${MODEL%%.py*}).pt \
    --test_root_path $TEST_ROOT_PATH --img_list_label_path $TEST_PAIRS --data_source $DATA_SOURCE --device $DEVICE
