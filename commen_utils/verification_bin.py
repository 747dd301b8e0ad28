"""insightface's `.bin` verification sets (lfw.bin, cfp_fp.bin, agedb_30.bin ...), read and written.

The format, as insightface's recognition code writes and reads it (its `load_bin`): a pickle of the pair
`(bins, issame_list)`, where `bins` holds 2N encoded (JPEG) aligned crops, pair i being bins[2i] and
bins[2i+1], and `issame_list` N booleans. Most published files were written by Python 2, whose `str` must be
read as bytes (`encoding='bytes'`).

A pickle can run any code it names. This reader builds only what such a file holds (tuples, lists, bools,
ints, bytes, str) and refuses a file that names anything (a class, a function), as checkpoints are loaded
with `weights_only=True`.
"""
import pickle
from pathlib import Path

from .atomic import atomic_path
from .errors import UserError


class _DataOnlyUnpickler(pickle.Unpickler):
    """Every opcode that would fetch a global (a class to build, a function to call) goes through
    find_class, so refusing all of them leaves only plain containers and scalars."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"it names {module}.{name}")


def read_verification_bin(path: Path | str) -> tuple:
    """([encoded image bytes] of length 2N, [N labels 0/1]) of a .bin verification set."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: verification set not found")
    try:
        with open(path, "rb") as f:
            data = _DataOnlyUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as e:
        if "it names" in str(e):
            raise UserError(f"{path}: refused to load, the pickle {e} (a .bin holds only images and labels)") \
                from None
        raise UserError(f"{path}: not a readable .bin verification set, truncated or corrupt ({e})") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, MemoryError, OverflowError) as e:
        raise UserError(f"{path}: not a readable .bin verification set, truncated or corrupt "
                        f"({type(e).__name__})") from None
    if not (isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(d, (tuple, list)) for d in data)):
        raise UserError(f"{path}: not a .bin verification set (expected a pickled pair (images, issame_list))")
    bins, issame = data
    if len(bins) != 2 * len(issame) or not issame:
        raise UserError(f"{path}: {len(bins)} images for {len(issame)} pairs (a .bin holds two images per pair)")
    if not all(isinstance(b, (bytes, bytearray, str)) for b in bins):
        raise UserError(f"{path}: an image is not encoded bytes")
    if not all(isinstance(s, (bool, int)) and s in (0, 1) for s in issame):
        raise UserError(f"{path}: issame_list holds values other than True/False")
    # A str image can only come from a Python 2 file read without encoding='bytes' semantics; latin-1 maps it
    # back to its bytes one to one.
    return [b.encode("latin-1") if isinstance(b, str) else bytes(b) for b in bins], [int(s) for s in issame]


def write_verification_bin(path: Path | str, images: list, issame: list, overwrite: bool = True) -> Path:
    """Write a .bin as insightface's scripts do under Python 3 (the highest pickle protocol)."""
    if len(images) != 2 * len(issame):
        raise ValueError("two images per pair")
    with atomic_path(path, overwrite) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump(([bytes(b) for b in images], [bool(s) for s in issame]), f,
                        protocol=pickle.HIGHEST_PROTOCOL)
    return Path(path)

