"""Sensitivity curves read from Distiller's CSV: {layer: {level: metric}}, plus MAC/param counts."""
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from compression_tool.commen_utils.errors import UserError

REQUIRED = ["parameter", "sparsity", "top1"]


@dataclass
class Curves:
    accuracy: dict                                  # {layer: {level: top1}}
    macs: dict = field(default_factory=dict)        # {layer: {level: MACs of the whole model}}
    params: dict = field(default_factory=dict)
    cosine: dict = field(default_factory=dict)      # {layer: {level: mean cosine to the unpruned outputs}}
    repair: dict = field(default_factory=dict)      # {"reconstruct": N, "bn_recalibrate": N} the SA ran with
    criterion: str = "l1"                           # how the SA ranked channels (a CSV without the column: l1)

    @property
    def layers(self) -> list[str]:
        return list(self.accuracy)

    @property
    def baseline(self) -> float:
        return next(iter(self.accuracy.values())).get(0.0)

    def damage(self, layer: str) -> dict:
        """{level: predicted damage} of one layer: 1 - cosine to the unpruned outputs where the CSV has it
        (smooth, and it does not saturate the way a 10-fold accuracy on a few thousand pairs does), else
        the metric lost."""
        if self.cosine:
            return {v: 1.0 - c for v, c in self.cosine[layer].items()}
        return {v: max(0.0, self.baseline - a) for v, a in self.accuracy[layer].items()}


def read_curves(path) -> Curves:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: sensitivity CSV not found")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a CSV ({str(e).splitlines()[0]})") from None
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} (Distiller's header is "
                        "parameter,sparsity,top1,top5,loss)")
    if table.empty:
        raise UserError(f"{path}: no rows")
    table["sparsity"] = table["sparsity"].astype(float).round(6)
    curves = Curves({})
    for layer, rows in table.groupby("parameter", sort=False):
        curves.accuracy[layer] = dict(zip(rows["sparsity"], rows["top1"].astype(float)))
        for column, target in (("macs", curves.macs), ("params", curves.params), ("cosine", curves.cosine)):
            if column in table.columns:
                target[layer] = dict(zip(rows["sparsity"], rows[column].astype(float)))
    curves.criterion = criterion_of(path, table)
    curves.repair = {flag: int(table[column].max()) if column in table.columns else 0
                     for flag, column in (("reconstruct", "reconstruction"), ("bn_recalibrate", "bn_recalibration"))}
    return curves


def criterion_of(path: Path, table: "pd.DataFrame") -> str:
    """The one criterion the CSV's rows were ranked with. A CSV from before the column existed (or a row
    with the cell empty) was ranked by L1, the only criterion then."""
    from compression_tool.prune_module.criteria import CRITERIA  # torch: only once a CSV is read

    if "criterion" not in table.columns:
        return "l1"
    found = sorted(set(table["criterion"].fillna("l1").astype(str).str.strip().replace("", "l1")))
    if len(found) > 1:
        raise UserError(f"{path}: rows ranked with different criteria ({', '.join(found)}): one sensitivity "
                        "analysis per CSV")
    if found[0] not in CRITERIA:
        raise UserError(f"{path}: criterion {found[0]} is not one this tool knows ({', '.join(CRITERIA)})")
    return found[0]


def repair_text(repair: dict) -> str:
    parts = [f"--{flag} {n}" for flag, n in repair.items() if n]
    return " ".join(parts) or "no repair"
