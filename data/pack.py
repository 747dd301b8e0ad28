"""Our packer: an ImageFolder or a pair list written as insightface writes its data (a RecordIO training set,
a .bin verification set), so that the same images can be read both ways. Faces are stored as JPEG, as
insightface's packers store them."""
import io
from pathlib import Path

from PIL import Image

from compression_tool.commen_utils.recordio import write_recordio
from compression_tool.commen_utils.verification_bin import write_verification_bin
from compression_tool.dataloader import image_folder_items, read_pair_list

JPEG_QUALITY = 95


def encode_jpeg(path: Path | str, quality: int = JPEG_QUALITY) -> bytes:
    buffer = io.BytesIO()
    with Image.open(path) as img:
        img.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def pack_pairs(pair_list: Path | str, root: Path | str, out: Path | str) -> Path:
    """A text pair list as a .bin: pair i's images at 2i and 2i+1, in the list's order."""
    pairs = read_pair_list(pair_list, root)
    encoded = {p: encode_jpeg(p) for p in sorted({p for a, b, _ in pairs for p in (a, b)})}
    images = [encoded[p] for a, b, _ in pairs for p in (a, b)]
    return write_verification_bin(out, images, [label for *_, label in pairs])


def pack_image_folder(folder: Path | str, out_folder: Path | str) -> tuple:
    """An ImageFolder as `out_folder`/train.rec, train.idx and property (identities in folder order)."""
    items, _ = image_folder_items(folder)
    return write_recordio(Path(out_folder) / "train", [(encode_jpeg(path), label) for path, label in items])
