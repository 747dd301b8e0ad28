"""What a fine-tuning run does after each epoch (on rank 0), as callbacks in arcface_torch's manner: each is
called with the job once the epoch's row is in `job.history`, in the order given. `run_finetune` installs
`epoch_callbacks(...)`; a library caller may add its own (a metrics logger, an early stop) after them."""
import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from compression_tool.commen_utils.atomic import write_text
from compression_tool.commen_utils.checkpoint import save_checkpoint

from .plots import plot_history

if TYPE_CHECKING:
    from .trainer import FineTune

log = logging.getLogger(__name__)
EpochCallback = Callable[["FineTune"], None]


@dataclass(frozen=True)
class SaveBest:
    """best.pt, when the epoch beat every earlier state (and the model as given, unless that does not count)."""
    path: Path
    headline: str
    layout: dict  # what the checkpoint records to rebuild itself (layout_of)

    def __call__(self, job: "FineTune") -> None:
        value = job.history[-1][self.headline]
        if value > job.best:
            job.best = value
            save_checkpoint(self.path, job.model, metadata={"epoch": job.epoch, self.headline: value}, **self.layout)


@dataclass(frozen=True)
class SaveResumable:
    """last.pt: the model and the training state (optimizer, epoch, history, random streams) to resume from."""
    path: Path
    layout: dict
    run_metadata: dict  # the config and what the run started from, checked when it resumes

    def __call__(self, job: "FineTune") -> None:
        save_checkpoint(self.path, job.model, metadata={"train_state": job.state(), **self.run_metadata}, **self.layout)


@dataclass(frozen=True)
class WriteHistory:
    """log.csv (a row per epoch; epoch 0 is the model before training) and curves.png beside it."""
    folder: Path
    headline: str

    def __call__(self, job: "FineTune") -> None:
        write_text(self.folder / "log.csv", history_csv(job.history, self.headline))
        plot_history(job.history, self.headline, self.folder / "curves.png")


@dataclass(frozen=True)
class LogEpoch:
    headline: str

    def __call__(self, job: "FineTune") -> None:
        value, loss = job.history[-1][self.headline], job.history[-1]["loss"]
        log.info(f"epoch {job.epoch}: loss {loss:.4f}, {self.headline} {value:.4f}"
                 f"{' (best)' if value == job.best else ''}")


def epoch_callbacks(folder: Path, headline: str, layout: dict, run_metadata: dict) -> list[EpochCallback]:
    return [SaveBest(folder / "best.pt", headline, layout), SaveResumable(folder / "last.pt", layout, run_metadata),
            WriteHistory(folder, headline), LogEpoch(headline)]


def history_csv(rows: list[dict], headline: str) -> str:
    buffer = io.StringIO()
    fields = ["epoch", "lr", "loss", "head", "kd", "features", headline, "seconds", "replicas_identical"]
    writer = csv.DictWriter(buffer, fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
