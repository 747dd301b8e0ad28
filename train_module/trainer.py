"""`--mode finetune`: win back what pruning cost. Any model the tool loads (zoo, pruned or user checkpoint) is
trained on an ImageFolder with a margin head (ArcFace / CosFace) and/or distillation from the unpruned teacher's
embeddings, scored on the pair list every epoch; the best checkpoint is kept, the last one resumes a run.
One process or many (torchrun: DDP, gloo on CPU, NCCL on GPU).
"""
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from compression_tool.commen_utils.checkpoint import load_checkpoint, save_checkpoint, weights_digest
from compression_tool.commen_utils.distributed import distributed_context, local_device
from compression_tool.commen_utils.errors import UserError
from compression_tool.commen_utils.hooks import layer_outputs
from compression_tool.commen_utils.progress import hidden
from compression_tool.commen_utils.results import ModeResult, plain_data
from compression_tool.commen_utils.timestamp import time_stamp
from compression_tool.dataloader import TrainImages, make_loader, training_set
from compression_tool.model_define.loading import layout_of
from compression_tool.test_module.evaluate import HEADLINE

from .callbacks import EpochCallback, epoch_callbacks
from .config import FineTuneConfig, Head, LRSchedule
from .heads import HEADS, embedding_distillation, similarity_distillation

log = logging.getLogger(__name__)


def step_decay(config: FineTuneConfig, epoch: float) -> float:
    """Divided by 10 at each milestone passed."""
    return 0.1 ** sum(epoch >= m for m in config.milestones)


def cosine_decay(config: FineTuneConfig, epoch: float) -> float:
    """From 1 down to 0 along half a cosine over the run: after a repair the last epochs only settle, they do not
    drift away from the repaired start (BENCHMARKS.md, "Fine-tuning recovery")."""
    return 0.5 * (1 + math.cos(math.pi * min(epoch, config.epochs) / config.epochs))


LR_SCHEDULES = {LRSchedule.STEP: step_decay, LRSchedule.COSINE: cosine_decay}


def learning_rate(config: FineTuneConfig, epoch: float) -> float:
    """Linear warm-up over `warmup_epochs`, times the schedule's decay at this (fractional) epoch."""
    warm = min(1.0, (epoch + 1e-9) / config.warmup_epochs) if config.warmup_epochs > 0 else 1.0
    return config.lr * warm * LR_SCHEDULES[config.lr_schedule](config, epoch)


def mixed(images, alpha, draws: np.random.Generator):
    """Each image blended with another of the batch, weights drawn from Beta(alpha, alpha). With the
    teacher's embedding of the blend as the target, every blend is a new consistent example, so a few
    hundred images go further than flips and shifts take them."""
    weights = torch.from_numpy(draws.beta(alpha, alpha, len(images))).to(images)[:, None, None, None]
    partners = torch.from_numpy(draws.permutation(len(images))).to(images.device)
    return weights * images + (1 - weights) * images[partners]


def parameter_groups(modules: list, weight_decay: float) -> list[dict]:
    """Weight decay on conv/linear weights and head centres only: not on BN, biases or PReLU slopes."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def shared_feature_layers(student: nn.Module, teacher: nn.Module) -> list[str]:
    """The BatchNorm2d layers both models have under the same name (a pruned model and its unpruned self)."""
    teachers = dict(teacher.named_modules())
    return [name for name, m in student.named_modules()
            if isinstance(m, nn.BatchNorm2d) and isinstance(teachers.get(name), nn.BatchNorm2d)]


class Learner(nn.Module):
    """What DDP wraps: the model, its head, and the teacher's targets (not trained, not synchronised)."""

    def __init__(self, model, head, kd_weight, feature_kd=0.0, feature_layers=()):
        super().__init__()
        self.model, self.head, self.kd_weight = model, head, kd_weight
        self.feature_kd, self.feature_layers = feature_kd, list(feature_layers)

    def forward(self, images: torch.Tensor, labels: torch.Tensor, teacher_embeddings: torch.Tensor | None,
                teacher_maps: dict | None = None) -> dict:
        with layer_outputs(self.model, self.feature_layers if teacher_maps else ()) as maps:
            embeddings = self.model(images)
        losses = {}
        if self.head is not None:
            losses["head"] = self.head(embeddings, labels)
        if teacher_embeddings is not None:
            losses["kd"] = self.kd_weight * embedding_distillation(embeddings, teacher_embeddings)
        if teacher_maps:
            losses["features"] = self.feature_kd * similarity_distillation(
                [maps[name] for name in self.feature_layers], [teacher_maps[name] for name in self.feature_layers])
        return losses


