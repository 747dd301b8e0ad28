#!/usr/bin/env bash
# Every mode once with --device cuda on a small ORL subset (run on a machine with a GPU, from the repo root,
# after `make data`): scores are compared with the CPU's, and the outputs land in $OUT (default /tmp/cuda_out).
set -uo pipefail
PY=${PY:-python3}
OUT=${OUT:-/tmp/cuda_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
C=work_space/model_train_best/sface.pth
head -n 120 data/test_data/orl_112x112/pair_list/orl_heldout_pairs.txt > /tmp/pairs.txt
DATA=(--test_root_path data/test_data/orl_112x112 --img_list_label_path /tmp/pairs.txt)
step() { echo "== $1"; shift; local start=$SECONDS; if "$@"; then echo "-- ok ($((SECONDS - start)) s)"; else echo "-- FAILED: exit $?"; fi; }
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))"
for device in cpu cuda; do
  step "test $device" $PY main.py --mode test --model sface --best_model_path $C "${DATA[@]}" --device $device \
      --roc_png "$OUT/roc_$device.png" --result_json "$OUT/test_$device.json"
done
step "sa cuda" $PY main.py --mode sa --model sface --best_model_path $C "${DATA[@]}" --device cuda \
    --sparsities 0.0,0.5 --sensitivity_csv_path /tmp/sa --bn_recalibrate 16 --reconstruct 16
step "sa cuda, naive path" $PY main.py --mode sa --model sface --best_model_path $C "${DATA[@]}" --device cuda \
    --sparsities 0.0,0.5 --sensitivity_csv_path /tmp/sa_naive --sa_naive --bn_recalibrate 16 --reconstruct 16
cp /tmp/sa/*.csv "$OUT/sa_fast.csv"; cp /tmp/sa_naive/*.csv "$OUT/sa_naive.csv"
step "schedule" $PY pruning_analysis_tools/auto_make_yaml.py --csv "$OUT/sa_fast.csv" --model sface \
    --target_macs_ratio 0.5 --output /tmp/s.yaml
step "prune cuda" $PY main.py --mode prune --model sface --best_model_path $C "${DATA[@]}" --device cuda \
    --yaml_path /tmp/s.yaml --bn_recalibrate 16 --reconstruct 16 --save_model_pt --pruned_save_model_path /tmp/pr \
    --layers_out_path /tmp/out.txt --result_json "$OUT/prune_cuda.json"
step "finetune cuda" $PY main.py --mode finetune --pruned_checkpoint /tmp/pr/model_sface.pt --teacher_path $C \
    "${DATA[@]}" --device cuda --kd_weight 1 --epoch 2 --milestones 1 --train_batch_size 32 --work_path /tmp/ft \
    --result_json "$OUT/finetune_cuda.json"
step "quantization (fp16 on cuda is not used: INT8 and the comparison run on the CPU)" $PY main.py \
    --mode quantization --best_model_path /tmp/pr/model_sface.pt "${DATA[@]}" --device cuda --fp16 \
    --calib_batches 1 --latency_repeats 3 --latency_batches 1 --quantized_save_model_path /tmp/q \
    --result_json "$OUT/quantization.json"
