"""`--mode test`: score a model on a pair list (or a liveness list) and plot its ROC."""
from pathlib import Path

from commen_utils.timestamp import time_stamp

from .evaluate import make_evaluator, summary_line
from .plots import plot_roc


def evaluator_from_args(args, spec, **overrides):
    settings = dict(target_fprs=args.target_fpr, batch_size=args.test_batch_size, device=args.device,
                    workers=args.num_workers, flip=args.flip, skip_bad_images=args.skip_bad_images)
    settings.update(overrides)
    return make_evaluator(args.data_source, args.test_root_path, args.img_list_label_path, spec, **settings)


def run_test(args, loaded):
    spec = loaded.spec
    print(f"preprocessing: {spec.size[0]}x{spec.size[1]} {spec.channel_order}, (pixel - {spec.mean:g}) / {spec.std:g}")
    result = evaluator_from_args(args, spec)(loaded.model)
    print(f"{loaded.arch}: {summary_line(result)}")
    fpr, tpr, _, auc = result.pop("roc")
    roc_png = Path(args.roc_png or f"work_space/report/roc_{Path(loaded.arch).stem}_{time_stamp()}.png")
    plot_roc({loaded.arch: (fpr, tpr, auc)}, roc_png,
             title=f"ROC of {loaded.arch} on {Path(args.img_list_label_path).name}")
    print(f"ROC curve: {roc_png}")
    return result
