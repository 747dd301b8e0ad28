"""Before/after table from --result_json files: `compare_table.py original=a.json pruned=b.json ...`.
Each JSON is from --mode test; sizes are counted from the checkpoints named beside them (`--models`)."""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from commen_utils.errors import UserError, exit_code  # noqa: E402


def table(rows):
    """rows: [(label, checkpoint, test result dict)] -> markdown table."""
    from commen_utils.model_stats import count_macs, count_params
    from model_define.loading import load_model

    lines = ["| variant | params (M) | MACs (M) | 10-fold accuracy | TPR@FPR=1e-3 | AUC |", "|---|---|---|---|---|---|"]
    for label, checkpoint, result in rows:
        loaded = load_model(checkpoint=checkpoint)
        tpr = result["tpr_at_fpr"].get("0.001")
        lines.append(f"| {label} | {count_params(loaded.model) / 1e6:.2f} | "
                     f"{count_macs(loaded.model, loaded.input_size) / 1e6:.0f} | {result['accuracy']:.4f} | "
                     f"{'—' if tpr is None else f'{tpr:.3f}'} | {result['auc']:.4f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rows", nargs="+", metavar="LABEL=CHECKPOINT:RESULT_JSON")
    args = p.parse_args(argv)

    def run():
        rows = []
        for row in args.rows:
            label, _, rest = row.partition("=")
            checkpoint, _, result = rest.partition(":")
            if not Path(result).is_file():
                raise UserError(f"{result}: result JSON not found")
            rows.append((label, checkpoint, json.loads(Path(result).read_text())))
        print(table(rows))
    return exit_code(run)


if __name__ == "__main__":
    sys.exit(main())
