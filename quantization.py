"""`--mode quantization`: post-training static INT8 that runs in integer kernels, half precision, ONNX exports,
and an honest comparison with FP32 on the user's pair list (accuracy, embedding cosine, latency, file size).

INT8 uses torch.ao's FX flow on the x86/fbgemm kernels, with two fixes of our own:
- torch 2.14's quantized PReLU requantizes positive inputs through the *slope's* quantization: it multiplies
  them by 1.0 written in the slope's int8 grid, which saturates whenever 1.0 lies outside the slopes' range
  (SFace's embeddings are wrecked; a test shows it). `PReLUSlopeObserver` puts 1.0 exactly on that grid, and PReLU stays
  integer (`--prelu integer`).
- Or PReLU runs in float between integer layers (`FloatPReLU`). `--prelu auto` (the default) picks, layer by
  layer, the kind that is faster on this CPU at `--prelu_batch`.
ONNX Runtime's static quantization is the third backend (`--quant_backend onnxruntime`).
"""
import copy
import sys
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import QConfig, get_default_qconfig_mapping
from torch.ao.quantization.observer import (HistogramObserver, MinMaxObserver, ObserverBase,
                                            PerChannelMinMaxObserver)
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
from tqdm import tqdm

from commen_utils.atomic import staged_files
from commen_utils.checkpoint import load_weights, save_checkpoint
from commen_utils.errors import UserError
from commen_utils.latency import median_latency_ms, median_ms
from commen_utils.onnx_io import OnnxModel, export_onnx, quantize_onnx
from commen_utils.timestamp import time_stamp
from commen_utils.torchscript_io import freeze_for_inference, save_torchscript

TORCH_BACKENDS = ("fbgemm", "x86")
BACKENDS = TORCH_BACKENDS + ("onnxruntime",)
OBSERVERS = ("histogram", "minmax", "percentile")


class HalfPrecision(nn.Module):
    """Runs a model in float16 and hands back float32, so that callers need not change."""

    def __init__(self, model):
        super().__init__()
        self.model = copy.deepcopy(model).half()

    def forward(self, x):
        return self.model(x.half()).float()


class FloatPReLU(nn.PReLU):
    """A PReLU that FX's pattern table does not know (it matches exact types), so it stays float."""


class PReLUSlopeObserver(ObserverBase):
    """Slope quantization for the integer PReLU kernel: the range always holds 0 and 1, and the step is 1/n,
    so that 1.0 (the kernel's factor for positive inputs) is exact."""

    def __init__(self, dtype=torch.quint8, **kwargs):
        super().__init__(dtype=dtype, is_dynamic=False)
        self.qscheme = torch.per_tensor_affine
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(1.0))

    def forward(self, slopes):
        self.low = torch.minimum(self.low, slopes.detach().min())
        self.high = torch.maximum(self.high, slopes.detach().max())
        return slopes

    def calculate_qparams(self):
        steps = int(255 // float(self.high - self.low))
        return torch.tensor([1.0 / steps]), torch.tensor([int(round(-float(self.low) * steps))])


class PercentileObserver(ObserverBase):
    """Activation range from the 0.001 % / 99.999 % quantiles of each calibration batch (the widest over
    batches): it ignores the few outliers that stretch a min-max range and waste int8 steps."""

    def __init__(self, dtype=torch.quint8, quantile=0.99999, reduce_range=False, **kwargs):
        super().__init__(dtype=dtype, is_dynamic=False)
        self.quantile, self.reduce_range, self.qscheme = quantile, reduce_range, torch.per_tensor_affine
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(0.0))

    def forward(self, x):
        flat = x.detach().float().flatten()
        if flat.numel() > 2 ** 24:  # torch.quantile's input limit
            flat = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:2 ** 24]]
        low, high = torch.quantile(flat, torch.tensor([1 - self.quantile, self.quantile]))
        self.low, self.high = torch.minimum(self.low, low), torch.maximum(self.high, high)
        return x

    def calculate_qparams(self):
        levels = 127 if self.reduce_range else 255
        scale = max(float(self.high - self.low) / levels, 1e-8)
        return torch.tensor([scale]), torch.tensor([min(levels, int(round(-float(self.low) / scale)))])


