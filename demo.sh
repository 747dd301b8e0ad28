#!/usr/bin/env bash
# The main job on the embedded default (SFace on the ORL faces): sensitivity analysis -> schedule for a target a
# user would set (the fastest model in OpenVINO INT8 within 1 point of accuracy) -> prune (+ least-squares repair)
# -> fine-tune (distillation) -> INT8 -> report with the accuracy/latency frontier.
# Every choice (analysis, schedule, best epoch, calibration) is made on identities 1-20; the final table scores
# identities 21-40, which nothing was fitted to. `make demo` runs this after set-up; the sizes below keep it
# to about five minutes on 2 CPU cores; each can be set from the environment (the tests run a tiny one).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PY:-.venv/bin/python}
MODEL=sface
CHECKPOINT=work_space/model_train_best/sface.pth
TEST_ROOT=data/test_data/orl_112x112
CHOICE_PAIRS=${CHOICE_PAIRS:-$TEST_ROOT/pair_list/orl_train_pairs.txt}  # identities 1-20: analysis, schedule, best epoch
FINAL_PAIRS=${FINAL_PAIRS:-$TEST_ROOT/pair_list/orl_heldout_pairs.txt}  # identities 21-40: the final table
TRAIN=${TRAIN:-data/train_data/orl_s1-20}                       # identities 1-20: repair, fine-tuning, calibration
LEVELS=${LEVELS:-0.0,0.3,0.6}
RUNTIME=${RUNTIME:-openvino-int8}                                # where the model will run: latency is measured there
SCHEDULE_TARGET=${SCHEDULE_TARGET:---max_accuracy_drop 1.0}      # or --target_latency_ratio 0.7, --target_macs_ratio 0.5, ...
LATENCY_STEPS=${LATENCY_STEPS:-16}                               # widths measured per layer group: k/16 of its width
LATENCY_REPEATS=${LATENCY_REPEATS:-15}                           # timed runs per latency measurement (medians)
REPAIR_IMAGES=${REPAIR_IMAGES:-64}                               # repair inside the analysis and the candidate scoring
PRUNE_REPAIR_IMAGES=${PRUNE_REPAIR_IMAGES:-200}                  # repair of the model that is kept: all of $TRAIN
EPOCHS=${EPOCHS:-6}
MIXUP=${MIXUP:-1}                                                # Beta(a, a) blends of two images, the teacher's embedding as target
FINETUNE_ARGS=${FINETUNE_ARGS:-}                                 # further fine-tuning flags, e.g. "--shift 0 --lr_schedule cosine"
MILESTONE=$(( EPOCHS > 2 ? EPOCHS - 2 : 1 ))                     # lr / 10 for the last two epochs
TRAIN_BATCH=${TRAIN_BATCH:-32}
LATENCY_BATCHES=${LATENCY_BATCHES:-1}                            # batch sizes the INT8 step times (LATENCY_BATCHES="1 32": also batch 32)
RUN=${RUN:-work_space/demo/$(date +%Y-%m-%d-%H-%M-%S)}
mkdir -p "$RUN"
elapsed() { printf '%d:%02d' $((SECONDS / 60)) $((SECONDS % 60)); }
COMMON=(--test_root_path $TEST_ROOT --data_source lfw --device cpu --train_data_path $TRAIN)
REPAIR=(--reconstruct $REPAIR_IMAGES)   # least-squares refit in forward order; BN re-estimation after it costs accuracy here
PRUNE_REPAIR=(--reconstruct $PRUNE_REPAIR_IMAGES)
ROUND=(--round_to 8)   # widths in multiples of 8: what the CPU kernels (INT8 ones above all) are fast at

echo "== demo sizes: analysis on $(wc -l < $CHOICE_PAIRS) pairs at levels $LEVELS; schedule target $SCHEDULE_TARGET in $RUNTIME;" \
     "repair on $REPAIR_IMAGES images (analysis, candidates), $PRUNE_REPAIR_IMAGES (the kept model); $EPOCHS fine-tuning epochs; final table on $(wc -l < $FINAL_PAIRS) pairs" \
     "of unseen identities. Outputs: $RUN"

echo "== [$(elapsed)] 1/6 sensitivity analysis"
$PY main.py --mode sa --model $MODEL --best_model_path $CHECKPOINT "${COMMON[@]}" --img_list_label_path $CHOICE_PAIRS \
    --sparsities $LEVELS --sensitivity_csv_path "$RUN" --test_batch_size 16 "${REPAIR[@]}"
