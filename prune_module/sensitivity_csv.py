"""The sensitivity CSV: Distiller's columns and ours, the rows of a run written as they finish (so that a killed
run resumes), read back, checked against the run that resumes them, merged from torchrun's shards."""
import csv
import os
from pathlib import Path

from compression_tool.commen_utils.errors import UserError

# Distiller's five columns, then ours: the pruned model's size, the mean cosine between its outputs and the
# unpruned model's (a smooth, low-noise measure of damage that the budget search uses), how many training
# images re-estimated BN statistics and refitted the layers that lost inputs (0: none), the ranking criterion
# and a hash of the analysed weights (what --resume checks a CSV against).
CSV_COLUMNS = ["parameter", "sparsity", "top1", "top5", "loss", "macs", "params", "cosine", "bn_recalibration",
               "reconstruction", "criterion", "weights"]


def level_text(level: float) -> str:
    return repr(round(float(level), 6))  # 0.3, never 0.30000000000000004



def read_rows(path: str | Path) -> tuple[str, list[dict]]:
    """Finished rows of an interrupted run; a torn last line (killed mid-write) is ignored."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: sensitivity CSV not found")
    text = path.read_text()
    complete = text if text.endswith("\n") else text[:text.rfind("\n") + 1]
    rows = list(csv.DictReader(complete.splitlines()))
    if rows and not set(CSV_COLUMNS[:5]) <= set(rows[0]):
        raise UserError(f"{path}: not a sensitivity CSV (needs columns {','.join(CSV_COLUMNS[:5])})")
    return complete, [r for r in rows if None not in r.values()]


class RowWriter:
    """Appends each finished row and flushes it to disk, so that a killed run can be resumed."""

    def __init__(self, path, existing_text=""):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "w", newline="")
        except OSError as e:
            raise UserError(f"{self.path}: cannot write ({e.strerror})") from None
        self.file.write(existing_text or ",".join(CSV_COLUMNS) + "\n")
        # a resumed CSV of an older version keeps its own header, and its rows their columns
        columns = next(csv.reader([existing_text.splitlines()[0]])) if existing_text else CSV_COLUMNS
        self.writer = csv.DictWriter(self.file, columns, extrasaction="ignore")

    def write(self, row: dict) -> None:
        self.writer.writerow(row)
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


def check_resumed(path, rows, expected: dict, layers, levels):
    """Refuse a CSV that is not this run's, before anything is written: every row must name a prunable
    layer of this model and one of the levels, and agree with `expected` ({column: value} of this run,
    including the baseline's top1 on its level-0.0 rows). Columns an older CSV lacks are not checked."""
    flags = {"bn_recalibration": "--bn_recalibrate", "reconstruction": "--reconstruct", "criterion": "the criterion",
             "weights": "the weights' hash", "top1": "the baseline (level 0.0) top1 on this pair list"}
    allowed = {level_text(v) for v in levels}
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        if row["parameter"] not in layers:
            raise UserError(f"{where}: {row['parameter']} is not a prunable layer of this model: the CSV is another "
                            f"model's")
        if level_text(float(row["sparsity"])) not in allowed:
            raise UserError(f"{where}: level {row['sparsity']} is not one of --sparsities "
                            f"{','.join(sorted(allowed, key=float))}")
        for column, value in expected.items():
            if column == "top1" and float(row["sparsity"]) != 0.0:
                continue
            if column in row and row[column] != value:
                raise UserError(f"{where}: {flags[column]} differs: the CSV has {row[column]}, this run "
                                f"{value}")


def merge_shards(csv_path: Path, world: int, existing_text: str, order: list, levels: list) -> None:
    rows = read_rows(csv_path)[1] if existing_text else []
    for r in range(world):
        part = csv_path.with_name(f"{csv_path.name}.part{r}")
        rows += read_rows(part)[1]
        part.unlink()
    position = {p: i for i, p in enumerate(order)}
    rows.sort(key=lambda row: (position[row["parameter"]], float(row["sparsity"])))
    writer = RowWriter(csv_path)
    for row in rows:
        writer.write(row)
    writer.close()
