"""Where a model will run, and what each of its layers costs there: the deployment runtimes the latency model
measures (OpenVINO INT8 — what `--mode quantization` ships by default —, OpenVINO FP32, ONNX Runtime FP32,
torch FP32), as a registry.

A runtime turns a float torch model into a `Runner`: callable like a torch module, and able to say how long
each conv/linear layer took in one inference, in the forward order of those layers. Operators a runtime runs
apart from their layer (a BN, PReLU, reorder or quantize step after a conv) are counted with the layer before
them, since they process that layer's output channels. What no layer accounts for is reported apart.
"""
import json
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn as nn

from compression_tool.commen_utils.errors import UserError

WEIGHTED = (nn.Conv2d, nn.Linear)


class RuntimeName(StrEnum):
    OPENVINO_INT8 = "openvino-int8"
    OPENVINO_FP32 = "openvino-fp32"
    ONNXRUNTIME_FP32 = "onnxruntime-fp32"
    TORCH_FP32 = "torch-fp32"


@dataclass(frozen=True)
class Deployment:
    """The runtime a model is made for, and how it is run there."""
    runtime: RuntimeName = RuntimeName.OPENVINO_INT8
    threads: int = 1
    batch: int = 1

    def __post_init__(self):
        object.__setattr__(self, "runtime", RuntimeName(self.runtime))
        if self.threads < 1 or self.batch < 1:
            raise UserError(f"--threads {self.threads} / --latency_batch {self.batch}: must be at least 1")

    def describe(self) -> str:
        return f"{self.runtime}, {self.threads} thread(s), batch {self.batch}"


class LayerTimes(NamedTuple):
    layers: list  # ms per conv/linear layer, forward order, with the operators that follow it
    other: float  # ms nobody's layer accounts for (input conversion, the first reorder)


class Runner:
    """A model compiled for one runtime at a fixed input shape. `source` is the float torch model it was made
    from."""
    source: nn.Module

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def evaluable(self) -> Callable:
        """The same model, callable on any batch size (what the evaluators need)."""
        return self.source

    def recompiled(self) -> "Runner":
        """The same model freshly compiled, timed as a model just built is (for runtimes that compile)."""
        return self

    def save(self, stem: Path, info: dict) -> Path:
        """The model as a file `--mode test` and report.py read back; `info`: arch, keep, input_size,
        embedding_size."""
        from compression_tool.commen_utils.checkpoint import save_checkpoint

        return save_checkpoint(stem.with_suffix(".pt"), self.source, info["arch"], info["keep"], info["input_size"],
                               info["embedding_size"])

    def profile(self, x: torch.Tensor, repeats: int) -> list:
        """[LayerTimes] of `repeats` inferences."""
        return [self.layer_times(x) for _ in range(repeats)]

    def layer_times(self, x: torch.Tensor) -> LayerTimes:
        raise NotImplementedError


def fold_into_layers(steps: list, layer_count: int, where: str) -> LayerTimes:
    """[(is a conv/linear layer, ms)] in execution order -> per-layer times, each layer taking the operators
    after it."""
    layers, other = [], 0.0
    for weighted, ms in steps:
        if weighted:
            layers.append(ms)
        elif layers:
            layers[-1] += ms
        else:
            other += ms
    if len(layers) != layer_count:
        raise UserError(f"{where}: the runtime ran {len(layers)} conv/linear layers where the model has "
                        f"{layer_count}; per-layer latency cannot be attributed (time whole models instead)")
    return LayerTimes(layers, other)


def layer_count(model: nn.Module) -> int:
    return sum(isinstance(m, WEIGHTED) for m in model.modules())


# ---- OpenVINO -------------------------------------------------------------------------------------------------
# Node types of the plugin's executed graph that run a conv/linear layer (type names vary with the
# precision: FullyConnectedQuantizedLegacy, GroupConvolution, ...)
OPENVINO_LAYER_TYPES = ("Convolution", "FullyConnected", "MatMul")