CSV=$(ls "$RUN"/sensitivity_${MODEL}_*.csv)

echo "== [$(elapsed)] 2/6 schedule: $SCHEDULE_TARGET in $RUNTIME on this CPU (latency measured there, candidates scored on identities 1-20)"
$PY pruning_analysis_tools/auto_make_yaml.py --csv "$CSV" --model $MODEL $SCHEDULE_TARGET --runtime $RUNTIME --latency_steps $LATENCY_STEPS \
    --latency_repeats $LATENCY_REPEATS \
    --output "$RUN/schedule.yaml" --best_model_path $CHECKPOINT --test_root_path $TEST_ROOT \
    --img_list_label_path $CHOICE_PAIRS --train_data_path $TRAIN "${REPAIR[@]}" "${ROUND[@]}" --result_json "$RUN/schedule.json"

echo "== [$(elapsed)] 3/6 prune"
$PY main.py --mode prune --model $MODEL --best_model_path $CHECKPOINT "${COMMON[@]}" --img_list_label_path $FINAL_PAIRS \
    --yaml_path "$RUN/schedule.yaml" "${PRUNE_REPAIR[@]}" "${ROUND[@]}" --save_model_pt --pruned_save_model_path "$RUN" \
    --layers_out_path "$RUN/out.txt" --result_json "$RUN/prune.json"

echo "== [$(elapsed)] 4/6 fine-tune: distillation from the unpruned model on mixup blends, $EPOCHS epochs (BN statistics kept as repaired)"
$PY main.py --mode finetune --pruned_checkpoint "$RUN/model_${MODEL}.pt" --teacher_path $CHECKPOINT --head none \
    "${COMMON[@]}" --img_list_label_path $CHOICE_PAIRS --epoch $EPOCHS --milestones $MILESTONE --lr 0.001 --freeze_bn_stats --mixup $MIXUP --best_of trained $FINETUNE_ARGS \
    --train_batch_size $TRAIN_BATCH --work_path "$RUN/finetune" --result_json "$RUN/finetune.json"
FINETUNED=$(ls "$RUN"/finetune/*/best.pt)

echo "== [$(elapsed)] 5/6 INT8 (calibrated on identities 1-20)"
$PY main.py --mode quantization --best_model_path "$FINETUNED" "${COMMON[@]}" --img_list_label_path $FINAL_PAIRS \
    --threads 1 --latency_repeats 8 --latency_batches $LATENCY_BATCHES --quantized_save_model_path "$RUN/quantized" \
    --result_json "$RUN/quantization.json"
INT8=$(ls "$RUN"/quantized/*_int8.xml)

echo "== [$(elapsed)] 6/6 report: every variant scored side by side on identities 21-40"
$PY pruning_analysis_tools/report.py --variant "original=$CHECKPOINT" \
    --variant "pruned=$RUN/model_${MODEL}.pt" --variant "fine-tuned=$FINETUNED" \
    --variant "INT8=$INT8" --test_root_path $TEST_ROOT --img_list_label_path $FINAL_PAIRS --csv "$CSV" \
    --budgets "$RUN/schedule.json" --output_dir "$RUN/report" \
    --notes "sensitivity analysis on $CHOICE_PAIRS at levels $LEVELS" \
            "schedule: $SCHEDULE_TARGET in $RUNTIME (1 thread, batch 1), the latency measured on this CPU, candidates pruned, repaired on $REPAIR_IMAGES images, quantized and scored on $CHOICE_PAIRS" \
            "repair: least-squares refit of the layers that lost inputs, in forward order, on $PRUNE_REPAIR_IMAGES images of $TRAIN" \
            "fine-tuning: distillation from the unpruned model on mixup blends (alpha $MIXUP), $EPOCHS epochs on $TRAIN at lr 0.001 (/10 from epoch $MILESTONE), BN statistics frozen, best trained epoch on $CHOICE_PAIRS" \
            "INT8: OpenVINO + NNCF (settings chosen on 64 further images of $TRAIN), calibrated on 64 images of $TRAIN"
echo "== [$(elapsed)] also: the INT8 model on insightface's .bin of the same held-out pairs (written by our packer)"
$PY main.py --mode test --model $MODEL --best_model_path "$INT8" --img_list_label_path $TEST_ROOT/orl_heldout.bin \
    --device cpu --roc_png "$RUN/heldout_bin_roc.png" --result_json "$RUN/heldout_bin.json"
echo "== demo done in $(elapsed) (set-up aside): $RUN/report/report.md"
