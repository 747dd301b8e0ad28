"""Inference latency as the median of repeated timed calls on random pixels (0-255), after a warm-up."""
import statistics
import time

import torch


def median_latency_ms(model, input_size, batch: int, repeats: int = 10, warmup: int = 2) -> float:
    x = torch.rand(batch, 3, *input_size) * 255
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)
