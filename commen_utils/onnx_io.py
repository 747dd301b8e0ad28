"""ONNX export of a float model, and an ONNX model that runs like a torch module (so that `--mode test` and the
evaluators take .onnx files too)."""
from pathlib import Path

import torch

from .atomic import atomic_path
from .errors import UserError

INPUT, OUTPUT = "input", "embedding"


def export_onnx(model, input_size, path) -> Path:
    """Float model -> ONNX with a dynamic batch axis. The TorchScript exporter (dynamo=False) is used because
    the dynamo one needs onnxscript, which this tool does not otherwise depend on."""
    model = model.eval().cpu()
    with atomic_path(path) as tmp, torch.no_grad():
        torch.onnx.export(model, torch.zeros(1, 3, *input_size), str(tmp), dynamo=False, opset_version=17,
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    return Path(path)


class OnnxModel:
    """Callable like a torch module: float tensor in, float tensor out, run by ONNX Runtime on the CPU."""

    def __init__(self, path, threads=None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types for foreign bytes
            raise UserError(f"{path}: not an ONNX model ONNX Runtime can run ({str(e).splitlines()[0][:200]})") \
                from None
        self.input_name = self.session.get_inputs()[0].name
        shape = self.session.get_inputs()[0].shape
        self.input_size = tuple(shape[2:]) if all(isinstance(s, int) for s in shape[2:]) else None

    def eval(self) -> "OnnxModel":
        return self

    def cpu(self) -> "OnnxModel":
        return self

    def __call__(self, x):
        out = self.session.run(None, {self.input_name: x.detach().cpu().float().numpy()})[0]
        return torch.from_numpy(out)
