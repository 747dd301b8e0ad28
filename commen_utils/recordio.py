"""MXNet RecordIO, read and written without mxnet: the training data of insightface's arcface_torch.

Implemented from the format's description (dmlc-core's recordio framing, mxnet's `recordio.pack`/`unpack`
and `MXIndexedRecordIO`, and the layout insightface's recognition/arcface_torch/dataset.py `MXFaceDataset`
reads); no code of theirs is used.

- Framing: each record is a uint32 magic 0xced7230a, a uint32 `cflag << 29 | length` (length in the low 29
  bits), then `length` bytes padded with zeros to a multiple of 4. A writer splits a payload wherever the
  magic word appears at a 4-byte-aligned offset of it, and drops that word: the parts carry cflag 1 (first),
  2 (middle), 3 (last), and a reader joins them with the magic re-inserted between them. Whole records have
  cflag 0. A reader resynchronising on the magic can therefore never start inside a record.
- Index (`.idx`): text lines `key<TAB>byte offset of the record's first part`.
- Payload: an IRHeader packed as 'IfQQ' (flag uint32, label float32, id uint64, id2 uint64); when flag > 0,
  `flag` float32 labels follow (and `label` is unused), then the encoded image.
- insightface's layout: key 0 is a header record whose labels are (first identity key, end); keys 1 ...
  first-1 are images with their identity as the scalar label; the identity keys hold (first image, last + 1)
  and are not images. Its writer appends key 0 last, so the .idx is not in key order.
"""
import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import UserError

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_BITS = 29
_HEADER = struct.Struct("<IfQQ")


