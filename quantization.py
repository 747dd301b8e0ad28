"""`--mode quantization`. So far: `--fp16`, the original's half-precision option, done honestly — weights
stored in half precision, accuracy and embedding agreement measured against FP32 on the pair list, the
checkpoint saved in a form `--mode test` reloads. Calibrated INT8 and ONNX export are not here yet.
"""
import copy
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from commen_utils.checkpoint import save_checkpoint
from commen_utils.errors import UserError
from commen_utils.timestamp import time_stamp


class HalfPrecision(torch.nn.Module):
    """Runs a model in float16 and hands back float32, so that callers need not change."""

    def __init__(self, model):
        super().__init__()
        self.model = copy.deepcopy(model).half()

    def forward(self, x):
        return self.model(x.half()).float()


def file_size_mb(path):
    return Path(path).stat().st_size / 2 ** 20


def run_quantization(args, loaded, evaluator):
    if not args.fp16:
        raise UserError("--mode quantization: only --fp16 is available so far (calibrated INT8 is not yet)")
    fp32 = loaded.model.eval()
    half = HalfPrecision(fp32).to(args.device).eval()
    outputs32, outputs16 = evaluator.outputs(fp32), evaluator.outputs(half)
    cosine = F.cosine_similarity(outputs32, outputs16, dim=1)
    result = {"accuracy_fp32": evaluator.score(outputs32)["headline"],
              "accuracy_fp16": evaluator.score(outputs16)["headline"],
              "cosine_min": cosine.min().item(), "cosine_mean": cosine.mean().item()}
    folder = Path(args.quantized_save_model_path)
    stem = f"{Path(loaded.arch).stem}_{time_stamp()}"
    common = dict(arch=loaded.arch, keep=loaded.keep, input_size=loaded.input_size,
                  embedding_size=loaded.embedding_size, overwrite=args.overwrite)
    path32 = save_checkpoint(folder / f"{stem}_fp32.pt", fp32, metadata={"precision": "fp32"}, **common)
    path16 = save_checkpoint(folder / f"{stem}_fp16.pt", half.model, metadata={"precision": "fp16"}, **common)
    result.update(size_mb_fp32=file_size_mb(path32), size_mb_fp16=file_size_mb(path16), checkpoint=str(path16))
    print(f"{evaluator.data_source}: FP32 {result['accuracy_fp32']:.4f} -> FP16 {result['accuracy_fp16']:.4f}; "
          f"embedding cosine to FP32 min {result['cosine_min']:.5f}, mean {result['cosine_mean']:.5f}; "
          f"file {result['size_mb_fp32']:.1f} MB -> {result['size_mb_fp16']:.1f} MB")
    print(f"saved: {path16} (reloads with --mode test --best_model_path)")
    return result


if __name__ == "__main__":  # same flags as main.py
    from main import main
    sys.exit(main())
