"""The liveness protocol: `path class` lists, P(class 1) as the score, TPR of class 1 at FPR 1e-3."""
import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from compression_tool.model_define import InputSpec
from compression_tool.test_module.evaluate import make_evaluator


class Brightness(nn.Module):
    """Logits that favour class 1 for bright images: a perfect classifier on the list below."""

    def forward(self, x):
        level = x.mean((1, 2, 3))
        return torch.stack([-level, level, 0 * level, 0 * level], 1)


def test_classification_protocol(tmp_path):
    lines = []
    for i in range(20):
        label = 1 if i % 2 else (i // 2) % 4 if (i // 2) % 4 != 1 else 0
        value = 200 if label == 1 else 20
        Image.fromarray(np.full((80, 80, 3), value, np.uint8)).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png {label}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    evaluator = make_evaluator("classification", tmp_path, tmp_path / "list.txt", InputSpec((80, 80), "BGR", 0, 255),
                               target_fprs=(1e-3,), progress=False)
    result = evaluator(Brightness())
    assert result["headline"] == 1.0 and result["auc"] == 1.0 and result["num_images"] == 20
    assert result["headline_name"] == "TPR@FPR=0.001"
