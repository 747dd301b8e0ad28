"""Fine-tuning: schedule and heads as pure functions; on a tiny ImageFolder, a run killed with SIGKILL and
resumed ends with exactly the weights of an uninterrupted one; torchrun with 2 processes keeps the replicas
identical; distillation alone needs a teacher."""
import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict

import numpy as np
import pytest
import torch

from compression_tool.commen_utils.checkpoint import load_checkpoint, save_checkpoint
from compression_tool.commen_utils.errors import UserError
from compression_tool.model_define.keep import record_keep
from compression_tool.model_define.loading import load_model
from compression_tool.prune_module.graph import ChannelGraph
from compression_tool.prune_module.thinning import prune_model
from tests.cli import ORL, ROOT, SFACE, one_line_error, read_json, run_cli, subset_pairs
from compression_tool.test_module.evaluate import make_evaluator
from compression_tool.train_module.heads import ArcFace, CosFace, embedding_distillation, similarity_distillation
from compression_tool.train_module.trainer import (FineTuneConfig, FineTuneRun, learning_rate, mixed, parameter_groups,
                                                  run_finetune)

TRAIN = ORL.parent.parent / "train_data/orl_s1-20"


def test_learning_rate_schedule():
    config = FineTuneConfig(lr=0.1, milestones=(2, 4, 5, 7), warmup_epochs=1)
    assert learning_rate(config, 0.5) == pytest.approx(0.05)
    assert [learning_rate(config, e) for e in (1, 2, 4, 5, 7)] == pytest.approx([0.1, 0.01, 1e-3, 1e-4, 1e-5])
    cosine = FineTuneConfig(lr=0.1, epochs=4, lr_schedule="cosine", milestones=(1,))  # milestones ignored
    assert [learning_rate(cosine, e) for e in (0, 1, 2, 3, 4)] == pytest.approx(
        [0.1, 0.05 * (1 + 2 ** -0.5), 0.05, 0.05 * (1 - 2 ** -0.5), 0.0])


def test_every_schedule_and_head_choice_has_an_implementation():
    from compression_tool.train_module.config import Head, LRSchedule
    from compression_tool.train_module.heads import HEADS
    from compression_tool.train_module.trainer import LR_SCHEDULES

    assert set(LR_SCHEDULES) == set(LRSchedule)
    assert set(HEADS) == set(Head) - {Head.NONE, Head.AUTO}


