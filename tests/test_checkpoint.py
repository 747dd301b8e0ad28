import pickle

import pytest
import torch

from compression_tool.commen_utils.checkpoint import load_checkpoint, load_weights
from compression_tool.commen_utils.errors import UserError
from compression_tool.model_define import create_model


def test_data_parallel_prefix_detected(tmp_path):
    model = create_model("mobilefacenet", embedding_size=16)
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "dp.pth")
    state_dict, info = load_checkpoint(tmp_path / "dp.pth")
    assert info == {} and set(state_dict) == set(model.state_dict())
    load_weights(create_model("mobilefacenet", embedding_size=16), state_dict)


def test_mismatch_names_keys_and_shapes(tmp_path):
    state_dict = create_model("mobilefacenet", embedding_size=16).state_dict()
    state_dict.pop("conv1.conv.weight")
    state_dict["extra.weight"] = torch.zeros(1)
    with pytest.raises(UserError) as e:
        load_weights(create_model("mobilefacenet", embedding_size=32), state_dict, "x.pth")
    message = str(e.value)
    assert "missing keys: conv1.conv.weight" in message and "unexpected keys: extra.weight" in message
    assert "linear.weight (16, 512) vs model (32, 512)" in message and "\n" not in message


class Evil:
    def __reduce__(self):
        import pathlib
        return (pathlib.Path.touch, (pathlib.Path(self.target),))


def test_malicious_pickle_refused(tmp_path):
    target = tmp_path / "pwned"
    evil = Evil()
    evil.target = str(target)
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"weight": evil}, f)
    with pytest.raises(UserError, match="refused to load"):
        load_checkpoint(tmp_path / "evil.pth")
    assert not target.exists()


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x.pth").write_text("hello")
    with pytest.raises(UserError, match="x.pth: not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "x.pth")
