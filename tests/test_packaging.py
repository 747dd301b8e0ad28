"""`pip install .` installs one package, compression_tool, and nothing under a top-level name such as `main` or
`data` that would shadow a user's own files."""
import shutil
import subprocess
import sys
import zipfile

from tests.cli import ROOT


def source_tree(destination):
    """A copy of the checkout's sources (tracked files and untracked ones git does not ignore, as they are in
    the working tree): the wheel is built there, so that setuptools' build/ and egg-info staging folders
    neither touch the checkout nor bring stale files of an earlier build into the wheel."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():  # a tracked file deleted in the working tree is not a source
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


def staging_state():
    """What a build in the checkout would change: its build/ and egg-info folders' files and times."""
    return {str(p): p.stat().st_mtime_ns for pattern in ("build", "*.egg-info") for top in ROOT.glob(pattern)
            for p in [top, *top.rglob("*")]}


def test_the_wheel_holds_one_package_and_the_command(tmp_path):
    before = staging_state()
    source = source_tree(tmp_path / "source")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path / "wheel"), str(source)], check=True, capture_output=True)
    assert staging_state() == before  # the checkout is left as it was
    (wheel,) = (tmp_path / "wheel").glob("compression_tool-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"compression_tool", wheel.name.split("-py")[0] + ".dist-info"}
    assert "compression_tool/main.py" in names and "compression_tool/quant_module/backends.py" in names
    assert "compression_tool/setup.py" not in names and not any(n.startswith("compression_tool/tests/") for n in names)
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "compression_tool = compression_tool.main:main" in entry_points


def test_a_clone_that_was_never_set_up_says_so_in_one_line(tmp_path):
    """Without site-packages (python -S) the package is not installed, as in a clone before `make setup`."""
    for script in ("main.py", "pruning.py", "pruning_analysis_tools/auto_make_yaml.py"):
        proc = subprocess.run([sys.executable, "-S", str(ROOT / script), "--help"], cwd=tmp_path, capture_output=True,
                              text=True)
        assert proc.returncode != 0 and proc.stderr.strip().splitlines() == [
            "error: compression_tool is not installed: run `make setup` (or `pip install -e .`) in the clone"]
