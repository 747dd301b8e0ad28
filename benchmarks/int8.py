"""INT8 against FP32 on the CPU at hand, every backend side by side in one process: latency at batch 1 and 32
(medians, timed in interleaved rounds), embedding cosine to torch FP32 and 10-fold accuracy on ORL's pairs.

Rows per model: torch FP32; OpenVINO FP32; plain `nncf.quantize(preset=MIXED)` with nothing else tuned (the
anchor a user would pick instead of this tool); the tool's default (openvino, settings chosen on this CPU);
onnxruntime and torch as the tool runs them. Calibration: 64 images of identities 1-20; validation (the
tool's choices): the next 64. MobileFaceNet and IR-ResNet50 carry random weights: only their latency counts.

    python benchmarks/int8.py [--threads 1] [--repeats 20] [--models sface mobilefacenet resnet50]
                              [--pruned work_space/demo/<run>/model_sface.pt] [--pairs PATH]
"""
import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from common import ORL, PAIRS, SFACE, TRAIN, machine, reuse_memory
from compression_tool.commen_utils import openvino_io
from compression_tool.commen_utils.cpu_isa import read_cpu_isa
from compression_tool.commen_utils.onnx_io import OnnxModel, export_onnx
from compression_tool.dataloader import sample_images
from compression_tool.model_define.loading import load_model
from compression_tool.quant_module import onnxruntime_ptq, openvino_ptq, torch_fx
from compression_tool.commen_utils.latency import side_by_side_ms
from compression_tool.quant_module.selection import keep_best
from compression_tool.test_module.evaluate import make_evaluator


def variants(loaded, calibration, validation, folder, isa, repeats):
    model, size = loaded.model.eval(), loaded.input_size
    ov_fp32 = openvino_io.to_openvino(model, size)
    anchor = openvino_ptq.quantize(ov_fp32, calibration, openvino_ptq.OpenVinoSettings())
    default, _ = openvino_ptq.search(ov_fp32, model, calibration, validation, size, isa, repeats)
    onnx_fp32 = export_onnx(model, size, Path(folder) / "fp32.onnx")
    onnx_int8, _ = keep_best("onnxruntime", onnxruntime_ptq.candidates(onnx_fp32, folder, calibration, isa,
                                                                       "histogram", 16),
                             model, validation, size, repeats)
    settings = {"engine": "x86", "observer": "histogram", "reduce_range": isa.saturates_int8,
                "integer_prelus": torch_fx.faster_integer_prelus(model, size, 32, "x86")}
    return {"torch fp32": model, "openvino fp32": openvino_io.OpenVinoModel(ov_fp32),
            "nncf.quantize MIXED (anchor)": openvino_io.OpenVinoModel(anchor),
            f"tool default: {default.name}": default.model, f"tool {onnx_int8.name}": onnx_int8.model,
            "tool torch x86 (--prelu auto)": torch_fx.quantize_int8(model, size, calibration, settings,
                                                                     progress=False),
            "onnxruntime fp32": OnnxModel(onnx_fp32)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--models", nargs="+", default=["sface", "mobilefacenet", "resnet50"])
    p.add_argument("--pruned", help="also a pruned SFace checkpoint (e.g. the demo's), scored like SFace")
    p.add_argument("--pairs", default=str(PAIRS), help="pair list for cosine and accuracy (SFace rows)")
    args = p.parse_args()
    reuse_memory()  # as the CLIs do by default
    torch.set_num_threads(args.threads)
    isa = read_cpu_isa()
    print(f"{args.threads} thread(s), median of {args.repeats} (bs1) / {max(3, args.repeats // 4)} (bs32), "
          f"interleaved; CPU {isa.describe()}; {machine()}; pairs {Path(args.pairs).name}")
    print("| model | variant | bs1 ms | bs1 x torch FP32 | bs32 ms | bs32 x torch FP32 | cosine min / mean | "
          "10-fold acc |")
    print("|---|---|---|---|---|---|---|---|")
    jobs = [(arch, SFACE if arch == "sface" else None) for arch in args.models]
    jobs += [("sface pruned", args.pruned)] if args.pruned else []
    for label, checkpoint in jobs:
        loaded = load_model(None if label == "sface pruned" else label, checkpoint)
        images = sample_images(TRAIN, loaded.spec, 128)
        scored = loaded.arch == "sface"
        evaluator = make_evaluator("lfw", ORL, args.pairs, loaded.spec, batch_size=32, cache_images=True,
                                   progress=False) if scored else None
        with tempfile.TemporaryDirectory() as folder:
            models = variants(loaded, images[:64], images[64:], folder, isa, args.repeats)
            timings = {b: side_by_side_ms(list(models.values()), loaded.input_size, b,
                                          args.repeats if b == 1 else max(3, args.repeats // 4)) for b in (1, 32)}
            reference = evaluator.outputs(loaded.model) if scored else None
            for i, (name, model) in enumerate(models.items()):
                row = [label, name]
                for b in (1, 32):
                    row += [f"{timings[b][i]:.1f}", f"{timings[b][i] / timings[b][0]:.2f}"]
                if scored:
                    out = evaluator.outputs(model)
                    cosine = F.cosine_similarity(reference, out, dim=1)
                    row += [f"{cosine.min():.4f} / {cosine.mean():.4f}", f"{evaluator.score(out)['accuracy']:.4f}"]
                else:
                    row += ["-", "-"]
                print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
