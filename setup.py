"""`pip install .` (or -e .): installs the toolkit's modules and the `compression_tool` command."""
from pathlib import Path

from setuptools import find_packages, setup

requirements_file = Path(__file__).with_name("requirements.txt")
requirements = [line.split("#")[0].strip() for line in requirements_file.read_text().splitlines()]

setup(
    name="compression_tool",
    version="0.1.0",
    description="Measure, prune, fine-tune and quantize face-recognition CNNs",
    python_requires=">=3.10",
    packages=find_packages(include=["commen_utils", "model_define", "test_module", "train_module", "quant_module",
                                    "prune_module",
                                    "pruning_analysis_tools", "data"]),
    py_modules=["main", "pruning", "sensitivity_analysis", "quantization", "dataloader"],
    install_requires=[r for r in requirements if r and not r.startswith("pytest")],
    entry_points={"console_scripts": ["compression_tool=main:main"]},
)
