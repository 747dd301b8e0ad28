import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)
torch.set_num_threads(1)


# The longest files first: with `-n 2 --dist loadfile` a long file started last would run alone at the end.
LONGEST_FIRST = ("test_demo.py", "test_quantization.py", "test_sensitivity.py", "test_any_model.py",
                 "test_finetune.py", "test_schedule_and_prune.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
