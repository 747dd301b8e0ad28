"""`pip install .` (or -e .): installs the toolkit as one package, `compression_tool` (its folders and
scripts as `compression_tool.main`, `compression_tool.commen_utils`, ...), and the `compression_tool` command.
The clone's root is that package: the original's layout stays as users know it, and nothing is installed
under a top-level name like `main` or `data` that would collide with a user's own files."""
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

PACKAGE = "compression_tool"
FOLDERS = ["commen_utils", "data", "model_define", "modes", "prune_module", "pruning_analysis_tools", "quant_module",
           "test_module", "train_module"]

requirements_file = Path(__file__).with_name("requirements.txt")
requirements = [line.split("#")[0].strip() for line in requirements_file.read_text().splitlines()]


class BuildWithoutSetup(build_py):
    """The root is the package, so setup.py itself would otherwise be installed as one of its modules."""

    def find_package_modules(self, package, package_dir):
        return [m for m in super().find_package_modules(package, package_dir)
                if not (package == PACKAGE and m[1] == "setup")]


setup(
    name=PACKAGE,
    version="0.1.0",
    description="Measure, prune, fine-tune and quantize face-recognition CNNs",
    python_requires=">=3.10",
    package_dir={PACKAGE: "."},
    packages=[PACKAGE] + [f"{PACKAGE}.{p}" for p in find_packages(include=FOLDERS)],
    cmdclass={"build_py": BuildWithoutSetup},
    install_requires=[r for r in requirements if r and not r.startswith("pytest")],
    entry_points={"console_scripts": [f"{PACKAGE}={PACKAGE}.main:main"]},
)
