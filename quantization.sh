#!/usr/bin/env bash
# Quantization of your own model: edit this block, then `bash quantization.sh`. As shipped it runs on the
# embedded default (SFace on the ORL faces; `make data` prepares them): calibrated INT8 (OpenVINO + NNCF, the
# settings chosen on this CPU), the OpenVINO and ONNX exports, and FP32 vs INT8 accuracy, embedding cosine,
# latency and size.
set -euo pipefail
cd "$(dirname "$0")"

# ---- edit here ---------------------------------------------------------------------------------------------
PY=${PY:-.venv/bin/python}
MODEL=sface                                             # zoo name, or path/to/file.py:factory
BEST_MODEL_PATH=work_space/model_train_best/sface.pth   # also a pruned or fine-tuned checkpoint
FROM_DATA_PARALLEL=""                                   # "--from_data_parallel" if keys start with module.
TEST_ROOT_PATH=data/test_data/orl_112x112
PAIRS=$TEST_ROOT_PATH/pair_list/orl_pairs.txt
DATA_SOURCE=lfw                                         # lfw (10-fold accuracy) | company (TPR@FPR)
TRAIN_DATA_PATH=data/train_data/orl_s1-20               # calibration images: never the test pairs
CALIB_BATCHES=4                                         # x 16 images
QUANT_BACKEND=openvino                                  # openvino | onnxruntime | torch (x86 | fbgemm) | auto
OBSERVER=percentile                                     # torch, onnxruntime: percentile | histogram | minmax
PRELU=auto                                              # torch: float | integer | auto (per layer, faster here)
PRELU_BATCH=32                                          # torch: the batch size --prelu auto times at
EXTRA=""                                                # e.g. "--fp16", "--max_cosine_drop 0.002"
THREADS=1                                               # latency is measured with this many threads
QUANTIZED_SAVE_MODEL_PATH=work_space/quantized_model
# ------------------------------------------------------------------------------------------------------------

$PY main.py --mode quantization --model $MODEL --best_model_path $BEST_MODEL_PATH $FROM_DATA_PARALLEL \
    --test_root_path $TEST_ROOT_PATH --img_list_label_path $PAIRS --data_source $DATA_SOURCE --device cpu \
    --train_data_path $TRAIN_DATA_PATH --calib_batches $CALIB_BATCHES --quant_backend $QUANT_BACKEND \
    --observer $OBSERVER --prelu $PRELU --prelu_batch $PRELU_BATCH --threads $THREADS --quantized_save_model_path $QUANTIZED_SAVE_MODEL_PATH $EXTRA
