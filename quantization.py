"""`--mode quantization`: post-training static INT8 on the CPU at hand, half precision, ONNX and OpenVINO
exports, and an honest comparison with FP32 on the user's pair list (accuracy, embedding cosine, latency, size).

Backends (`--quant_backend`): openvino (NNCF; the default wherever OpenVINO runs), onnxruntime, torch (torch.ao's
FX flow; x86 and fbgemm name its kernels, as in the original), and auto (all of them, the fastest accurate one
kept). Every choice between settings is made by measurement on validation images from `--train_data_path`,
never on the test pairs; the pair list only scores the result.
"""
import copy
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from compression_tool.commen_utils import openvino_io
from compression_tool.commen_utils.atomic import staged_files
from compression_tool.commen_utils.checkpoint import save_checkpoint
from compression_tool.commen_utils.cpu_isa import CpuIsa, read_cpu_isa
from compression_tool.commen_utils.errors import UserError
from compression_tool.commen_utils.onnx_io import OnnxModel, export_onnx
from compression_tool.commen_utils.timestamp import time_stamp
from compression_tool.commen_utils.torchscript_io import freeze_for_inference, save_torchscript
from compression_tool.quant_module import onnxruntime_ptq, openvino_ptq, torch_fx
from compression_tool.quant_module.selection import (Candidate, candidate_rows, candidate_table, fastest_accurate,
                                                     keep_best, measure, side_by_side_ms)

RUNTIMES = ("openvino", "onnxruntime", "torch")
ENGINE_ALIASES = {"x86": "x86", "fbgemm": "fbgemm", "torch": "x86"}  # the original's values name torch's kernels
BACKENDS = ("openvino", "onnxruntime", "auto") + tuple(ENGINE_ALIASES)


def default_backend() -> str:
    return "openvino" if openvino_io.available() else "torch"


@dataclass(frozen=True)
class QuantizationConfig:
    backend: str = "openvino"
    observer: str = "histogram"  # torch and onnxruntime calibration; NNCF calibrates its own way
    prelu: str = "auto"  # torch backend: float | integer | auto
    prelu_batch: int = 32
    calib_batch_size: int = 16
    max_cosine_drop: float | None = None  # openvino: NNCF accuracy control on the validation images
    min_cosine: float = 0.99  # auto: the floor a backend's mean cosine must reach
    fp16: bool = False
    latency_batches: tuple = (1, 32)
    latency_repeats: int = 20
    output_folder: str = "work_space/quantized_model"
    overwrite: bool = False
    calibration_source: str = ""  # shown in the printout

    @property
    def runtimes(self) -> tuple:
        if self.backend == "auto":
            return tuple(r for r in RUNTIMES if r != "openvino" or openvino_io.available())
        return ("torch",) if self.backend in ENGINE_ALIASES else (self.backend,)

    @property
    def torch_engine(self) -> str:
        return ENGINE_ALIASES.get(self.backend, "x86")


def check_config(config: QuantizationConfig):
    if config.backend not in BACKENDS:
        raise UserError(f"--quant_backend {config.backend}: choose one of {', '.join(BACKENDS)}")
    if config.backend == "openvino" and not openvino_io.available():
        raise UserError("--quant_backend openvino: openvino and nncf are not installed (pip install -r "
                        "requirements.txt), or choose --quant_backend torch")
    if config.prelu == "integer" and "torch" not in config.runtimes:
        raise UserError(f"--prelu {config.prelu} applies to the torch backend (torch, x86, fbgemm), not to "
                        f"{config.backend}")
    if config.max_cosine_drop is not None and not (0 < config.max_cosine_drop < 1):
        raise UserError(f"--max_cosine_drop {config.max_cosine_drop}: expected a value in (0, 1), e.g. 0.002")
    if config.max_cosine_drop is not None and "openvino" not in config.runtimes:
        raise UserError(f"--max_cosine_drop applies to the openvino backend (NNCF's accuracy control), not to "
                        f"{config.backend}")


class HalfPrecision(nn.Module):
    """Runs a model in float16 and hands back float32, so that callers need not change."""

    def __init__(self, model):
        super().__init__()
        self.model = copy.deepcopy(model).half()

    def forward(self, x):
        return self.model(x.half()).float()


def file_size_mb(*paths) -> float:
    return sum(Path(p).stat().st_size for p in paths) / 2 ** 20