class OpenVinoRunner(Runner):
    """An OpenVINO model compiled with its per-node profile on (PERF_COUNT): node names are generated and
    fused nodes renamed, so layers are matched by execution order."""

    def __init__(self, source: nn.Module, ov_model, shape: tuple, threads: int, precision: str):
        import openvino as ov

        from compression_tool.commen_utils.openvino_io import CPU_CONFIG

        self.source, self.precision, self.layers = source, precision, layer_count(source)
        self.shape, self.threads = shape, threads

        model = ov_model.clone()
        model.reshape(list(shape))
        config = {**CPU_CONFIG, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                  "NUM_STREAMS": 1, "PERF_COUNT": True}
        self.ov_model = ov_model
        self.request = ov.Core().compile_model(model, "CPU", config).create_infer_request()

    def recompiled(self):
        return OpenVinoRunner(self.source, self.ov_model, self.shape, self.threads, self.precision)

    def evaluable(self):
        from compression_tool.commen_utils.openvino_io import OpenVinoModel

        return OpenVinoModel(self.ov_model)

    def save(self, stem, info):
        from compression_tool.commen_utils.openvino_io import save_ir

        return save_ir(self.ov_model, stem.with_suffix(".xml"), {**info, "precision": self.precision})

    def __call__(self, x):
        self.request.infer([np.ascontiguousarray(x.detach().cpu().float().numpy())])
        return torch.from_numpy(np.array(self.request.get_output_tensor(0).data))

    def layer_times(self, x):
        self(x)
        steps = [(any(t in p.node_type for t in OPENVINO_LAYER_TYPES), p.real_time.total_seconds() * 1000)
                 for p in self.request.get_profiling_info() if p.real_time.total_seconds() > 0]
        return fold_into_layers(steps, self.layers, "openvino profile")


def _openvino_fp32(model, input_size, deployment, calibration=None):
    from compression_tool.commen_utils.openvino_io import to_openvino

    return OpenVinoRunner(model, to_openvino(model, input_size), (deployment.batch, 3, *input_size),
                          deployment.threads, "fp32")


def latency_quantize(ov_model, calibration: torch.Tensor | None, input_size):
    """NNCF's default post-training quantization (the MIXED preset, as `--mode quantization` starts from). Without
    calibration images the model is only timed: kernels depend on widths, not values, so two random images
    and no bias correction (which changes biases, not the graph) time the same."""
    import logging

    import nncf
    import rich

    nncf.set_log_level(logging.ERROR)
    timing_only = calibration is None
    if timing_only:
        calibration = torch.rand(2, 3, *input_size, generator=torch.Generator().manual_seed(0)) * 255
    advanced = nncf.AdvancedQuantizationParameters(disable_bias_correction=timing_only)
    items = [calibration[i:i + 1].numpy() for i in range(len(calibration))]
    console = rich.get_console()  # NNCF draws its progress bars there: one per model would bury our own
    quiet, console.quiet = console.quiet, True
    try:
        return nncf.quantize(ov_model, nncf.Dataset(items), subset_size=len(items), advanced_parameters=advanced)
    finally:
        console.quiet = quiet


def _openvino_int8(model, input_size, deployment, calibration=None):
    from compression_tool.commen_utils.openvino_io import to_openvino

    quantized = latency_quantize(to_openvino(model, input_size), calibration, input_size)
    return OpenVinoRunner(model, quantized, (deployment.batch, 3, *input_size), deployment.threads, "int8")


