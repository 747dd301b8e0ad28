"""Embed-and-score drivers: each unique image is decoded and embedded once, then pairs are scored by cosine
similarity and handed to the metric functions."""
import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from compression_tool.commen_utils.errors import UserError
from compression_tool.commen_utils.progress import hidden
from compression_tool.dataloader import (IMAGE_FILES, ImageDataset, is_verification_bin, make_loader, read_class_list,
                                         read_pairs, to_input)
from compression_tool.model_define.registry import InputSpec

from . import metrics

log = logging.getLogger(__name__)

HEADLINE = {"lfw": "accuracy", "insightface": "accuracy", "company": "tpr_at_fpr", "classification": "tpr_at_fpr"}


class Evaluator:
    """Scores a model on a fixed list; `__call__(model)` returns the metrics dict with a 'headline' value."""

    def __init__(self, paths, spec, data_source="lfw", target_fprs=(1e-6,), batch_size=64, device="cpu",
                 workers=0, flip=False, cache_images=False, progress=True, images=IMAGE_FILES):
        self.paths, self.spec, self.data_source, self.source = list(paths), spec, data_source, images
        self.target_fprs = tuple(target_fprs)
        # arcface_torch's protocol always embeds the flipped image too
        self.batch_size, self.device, self.workers = batch_size, device, workers
        self.flip = flip or data_source == "insightface"
        self.cache_images, self.progress = cache_images, progress
        self._images = None

    def on(self, device: str) -> "Evaluator":
        """This evaluator scoring on another device, the decoded images shared; this one is left as it is."""
        other = copy.copy(self)
        other.device = device
        return other

    def images(self, flip: bool = False) -> torch.Tensor:
        """All images as one tensor (kept when cache_images: sensitivity analysis re-embeds them often)."""
        if self._images is None or flip:
            loader = make_loader(ImageDataset(self.paths, self.spec, flip, self.source), self.batch_size, self.workers)
            batches = [x for x, _ in tqdm(loader, desc="decoding images", disable=hidden(self.progress), leave=False)]
            images = torch.cat(batches)
            if flip or not self.cache_images:
                return images
            self._images = images
        return self._images

    @torch.no_grad()
    def forward(self, model: Callable, inputs: torch.Tensor | None = None, flip: bool = False) -> torch.Tensor:
        """Raw outputs of `model` (any callable) for every image, in self.paths order. `inputs` replaces the
        decoded images (e.g. cached activations); batches always fall at the same boundaries, so a
        computation split in two parts gives bit-identical outputs."""
        if hasattr(model, "eval"):
            model.eval()
        if inputs is None and not self.cache_images:
            loader = make_loader(ImageDataset(self.paths, self.spec, flip, self.source), self.batch_size, self.workers)
        else:
            inputs = self.images(flip) if inputs is None else inputs
            loader = ((inputs[i:i + self.batch_size], None) for i in range(0, len(inputs), self.batch_size))
        total = -(-len(self.paths) // self.batch_size)
        outputs = [model(x.to(self.device)).float().cpu()
                   for x, _ in tqdm(loader, total=total, desc="embedding", disable=hidden(self.progress), leave=False)]
        return torch.cat(outputs)

    def embeddings(self, model: Callable, inputs: torch.Tensor | None = None,
                   flipped_inputs: torch.Tensor | None = None) -> torch.Tensor:
        out = self.forward(model, inputs)
        if self.data_source == "insightface":  # arcface_torch adds the raw embeddings, then normalises
            return F.normalize(out + self.forward(model, flipped_inputs, flip=True), dim=1)
        if self.flip:
            out = F.normalize(out, dim=1) + F.normalize(self.forward(model, flipped_inputs, flip=True), dim=1)
        return F.normalize(out, dim=1)

    def outputs(self, model: Callable, inputs: torch.Tensor | None = None,
                flipped_inputs: torch.Tensor | None = None) -> torch.Tensor:
        """What the metrics are computed from: L2-normalised embeddings, or logits for classification."""
        if self.data_source == "classification":
            return self.forward(model, inputs)
        return self.embeddings(model, inputs, flipped_inputs)

    def __call__(self, model, inputs=None, flipped_inputs=None):
        return self.score(self.outputs(model, inputs, flipped_inputs))


class PairEvaluator(Evaluator):
    def __init__(self, pairs, spec, **kwargs):
        paths = sorted({p for a, b, _ in pairs for p in (a, b)})
        super().__init__(paths, spec, **kwargs)
        index = {p: i for i, p in enumerate(paths)}
        self.left = torch.tensor([index[a] for a, _, _ in pairs])
        self.right = torch.tensor([index[b] for _, b, _ in pairs])
        self.labels = np.array([label for *_, label in pairs])

    def pair_scores(self, embeddings: torch.Tensor) -> np.ndarray:
        return (embeddings[self.left] * embeddings[self.right]).sum(1).double().numpy()

    def score(self, embeddings: torch.Tensor) -> dict:
        scores = self.pair_scores(embeddings)
        result = metrics.verification_metrics(scores, self.labels, self.target_fprs)
        if self.data_source == "insightface":
            result.update(metrics.insightface_metrics(scores, self.labels))
        return with_headline(result, self.data_source, self.target_fprs)


class ClassificationEvaluator(Evaluator):
    """Liveness protocol: score = P(class 1); TPR of class 1 at the target FPRs (original: 1e-3)."""

    def __init__(self, items, spec, **kwargs):
        super().__init__([p for p, _ in items], spec, **kwargs)
        self.labels = np.array([int(c == 1) for _, c in items])

    def score(self, logits: torch.Tensor) -> dict:
        scores = torch.softmax(logits, 1)[:, 1].double().numpy()
        result = {**metrics.tpr_at_fpr(scores, self.labels, self.target_fprs), "num_images": len(scores)}
        return with_headline(result, "classification", self.target_fprs)


def with_headline(result: dict, data_source: str, target_fprs: tuple) -> dict:
    key = HEADLINE[data_source]
    result["headline_name"] = key if key == "accuracy" else f"TPR@FPR={target_fprs[0]:g}"
    result["headline"] = result[key] if key == "accuracy" else result[key][float(target_fprs[0])]
    return result


def unreadable_images(paths: list, spec: InputSpec, progress: bool = True, images=IMAGE_FILES) -> dict:
    """{path: reason} for every image that does not decode to the model's input. Costs one extra decode of
    each image, paid only when the user asks to skip bad ones."""
    bad = {}
    for path in tqdm(paths, desc="checking images", disable=hidden(progress), leave=False):
        try:
            to_input(images.pixels(path), spec, path)
        except UserError as e:
            bad[path] = str(e)
    return bad


def without_bad_images(items: list, paths_of: Callable, spec: InputSpec, list_path: Path | str,
                       progress: bool = True, images=IMAGE_FILES) -> list:
    """Drop the list entries that use an unreadable image, and say so."""
    bad = unreadable_images(sorted({p for item in items for p in paths_of(item)}), spec, progress, images)
    if not bad:
        return items
    kept = [item for item in items if not any(p in bad for p in paths_of(item))]
    first = next(iter(bad.values()))
    log.warning(f"skipped {len(bad)} unreadable image(s) (first: {first}); dropped {len(items) - len(kept)} of "
                f"{len(items)} entries of {list_path}")
    return kept


def make_evaluator(data_source: str, root: Path | str, list_path: Path | str, spec: InputSpec,
                   skip_bad_images: bool = False, **options) -> Evaluator:
    classification = data_source == "classification"
    items, images = (read_class_list(list_path, root), IMAGE_FILES) if classification else read_pairs(list_path, root)
    if skip_bad_images:
        items = without_bad_images(items, (lambda i: i[:1]) if classification else (lambda i: i[:2]), spec,
                                   list_path, options.get("progress", True), images)
        if classification and not items or not classification and len({i[2] for i in items}) < 2:
            raise UserError(f"{list_path}: too few readable entries left to score")
    if classification:
        return ClassificationEvaluator(items, spec, data_source=data_source, **options)
    return PairEvaluator(items, spec, data_source=data_source, images=images, **options)


def summary_line(result) -> str:
    parts = []
    if "accuracy" in result:
        parts.append(f"10-fold accuracy {result['accuracy']:.4f} ± {result['accuracy_std']:.4f}")
    if "val_at_far" in result:
        parts[-1] = (f"Accuracy-Flip {result['accuracy']:.4f} ± {result['accuracy_std']:.4f} (arcface_torch), "
                     f"VAL@FAR={result['far_target']:g} {result['val_at_far']:.4f} ± {result['val_std']:.4f}")
    parts.append(f"AUC {result['auc']:.4f}")
    parts += [f"TPR@FPR={f:g} {t:.4f}" for f, t in result["tpr_at_fpr"].items()]
    parts.append(f"(lowest resolvable FPR {result['min_resolvable_fpr']:.2g})")
    return ", ".join(parts)


@dataclass(frozen=True)
class EvaluationConfig:
    """Which list scores a model, and how: what `--test_root_path`, `--img_list_label_path`, `--data_source`
    and the evaluation flags say."""
    data_source: str
    test_root: str
    pair_list: str
    target_fprs: tuple = (1e-6,)
    batch_size: int = 32
    device: str = "cpu"
    workers: int = 0
    flip: bool = False
    skip_bad_images: bool = False
    val_targets: tuple = ()  # several sets scored at once (--mode test): names or pair-list paths


def missing_list_flag(config: EvaluationConfig) -> str | None:
    """The flag a mode that scores pairs still needs, if any: a list, and a root unless every set is a .bin."""
    if not config.pair_list and not config.val_targets:
        return "img_list_label_path"
    lists = config.val_targets or (config.pair_list,)
    if not config.test_root and not all(is_verification_bin(t) and Path(t).is_file() for t in lists):
        return "test_root_path"
    return None


def evaluation_sets(config: EvaluationConfig) -> list:
    """[(set name, pair list path)]: each of --val_targets (a name is <test_root>/<name>.bin), or the one
    --img_list_label_path."""
    if config.val_targets and config.pair_list:
        raise UserError("--val_targets and --img_list_label_path both name what to score: give one")
    if not config.val_targets:
        return [(Path(config.pair_list).stem, config.pair_list)]
    if config.data_source == "classification":
        raise UserError("--val_targets: several verification sets; a classification list is given with "
                        "--img_list_label_path")
    sets = []
    for target in config.val_targets:
        path = Path(target)
        if not path.exists() and not path.suffix and len(path.parts) == 1:
            path = Path(config.test_root or ".") / f"{target}.bin"
            if not path.is_file():
                raise UserError(f"--val_targets {target}: {path} not found")
        sets.append((path.stem, str(path)))
    if len({name for name, _ in sets}) < len(sets):
        raise UserError(f"--val_targets {','.join(config.val_targets)}: two sets have the same name")
    return sets


def evaluator_from_config(config: EvaluationConfig, spec, pair_list: str | None = None, **overrides) -> Evaluator:
    """The evaluator of `pair_list`, by default the config's one set (several: only --mode test scores them)."""
    if pair_list is None:
        sets = evaluation_sets(config)
        if len(sets) > 1:
            raise UserError(f"--val_targets names {len(sets)} sets: only --mode test scores several at once; "
                            "give one")
        pair_list = sets[0][1]
    settings = dict(target_fprs=config.target_fprs, batch_size=config.batch_size, device=config.device,
                    workers=config.workers, flip=config.flip, skip_bad_images=config.skip_bad_images)
    settings.update(overrides)
    return make_evaluator(config.data_source, config.test_root, pair_list, spec, **settings)
