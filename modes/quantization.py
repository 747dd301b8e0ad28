"""--mode quantization: INT8 with every available backend's settings tried, the best kept, compared to FP32."""
import argparse

from compression_tool.quant_module.config import Observer, PreluMode, QuantizationConfig

from .registry import Mode, register
from .shared import evaluator_of, load, training_images


def add_flags(p: argparse.ArgumentParser) -> None:
    q = QuantizationConfig()
    g = p.add_argument_group("quantization")
    g.add_argument("--quant_backend",
                   help="openvino (NNCF; the default where OpenVINO is installed, else onnxruntime) | onnxruntime | "
                        "torch (torch.ao FX; x86 and fbgemm name its kernels) | auto (all of them: the fastest whose "
                        "mean cosine reaches --min_cosine)")
    g.add_argument("--observer", default=q.observer, choices=list(Observer), type=Observer,
                   help="how activation ranges are calibrated (torch and onnxruntime; NNCF has its own)")
    g.add_argument("--calib_batches", type=int, default=4, help="batches of calibration images (from "
                   "--train_data_path, never the test pairs)")
    g.add_argument("--calib_batch_size", type=int, default=q.calib_batch_size)
    g.add_argument("--validation_images", type=int, default=64, help="further images of --train_data_path on "
                   "which settings and backends are chosen (embedding cosine to FP32)")
    g.add_argument("--max_cosine_drop", type=float, help="openvino: NNCF's accuracy control keeps the most "
                   "damaging layers in float until the mean cosine to FP32 on the validation images drops by at "
                   "most this")
    g.add_argument("--min_cosine", type=float, default=q.min_cosine, help="auto: the mean cosine a backend must reach")
    g.add_argument("--prelu", default=q.prelu, choices=list(PreluMode), type=PreluMode,
                   help="torch backend, PReLU between integer layers: float, integer (our fix of torch's kernel), "
                        "or auto: per layer, whichever is faster here at --prelu_batch")
    g.add_argument("--prelu_batch", type=int, default=q.prelu_batch, help="the batch size --prelu auto times at")
    g.add_argument("--fp16", action="store_true", help="also compare half precision (the original's option)")
    g.add_argument("--latency_batches", type=int, nargs="+", default=list(q.latency_batches),
                   help="batch sizes timed")
    g.add_argument("--latency_repeats", type=int, default=q.latency_repeats, help="timed calls per median (bs1; a "
                   "quarter of it for larger batches)")
    g.add_argument("--quantized_save_model_path", default=q.output_folder, help="output folder")


def config_from(args: argparse.Namespace) -> QuantizationConfig:
    from compression_tool.quant_module.backends import default_backend
    return QuantizationConfig(backend=args.quant_backend or default_backend(), observer=args.observer, prelu=args.prelu,
                              prelu_batch=args.prelu_batch, calib_batch_size=args.calib_batch_size,
                              max_cosine_drop=args.max_cosine_drop, min_cosine=args.min_cosine, fp16=args.fp16,
                              latency_batches=tuple(args.latency_batches), latency_repeats=args.latency_repeats,
                              output_folder=args.quantized_save_model_path, overwrite=args.overwrite,
                              calibration_source=args.train_data_path)


def run(args: argparse.Namespace):
    from compression_tool.quantization import run_quantization
    config = config_from(args)
    loaded = load(args)
    evaluator = evaluator_of(args, loaded)
    count = args.calib_batches * args.calib_batch_size
    images = training_images(args, loaded, count + args.validation_images)
    calibration, validation = images[:count], images[count:]
    if not len(validation):
        print(f"note: {args.train_data_path} has no images beyond the {count} for calibration: settings are "
              f"chosen on those")
        validation = calibration
    return run_quantization(config, loaded, evaluator=evaluator, calibration=calibration, validation=validation)


register(Mode("quantization", add_flags, run))
