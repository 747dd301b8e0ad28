"""INT8 against FP32 on the CPU: latency at batch 1 and 32 (medians, side by side in one process) for SFace,
MobileFaceNet and IR-ResNet50, for each backend -- torch fbgemm and x86 kernels with PReLU in float or with our
fixed integer PReLU, and ONNX Runtime QOperator -- plus, for SFace, the embedding cosine to FP32 and the 10-fold
accuracy on ORL's 3,600 pairs. Calibration: 64 images of identities 1-20 (percentile observer). MobileFaceNet
and IR-50 carry their initial random weights: only their latency counts here.

    python benchmarks/int8.py [--threads 1] [--repeats 20] [--models sface mobilefacenet resnet50]
"""
import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from common import ORL, PAIRS, SFACE, TRAIN, machine
from commen_utils.latency import median_latency_ms
from commen_utils.onnx_io import OnnxModel, export_onnx, quantize_onnx
from dataloader import sample_images
from model_define.loading import load_model
from quantization import cpu_has_vnni, faster_integer_prelus, prelu_names, quantize_int8
from test_module.evaluate import make_evaluator

TORCH_VARIANTS = {f"{backend}, {kind} PReLU": (backend, kind) for backend in ("fbgemm", "x86")
                  for kind in ("float", "integer", "auto for bs1", "auto for bs32")}


def integer_prelus(model, input_size, backend, kind):
    if kind.startswith("auto"):
        return faster_integer_prelus(model, input_size, int(kind.rsplit("bs", 1)[1]), backend)
    return prelu_names(model) if kind == "integer" else []


def variants(loaded, images, folder):
    out = {}
    for name, (backend, kind) in TORCH_VARIANTS.items():
        settings = {"backend": backend, "observer": "percentile", "reduce_range": not cpu_has_vnni(),
                    "integer_prelus": integer_prelus(loaded.model, loaded.input_size, backend, kind)}
        out[name] = quantize_int8(loaded.model, loaded.input_size, images, settings, progress=False)
    fp32_onnx = export_onnx(loaded.model, loaded.input_size, Path(folder) / f"{loaded.arch}.onnx")
    int8_onnx = quantize_onnx(fp32_onnx, Path(folder) / f"{loaded.arch}_int8.onnx", images, "percentile")
    out["onnxruntime fp32"], out["onnxruntime QOperator int8"] = OnnxModel(fp32_onnx), OnnxModel(int8_onnx)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--models", nargs="+", default=["sface", "mobilefacenet", "resnet50"])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} thread(s), median of {args.repeats} (bs1) / {max(3, args.repeats // 4)} (bs32); "
          f"{machine()}; VNNI: {cpu_has_vnni()}")
    print("| model | variant | bs1 ms | bs1 x FP32 | bs32 ms | bs32 x FP32 | cosine min / mean | 10-fold acc |")
    print("|---|---|---|---|---|---|---|---|")
    for arch in args.models:
        loaded = load_model(arch, SFACE if arch == "sface" else None)
        images = sample_images(TRAIN, loaded.spec, 64)
        evaluator = make_evaluator("lfw", ORL, PAIRS, loaded.spec, batch_size=32, cache_images=True,
                                   progress=False) if arch == "sface" else None
        reference = evaluator.outputs(loaded.model) if evaluator else None
        with tempfile.TemporaryDirectory() as folder:
            models = {"torch fp32": loaded.model.eval(), **variants(loaded, images, folder)}
            base = {}
            for name, model in models.items():
                row = [arch, name]
                for batch in (1, 32):
                    repeats = args.repeats if batch == 1 else max(3, args.repeats // 4)
                    ms = median_latency_ms(model, loaded.input_size, batch, repeats)
                    base.setdefault(batch, ms)
                    row += [f"{ms:.1f}", f"{ms / base[batch]:.2f}"]
                if evaluator:
                    out = evaluator.outputs(model)
                    cosine = F.cosine_similarity(reference, out, dim=1)
                    row += [f"{cosine.min():.4f} / {cosine.mean():.4f}", f"{evaluator.score(out)['accuracy']:.4f}"]
                else:
                    row += ["-", "-"]
                print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