def cpu_has_vnni() -> bool:
    """x86/fbgemm need 7-bit activations (reduce_range) only where int8 products are summed in int16 with
    saturation, i.e. without VNNI; with it, the full 8 bits cut SFace's embedding error by half."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def activation_observer(name, reduce_range):
    return {"histogram": HistogramObserver, "minmax": MinMaxObserver,
            "percentile": PercentileObserver}[name].with_args(reduce_range=reduce_range)


def qconfig_mapping(backend, observer, reduce_range):
    """Per-channel int8 weights, calibrated activations; nn.PReLU integer with a correct slope grid, FloatPReLU
    left in float."""
    weight = PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    activation = activation_observer(observer, reduce_range)
    return (get_default_qconfig_mapping(backend).set_global(QConfig(activation=activation, weight=weight))
            .set_object_type(nn.PReLU, QConfig(activation=activation, weight=PReLUSlopeObserver))
            .set_object_type(FloatPReLU, None))


def prelu_names(model):
    return [name for name, module in model.named_modules() if type(module) is nn.PReLU]


def float_prelus(model, integer=()):
    """Swap every nn.PReLU not named in `integer` for a FloatPReLU holding the same slopes."""
    for name in prelu_names(model):
        if name not in integer:
            parent, _, child = name.rpartition(".")
            original = model.get_submodule(name)
            replacement = FloatPReLU(original.num_parameters)
            replacement.weight = original.weight
            setattr(model.get_submodule(parent), child, replacement)
    return model


def prelu_microseconds(shape, repeats=50):
    """(integer, float) time of one PReLU on a quantized activation of `shape`, in the current engine."""
    x = torch.quantize_per_tensor(torch.randn(shape), 0.05, 128, torch.quint8)
    x = x.contiguous(memory_format=torch.channels_last)  # as quantized convs hand it over
    slopes = torch.rand(shape[1]) - 0.5
    grid = torch.quantize_per_tensor(slopes, 1 / 170, 85, torch.quint8)
    integer = median_ms(lambda: torch.ops.quantized.prelu(x, grid, 0.04, 100), repeats)
    floating = median_ms(lambda: torch.quantize_per_tensor(torch.prelu(x.dequantize(), slopes), 0.04, 100,
                                                           torch.quint8), repeats)
    return 1000 * integer, 1000 * floating


@torch.no_grad()
def faster_integer_prelus(model, input_size, batch, backend):
    """The PReLUs that run faster in integer than in float, measured here at their own input shape and
    `batch`: which kind wins depends on the CPU, the shape and the batch."""
    torch.backends.quantized.engine = backend
    shapes = {}

    def record(name):
        def hook(module, inputs, output):
            shapes[name] = tuple(inputs[0].shape)
        return hook

    hooks = [model.get_submodule(name).register_forward_hook(record(name)) for name in prelu_names(model)]
    try:
        model.eval()(torch.zeros(batch, 3, *input_size))
    finally:
        for hook in hooks:
            hook.remove()
    timings = {shape: prelu_microseconds(shape) for shape in set(shapes.values())}
    return [name for name, shape in shapes.items() if timings[shape][0] < timings[shape][1]]


def prepare_int8(model, input_size, settings):
    """The float model with observers inserted (FX), ready to calibrate; `settings` is what a checkpoint
    stores to rebuild the same structure: backend, observer, integer_prelus (names), reduce_range."""
    torch.backends.quantized.engine = settings["backend"]
    model = float_prelus(copy.deepcopy(model).cpu().eval(), settings["integer_prelus"])
    mapping = qconfig_mapping(settings["backend"], settings["observer"], settings["reduce_range"])
    with warnings.catch_warnings():  # torch.ao's deprecation notice, repeated for every module
        warnings.simplefilter("ignore")
        return prepare_fx(model, mapping, example_inputs=(torch.zeros(1, 3, *input_size),))


def convert_int8(prepared):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_fx(prepared)


@torch.no_grad()
def quantize_int8(model, input_size, images, settings, batch_size=16, progress=True):
    prepared = prepare_int8(model, input_size, settings)
    for i in tqdm(range(0, len(images), batch_size), desc="calibrating", disable=None if progress else True):
        prepared(images[i:i + batch_size])
    return convert_int8(prepared)


def integer_prelu_state(quantized):
    """torch's quantized PReLU keeps its slopes, output scale and zero point as plain attributes, outside the
    state_dict: a checkpoint carries them in its metadata instead."""
    return {name: {"weight": module.weight, "scale": module.scale, "zero_point": module.zero_point}
            for name, module in quantized.named_modules() if isinstance(module, torch.ao.nn.quantized.PReLU)}


def load_int8(model, input_size, settings, state_dict, source):
    """A saved INT8 model: the float model (right widths) -> the same quantized layout -> its weights."""
    quantized = int8_structure(model, input_size, settings)
    if state_dict is not None:
        load_weights(quantized, state_dict, source)
    for name, state in settings.get("integer_prelu_state", {}).items():
        module = quantized.get_submodule(name)
        module.set_weight(state["weight"])
        module.scale, module.zero_point = float(state["scale"]), int(state["zero_point"])
    return quantized


def int8_structure(model, input_size, settings):
    """An uncalibrated INT8 model with the layout a saved one has, to load its state_dict into."""
    with warnings.catch_warnings():  # observers that saw no data warn; their values are about to be loaded
        warnings.simplefilter("ignore")
        return convert_int8(prepare_int8(model, input_size, settings))


def file_size_mb(path):
    return Path(path).stat().st_size / 2 ** 20


def compare(evaluator, reference, candidates):
    """Accuracy of each candidate and the cosine of its embeddings to the reference's, image by image."""
    ref = evaluator.outputs(reference)
    rows = {}
    for name, model in candidates.items():
        out = evaluator.outputs(model)
        cosine = F.cosine_similarity(ref, out, dim=1)
        rows[name] = {"accuracy": evaluator.score(out)["headline"], "cosine_min": cosine.min().item(),
                      "cosine_mean": cosine.mean().item()}
    return evaluator.score(ref)["headline"], rows


