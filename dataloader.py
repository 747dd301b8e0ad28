"""Datasets for the test protocols and for training: pair lists, LFW pairs.txt, insightface .bin sets,
classification lists, ImageFolders and MXNet RecordIO. Images are decoded with Pillow and turned into the
model's input by its InputSpec."""
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Sampler

from compression_tool.commen_utils.errors import UserError
from compression_tool.commen_utils.recordio import RecordFile, face_layout, recordio_paths
from compression_tool.commen_utils.verification_bin import read_verification_bin
from compression_tool.model_define.registry import InputSpec


def read_lines(path: Path | str, what: str = "list") -> list:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} not found")
    try:
        lines = [(n, line.split()) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read {what} ({e})") from None
    if not lines:
        raise UserError(f"{path}: {what} is empty")
    return lines


def _label(path, n, text):
    if text not in ("0", "1"):
        raise UserError(f"{path}:{n}: label must be 0 or 1, got '{text}'")
    return int(text)


def read_pair_list(path: Path | str, root: Path | str) -> list:
    """`path1 path2 label` lines (paths relative to root), or an LFW pairs.txt. Returns [(p1, p2, label)]."""
    lines = read_lines(path, "pair list")
    root = Path(root)
    if len(lines[0][1]) == 2 and all(f.isdigit() for f in lines[0][1]):
        return _read_lfw_pairs(path, lines[1:], root)
    pairs = []
    for n, fields in lines:
        if len(fields) != 3:
            raise UserError(f"{path}:{n}: expected 'path1 path2 label', got {len(fields)} fields")
        pairs.append((str(root / fields[0]), str(root / fields[1]), _label(path, n, fields[2])))
    return _checked_pairs(path, pairs)


def _read_lfw_pairs(path, lines, root):
    """LFW's pairs.txt: `name i j` (same person) or `name1 i name2 j` (different), images Name/Name_000i.jpg."""
    image = lambda name, i: str(root / name / f"{name}_{int(i):04d}.jpg")  # noqa: E731
    pairs = []
    for n, f in lines:
        if len(f) == 3:
            pairs.append((image(f[0], f[1]), image(f[0], f[2]), 1))
        elif len(f) == 4:
            pairs.append((image(f[0], f[1]), image(f[2], f[3]), 0))
        else:
            raise UserError(f"{path}:{n}: an LFW pairs line has 3 or 4 fields, got {len(f)}")
    return _checked_pairs(path, pairs)


def _checked_pairs(path, pairs):
    if len(set(pairs)) != len(pairs):
        dup = next(p for i, p in enumerate(pairs) if p in pairs[:i])
        raise UserError(f"{path}: duplicate pair {Path(dup[0]).name} {Path(dup[1]).name}")
    if len({label for *_, label in pairs}) < 2:
        raise UserError(f"{path}: all pairs have the same label; verification needs both 0 and 1")
    return pairs


def read_class_list(path: Path | str, root: Path | str) -> list:
    """Liveness lists: `path class` per line. Returns [(path, class)]."""
    items = []
    for n, fields in read_lines(path, "image list"):
        if len(fields) != 2 or not fields[1].isdigit():
            raise UserError(f"{path}:{n}: expected 'path class', got '{' '.join(fields)}'")
        items.append((str(Path(root) / fields[0]), int(fields[1])))
    return items


def decode(source, name: str) -> np.ndarray:
    """An image file (path) or encoded bytes as RGB float32 pixels (H, W, 3); errors name `name`."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            return np.asarray(img.convert("RGB"), dtype=np.float32)
    except FileNotFoundError:
        raise UserError(f"{name}: image not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UserError(f"{name}: not a readable image ({type(e).__name__})") from None


def to_input(pixels: np.ndarray, spec, name: str, flip: bool = False) -> torch.Tensor:
    """RGB pixels (H, W, 3) as the model's input tensor (C, H, W), as its InputSpec says."""
    if pixels.shape[:2] != tuple(spec.size):
        raise UserError(f"{name}: image is {pixels.shape[0]}x{pixels.shape[1]}, the model needs "
                        f"{spec.size[0]}x{spec.size[1]} (HxW)")
    if spec.channel_order == "BGR":
        pixels = pixels[:, :, ::-1]
    if flip:
        pixels = pixels[:, ::-1]
    return torch.from_numpy((np.ascontiguousarray(pixels.transpose(2, 0, 1)) - spec.mean) / spec.std)


def load_image(path, spec, flip=False) -> torch.Tensor:
    """Decode one image file into the model's input tensor (C, H, W) as its InputSpec says."""
    return to_input(decode(path, str(path)), spec, str(path), flip)


class ImageFiles:
    """Evaluation images named by their path."""

    def pixels(self, name: str) -> np.ndarray:
        return decode(name, name)


class EncodedImages:
    """Evaluation images held encoded in memory (a .bin set), named `<file>[<index>]`."""

    def __init__(self, blobs: dict):
        self.blobs = blobs

    def pixels(self, name: str) -> np.ndarray:
        return decode(self.blobs[name], name)


IMAGE_FILES = ImageFiles()


class ImageDataset(Dataset):
    def __init__(self, paths, spec, flip=False, images=IMAGE_FILES):
        self.paths, self.spec, self.flip, self.images = list(paths), spec, flip, images

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return to_input(self.images.pixels(self.paths[i]), self.spec, self.paths[i], self.flip), i


def is_verification_bin(path: Path | str) -> bool:
    return Path(path).suffix == ".bin"


def read_pairs(path: Path | str, root: Path | str | None) -> tuple:
    """(pairs [(name1, name2, label)], the images they name) of a text pair list or a .bin verification
    set. A .bin's pairs keep its order (insightface's folds are consecutive pairs); its images are named
    `<file>[<index>]`."""
    if not is_verification_bin(path):
        return read_pair_list(path, root or "."), IMAGE_FILES
    bins, issame = read_verification_bin(path)
    names = [f"{Path(path).name}[{i}]" for i in range(len(bins))]
    pairs = [(names[2 * i], names[2 * i + 1], label) for i, label in enumerate(issame)]
    return _checked_pairs(path, pairs), EncodedImages(dict(zip(names, bins)))


class TrainImages(Dataset):
    """(image, identity) from a training set (training_set(): an ImageFolder or RecordIO), flipped and
    shifted by up to `shift` pixels at random (edges repeated), optionally rescaled by up to ±`scale` (about
    the centre) and brightened or darkened by up to ±`brightness` (a factor on the 0-255 pixels). The draws
    depend only on (seed, epoch, index), so that a run resumed at an epoch boundary sees exactly what an
    uninterrupted one would."""

    def __init__(self, images, spec, seed=0, shift=0, scale=0.0, brightness=0.0):
        self.images = images if isinstance(images, (ImageFolderSet, RecordIOSet)) else ImageFolderSet(images)
        self.spec, self.seed, self.shift, self.epoch = spec, seed, shift, 0
        self.scale, self.brightness = scale, brightness

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        pixels, label = self.images.sample(i)
        draws = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 100_003 + i)
        image = to_input(pixels, self.spec, self.images.name(i), flip=bool(torch.rand(1, generator=draws) < 0.5))
        if self.shift:
            dy, dx = torch.randint(-self.shift, self.shift + 1, (2,), generator=draws).tolist()
            padded = torch.nn.functional.pad(image[None], [self.shift] * 4, mode="replicate")[0]
            h, w = image.shape[1:]
            image = padded[:, self.shift + dy:self.shift + dy + h, self.shift + dx:self.shift + dx + w]
        if self.scale:
            image = rescaled(image, 1 + self.scale * (2 * torch.rand(1, generator=draws).item() - 1))
        if self.brightness:
            factor = 1 + self.brightness * (2 * torch.rand(1, generator=draws).item() - 1)
            pixels = image * self.spec.std + self.spec.mean
            image = ((pixels * factor).clamp(0, 255) - self.spec.mean) / self.spec.std
        return image, label