def output_names(config: QuantizationConfig) -> dict:
    """Row name -> file suffix, for every file this run writes (an IR's .bin under 'NAME weights')."""
    names = {"fp32": "_fp32.pt", "fp32 folded": "_fp32_folded.torchscript", "onnx fp32": "_fp32.onnx",
             "onnx int8": "_int8.onnx"}
    if "openvino" in config.runtimes:
        names.update({"openvino fp32": "_fp32.xml", "openvino fp32 weights": "_fp32.bin",
                      "openvino int8": "_int8.xml", "openvino int8 weights": "_int8.bin"})
    if "torch" in config.runtimes:
        names["torch int8"] = "_int8.pt"
    if config.fp16:
        names["fp16"] = "_fp16.pt"
    return names


INT8_FILE = {"openvino": "openvino int8", "onnxruntime": "onnx int8", "torch": "torch int8"}


def run_quantization(config: QuantizationConfig, loaded, evaluator, calibration: torch.Tensor,
                     validation: torch.Tensor) -> dict:
    """FP32 vs INT8 (and fp16) on the pair list; saves every variant. `validation` (training images) decides
    between settings and backends."""
    check_config(config)
    fp32 = loaded.model.cpu().eval()
    odd = [f"{name} ({m.out_channels})" for name, m in fp32.named_modules()
           if isinstance(m, nn.Conv2d) and m.out_channels % 8]
    if odd:  # INT8 kernels work on blocks of 8 (or 16) channels
        print(f"note: {len(odd)} conv(s) have widths that are not multiples of 8, e.g. {odd[0]}; the INT8 CPU "
              f"kernels fall back to slow paths on those: prune with --round_to 8")
    stem = Path(config.output_folder) / f"{Path(loaded.arch).stem}_{time_stamp()}"
    final = {name: stem.with_name(stem.name + suffix) for name, suffix in output_names(config).items()}
    with staged_files(final, config.overwrite) as files:
        result = quantize_and_compare(config, loaded, evaluator, calibration, validation, fp32, files)
    result["files"] = {name: str(path) for name, path in final.items() if not name.endswith(" weights")}
    result["files"]["int8"] = result["files"][INT8_FILE[result["backend"]]]
    for name, path in result["files"].items():
        print(f"saved {name}: {path}")
    return result


def quantize_and_compare(config, loaded, evaluator, calibration, validation, fp32, files) -> dict:
    isa = read_cpu_isa()
    print(f"CPU: {isa.describe()}; INT8 backend(s): {', '.join(config.runtimes)}; {len(calibration)} calibration "
          f"and {len(validation)} validation images from {config.calibration_source or 'the training folder'}")
    common = dict(arch=loaded.arch, keep=loaded.keep, input_size=loaded.input_size,
                  embedding_size=loaded.embedding_size)
    save_checkpoint(files["fp32"], fp32, metadata={"precision": "fp32"}, **common)
    export_onnx(fp32, loaded.input_size, files["onnx fp32"])
    variants = {"fp32": fp32, "fp32 folded": freeze_for_inference(fp32, loaded.input_size)}
    save_torchscript(variants["fp32 folded"], files["fp32 folded"])
    if config.fp16:
        variants["fp16"] = HalfPrecision(fp32)
        save_checkpoint(files["fp16"], variants["fp16"].model, metadata={"precision": "fp16"}, **common)
    variants["onnx fp32"] = OnnxModel(files["onnx fp32"])

    chosen, searches = {}, {}
    chosen["onnxruntime"], searches["onnxruntime"] = onnxruntime_int8(config, isa, fp32, calibration, validation,
                                                                      loaded.input_size, files)
    if "openvino" in config.runtimes:
        variants["openvino fp32"], chosen["openvino"], searches["openvino"] = openvino_int8(
            config, isa, fp32, calibration, validation, common, files)
    if "torch" in config.runtimes:
        chosen["torch"], searches["torch"] = torch_int8(config, fp32, calibration, validation, loaded, files, common)
    for runtime, candidate in chosen.items():
        variants[INT8_FILE[runtime]] = candidate.model

    backend = config.runtimes[0]
    if config.backend == "auto":
        finalists = measure([chosen[r] for r in config.runtimes], fp32, validation, loaded.input_size,
                            config.latency_batches, config.latency_repeats)
        winner, why = fastest_accurate(finalists, config.min_cosine)
        backend = winner.settings["backend"]
        print(f"--quant_backend auto chose {backend} ({why}), on {len(validation)} validation images:")
        print(candidate_table(finalists, winner))
        searches["auto"] = candidate_rows(finalists, winner)

    evaluator.device = "cpu"  # INT8 kernels are CPU kernels; all variants are compared on the same device
    rows = compare(evaluator, fp32, variants, loaded.input_size, config)
    for name, row in rows.items():
        if name in files:
            row["size_mb"] = file_size_mb(*[files[n] for n in (name, f"{name} weights") if n in files])
    int8 = INT8_FILE[backend]
    result = {"backend": backend, "cpu": isa.describe(), "int8_variant": int8, "variants": rows,
              "cosine_min": rows[int8]["cosine_min"], "cosine_mean": rows[int8]["cosine_mean"],
              "settings": chosen[backend].settings, "candidates": searches}
    for name, row in {**rows, "int8": rows[int8]}.items():
        label = name.replace(" ", "_")
        for key, value in row.items():
            if key.startswith("latency_ms_bs"):
                result[f"latency_ms_{label}_bs{key.rsplit('bs', 1)[1]}"] = value
            elif key in ("accuracy", "size_mb"):
                result[f"{key}_{label}"] = value
    print_table(evaluator.data_source, rows, int8)
    return result


