"""Run the suite as one fresh pytest process per test file, a few at a time (what `make test` calls).

Why not pytest-xdist: its workers live for the whole run, and a worker that died in native code after many files
left xdist waiting forever on a clean CI machine. A process per file starts clean, a crash takes down one file
and prints Python's fault handler dump, and a file that hangs is killed at --timeout with every thread's stack
(pytest's faulthandler_timeout) instead of eating the CI budget. A file whose process a signal kills is shown with
its dump and run once more: a crash that recurs fails the suite, one that does not is on the record.
"""
import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

# The longest files start first, so that no long file runs alone at the end; the others by size.
LONGEST_FIRST = ("test_demo.py", "test_sensitivity.py", "test_quantization.py", "test_any_model.py",
                 "test_finetune.py", "test_schedule_and_prune.py", "test_latency_target.py", "test_cli.py")


def run_order(files: list[Path]) -> list[Path]:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    return sorted(files, key=lambda f: (rank.get(f.name, len(rank)), -f.stat().st_size))


def run_file(path: Path, timeout_s: float, pytest_args: list[str]) -> tuple[Path, int, str, float]:
    start = time.monotonic()
    command = [sys.executable, "-X", "faulthandler", "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
               "-o", f"faulthandler_timeout={int(timeout_s * 0.8)}", *pytest_args, str(path)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        code, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        code = 124  # as coreutils timeout
        output = f"{(e.stdout or b'').decode(errors='replace')}{(e.stderr or b'').decode(errors='replace')}\n" \
                 f"killed after {timeout_s:.0f} s"
    return path, code, output, time.monotonic() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", type=Path, help="test files (default: tests/test_*.py)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--timeout", type=float, default=900, help="seconds one file may take")
    args, pytest_args = p.parse_known_args()
    files = run_order(args.files or sorted(Path(__file__).parent.glob("test_*.py")))
    start, failed = time.monotonic(), []
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = [pool.submit(run_file, f, args.timeout, pytest_args) for f in files]
        for path, code, output, seconds in (run.result() for run in as_completed(runs)):
            if code < 0:  # killed by a signal in native code: shown, then run once more
                print(f"{path.name}: crashed (signal {-code}); its output, then one rerun:\n{output}", flush=True)
                path, code, output, seconds = run_file(path, args.timeout, pytest_args)
            last = output.strip().splitlines()[-1] if output.strip() else ""
            print(f"{path.name}: {last} ({seconds:.0f} s, exit {code})", flush=True)
            if code != 0:  # exit 5 (no tests collected) counts as a failure too: a file that tests nothing
                failed.append(path.name)
                print(output, flush=True)
    print(f"{len(files) - len(failed)} of {len(files)} files passed in {time.monotonic() - start:.0f} s"
          + (f"; failed: {' '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
