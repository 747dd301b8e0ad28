"""`--mode quantization`: post-training static INT8 on the CPU at hand, half precision, ONNX and OpenVINO
exports, and an honest comparison with FP32 on the user's pair list (accuracy, embedding cosine, latency, size).

Backends (`--quant_backend`): openvino (NNCF; the default wherever OpenVINO runs), onnxruntime, torch (torch.ao's
FX flow; x86 and fbgemm name its kernels, as in the original), and auto (all of them, the fastest accurate one
kept). Every choice between settings is made by measurement on validation images from `--train_data_path`,
never on the test pairs; the pair list only scores the result.
"""
import copy
import importlib.util
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

if importlib.util.find_spec("compression_tool") is None:  # a clone that was never set up
    sys.exit("error: compression_tool is not installed: run `make setup` (or `pip install -e .`) in the clone")

import torch
import torch.nn as nn
import torch.nn.functional as F

from compression_tool.commen_utils.atomic import staged_files
from compression_tool.commen_utils.checkpoint import save_checkpoint
from compression_tool.commen_utils.cpu_isa import read_cpu_isa
from compression_tool.commen_utils.latency import side_by_side_ms
from compression_tool.commen_utils.onnx_io import OnnxModel, export_onnx
from compression_tool.commen_utils.results import ModeResult
from compression_tool.commen_utils.timestamp import time_stamp
from compression_tool.commen_utils.torchscript_io import freeze_for_inference, save_torchscript
from compression_tool.model_define.loading import layout_of
from compression_tool.quant_module.backends import (Int8Job, backend_named, backends_to_run, by_preference,
                                                    check_backends, default_backend)
from compression_tool.quant_module.config import QuantizationConfig
from compression_tool.quant_module.selection import candidate_rows, candidate_table, fastest_accurate, measure

log = logging.getLogger(__name__)

__all__ = ["QuantizationConfig", "QuantizationResult", "default_backend", "run_quantization"]


@dataclass(frozen=True)
class QuantizationResult(ModeResult):
    backend: str  # the one whose INT8 model is "int8"
    cpu: str
    int8_variant: str  # its row in `variants`
    variants: dict[str, dict]  # row -> accuracy, cosine_min, cosine_mean, latency_ms_bs<N>, size_mb
    cosine_min: float  # the chosen INT8 model's embedding cosine to FP32 over the pair list's images
    cosine_mean: float
    settings: dict  # the chosen INT8 settings
    candidates: dict[str, list]  # backend (and auto) -> every setting measured
    files: dict[str, str] | None = None  # row -> path, and "int8"

    def as_json(self) -> dict:
        """The fields, and each row's figures again as flat keys (accuracy_<row>, size_mb_<row>,
        latency_ms_<row>_bs<N>; the chosen INT8 model's also as <...>_int8), as earlier versions wrote them."""
        flat = super().as_json()
        for name, row in {**self.variants, "int8": self.variants[self.int8_variant]}.items():
            label = name.replace(" ", "_")
            for key, value in row.items():
                if key.startswith("latency_ms_bs"):
                    flat[f"latency_ms_{label}_bs{key.rsplit('bs', 1)[1]}"] = value
                elif key in ("accuracy", "size_mb"):
                    flat[f"{key}_{label}"] = value
        return flat




class HalfPrecision(nn.Module):
    """Runs a model in float16 and hands back float32, so that callers need not change."""

    def __init__(self, model):
        super().__init__()
        self.model = copy.deepcopy(model).half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()


def file_size_mb(*paths) -> float:
    return sum(Path(p).stat().st_size for p in paths) / 2 ** 20


def output_names(config: QuantizationConfig) -> dict:
    """Row name -> file suffix, for every file this run writes (an IR's .bin under 'NAME weights')."""
    names = {"fp32": "_fp32.pt", "fp32 folded": "_fp32_folded.torchscript", "onnx fp32": "_fp32.onnx"}
    for backend in backends_to_run(config):
        names.update(backend.outputs)
    if config.fp16:
        names["fp16"] = "_fp16.pt"
    return names


def run_quantization(config: QuantizationConfig, loaded, *, evaluator, calibration: torch.Tensor,
                     validation: torch.Tensor) -> QuantizationResult:
    """FP32 vs INT8 (and fp16) on the pair list; saves every variant. `validation` (training images) decides
    between settings and backends."""
    check_backends(config)
    fp32 = loaded.model.cpu().eval()
    odd = [f"{name} ({m.out_channels})" for name, m in fp32.named_modules()
           if isinstance(m, nn.Conv2d) and m.out_channels % 8]
    if odd:  # INT8 kernels work on blocks of 8 (or 16) channels
        log.info(f"note: {len(odd)} conv(s) have widths that are not multiples of 8, e.g. {odd[0]}; the INT8 CPU "
                 f"kernels fall back to slow paths on those: prune with --round_to 8")
    stem = Path(config.output_folder) / f"{Path(loaded.arch).stem}_{time_stamp()}"
    final = {name: stem.with_name(stem.name + suffix) for name, suffix in output_names(config).items()}
    with staged_files(final, config.overwrite) as files:
        result = quantize_and_compare(config, loaded, evaluator, calibration, validation, fp32, files)
    files = {name: str(path) for name, path in final.items() if not name.endswith(" weights")}
    files["int8"] = files[result.int8_variant]
    for name, path in files.items():
        log.info(f"saved {name}: {path}")
    return replace(result, files=files)