def onnxruntime_int8(config, isa: CpuIsa, fp32, calibration, validation, input_size, files) -> tuple:
    folder = files["onnx int8"].parent / "onnxruntime_candidates"
    folder.mkdir()
    candidates = onnxruntime_ptq.candidates(files["onnx fp32"], folder, calibration, isa, config.observer,
                                            config.calib_batch_size)
    chosen, rows = keep_best("onnxruntime", candidates, fp32, validation, input_size, config.latency_repeats)
    os.replace(chosen.settings["path"], files["onnx int8"])
    chosen.model = OnnxModel(files["onnx int8"])
    chosen.settings = {k: v for k, v in chosen.settings.items() if k != "path"}
    return chosen, rows


def openvino_int8(config, isa: CpuIsa, fp32, calibration, validation, common, files) -> tuple:
    metadata = {**common, "input_size": list(common["input_size"])}
    ov_fp32 = openvino_io.to_openvino(fp32, common["input_size"])
    openvino_io.save_ir(ov_fp32, files["openvino fp32"], {**metadata, "precision": "fp32"})
    chosen, rows = openvino_ptq.search(ov_fp32, fp32, calibration, validation, common["input_size"], isa,
                                       config.latency_repeats, config.max_cosine_drop)
    openvino_io.save_ir(chosen.model.model, files["openvino int8"], {**metadata, "precision": "int8"})
    return openvino_io.OpenVinoModel(ov_fp32), chosen, rows


def torch_int8(config, fp32, calibration, validation, loaded, files, common) -> tuple:
    print("note: the torch backend runs on torch.ao.quantization, which torch 2.14 deprecates and will remove; "
          "--quant_backend openvino is the maintained path")
    engine = config.torch_engine
    integer = {"float": [], "integer": torch_fx.prelu_names(fp32)}.get(config.prelu)
    if integer is None:  # auto
        integer = torch_fx.faster_integer_prelus(fp32, loaded.input_size, config.prelu_batch, engine)
    settings = {"precision": "int8", "backend": engine, "observer": config.observer, "integer_prelus": integer,
                "reduce_range": read_cpu_isa().saturates_int8}
    model = torch_fx.quantize_int8(fp32, loaded.input_size, calibration, settings, config.calib_batch_size)
    save_checkpoint(files["torch int8"], model, **common,
                    metadata={**settings, "integer_prelu_state": torch_fx.integer_prelu_state(model)})
    print(f"torch INT8: {engine} kernels, observer {config.observer}, {len(integer)} of "
          f"{len(torch_fx.prelu_names(fp32))} PReLUs integer (--prelu {config.prelu}), "
          f"{7 if settings['reduce_range'] else 8}-bit activations")
    candidate = Candidate(f"torch {engine}", model, {**settings, "backend": "torch", "engine": engine})
    measure([candidate], fp32, validation, loaded.input_size, (1,), config.latency_repeats)
    return candidate, candidate_rows([candidate], candidate)


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
    print(f"| variant | {data_source} headline | cosine to FP32 min / mean | size MB | "
          + " | ".join(f"bs{b} ms (x FP32)" for b in batches) + " |")
    print("|---|---|---|---|" + "---|" * len(batches))
    for name, row in rows.items():
        cells = [f"{name} (chosen)" if name == chosen_int8 else name, f"{row['accuracy']:.4f}",
                 f"{row['cosine_min']:.4f} / {row['cosine_mean']:.4f}",
                 f"{row['size_mb']:.2f}" if "size_mb" in row else "-"]
        for b in batches:
            ms = row[f"latency_ms_bs{b}"]
            cells.append(f"{ms:.1f} ({ms / rows['fp32'][f'latency_ms_bs{b}']:.2f}x)")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":  # same flags as main.py
    from compression_tool.main import main
    sys.exit(main())
