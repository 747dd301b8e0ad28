"""Latency as the median of repeated timed calls, after a warm-up."""
import statistics
import time

import torch


def median_ms(call, repeats: int = 10, warmup: int = 2) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def median_latency_ms(model, input_size, batch: int, repeats: int = 10, warmup: int = 2) -> float:
    """A model's inference time on random pixels (0-255)."""
    x = torch.rand(batch, 3, *input_size) * 255
    with torch.no_grad():
        return median_ms(lambda: model(x), repeats, warmup)


@torch.no_grad()
def side_by_side_ms(models: list, input_size, batch: int, repeats: int) -> list:
    """Median latency of each model, timed in interleaved rounds so that a slow spell of the machine hits
    every model alike."""
    x = torch.rand(batch, 3, *input_size) * 255
    for model in models:  # warm-up: first calls allocate and pick kernels
        model(x)
        model(x)
    times = [[] for _ in models]
    for _ in range(repeats):
        for i, model in enumerate(models):
            start = time.perf_counter()
            model(x)
            times[i].append(time.perf_counter() - start)
    return [1000 * sorted(t)[len(t) // 2] for t in times]
