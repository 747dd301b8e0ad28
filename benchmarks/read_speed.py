"""Training-image reading speed: MXNet RecordIO against ImageFolders, through the DataLoader fine-tuning uses
(decoding and the model's preprocessing included, no augmentation), with 1 and 2 worker processes.

Three forms of the embedded default's identities 1-20: the ImageFolder of PNG files, the same faces as JPEG
files (the RecordIO's own bytes, unpacked), and the RecordIO (make data writes it). The 200 images are read
`--epochs` times; the first epoch is not timed (page cache, worker start-up).

    python benchmarks/read_speed.py [--epochs 10] [--batch 32]
"""
import argparse
import tempfile
import time
from pathlib import Path

from common import ROOT, TRAIN, machine
from tqdm import tqdm

from compression_tool.data.prepare_default import TRAIN_RECORDIO
from compression_tool.dataloader import TrainImages, make_loader, training_set
from compression_tool.model_define import InputSpec


def images_per_second(root, workers: int, epochs: int, batch: int) -> float:
    dataset = TrainImages(training_set(root), InputSpec())
    loader = make_loader(dataset, batch, workers, shuffle=True)
    for _ in loader:  # warm-up epoch
        pass
    start = time.perf_counter()
    for _ in tqdm(range(epochs), desc=f"{Path(root).name}, {workers} worker(s)", leave=False):
        for _ in loader:
            pass
    return epochs * len(dataset) / (time.perf_counter() - start)


def unpack_jpegs(rec_folder: Path, out: Path) -> Path:
    """The RecordIO's JPEG bytes as an ImageFolder, so that the container alone differs."""
    records = training_set(rec_folder)
    for i in range(len(records)):
        labels, image = records.records.record(records.keys[i])
        path = out / f"id{int(labels[0]):03d}/{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        forms = {"ImageFolder, PNG": TRAIN, "ImageFolder, JPEG": unpack_jpegs(TRAIN_RECORDIO, Path(tmp)),
                 "RecordIO, JPEG": TRAIN_RECORDIO}
        print("| data | 1 worker (images/s) | 2 workers (images/s) |\n|---|---|---|")
        for name, root in forms.items():
            speeds = [images_per_second(root, w, args.epochs, args.batch) for w in (1, 2)]
            print(f"| {name} | {speeds[0]:.0f} | {speeds[1]:.0f} |")
    print(f"(data: {Path(TRAIN).relative_to(ROOT)} and {Path(TRAIN_RECORDIO).relative_to(ROOT)})")


if __name__ == "__main__":
    main()
