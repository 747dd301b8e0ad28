#!/usr/bin/env bash
# The main job on the embedded default (SFace on the ORL faces): sensitivity analysis -> budget schedule ->
# prune (+ BN re-estimation) -> test. `make demo` runs this after set-up; sizes are chosen to fit a few
# minutes on 2 CPU cores and are printed below.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PY:-.venv/bin/python}
MODEL=sface
CHECKPOINT=work_space/model_train_best/sface.pth
TEST_ROOT=data/test_data/orl_112x112
PAIRS=$TEST_ROOT/pair_list/orl_pairs.txt              # 3,600 pairs, all 40 identities: the final scores
SA_PAIRS=$TEST_ROOT/pair_list/orl_heldout_pairs.txt   # 1,800 pairs, identities 21-40: the analysis
LEVELS=0.0,0.2,0.4,0.6,0.8
TARGET_MACS=0.5
BN_IMAGES=64
RUN=work_space/demo/$(date +%Y-%m-%d-%H-%M-%S)
mkdir -p "$RUN"
COMMON=(--model $MODEL --test_root_path $TEST_ROOT --data_source lfw --device cpu --target_fpr 1e-2 1e-3)

echo "== demo sizes: SA (adaptive BN) on $(wc -l < $SA_PAIRS) pairs at levels $LEVELS; budget ${TARGET_MACS}x MACs;" \
     "BN statistics from $BN_IMAGES training images; final test on $(wc -l < $PAIRS) pairs. Outputs: $RUN"

echo "== 1/4 sensitivity analysis"
$PY main.py --mode sa "${COMMON[@]}" --best_model_path $CHECKPOINT --img_list_label_path $SA_PAIRS \
    --sparsities $LEVELS --sensitivity_csv_path "$RUN" --test_batch_size 16 --bn_recalibrate $BN_IMAGES
CSV=$(ls "$RUN"/sensitivity_${MODEL}_*.csv)
$PY pruning_analysis_tools/plot_csv.py --csv "$CSV" --output_dir "$RUN/plots"

echo "== 2/4 schedule for ${TARGET_MACS}x MACs"
$PY pruning_analysis_tools/auto_make_yaml.py --csv "$CSV" --model $MODEL --target_macs_ratio $TARGET_MACS \
    --output "$RUN/schedule.yaml"

echo "== 3/4 prune"
$PY main.py --mode prune "${COMMON[@]}" --best_model_path $CHECKPOINT --img_list_label_path $PAIRS \
    --yaml_path "$RUN/schedule.yaml" --bn_recalibrate $BN_IMAGES --save_model_pt \
    --pruned_save_model_path "$RUN" --layers_out_path "$RUN/out.txt" --result_json "$RUN/prune.json"

echo "== 4/4 test the pruned checkpoint (it rebuilds itself: no model definition needed)"
$PY main.py --mode test "${COMMON[@]}" --best_model_path "$RUN/model_${MODEL}.pt" --img_list_label_path $PAIRS \
    --roc_png "$RUN/roc_pruned.png" --result_json "$RUN/test_pruned.json"
