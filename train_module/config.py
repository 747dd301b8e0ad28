"""`--mode finetune`'s settings: plain values that check themselves, and the choices the CLI offers.

The defaults are the recipe BENCHMARKS.md ("Fine-tuning recovery") measured best from an unrepaired prune of the
embedded default: distillation alone from the unpruned model, SGD at lr 0.01 with BN statistics trained, batch 32,
8 epochs with the rate divided by 10 for the last two.
"""
from dataclasses import dataclass, replace
from enum import StrEnum

from compression_tool.commen_utils.choices import check_choices
from compression_tool.commen_utils.errors import UserError


class Head(StrEnum):
    """The margin head over the identities (train_module.heads.HEADS); NONE: distillation alone; AUTO: NONE when
    there is a teacher, ARCFACE otherwise."""
    AUTO = "auto"
    ARCFACE = "arcface"
    COSFACE = "cosface"
    NONE = "none"


class LRSchedule(StrEnum):
    STEP = "step"  # divided by 10 at each milestone
    COSINE = "cosine"  # down to 0 along half a cosine over the run (milestones ignored)


@dataclass(frozen=True)
class FineTuneConfig:
    epochs: int = 8
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple = (6,)
    lr_schedule: LRSchedule = LRSchedule.STEP
    warmup_epochs: float = 0.0
    batch_size: int = 32
    head: Head = Head.AUTO
    margin_s: float = 64.0
    margin_m: float | None = None  # the head's own default
    kd_weight: float | None = None  # None: 1 with a teacher, 0 without
    seed: int = 0
    shift: int = 8  # pixels of random translation
    scale_jitter: float = 0.0  # random zoom by up to this fraction
    brightness_jitter: float = 0.0  # random brightness factor within 1 ± this
    freeze_bn_stats: bool = False  # keep BN running statistics as they are (e.g. re-estimated after pruning)
    mixup: float = 0.0  # Beta(a, a) blends of two training images, distillation only: the teacher sees the blend
    # weight of similarity-preserving distillation at every BatchNorm2d output the student shares (by name)
    # with the teacher
    feature_kd: float = 0.0
    # best.pt competes among the trained epochs only: after a least-squares repair on the very images the
    # choice pairs are made of, the start scores high there for no reason that carries to other identities
    best_of_trained: bool = False

    def __post_init__(self):
        check_choices(self, head=Head, lr_schedule=LRSchedule)
        object.__setattr__(self, "milestones", tuple(self.milestones))
        if self.epochs < 1 or self.batch_size < 1 or self.lr < 0:
            raise UserError(f"epochs {self.epochs}, batch size {self.batch_size}, lr {self.lr}: expected epochs and "
                            "batch size >= 1 and lr >= 0")
        if self.mixup < 0 or self.mixup > 0 and self.head not in (Head.NONE, Head.AUTO):
            raise UserError(f"--mixup {self.mixup}: blends have no identity label; use it with --head none (>= 0)")
        for name in ("scale_jitter", "brightness_jitter"):
            if not 0 <= getattr(self, name) < 1:
                raise UserError(f"--{name} {getattr(self, name)}: expected a fraction in [0, 1), e.g. 0.1")
        if self.feature_kd < 0:
            raise UserError(f"--feature_kd {self.feature_kd}: expected a weight >= 0")

    def with_teacher(self, has_teacher: bool) -> "FineTuneConfig":
        """The settings of a run with or without a teacher: AUTO and the default distillation weight decided."""
        kd_weight = self.kd_weight if self.kd_weight is not None else float(has_teacher)
        head = self.head if self.head != Head.AUTO else Head.NONE if has_teacher and kd_weight > 0 else Head.ARCFACE
        if head == Head.NONE and not (has_teacher and kd_weight > 0):
            raise UserError("--head none trains on distillation alone: give --teacher_path (and --kd_weight > 0)")
        if self.mixup > 0 and head != Head.NONE:
            raise UserError(f"--mixup {self.mixup}: blends have no identity label; use it with --head none")
        if self.feature_kd > 0 and not has_teacher:
            raise UserError(f"--feature_kd {self.feature_kd}: matches the teacher's feature maps; give --teacher_path")
        return replace(self, head=head, kd_weight=kd_weight)
