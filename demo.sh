#!/usr/bin/env bash
# The main job on the embedded default (SFace on the ORL faces): score -> sensitivity analysis -> budget
# schedule -> prune (+ least-squares repair + BN re-estimation) -> report (table, ROC, widths, curves).
# `make demo` runs this after set-up; the sizes below keep it to a few minutes on 2 CPU cores.
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
CALIB_IMAGES=64                                       # from data/train_data/orl_s1-20, never the test pairs
RUN=work_space/demo/$(date +%Y-%m-%d-%H-%M-%S)
mkdir -p "$RUN"
COMMON=(--test_root_path $TEST_ROOT --data_source lfw --device cpu --target_fpr 1e-2 1e-3)
REPAIR=(--bn_recalibrate $CALIB_IMAGES --reconstruct $CALIB_IMAGES)

echo "== demo sizes: SA on $(wc -l < $SA_PAIRS) pairs at levels $LEVELS; budget ${TARGET_MACS}x MACs;" \
     "$CALIB_IMAGES training images for repair; final scores on $(wc -l < $PAIRS) pairs. Outputs: $RUN"

echo "== 1/5 score the original"
$PY main.py --mode test --model $MODEL --best_model_path $CHECKPOINT "${COMMON[@]}" --img_list_label_path $PAIRS \
    --roc_png "$RUN/roc_original.png" --result_json "$RUN/test_original.json"

echo "== 2/5 sensitivity analysis"
$PY main.py --mode sa --model $MODEL --best_model_path $CHECKPOINT "${COMMON[@]}" --img_list_label_path $SA_PAIRS \
    --sparsities $LEVELS --sensitivity_csv_path "$RUN" --test_batch_size 16 "${REPAIR[@]}"
CSV=$(ls "$RUN"/sensitivity_${MODEL}_*.csv)
$PY pruning_analysis_tools/plot_csv.py --csv "$CSV" --output_dir "$RUN/plots"

echo "== 3/5 schedule for ${TARGET_MACS}x MACs"
$PY pruning_analysis_tools/auto_make_yaml.py --csv "$CSV" --model $MODEL --target_macs_ratio $TARGET_MACS \
    --output "$RUN/schedule.yaml" --best_model_path $CHECKPOINT --test_root_path $TEST_ROOT \
    --img_list_label_path $SA_PAIRS "${REPAIR[@]}"

echo "== 4/5 prune"
$PY main.py --mode prune --model $MODEL --best_model_path $CHECKPOINT "${COMMON[@]}" --img_list_label_path $PAIRS \
    --yaml_path "$RUN/schedule.yaml" "${REPAIR[@]}" --save_model_pt --pruned_save_model_path "$RUN" \
    --layers_out_path "$RUN/out.txt" --result_json "$RUN/prune.json"

echo "== 5/5 report: every variant scored side by side (the pruned checkpoint rebuilds itself)"
$PY pruning_analysis_tools/report.py --variant "original=$CHECKPOINT" \
    --variant "pruned ${TARGET_MACS}x MACs=$RUN/model_${MODEL}.pt" --test_root_path $TEST_ROOT \
    --img_list_label_path $PAIRS --csv "$CSV" --output_dir "$RUN/report" \
    --notes "sensitivity analysis on $SA_PAIRS at levels $LEVELS" \
            "schedule: budget ${TARGET_MACS}x MACs, candidates measured on $SA_PAIRS" \
            "repair: least-squares refit and BN statistics on $CALIB_IMAGES training images; no fine-tuning"