def test_no_weight_decay_on_bn_bias_prelu():
    model = load_model("mobilefacenet").model
    decay, no_decay = parameter_groups([model], 5e-4)
    assert all(p.ndim > 1 for p in decay["params"]) and no_decay["weight_decay"] == 0.0
    named = {id(p): n for n, p in model.named_parameters()}
    assert any("prelu" in named[id(p)] or "bn" in named[id(p)] for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


@pytest.mark.parametrize("head_class", [ArcFace, CosFace])
def test_margin_heads_penalise_only_the_target(head_class):
    torch.manual_seed(0)
    head = head_class(8, 5, s=1.0, m=0.3)
    embeddings, labels = torch.randn(6, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    plain = head_class(8, 5, s=1.0, m=0.0)
    plain.weight = head.weight
    assert head(embeddings, labels) > plain(embeddings, labels)
    assert embedding_distillation(embeddings, embeddings) == pytest.approx(0.0, abs=1e-6)


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """SFace with a quarter of every group removed, 4 identities x 4 images, 24 pairs."""
    tmp = tmp_path_factory.mktemp("ft")
    train = tmp / "train"
    for identity in sorted(TRAIN.iterdir())[:4]:
        (train / identity.name).mkdir(parents=True)
        for image in sorted(identity.iterdir())[:4]:
            shutil.copy(image, train / identity.name / image.name)
    loaded = load_model("sface", SFACE)
    graph = ChannelGraph(loaded.model, (112, 112))
    prune_model(loaded.model, (112, 112), {g.param: 0.25 for g in graph.groups}, graph=graph)
    student = save_checkpoint(tmp / "pruned.pt", loaded.model, "sface", keep=record_keep(loaded.model),
                              input_size=(112, 112), embedding_size=128)
    return tmp, train, student, subset_pairs(tmp, 24)


def finetune_args(setup, work, *extra):
    tmp, train, student, pairs = setup
    return ["--mode", "finetune", "--pruned_checkpoint", student, "--teacher_path", SFACE, "--train_data_path",
            train, "--test_root_path", ORL, "--img_list_label_path", pairs, "--device", "cpu", "--epoch", "2",
            "--milestones", "1", "--lr", "0.01", "--train_batch_size", "8", "--work_path", work, *extra]


def weights(run_folder):
    return load_checkpoint(run_folder / "last.pt")[0]


@pytest.fixture(scope="module")
def uninterrupted(tiny_setup):
    work = tiny_setup[0] / "straight"
    run_cli(*finetune_args(tiny_setup, work, "--result_json", work / "r.json"))
    return work


def test_finetune_writes_log_plot_and_best(uninterrupted):
    result = read_json(uninterrupted / "r.json")
    folder = ROOT / result["run_folder"] if not os.path.isabs(result["run_folder"]) else result["run_folder"]
    rows = list(csv.DictReader(open(f"{folder}/log.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"] and result["epochs"] == 2
    assert float(rows[0]["accuracy"]) == pytest.approx(result["accuracy_start"])
    assert result["accuracy"] == pytest.approx(max(float(r["accuracy"]) for r in rows))
    assert os.path.getsize(f"{folder}/curves.png") > 10_000
    assert load_checkpoint(result["best_checkpoint"])[1]["keep"]  # the pruned widths travel with it


def test_sigkill_then_resume_gives_the_same_weights(tiny_setup, uninterrupted, tmp_path):
    work = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *map(str, finetune_args(tiny_setup, work))],
                            cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list(work.glob("*/log.csv")):
        assert time.time() < deadline and proc.poll() is None, "the first epoch never finished"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    folder = next(work.glob("*/log.csv")).parent
    run_cli(*finetune_args(tiny_setup, work, "--resume", folder))
    expected, got = weights(next(uninterrupted.glob("*/last.pt")).parent), weights(folder)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_torchrun_two_processes_keep_replicas_identical(tiny_setup, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                           str(ROOT / "main.py"), *map(str, finetune_args(tiny_setup, tmp_path, "--epoch", "1"))],
                          cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(open(next(tmp_path.glob("*/log.csv")))))
    assert [r["replicas_identical"] for r in rows] == ["True", "True"] and float(rows[1]["loss"]) > 0


def test_distillation_alone_needs_a_teacher(tiny_setup, tmp_path):
    args = finetune_args(tiny_setup, tmp_path, "--head", "none")
    args.remove("--teacher_path")
    args.remove(str(SFACE)) if str(SFACE) in args else args.remove(SFACE)
    assert "--teacher_path" in one_line_error(run_cli(*args, check=False))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("change, message", [(("--lr", "0.02"), "a run with lr 0.01, this command has 0.02"),
                                             (("--pruned_checkpoint", SFACE), "a run of another model"),
                                             (("--train_data_path", TRAIN), "--train_data_path differs")])
def test_resume_refuses_a_run_of_another_model_or_config(tiny_setup, uninterrupted, change, message):
    folder = next(uninterrupted.glob("*/last.pt")).parent
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    line = one_line_error(run_cli(*finetune_args(tiny_setup, uninterrupted, "--resume", folder, *change),
                                  check=False))
    assert message in line and "last.pt" in line, line
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_mixup_blends_pairs_of_the_batch_reproducibly():
    images = torch.arange(4.0)[:, None, None, None].expand(4, 3, 2, 2).clone()
    blend = mixed(images, 0.5, np.random.default_rng(3))
    assert torch.equal(blend, mixed(images, 0.5, np.random.default_rng(3)))
    assert not torch.equal(blend, images) and (blend >= 0).all() and (blend <= 3).all()
    assert torch.allclose(blend[:, 0], blend[:, 2])  # one weight per image, the same blend in every channel


def test_similarity_distillation_compares_any_widths():
    torch.manual_seed(0)
    teacher = [torch.randn(6, 16, 4, 4), torch.randn(6, 8)]
    assert similarity_distillation(teacher, teacher).item() == pytest.approx(0, abs=1e-7)
    assert similarity_distillation([teacher[0] * 3, teacher[1]], teacher).item() == pytest.approx(0, abs=1e-6)
    pruned = [teacher[0][:, :10], torch.randn(6, 5)]  # fewer channels, another batch structure
    assert similarity_distillation(pruned, teacher).item() > 1e-3


def test_run_finetune_as_a_function_with_mixup_and_feature_distillation(tiny_setup, tmp_path):
    tmp, train, student, pairs = tiny_setup
    loaded, teacher = load_model(checkpoint=student), load_model("sface", SFACE).model
    evaluator = make_evaluator("lfw", ORL, pairs, loaded.spec, batch_size=16, cache_images=True, progress=False)
    config = FineTuneConfig(epochs=1, lr=0.001, milestones=(), batch_size=8, head="none", kd_weight=1.0, mixup=1.0,
                            freeze_bn_stats=True, feature_kd=1.0)
    seen = []  # a caller's own callback runs after the run's: the epoch's row is in and best.pt decided
    result = run_finetune(config, loaded, evaluator=evaluator, callbacks=[lambda job: seen.append(
                              (job.epoch, job.history[-1]["epoch"], any(tmp_path.glob("*/log.csv"))))],
                          run=FineTuneRun(train_root=str(train), work_path=str(tmp_path)), teacher=teacher)
    assert seen == [(1, 1, True)]
    rows = list(csv.DictReader(open(result.log)))
    assert [r["epoch"] for r in rows] == ["0", "1"] and 0 < float(rows[1]["kd"]) < 1
    assert float(rows[1]["features"]) > 0  # the pruned BN outputs were matched to the teacher's
    assert load_checkpoint(next(tmp_path.glob("*/last.pt")))[1]["metadata"]["config"]["mixup"] == 1.0


def test_best_of_trained_keeps_a_trained_epoch_even_when_it_only_ties_the_start(tiny_setup, tmp_path):
    tmp, train, student, pairs = tiny_setup
    loaded, teacher = load_model(checkpoint=student), load_model("sface", SFACE).model
    evaluator = make_evaluator("lfw", ORL, pairs, loaded.spec, batch_size=16, cache_images=True, progress=False)
    for best_of_trained, epoch in ((False, 0), (True, 1)):  # lr 0: epoch 1 scores exactly what the start did
        config = FineTuneConfig(epochs=1, lr=0.0, milestones=(), batch_size=8, head="none", kd_weight=1.0,
                                freeze_bn_stats=True, best_of_trained=best_of_trained)
        result = run_finetune(config, loaded, evaluator=evaluator,
                              run=FineTuneRun(train_root=str(train), work_path=str(tmp_path / str(epoch))),
                              teacher=teacher)
        assert load_checkpoint(result.best_checkpoint)[1]["metadata"]["epoch"] == epoch
        assert result.accuracy == result.accuracy_start


def test_mixup_needs_distillation_alone(tiny_setup, tmp_path):
    line = one_line_error(run_cli(*finetune_args(tiny_setup, tmp_path, "--mixup", "1", "--head", "arcface"),
                                  check=False))
    assert "--mixup" in line and "--head none" in line


@pytest.mark.parametrize("flag", ["--scale_jitter", "--brightness_jitter"])
def test_jitter_outside_a_fraction_is_one_line(tiny_setup, tmp_path, flag):
    line = one_line_error(run_cli(*finetune_args(tiny_setup, tmp_path, flag, "1.5"), check=False))
    assert flag in line and "fraction" in line


def test_more_epochs_resume_a_step_schedule_but_not_a_cosine_one():
    from types import SimpleNamespace

    from compression_tool.train_module.trainer import check_resumed_run

    loaded = SimpleNamespace(arch="sface", keep={"conv": 8})
    for schedule, refused in (("step", False), ("cosine", True)):
        saved = {"arch": "sface", "keep": {"conv": 8},
                 "metadata": {"config": asdict(FineTuneConfig(epochs=2, lr_schedule=schedule))}}
        longer = FineTuneConfig(epochs=4, lr_schedule=schedule)
        if refused:
            with pytest.raises(UserError, match="a run with epochs 2, this command has 4"):
                check_resumed_run("last.pt", saved, loaded, longer, {})
        else:
            check_resumed_run("last.pt", saved, loaded, longer, {})


def test_an_unknown_lr_schedule_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match="--lr_schedule linear: choose one of step, cosine"):
        run_finetune(FineTuneConfig(lr_schedule="linear"), None, evaluator=None,
                     run=FineTuneRun(train_root=str(TRAIN), work_path=str(tmp_path)))
