"""Write outputs whole or not at all: a temporary file in the same folder, then a rename."""
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import UserError


@contextlib.contextmanager
def atomic_path(path, overwrite: bool = True):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path}: already exists (pass --overwrite to replace it)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"{path.parent}: cannot write there ({e.strerror})") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path, text: str, overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(text)
    return Path(path)


@contextlib.contextmanager
def staged_files(paths: dict, overwrite: bool = False):
    """For outputs that are built from one another (an ONNX file quantized from another): yield temporary
    paths in a hidden folder beside the first, and move them all into place only if the block succeeds.
    Existing files are refused before any work starts, unless `overwrite`."""
    paths = {name: Path(p) for name, p in paths.items()}
    for p in paths.values():
        if p.exists() and not overwrite:
            raise UserError(f"{p}: already exists (pass --overwrite to replace it)")
    folder = next(iter(paths.values())).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder, prefix=".staging-"))
    except OSError as e:
        raise UserError(f"{folder}: cannot write there ({e.strerror})") from None
    try:
        yield {name: staging / p.name for name, p in paths.items()}
        for name, p in paths.items():
            os.replace(staging / p.name, p)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