TIMED = ("fp32", "fp32 folded", "int8", "fp16")  # the torch variants, timed side by side


def quantization_settings(args, model, input_size):
    integer = {"float": [], "integer": prelu_names(model)}.get(args.prelu)
    if integer is None and args.quant_backend in TORCH_BACKENDS:  # auto
        integer = faster_integer_prelus(model, input_size, args.prelu_batch, args.quant_backend)
    return {"precision": "int8", "backend": args.quant_backend, "observer": args.observer,
            "integer_prelus": integer or [], "reduce_range": not cpu_has_vnni()}


def run_quantization(args, loaded, evaluator, calibration_images):
    """FP32 vs INT8 (and fp16 with --fp16) on the pair list; saves every variant and both ONNX files."""
    check_flags(args)
    fp32 = loaded.model.cpu().eval()
    settings = quantization_settings(args, fp32, loaded.input_size)
    odd = [f"{name} ({m.out_channels})" for name, m in fp32.named_modules()
           if isinstance(m, nn.Conv2d) and m.out_channels % 8]
    if odd:  # measured: a pruned SFace with such widths ran 8x slower in INT8 than in FP32
        print(f"note: {len(odd)} conv(s) have widths that are not multiples of 8, e.g. {odd[0]}; the INT8 CPU "
              f"kernels fall back to slow paths on those: prune with --round_to 8")
    stem = Path(args.quantized_save_model_path) / f"{Path(loaded.arch).stem}_{time_stamp()}"
    names = {"fp32": "_fp32.pt", "fp32 folded": "_fp32_folded.torchscript", "onnx fp32": "_fp32.onnx",
             "onnx int8": "_int8.onnx"}
    names.update({"int8": "_int8.pt"} if settings["backend"] in TORCH_BACKENDS else {})
    names.update({"fp16": "_fp16.pt"} if args.fp16 else {})
    final = {name: stem.with_name(stem.name + suffix) for name, suffix in names.items()}
    with staged_files(final, args.overwrite) as files:
        result = quantize_and_compare(args, loaded, evaluator, calibration_images, fp32, settings, files)
    result["files"] = {name: str(path) for name, path in final.items()}
    for name, path in final.items():
        print(f"saved {name}: {path}")
    return result


