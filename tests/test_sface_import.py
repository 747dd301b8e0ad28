"""SFace rebuilt from the ONNX file agrees with an independent computation: onnxruntime executing the
original graph (block dequantization included), fed the same real ORL faces."""
import numpy as np
import onnx
import onnxruntime as ort
import torch

from compression_tool.data.prepare_default import SFACE_CHECKPOINT, TEST_ROOT
from compression_tool.dataloader import load_image
from compression_tool.model_define import get_entry
from compression_tool.model_define.loading import load_model
from compression_tool.model_define.onnx_import import dequantize_blocks
from compression_tool.model_define.sface import bundled_onnx_path


def reference_session():
    """The shipped graph declares its weights as (unused) graph inputs; only that is removed."""
    model = onnx.load(str(bundled_onnx_path()))
    used = {name for node in model.graph.node for name in node.input}
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name in used and i.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_sface_matches_onnxruntime_on_real_faces():
    session = reference_session()
    model = load_model("sface", SFACE_CHECKPOINT).model
    spec = get_entry("sface").spec
    for face in ("s1/1.png", "s17/4.png", "s40/10.png"):
        x = load_image(TEST_ROOT / face, spec).unsqueeze(0)
        expected = session.run(None, {"data": x.numpy()})[0][0]
        with torch.no_grad():
            got = model(x)[0].numpy()
        assert np.abs(got - expected).max() <= 1e-3 * np.abs(expected).max()
        cosine = got @ expected / np.linalg.norm(got) / np.linalg.norm(expected)
        assert cosine > 0.99999


def test_block_dequantization_short_last_block():
    q = np.array([[1, 2, 3, 4, 5]], dtype=np.int8)
    scale = np.array([[2.0, 10.0]], dtype=np.float32)
    zero = np.array([[1, 0]], dtype=np.int8)
    out = dequantize_blocks(q, scale, zero, axis=1, block_size=3)
    np.testing.assert_allclose(out, [[0, 2, 4, 40, 50]])