def replicas_identical(model: nn.Module, world: int) -> bool:
    """Every process holds the same weights and buffers as rank 0 (checked rather than trusted). DDP keeps
    the weights equal; BN running statistics drift by the last batch of each process, so rank 0's are
    broadcast first: they are the ones saved."""
    if world == 1:
        return True
    for buffer in model.buffers():
        dist.broadcast(buffer, 0)
    flat = torch.cat([p.detach().flatten().double() for p in model.state_dict().values() if p.is_floating_point()])
    reference = flat.clone()
    dist.broadcast(reference, 0)
    gap = (flat - reference).abs().max()
    dist.all_reduce(gap, op=dist.ReduceOp.MAX)
    return gap.item() == 0.0


class FineTune:
    def __init__(self, loaded, evaluator, config, train_root, teacher=None, head_state=None, workers=0,
                 device="cpu"):
        self.rank, self.world = distributed_context(device)
        self.device = local_device(device)
        self.loaded, self.evaluator, self.config = loaded, evaluator.on(self.device), config
        self.model = loaded.model.to(self.device)
        self.teacher = teacher.to(self.device).eval() if teacher is not None else None
        images = training_set(train_root)
        self.dataset = TrainImages(images, loaded.spec, config.seed, config.shift, config.scale_jitter,
                                   config.brightness_jitter)
        per_rank = max(1, config.batch_size // self.world)
        if len(images) < per_rank * self.world:
            raise UserError(f"{train_root}: {len(images)} images, fewer than one batch of {config.batch_size}")
        self.sampler = DistributedSampler(self.dataset, self.world, self.rank, shuffle=True, seed=config.seed,
                                          drop_last=True)
        self.loader = make_loader(self.dataset, per_rank, workers, sampler=self.sampler, drop_last=True)
        self.head = None
        torch.manual_seed(config.seed)  # the head's initial centres
        if config.head != Head.NONE:
            kwargs = {"s": config.margin_s, **({"m": config.margin_m} if config.margin_m is not None else {})}
            if images.identities is None:
                raise UserError(f"{train_root}: the number of identities is unknown (no header record, no property "
                                "file): a margin head needs it; use --head none")
            self.head = HEADS[config.head](loaded.embedding_size, images.identities, **kwargs).to(self.device)
            if head_state is not None:
                self.head.load_state_dict(head_state)
        self.feature_layers = []
        if config.feature_kd > 0:
            self.feature_layers = shared_feature_layers(self.model, self.teacher) if self.teacher is not None else []
            if not self.feature_layers:
                raise UserError("--feature_kd: the teacher (--teacher_path) has no BatchNorm2d layer of the same name "
                                "as the student's: feature maps cannot be matched")
        self.learner = Learner(self.model, self.head, config.kd_weight, config.feature_kd, self.feature_layers)
        self.trainable = self.learner if self.world == 1 else DistributedDataParallel(
            self.learner, device_ids=[torch.device(self.device).index] if "cuda" in str(self.device) else None)
        self.optimizer = torch.optim.SGD(parameter_groups([self.model] + ([self.head] if self.head else []),
                                                          config.weight_decay), lr=config.lr,
                                         momentum=config.momentum)
        self.epoch, self.best, self.history = 0, -math.inf, []

    def state(self) -> dict:
        return {"epoch": self.epoch, "best": self.best, "history": self.history,
                "optimizer": self.optimizer.state_dict(),
                "head": self.head.state_dict() if self.head is not None else None}

    def restore(self, state: dict) -> None:
        self.epoch, self.best, self.history = state["epoch"], state["best"], state["history"]
        self.optimizer.load_state_dict(state["optimizer"])
        if self.head is not None and state["head"] is not None:
            self.head.load_state_dict(state["head"])

    def train_epoch(self) -> dict:
        self.learner.train()
        if self.config.freeze_bn_stats:
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        self.sampler.set_epoch(self.epoch)
        self.dataset.set_epoch(self.epoch)
        sums, steps = {}, len(self.loader)
        bar = tqdm(self.loader, desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
                   disable=hidden(self.rank == 0), leave=False)
        for step, (images, labels) in enumerate(bar):
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(self.config, self.epoch + step / steps)
            images, labels = images.to(self.device), labels.to(self.device)
            if self.config.mixup > 0:  # draws fixed by (seed, rank, epoch, step): a resumed run sees the same
                images = mixed(images, self.config.mixup,
                               np.random.default_rng((self.config.seed, self.rank, self.epoch, step)))
            target, teacher_maps = None, {}
            if self.teacher is not None:
                with torch.no_grad(), layer_outputs(self.teacher, self.feature_layers) as teacher_maps:
                    target = self.teacher(images)
            losses = self.trainable(images, labels, target, teacher_maps or None)
            loss = sum(losses.values())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            for name, value in {"loss": loss, **losses}.items():
                sums[name] = sums.get(name, 0.0) + value.item()
            bar.set_postfix(loss=f"{loss.item():.4f}")
        self.epoch += 1
        return {name: total / steps for name, total in sums.items()}

    def score(self) -> float:
        """Headline metric on the pair list (rank 0 scores; the others get its number)."""
        value = torch.tensor([self.evaluator(self.model)["headline"] if self.rank == 0 else 0.0], dtype=torch.float64)
        if self.world > 1:
            dist.broadcast(value, 0)
        return value.item()


def check_resumed_run(last, info: dict, loaded, config: FineTuneConfig, run_identity: dict):
    """Refuse to continue a run folder of another model or another configuration (the number of epochs
    may grow, except under a cosine schedule). Fields an older last.pt lacks are not checked."""
    if info.get("arch") != loaded.arch or info.get("keep") != loaded.keep:
        raise UserError(f"{last}: a run of another model ({info.get('arch')}, other widths), not of {loaded.arch}")
    metadata = info.get("metadata", {})
    for key, value in run_identity.items():
        if key in metadata and metadata[key] != value:
            what = "the model it started from" if key == "start_weights" else "--train_data_path"
            raise UserError(f"{last}: {what} differs ({metadata[key]} there, {value} now)")
    saved = metadata.get("config", {})
    growable = () if config.lr_schedule == LRSchedule.COSINE else ("epochs",)  # a cosine's shape depends on the epochs
    for key, value in asdict(config).items():
        if key not in growable and key in saved and plain_data(saved[key]) != plain_data(value):
            raise UserError(f"{last}: a run with {key} {saved[key]}, this command has {value}")


@dataclass(frozen=True)
class FineTuneRun:
    """Where a fine-tuning run reads and writes (not part of what it learns: a resumed run may move)."""
    train_root: str
    work_path: str = "work_space/finetune"
    resume: str | None = None
    head_path: str | None = None
    workers: int = 0
    device: str = "cpu"
    overwrite: bool = False


@dataclass(frozen=True)
class FineTuneResult(ModeResult):
    accuracy_start: float  # the headline metric of the model as given
    accuracy: float  # best.pt's
    epochs: int
    best_checkpoint: str
    run_folder: str
    log: str


def resume_from(job: FineTune, last: Path, loaded, config: FineTuneConfig, run_identity: dict) -> None:
    state_dict, info = load_checkpoint(last)
    check_resumed_run(last, info, loaded, config, run_identity)
    job.model.load_state_dict(state_dict)
    job.restore(info["metadata"]["train_state"])
    if job.rank == 0:
        log.info(f"resuming {last.parent} after epoch {job.epoch}")


def run_finetune(config: FineTuneConfig, loaded, *, evaluator, run: FineTuneRun, teacher=None,
                 callbacks: Sequence[EpochCallback] = ()) -> FineTuneResult:
    """`--mode finetune`: train `loaded`'s model, scoring it on `evaluator` after every epoch; `run`: where it reads
    and writes; `teacher`: the unpruned model to distil from; `callbacks`: called after every epoch on rank 0,
    after the run's own (best.pt, last.pt, log, plot)."""
    config = config.with_teacher(teacher is not None)
    resume = Path(run.resume) if run.resume else None
    folder = resume or Path(run.work_path) / time_stamp()
    head_state = None
    if run.head_path:
        head_state, _ = load_checkpoint(run.head_path)
    run_identity = {"start_weights": weights_digest(loaded.model), "train_data": str(run.train_root)}
    job = FineTune(loaded, evaluator, config, run.train_root, teacher, head_state, run.workers,
                   run.device)
    if resume:
        resume_from(job, resume / "last.pt", loaded, config, run_identity)
    elif job.rank == 0 and (folder / "last.pt").exists() and not run.overwrite:
        raise UserError(f"{folder}: a run is already there (pass --resume {folder}, or --overwrite)")
    headline = HEADLINE[evaluator.data_source]
    common = layout_of(loaded)
    after_epoch = [*epoch_callbacks(folder, headline, common, {"config": plain_data(asdict(config)), **run_identity}),
                   *callbacks]
    if not job.history:  # the model as given is the first "best": fine-tuning must beat it to replace it
        start = job.score()
        job.history.append({"epoch": 0, headline: start, "replicas_identical": True})
        job.best = -math.inf if config.best_of_trained else start
        if job.rank == 0:
            save_checkpoint(folder / "best.pt", job.model, metadata={"epoch": 0, headline: start}, **common)
    if job.rank == 0:
        features = f", feature maps {config.feature_kd} at {len(job.feature_layers)} layers" \
            if job.feature_layers else ""
        log.info(f"fine-tuning {loaded.arch} for {config.epochs} epochs on {run.train_root} "
                 f"({len(job.dataset)} images, head {config.head}, distillation weight {config.kd_weight}{features}); "
                 f"{headline} before: {job.history[0][headline]:.4f}; run folder {folder}")
    try:
        while job.epoch < config.epochs:
            started = time.perf_counter()
            losses = job.train_epoch()
            identical = replicas_identical(job.learner, job.world)
            value = job.score()
            row = {"epoch": job.epoch, "lr": learning_rate(config, job.epoch - 1), headline: value,
                   "seconds": round(time.perf_counter() - started, 2), "replicas_identical": identical, **losses}
            job.history.append(row)
            for callback in after_epoch if job.rank == 0 else ():
                callback(job)
    except KeyboardInterrupt:
        if job.epoch == 0:
            raise KeyboardInterrupt(f"fine-tuning stopped during epoch 1: nothing to resume yet ({folder}/best.pt "
                                    f"is the model as given)") from None
        raise KeyboardInterrupt(f"fine-tuning stopped during epoch {job.epoch + 1}; {folder}/last.pt holds epoch "
                                f"{job.epoch}: continue with the same command and --resume {folder}") from None
    if job.rank == 0 and not config.best_of_trained and \
            all(row[headline] <= job.history[0][headline] for row in job.history[1:]):
        log.info(f"no epoch beat the model as given ({job.best:.4f}): {folder}/best.pt is that model")
    return FineTuneResult(job.history[0][headline], job.best, job.epoch, str(folder / "best.pt"), str(folder),
                          str(folder / "log.csv"))
