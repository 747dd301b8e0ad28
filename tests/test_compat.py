"""Files a user has on disk, written by an earlier version (tests/fixtures, see make_fixtures.py), keep working:
the sensitivity CSV still gives the same schedule, the schedule YAML still prunes to the same widths, and
the pruned checkpoint still rebuilds itself and computes the same embeddings."""
import pytest
import torch

from compression_tool.commen_utils.schedule import read_schedule
from compression_tool.model_define.loading import load_model
from compression_tool.pruning_analysis_tools.auto_make_yaml import ScheduleConfig, make_schedule
from compression_tool.pruning_analysis_tools.curves import read_curves
from compression_tool.prune_module.thinning import prune_model
from compression_tool.prune_module.sensitivity_csv import read_rows
from tests.fixtures.make_fixtures import HERE, MODEL, fixed_input

PRUNED = HERE / "pruned_inception.pt"


def test_an_earlier_sensitivity_csv_gives_the_same_schedule(tmp_path):
    _, rows = read_rows(HERE / "sensitivity.csv")
    curves = read_curves(HERE / "sensitivity.csv")
    assert len(rows) == 3 * len(curves.layers) and curves.repair == {"reconstruct": 0, "bn_recalibrate": 0}
    result = make_schedule(ScheduleConfig(csv=str(HERE / "sensitivity.csv"), model=MODEL,
                                          output=str(tmp_path / "s.yaml"), target_macs_ratio=0.5))
    assert result["ratios"] == pytest.approx(read_schedule(HERE / "schedule.yaml"))


def test_an_earlier_schedule_prunes_to_the_same_widths():
    model = load_model(MODEL, HERE / "inception_weights.pth").model
    prune_model(model, (112, 112), read_schedule(HERE / "schedule.yaml"))
    expected = load_model(checkpoint=PRUNED).keep
    assert {name: m.weight.shape[0] for name, m in model.named_modules() if name in expected} == expected


def test_an_earlier_pruned_checkpoint_rebuilds_and_computes_the_same_embeddings():
    loaded = load_model(checkpoint=PRUNED)
    assert loaded.arch == MODEL and loaded.keep
    with torch.no_grad():
        got = loaded.model.eval()(fixed_input())
    assert torch.allclose(got, torch.load(HERE / "pruned_outputs.pt", weights_only=True), rtol=1e-4, atol=1e-4)