def quantize_and_compare(args, loaded, evaluator, calibration_images, fp32, settings, files):
    common = dict(arch=loaded.arch, keep=loaded.keep, input_size=loaded.input_size,
                  embedding_size=loaded.embedding_size)
    save_checkpoint(files["fp32"], fp32, metadata={"precision": "fp32"}, **common)
    export_onnx(fp32, loaded.input_size, files["onnx fp32"])
    variants = {"fp32 folded": freeze_for_inference(fp32, loaded.input_size)}
    save_torchscript(variants["fp32 folded"], files["fp32 folded"])
    if args.fp16:
        variants["fp16"] = HalfPrecision(fp32)
        save_checkpoint(files["fp16"], variants["fp16"].model, metadata={"precision": "fp16"}, **common)
    print(f"INT8: backend {settings['backend']}, observer {settings['observer']}, {len(calibration_images)} "
          f"calibration images from {args.train_data_path}, {len(settings['integer_prelus'])} of "
          f"{len(prelu_names(fp32))} PReLUs integer (--prelu {args.prelu}), "
          f"{7 if settings['reduce_range'] else 8}-bit activations")
    quantize_onnx(files["onnx fp32"], files["onnx int8"], calibration_images, args.observer)
    if settings["backend"] == "onnxruntime":
        variants["int8"], files["int8"] = OnnxModel(files["onnx int8"]), files["onnx int8"]
    else:
        variants["int8"] = quantize_int8(fp32, loaded.input_size, calibration_images, settings)
        save_checkpoint(files["int8"], variants["int8"], **common,
                        metadata={**settings, "integer_prelu_state": integer_prelu_state(variants["int8"])})
    variants.update({"onnx fp32": OnnxModel(files["onnx fp32"]), "onnx int8": OnnxModel(files["onnx int8"])})

    evaluator.device = "cpu"  # INT8 kernels are CPU kernels; all variants are compared on the same device
    reference, rows = compare(evaluator, fp32, variants)
    rows = {"fp32": {"accuracy": reference, "cosine_min": 1.0, "cosine_mean": 1.0}, **rows}
    for name, row in rows.items():
        if name in files:
            row["size_mb"] = file_size_mb(files[name])
        if name in TIMED:
            for batch in args.latency_batches:
                repeats = args.latency_repeats if batch == 1 else max(3, args.latency_repeats // 4)
                row[f"latency_ms_bs{batch}"] = median_latency_ms(variants.get(name, fp32), loaded.input_size,
                                                                 batch, repeats)
    result = {"cosine_min": rows["int8"]["cosine_min"], "cosine_mean": rows["int8"]["cosine_mean"],
              "variants": rows, "settings": settings}
    for name in TIMED:
        for key, value in rows.get(name, {}).items():
            label = name.replace(" ", "_")
            if key.startswith("latency_ms_bs"):
                result[f"latency_ms_{label}_bs{key.rsplit('bs', 1)[1]}"] = value
            elif key in ("accuracy", "size_mb"):
                result[f"{key}_{label}"] = value
    print_table(evaluator.data_source, rows)
    return result


def print_table(data_source, rows):
    batches = sorted(int(k.rsplit("bs", 1)[1]) for k in rows["fp32"] if k.startswith("latency_ms_bs"))
    print(f"| variant | {data_source} headline | cosine to FP32 min / mean | size MB | "
          + " | ".join(f"bs{b} ms (x FP32)" for b in batches) + " |")
    print("|---|---|---|---|" + "---|" * len(batches))
    for name, row in rows.items():
        cells = [name, f"{row['accuracy']:.4f}", f"{row['cosine_min']:.4f} / {row['cosine_mean']:.4f}",
                 f"{row['size_mb']:.2f}" if "size_mb" in row else "-"]
        for b in batches:
            ms = row.get(f"latency_ms_bs{b}")
            cells.append(f"{ms:.1f} ({ms / rows['fp32'][f'latency_ms_bs{b}']:.2f}x)" if ms else "-")
        print("| " + " | ".join(cells) + " |")


def check_flags(args):
    if args.quant_backend not in BACKENDS:
        raise UserError(f"--quant_backend {args.quant_backend}: choose one of {', '.join(BACKENDS)}")
    if args.prelu == "integer" and args.quant_backend == "onnxruntime":
        raise UserError(f"--prelu {args.prelu} applies to the torch backends (fbgemm, x86), not to onnxruntime")


if __name__ == "__main__":  # same flags as main.py
    from main import main
    sys.exit(main())
