import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def in_the_clone():
    """Paths in the tests are the clone's own (work_space/..., data/...), as a user types them at its root."""
    os.chdir(ROOT)
    torch.set_num_threads(1)
