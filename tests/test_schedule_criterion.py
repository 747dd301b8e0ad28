"""auto_make_yaml measures its candidate schedules with the criterion the sensitivity CSV was made with (its
`criterion` column; a CSV from before the column: L1), and refuses a CSV it cannot say that of."""
import pytest
import torch

from compression_tool.commen_utils.errors import UserError
from compression_tool.prune_module import thinning
from compression_tool.pruning_analysis_tools.auto_make_yaml import ScheduleConfig, make_schedule
from compression_tool.pruning_analysis_tools.curves import read_curves
from compression_tool.test_module.evaluate import EvaluationConfig
from tests.cli import ORL, one_line_error, run_in_process, subset_pairs
from tests.helpers import randomize

TINY = '''import torch.nn as nn

EMBEDDING_SIZE = 8


def build(input_size=(112, 112), embedding_size=8):
    return nn.Sequential(nn.Conv2d(3, 8, 3, 4, 1, bias=False), nn.BatchNorm2d(8), nn.PReLU(8),
                         nn.Conv2d(8, 16, 3, 4, 1, bias=False), nn.BatchNorm2d(16), nn.PReLU(16),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, embedding_size))
'''
LAYERS = ("0.weight", "3.weight")  # the tiny model's two prunable groups


def write_csv(path, criteria=None):
    """A sensitivity CSV of the tiny model, two levels per layer; `criteria`: the criterion column's value on
    each row (None: no such column, as Distiller's and this tool's older CSVs)."""
    rows = [(layer, level, 0.9 - level * (i + 1) / 4, 1.0 - level * (i + 1) / 4)
            for i, layer in enumerate(LAYERS) for level in (0.0, 0.5)]
    header = "parameter,sparsity,top1,top5,loss,cosine" + (",criterion" if criteria else "")
    lines = [header] + [f"{layer},{level},{top1},0,0,{cosine}" + (f",{criteria[i]}" if criteria else "")
                        for i, (layer, level, top1, cosine) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("criteria, expected", [(None, "l1"), (["fpgm"] * 4, "fpgm"), (["l1", "", "l1", ""], "l1")])
def test_the_curves_know_their_criterion(tmp_path, criteria, expected):
    assert read_curves(write_csv(tmp_path / "sa.csv", criteria)).criterion == expected


@pytest.mark.parametrize("criteria, message", [
    (["l1", "l1", "fpgm", "fpgm"], "rows ranked with different criteria (fpgm, l1)"),
    (["magnitude"] * 4, "criterion magnitude is not one this tool knows (l1, fpgm, hrank)"),
])
def test_a_csv_of_mixed_or_unknown_criteria_is_refused_in_one_line(tmp_path, criteria, message):
    csv = write_csv(tmp_path / "sa.csv", criteria)
    with pytest.raises(UserError) as caught:
        read_curves(csv)
    assert str(caught.value).startswith(f"{csv}: ") and message in str(caught.value)
    line = one_line_error(run_in_process("--csv", csv, "--model", "sface", "--target_macs_ratio", "0.8", "--output",
                                         tmp_path / "s.yaml", script="pruning_analysis_tools/auto_make_yaml.py"))
    assert line == f"error: {caught.value}" and not (tmp_path / "s.yaml").exists()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny model's file and random weights (non-trivial BN), and 16 ORL pairs to measure on."""
    tmp = tmp_path_factory.mktemp("tiny")
    (tmp / "tiny.py").write_text(TINY)
    model = f"{tmp / 'tiny.py'}:build"
    torch.manual_seed(0)
    from compression_tool.model_define import create_model
    torch.save(randomize(create_model(model)).state_dict(), tmp / "w.pth")
    return model, tmp / "w.pth", EvaluationConfig("lfw", str(ORL), str(subset_pairs(tmp, 16)), batch_size=16)


@pytest.fixture
def rankings(monkeypatch):
    """Every (criterion, whether it holds ranks) a candidate was pruned and repaired with for its measurement
    (the budget's bisections prune too, for the widths only, with prune_model: not recorded)."""
    seen = []
    prune_and_repair = thinning.prune_and_repair

    def measuring_spy(model, input_size, ratios, criterion=None, *args, **kwargs):
        seen.append((criterion.name if criterion else "l1", getattr(criterion, "ranks", None) is not None))
        return prune_and_repair(model, input_size, ratios, criterion, *args, **kwargs)
    monkeypatch.setattr(thinning, "prune_and_repair", measuring_spy)
    return seen


@pytest.mark.parametrize("criteria, expected", [(None, "l1"), (["fpgm"] * 4, "fpgm"), (["hrank"] * 4, "hrank")])
def test_candidates_are_measured_with_the_csvs_criterion(tmp_path, tiny, rankings, criteria, expected):
    model, weights, evaluation = tiny
    result = make_schedule(ScheduleConfig(csv=str(write_csv(tmp_path / "sa.csv", criteria)), model=model,
                                          output=str(tmp_path / "s.yaml"), target_macs_ratio=0.8,
                                          checkpoint=str(weights), evaluation=evaluation, hrank_batches=1,
                                          rank_path=str(tmp_path / "ranks")))
    assert len(result["candidates"]) > 1 and result["criterion"] == expected
    # every candidate measured was pruned with the CSV's criterion (HRank holding its ranks)
    assert len(rankings) >= len(result["candidates"]) and set(rankings) == {(expected, expected == "hrank")}
    assert (f"(analysis with --criterion {expected}, " in (tmp_path / "s.yaml").read_text()) == (expected != "l1")
    # HRank's ranks were computed on the pairs' images and cached where --mode prune --hrank looks for them
    assert len(list((tmp_path / "ranks").glob("*_112x112_b1.npz"))) == (expected == "hrank")


def test_candidates_measured_with_other_repair_options_than_the_curves_say_so(tmp_path, tiny, caplog):
    model, weights, evaluation = tiny
    make_schedule(ScheduleConfig(csv=str(write_csv(tmp_path / "sa.csv")), model=model, output=str(tmp_path / "s.yaml"),
                                 target_macs_ratio=0.8, checkpoint=str(weights), evaluation=evaluation,
                                 bn_recalibrate=2))
    assert "the curves were measured with no repair, the candidates are measured with --bn_recalibrate 2" in caplog.text
