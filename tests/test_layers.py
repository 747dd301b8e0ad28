"""The layers import downwards only: what loads, scores and measures a model (commen_utils, model_define,
test_module, dataloader.py) never imports an engine, a mode or a CLI; engines that extend them (an INT8
checkpoint's loader, say) register themselves. Imports inside functions count too."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOWER = ["commen_utils", "model_define", "test_module", "dataloader.py"]
ABOVE = {"modes", "quant_module", "prune_module", "train_module", "pruning_analysis_tools", "main", "pruning",
         "quantization", "sensitivity_analysis"}


def imported_parts(path: Path) -> set:
    """The compression_tool folders and scripts a file imports (absolute `compression_tool.x` imports; relative
    ones stay inside its own folder unless they climb out)."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > 1:  # `from ..x import y` leaves the file's folder
                parts.add((node.module or "").split(".")[0])
            names = [node.module or ""] if node.level == 0 else []
        else:
            continue
        parts.update(name.split(".")[1] for name in names if name.startswith("compression_tool."))
    return parts


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_import_nothing_above_them(layer):
    files = [ROOT / layer] if layer.endswith(".py") else sorted((ROOT / layer).rglob("*.py"))
    wrong = {f"{path.relative_to(ROOT)} imports {part}" for path in files for part in imported_parts(path) & ABOVE}
    assert not wrong, sorted(wrong)


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from compression_tool.quant_module.torch_fx import load_int8\n")
    assert imported_parts(source) == {"quant_module"}
