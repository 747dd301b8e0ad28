"""Choosing between INT8 candidates by measurement on the CPU at hand: the embedding cosine to the FP32 model
on validation images (training images, never the test pairs) and the latency, timed side by side.

Two rules. Within a backend, `best_not_slower`: the first candidate is the library's default, and another
replaces it only if it is more accurate and not slower. Across backends (`--quant_backend auto`),
`fastest_accurate`: the fastest whose mean cosine reaches the floor.
"""
import logging
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from compression_tool.commen_utils.batching import outputs_in_batches
from compression_tool.commen_utils.latency import side_by_side_ms

log = logging.getLogger(__name__)

# Two timings of the same model differ by a few percent on a busy machine: within this, "not slower".
LATENCY_TOLERANCE = 0.05
# A default this far below the most accurate candidate's mean cosine has lost real accuracy (int8 products
# saturating without VNNI, say): speed no longer decides for it, or the choice would hang on timing noise.
COSINE_TOLERANCE = 0.01


@dataclass
class Candidate:
    name: str
    model: Callable[[torch.Tensor], torch.Tensor]
    settings: dict = field(default_factory=dict)
    cosine_min: float = math.nan
    cosine_mean: float = math.nan
    latency_ms: dict = field(default_factory=dict)  # batch -> median ms

    @property
    def speed_key(self) -> float:
        """Geometric mean of the latencies over the timed batch sizes, per image."""
        logs = [math.log(ms / batch) for batch, ms in self.latency_ms.items()]
        return math.exp(sum(logs) / len(logs))


def embedding_cosines(reference: torch.Tensor, model: Callable, images: torch.Tensor,
                      batch_size: int = 32) -> torch.Tensor:
    return F.cosine_similarity(reference, outputs_in_batches(model, images, batch_size), dim=1)


def measure(candidates: list, reference_model: Callable, images: torch.Tensor, input_size,
            batches=(1,), repeats: int = 10) -> list:
    """Fill in every candidate's cosine to `reference_model` on `images` and its latency at `batches`."""
    reference = outputs_in_batches(reference_model, images)
    for c in candidates:
        cosine = embedding_cosines(reference, c.model, images)
        c.cosine_min, c.cosine_mean = cosine.min().item(), cosine.mean().item()
    for batch in batches:
        timed = side_by_side_ms([c.model for c in candidates], input_size, batch,
                                repeats if batch == 1 else max(3, repeats // 4))
        for c, ms in zip(candidates, timed):
            c.latency_ms[batch] = ms
    return candidates


def best_not_slower(candidates: list) -> tuple:
    """(chosen, why). candidates[0] is the default; a later one wins on a higher mean cosine at a speed within
    LATENCY_TOLERANCE of the default's. A default more than COSINE_TOLERANCE below the most accurate loses to
    the fastest candidate within that of the most accurate."""
    default = candidates[0]
    best = max(c.cosine_mean for c in candidates)
    if default.cosine_mean < best - COSINE_TOLERANCE:
        chosen = min((c for c in candidates if c.cosine_mean >= best - COSINE_TOLERANCE), key=lambda c: c.speed_key)
        return chosen, (f"the default loses accuracy ({default.cosine_mean:.5f} mean cosine, {chosen.cosine_mean:.5f}"
                        f" here): the fastest within {COSINE_TOLERANCE} of the most accurate")
    limit = default.speed_key * (1 + LATENCY_TOLERANCE)
    allowed = [c for c in candidates if c.speed_key <= limit]
    chosen = max(allowed, key=lambda c: c.cosine_mean)
    if chosen is default:
        return chosen, "the default: no other candidate is more accurate without being slower"
    return chosen, (f"more accurate than the default ({chosen.cosine_mean:.5f} vs {default.cosine_mean:.5f} "
                    f"mean cosine) and not slower")


def fastest_accurate(candidates: list, min_cosine: float) -> tuple:
    """(chosen, why): the fastest with mean cosine >= min_cosine, else the most accurate."""
    accurate = [c for c in candidates if c.cosine_mean >= min_cosine]
    if accurate:
        chosen = min(accurate, key=lambda c: c.speed_key)
        return chosen, f"the fastest of those with mean cosine >= {min_cosine}"
    chosen = max(candidates, key=lambda c: c.cosine_mean)
    return chosen, f"none reaches mean cosine {min_cosine}: the most accurate"


def keep_best(name: str, candidates: list, reference_model: Callable, validation: torch.Tensor, input_size,
              repeats: int) -> tuple:
    """(chosen, rows): one backend's candidates measured at batch 1, the best kept by `best_not_slower`, the
    table printed when there was a choice."""
    measure(candidates, reference_model, validation, input_size, (1,), repeats)
    chosen, why = best_not_slower(candidates)
    if len(candidates) > 1:
        log.info(f"{name}: kept {chosen.name} ({why}); measured on {len(validation)} validation images:")
        log.info(candidate_table(candidates, chosen))
    return chosen, candidate_rows(candidates, chosen)


def candidate_table(candidates: list, chosen: Candidate) -> str:
    batches = sorted({b for c in candidates for b in c.latency_ms})
    lines = ["| candidate | cosine min / mean | " + " | ".join(f"bs{b} ms" for b in batches) + " | |",
             "|---|---|" + "---|" * len(batches) + "---|"]
    for c in candidates:
        cells = [c.name, f"{c.cosine_min:.4f} / {c.cosine_mean:.4f}",
                 *(f"{c.latency_ms[b]:.2f}" for b in batches), "chosen" if c is chosen else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def candidate_rows(candidates: list, chosen: Candidate) -> list:
    """The table as data, for --result_json."""
    return [{"name": c.name, "settings": c.settings, "cosine_min": c.cosine_min, "cosine_mean": c.cosine_mean,
             "latency_ms": {str(b): ms for b, ms in c.latency_ms.items()}, "chosen": c is chosen}
            for c in candidates]