# ---- ONNX Runtime ---------------------------------------------------------------------------------------------
ONNX_LAYER_TYPES = {"Conv", "FusedConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul", "ConvTranspose"}


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime. Its profiler writes its file once, when profiling ends: a profile is taken in a session of
    its own, all runs at once, then split into runs (each runs the same nodes in the same order)."""

    def __init__(self, model, input_size, deployment: Deployment):
        from compression_tool.commen_utils.onnx_io import export_onnx

        self.source = model
        self.folder = tempfile.TemporaryDirectory(prefix="ct_ort_")
        self.path = export_onnx(model, input_size, Path(self.folder.name) / "model.onnx")
        self.threads, self.layers = deployment.threads, layer_count(model)
        self.session = self._session(profile=False)

    def _session(self, profile: bool):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.enable_profiling = profile
        options.profile_file_prefix = str(Path(self.folder.name) / "profile")
        return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def __call__(self, x, session=None):
        session = session or self.session
        return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.detach().cpu().float().numpy()})[0])

    def profile(self, x, repeats):
        session = self._session(profile=True)
        for _ in range(repeats):
            self(x, session)
        events = json.loads(Path(session.end_profiling()).read_text())
        nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
        per_run = len(nodes) // repeats
        return [fold_into_layers([(e["args"].get("op_name") in ONNX_LAYER_TYPES, e["dur"] / 1000)
                                  for e in nodes[i * per_run:(i + 1) * per_run]], self.layers, "onnxruntime profile")
                for i in range(repeats)]


def _onnxruntime_fp32(model, input_size, deployment, calibration=None):
    return OnnxRuntimeRunner(model, input_size, deployment)


# ---- torch ----------------------------------------------------------------------------------------------------
class TorchRunner(Runner):
    """Eager torch: every leaf module timed by a pair of hooks (the hooks' own cost is small beside a conv)."""

    def __init__(self, model: nn.Module, threads: int):
        self.source, self.threads = model.eval().cpu(), threads
        self.leaves = [m for m in self.source.modules() if not list(m.children())]

    def _run(self, x):
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                return self.source(x)
        finally:
            torch.set_num_threads(previous)

    def __call__(self, x):
        return self._run(x)

    def layer_times(self, x):
        steps, started = [], {}

        def before(module, _):
            started[module] = time.perf_counter()

        def after(module, _, __):
            steps.append((isinstance(module, WEIGHTED), 1000 * (time.perf_counter() - started[module])))

        handles = [h for m in self.leaves for h in (m.register_forward_pre_hook(before),
                                                     m.register_forward_hook(after))]
        try:
            start = time.perf_counter()
            self._run(x)
            total = 1000 * (time.perf_counter() - start)
        finally:
            for h in handles:
                h.remove()
        times = fold_into_layers(steps, layer_count(self.source), "torch profile")
        return LayerTimes(times.layers, times.other + max(0.0, total - sum(ms for _, ms in steps)))


def _torch_fp32(model, input_size, deployment, calibration=None):
    return TorchRunner(model, deployment.threads)


# name -> prepare(model, input_size, deployment, calibration images or None) -> Runner
RUNTIMES: dict[RuntimeName, Callable] = {
    RuntimeName.OPENVINO_INT8: _openvino_int8, RuntimeName.OPENVINO_FP32: _openvino_fp32,
    RuntimeName.ONNXRUNTIME_FP32: _onnxruntime_fp32, RuntimeName.TORCH_FP32: _torch_fp32}


def prepare(model: nn.Module, input_size, deployment: Deployment, calibration: torch.Tensor | None = None) -> Runner:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RUNTIMES[deployment.runtime](model.eval().cpu(), tuple(input_size), deployment, calibration)


def median_layer_times(runners: list, input_size, batch: int, repeats: int, rounds: int = 5) -> list:
    """Per-layer medians of each runner over `repeats` profiled inferences, after a warm-up, in interleaved rounds
    so that a busy spell of the machine hits every runner alike."""
    x = torch.rand(batch, 3, *input_size, generator=torch.Generator().manual_seed(1)) * 255
    for runner in runners:
        runner(x)
        runner(x)
    runs = [[] for _ in runners]
    for _ in range(rounds):
        for runner, collected in zip(runners, runs):
            collected += runner.profile(x, max(1, repeats // rounds))
    return [LayerTimes([statistics.median(r.layers[i] for r in collected) for i in range(len(collected[0].layers))],
                       statistics.median(r.other for r in collected)) for collected in runs]