def quantize_and_compare(config, loaded, evaluator, calibration, validation, fp32, files) -> QuantizationResult:
    isa = read_cpu_isa()
    backends = ", ".join(b.name for b in backends_to_run(config))
    log.info(f"CPU: {isa.describe()}; INT8 backend(s): {backends}; {len(calibration)} calibration "
             f"and {len(validation)} validation images from {config.calibration_source or 'the training folder'}")
    common = layout_of(loaded)
    save_checkpoint(files["fp32"], fp32, metadata={"precision": "fp32"}, **common)
    export_onnx(fp32, loaded.input_size, files["onnx fp32"])
    variants = {"fp32": fp32, "fp32 folded": freeze_for_inference(fp32, loaded.input_size)}
    save_torchscript(variants["fp32 folded"], files["fp32 folded"])
    if config.fp16:
        variants["fp16"] = HalfPrecision(fp32)
        save_checkpoint(files["fp16"], variants["fp16"].model, metadata={"precision": "fp16"}, **common)
    variants["onnx fp32"] = OnnxModel(files["onnx fp32"])

    job = Int8Job(config, isa, fp32, calibration, validation, common, files)
    chosen, searches = {}, {}
    for backend in backends_to_run(config):
        quantized = backend.quantize(job)
        chosen[backend.name], searches[backend.name] = quantized.chosen, quantized.rows
        variants.update(quantized.float_variants)
        variants[backend.int8_file] = quantized.chosen.model

    if config.backend == "auto":
        finalists = measure([chosen[b.name] for b in by_preference(backends_to_run(config))], fp32, validation,
                            loaded.input_size, config.latency_batches, config.latency_repeats)
        winner, why = fastest_accurate(finalists, config.min_cosine)
        backend = next(name for name, candidate in chosen.items() if candidate is winner)
        log.info(f"--quant_backend auto chose {backend} ({why}), on {len(validation)} validation images:")
        log.info(candidate_table(finalists, winner))
        searches["auto"] = candidate_rows(finalists, winner)
    else:
        backend = backend_named(config.backend).name

    # INT8 kernels are CPU kernels; all variants are compared on the same device
    rows = compare(evaluator.on("cpu"), fp32, variants, loaded.input_size, config)
    for name, row in rows.items():
        if name in files:
            row["size_mb"] = file_size_mb(*[files[n] for n in (name, f"{name} weights") if n in files])
    int8 = backend_named(backend).int8_file
    print_table(evaluator.data_source, rows, int8)
    return QuantizationResult(backend=backend, cpu=isa.describe(), int8_variant=int8, variants=rows,
                              cosine_min=rows[int8]["cosine_min"], cosine_mean=rows[int8]["cosine_mean"],
                              settings=chosen[backend].settings, candidates=searches)


def compare(evaluator, reference, variants: dict, input_size, config) -> dict:
    """Each variant's headline metric on the pair list, its embedding cosine to the reference image by image,
    and its latency at every batch size, all variants timed side by side."""
    ref = evaluator.outputs(reference)
    rows = {}
    for name, model in variants.items():
        out = ref if model is reference else evaluator.outputs(model)
        cosine = F.cosine_similarity(ref, out, dim=1)
        rows[name] = {"accuracy": evaluator.score(out)["headline"], "cosine_min": cosine.min().item(),
                      "cosine_mean": cosine.mean().item()}
    for batch in config.latency_batches:
        repeats = config.latency_repeats if batch == 1 else max(3, config.latency_repeats // 4)
        for name, ms in zip(variants, side_by_side_ms(list(variants.values()), input_size, batch, repeats)):
            rows[name][f"latency_ms_bs{batch}"] = ms
    return rows


def print_table(data_source: str, rows: dict, chosen_int8: str) -> None:
    batches = sorted(int(k.rsplit("bs", 1)[1]) for k in rows["fp32"] if k.startswith("latency_ms_bs"))
    log.info(f"| variant | {data_source} headline | cosine to FP32 min / mean | size MB | "
             + " | ".join(f"bs{b} ms (x FP32)" for b in batches) + " |")
    log.info("|---|---|---|---|" + "---|" * len(batches))
    for name, row in rows.items():
        cells = [f"{name} (chosen)" if name == chosen_int8 else name, f"{row['accuracy']:.4f}",
                 f"{row['cosine_min']:.4f} / {row['cosine_mean']:.4f}",
                 f"{row['size_mb']:.2f}" if "size_mb" in row else "-"]
        for b in batches:
            ms = row[f"latency_ms_bs{b}"]
            cells.append(f"{ms:.1f} ({ms / rows['fp32'][f'latency_ms_bs{b}']:.2f}x)")
        log.info("| " + " | ".join(cells) + " |")


if __name__ == "__main__":  # same flags as main.py
    from compression_tool.main import main
    sys.exit(main())