def rescaled(image: torch.Tensor, factor: float) -> torch.Tensor:
    """The image zoomed by `factor` about its centre, at its own size (edges repeated when it shrinks)."""
    h, w = image.shape[1:]
    size = (max(1, round(h * factor)), max(1, round(w * factor)))
    zoomed = torch.nn.functional.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
    if factor >= 1:
        top, left = (size[0] - h) // 2, (size[1] - w) // 2
        return zoomed[:, top:top + h, left:left + w]
    top, left = (h - size[0]) // 2, (w - size[1]) // 2
    pad = [left, w - size[1] - left, top, h - size[0] - top]
    return torch.nn.functional.pad(zoomed[None], pad, mode="replicate")[0]


def image_folder_items(root: Path | str) -> tuple:
    """An ImageFolder (one sub-folder per identity) as sorted (path, class index) items and the number of
    identities."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: training folder not found")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".pgm"}
    items = [(str(f), c) for c, name in enumerate(classes) for f in sorted((root / name).iterdir())
             if f.suffix.lower() in suffixes]
    if not items:
        raise UserError(f"{root}: no images in identity sub-folders")
    return items, len(classes)


class ImageFolderSet:
    """Training images of an ImageFolder. With RecordIOSet, the one interface every training-data user
    (fine-tuning, repair, BN statistics, calibration) goes through: len, identities, sample(i), name(i)."""

    def __init__(self, items: list, identities: int | None = None):
        self.items = list(items)
        self.identities = identities if identities is not None else len({label for _, label in self.items})

    def __len__(self):
        return len(self.items)

    def name(self, i: int) -> str:
        return self.items[i][0]

    def sample(self, i: int) -> tuple:
        """(RGB pixels, identity) of image i."""
        path, label = self.items[i]
        return decode(path, path), label


class RecordIOSet:
    """Training images of an MXNet RecordIO set (insightface's train.rec + train.idx), read one record at a
    time through the index: a set of millions of images is never held in memory, and DataLoader workers
    share it (each reopens the file)."""

    def __init__(self, rec: Path, idx: Path):
        self.records = RecordFile(rec, idx)
        self.keys, identities = face_layout(self.records)
        if not len(self.keys):
            raise UserError(f"{rec}: no image records")
        self.identities = identities if identities is not None else _identities_from_property(rec)

    def __len__(self):
        return len(self.keys)

    def name(self, i: int) -> str:
        return f"{self.records.rec} record {self.keys[i]}"

    def sample(self, i: int) -> tuple:
        labels, image = self.records.record(self.keys[i])
        if not image:
            raise UserError(f"{self.name(i)}: not an image (a header record)")
        return decode(image, self.name(i)), int(labels[0])


def _identities_from_property(rec: Path) -> int | None:
    """insightface's `property` file beside the .rec: `identities,height,width`."""
    try:
        return int((rec.parent / "property").read_text().split(",")[0])
    except (OSError, ValueError):
        return None


def training_set(root: Path | str) -> ImageFolderSet | RecordIOSet:
    """--train_data_path: a RecordIO folder (train.rec, train.idx, property) or .rec file, else an
    ImageFolder."""
    paths = recordio_paths(root)
    if paths:
        return RecordIOSet(*paths)
    return ImageFolderSet(*image_folder_items(root))


def make_loader(dataset: Dataset, batch_size: int, workers: int = 0, shuffle: bool = False,
                sampler: Sampler | None = None, drop_last: bool = False) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=workers, drop_last=drop_last, persistent_workers=False)


def sample_images(root: Path | str, spec: InputSpec, count: int, seed: int = 0) -> torch.Tensor:
    """`count` images drawn with a fixed seed from a training set (ImageFolder or RecordIO), as one tensor
    (BN statistics, repair, calibration). Never the test pairs: the caller passes the training data."""
    images = training_set(root)
    order = np.random.default_rng(seed).permutation(len(images))[:count]
    return torch.stack([to_input(images.sample(i)[0], spec, images.name(i)) for i in order])
