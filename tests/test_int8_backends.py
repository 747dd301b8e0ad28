"""The INT8 backend registry: what --quant_backend values select, what runs, and the flags only one backend reads."""
from dataclasses import replace

import pytest

from compression_tool.commen_utils.errors import UserError
from compression_tool.quantization import QuantizationConfig, output_names
from compression_tool.quant_module.backends import (BACKENDS, Int8Backend, backend_choices, backend_named,
                                                    backends_to_run, check_backends, default_backend,
                                                    register_backend)


def names(config):
    return [b.name for b in backends_to_run(config)]


def test_every_value_selects_its_backend_and_the_portable_onnx_always_runs():
    assert backend_named("x86") is backend_named("fbgemm") is BACKENDS["torch"]  # the original's kernel names
    assert names(QuantizationConfig(backend="openvino")) == ["onnxruntime", "openvino"]
    assert names(QuantizationConfig(backend="fbgemm")) == ["onnxruntime", "torch"]
    assert names(QuantizationConfig(backend="auto")) == ["onnxruntime", "openvino", "torch"]
    assert default_backend() == "openvino"
    assert set(backend_choices()) == {"openvino", "onnxruntime", "torch", "x86", "fbgemm", "auto"}
    files = output_names(QuantizationConfig(backend="torch"))
    assert files["torch int8"] == "_int8.pt" and "onnx int8" in files and "openvino int8" not in files


@pytest.mark.parametrize("config, message", [
    (QuantizationConfig(backend="int4"), "--quant_backend int4: choose one of openvino, onnxruntime, torch, x86"),
    (QuantizationConfig(backend="onnxruntime", prelu="integer"),
     "--prelu integer applies to the torch backend (torch, x86, fbgemm), not to onnxruntime"),
    (QuantizationConfig(backend="x86", max_cosine_drop=0.01),
     "--max_cosine_drop applies to the openvino backend, not to x86"),
])
def test_conflicting_settings_are_one_line_errors(config, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_backends(config)
    check_backends(QuantizationConfig(backend="auto", prelu="integer", max_cosine_drop=0.01))  # auto runs both


def test_a_setting_out_of_range_is_refused_when_the_config_is_built():
    with pytest.raises(UserError, match=r"--max_cosine_drop 2.0: expected a value in \(0, 1\)"):
        QuantizationConfig(backend="torch", max_cosine_drop=2.0)
    with pytest.raises(UserError, match="--observer mean: choose one of histogram, minmax, percentile"):
        QuantizationConfig(observer="mean")


def test_a_registered_backend_is_offered_and_preferred_only_where_it_runs():
    fake = Int8Backend("fake", quantize=lambda job: None, int8_file="fake int8", outputs={"fake int8": "_int8.fake"},
                       preference=-1, available=lambda: False, install_hint="pip install fake-runtime")
    register_backend(fake)
    try:
        assert "fake" in backend_choices() and default_backend() == "openvino"
        with pytest.raises(UserError, match="--quant_backend fake: pip install fake-runtime"):
            check_backends(QuantizationConfig(backend="fake"))
        assert "fake" not in names(QuantizationConfig(backend="auto"))
    finally:
        del BACKENDS["fake"]


def test_without_openvino_the_default_is_onnxruntime_not_the_deprecated_torch_flow():
    openvino = BACKENDS["openvino"]
    BACKENDS["openvino"] = replace(openvino, available=lambda: False)
    try:
        assert default_backend() == "onnxruntime"
        assert names(QuantizationConfig(backend="auto")) == ["onnxruntime", "torch"]
        with pytest.raises(UserError, match="--quant_backend openvino: openvino and nncf are not installed"):
            check_backends(QuantizationConfig(backend="openvino"))
    finally:
        BACKENDS["openvino"] = openvino