def _padded(n: int) -> int:
    return -(-n // 4) * 4


def frame(payload: bytes) -> bytes:
    """One record as it lies in a .rec file: split at every aligned embedded magic word."""
    parts, start = [], 0
    for at in range(0, len(payload) - 3, 4):
        if payload[at:at + 4] == _MAGIC_BYTES:
            parts.append(payload[start:at])
            start = at + 4
    parts.append(payload[start:])
    out = bytearray()
    for i, part in enumerate(parts):
        cflag = 0 if len(parts) == 1 else 1 if i == 0 else 3 if i == len(parts) - 1 else 2
        out += struct.pack("<II", MAGIC, cflag << _LENGTH_BITS | len(part))
        out += part + b"\0" * (_padded(len(part)) - len(part))
    return bytes(out)


def pack(image: bytes, label: float | tuple = 0.0, record_id: int = 0) -> bytes:
    """An IRHeader and an encoded image (or a header-only record): a tuple label is written as flag labels."""
    if isinstance(label, (tuple, list)):
        extra = np.asarray(label, "<f4").tobytes()
        return _HEADER.pack(len(label), 0.0, record_id, 0) + extra + image
    return _HEADER.pack(0, float(label), record_id, 0) + image


def unpack(payload: bytes, where: str) -> tuple:
    """(labels as a tuple of floats, image bytes) of one record's payload."""
    if len(payload) < _HEADER.size:
        raise UserError(f"{where}: record too short for its header ({len(payload)} bytes)")
    flag, label, _, _ = _HEADER.unpack_from(payload)
    end = _HEADER.size + 4 * flag
    if flag > 0:
        if len(payload) < end:
            raise UserError(f"{where}: record announces {flag} labels but holds {len(payload) - _HEADER.size} bytes")
        return tuple(np.frombuffer(payload, "<f4", flag, _HEADER.size).tolist()), payload[end:]
    return (label,), payload[_HEADER.size:]


def write_recordio(prefix: Path | str, images: list, overwrite: bool = True) -> tuple:
    """Write `prefix`.rec, .idx and a `property` file beside them in insightface's layout from [(encoded
    image, identity)] sorted by identity (identities 0 ... n-1). Returns the three paths."""
    prefix = Path(prefix)
    rec, idx, prop = prefix.with_suffix(".rec"), prefix.with_suffix(".idx"), prefix.parent / "property"
    identities = [label for _, label in images]
    if identities != sorted(identities) or set(identities) != set(range(len(set(identities)))):
        raise ValueError("images must be sorted by identity, identities numbered 0 ... n-1")
    records, first_id = [], len(images) + 1
    for key, (image, label) in enumerate(images, 1):
        records.append((key, pack(image, float(label), key)))
    for identity in range(len(set(identities))):
        first = identities.index(identity) + 1
        last = len(identities) - identities[::-1].index(identity)
        records.append((first_id + identity, pack(b"", (first, last + 1))))
    records.append((0, pack(b"", (first_id, first_id + len(set(identities))))))
    with atomic_path(rec, overwrite) as tmp_rec, atomic_path(idx, overwrite) as tmp_idx:
        lines, offset = [], 0
        with open(tmp_rec, "wb") as out:
            for key, payload in records:
                framed = frame(payload)
                out.write(framed)
                lines.append(f"{key}\t{offset}\n")
                offset += len(framed)
        tmp_idx.write_text("".join(lines))
    height, width = _image_size(images[0][0]) if images else (0, 0)
    with atomic_path(prop, overwrite) as tmp:
        tmp.write_text(f"{len(set(identities))},{height},{width}\n")
    return rec, idx, prop


def _image_size(encoded: bytes) -> tuple:
    from PIL import Image
    with Image.open(io.BytesIO(encoded)) as img:
        return img.height, img.width


class RecordFile:
    """Random access to the records of a .rec through its .idx. Reads with pread, so that the DataLoader's
    worker processes can share one instance (the file is reopened in each process) and never hold more than
    one record in memory."""

    def __init__(self, rec: Path | str, idx: Path | str):
        self.rec, self.idx = Path(rec), Path(idx)
        for path in (self.rec, self.idx):
            if not path.is_file():
                raise UserError(f"{path}: not found (a RecordIO set needs its .rec and .idx)")
        self.size = self.rec.stat().st_size
        self.keys, self.offsets = self._read_index()
        self._fd, self._pid = None, None

    def _read_index(self) -> tuple:
        """(sorted keys, their offsets) as arrays: 16 bytes a record, where a dict of Python ints would take
        about a hundred, in every DataLoader worker."""
        try:
            text = self.idx.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{self.idx}: cannot read the index ({e})") from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an empty file: the check below says so
                table = np.loadtxt(io.StringIO(text), dtype=np.int64, ndmin=2, comments=None)
        except ValueError:
            table = None
        if table is None or table.shape[1:] != (2,) or not len(table) or (table < 0).any() \
                or (table[:, 1] + 8 > self.size).any():
            self._refuse(text)
        order = np.argsort(table[:, 0], kind="stable")
        return table[order, 0], table[order, 1]

    def _refuse(self, text: str):
        """The first line of a bad index, named (a slow pass, on the error path only)."""
        for n, line in enumerate(text.splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or not all(f.isdigit() for f in fields):
                raise UserError(f"{self.idx}:{n}: expected 'key<TAB>offset', got '{line.strip()[:40]}'")
            key, offset = map(int, fields)
            if offset + 8 > self.size:
                raise UserError(f"{self.idx}:{n}: record {key} at byte {offset} lies past the end of "
                                f"{self.rec.name} ({self.size} bytes)")
        raise UserError(f"{self.idx}: the index is empty")

    def __contains__(self, key: int) -> bool:
        i = int(np.searchsorted(self.keys, key))
        return i < len(self.keys) and self.keys[i] == key

    def offset(self, key: int) -> int:
        if key not in self:
            raise UserError(f"{self.idx}: no record {key}")
        return int(self.offsets[np.searchsorted(self.keys, key)])

    def __getstate__(self):
        return {**self.__dict__, "_fd": None, "_pid": None}

    def __del__(self):
        if getattr(self, "_fd", None) is not None and self._pid == os.getpid():
            os.close(self._fd)

    def _read(self, offset: int, n: int, key: int) -> bytes:
        if self._pid != os.getpid():
            self._fd, self._pid = os.open(self.rec, os.O_RDONLY), os.getpid()
        data = os.pread(self._fd, n, offset)
        if len(data) < n:
            raise UserError(f"{self.rec}: record {key} is truncated (the file ends at byte {self.size})")
        return data

    def payload(self, key: int) -> bytes:
        """The record's bytes, its parts joined back with the magic words a writer took out."""
        offset, parts = self.offset(key), []
        while True:
            magic, word = struct.unpack("<II", self._read(offset, 8, key))
            if magic != MAGIC:
                raise UserError(f"{self.rec}: record {key} at byte {offset} does not start with RecordIO's magic "
                                f"number (a corrupt file or a wrong .idx)")
            cflag, length = word >> _LENGTH_BITS, word & ((1 << _LENGTH_BITS) - 1)
            if cflag not in ((2, 3) if parts else (0, 1)):
                raise UserError(f"{self.rec}: record {key} at byte {offset}: part flag {cflag} out of sequence "
                                f"(a corrupt file)")
            parts.append(self._read(offset + 8, length, key))
            offset += 8 + _padded(length)
            if cflag in (0, 3):
                return _MAGIC_BYTES.join(parts)

    def record(self, key: int) -> tuple:
        return unpack(self.payload(key), f"{self.rec} record {key}")


def recordio_paths(path: Path | str) -> tuple | None:
    """(.rec, .idx) when `path` is a .rec file or a folder holding train.rec; None otherwise."""
    path = Path(path)
    if path.suffix == ".rec":
        return path, path.with_suffix(".idx")
    if path.is_dir() and (path / "train.rec").exists():
        return path / "train.rec", path / "train.idx"
    return None


def face_layout(records: RecordFile) -> tuple:
    """(image keys, number of identities or None) in insightface's layout: the header record (key 0 with
    labels) names the image keys 1 ... first-1 and the identity keys first ... end-1; a file without one
    holds only images, every key of its index."""
    if 0 in records:
        labels, _ = records.record(0)
        if len(labels) >= 2:
            first_id, end = int(labels[0]), int(labels[1])
            if not 1 <= first_id <= end:
                raise UserError(f"{records.rec}: the header record gives identity keys {first_id} ... {end - 1}")
            images = range(1, first_id)
            present = np.unique(records.keys[(records.keys >= 1) & (records.keys < first_id)])
            if len(present) < len(images):
                missing = np.setdiff1d(np.arange(1, first_id), present)[0]
                raise UserError(f"{records.idx}: image record {missing} is missing (the header record says "
                                f"1 ... {first_id - 1})")
            return images, end - first_id
    return records.keys, None
