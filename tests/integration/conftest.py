"""Models the integration tests share, built once per session: the Keras 3 models int8 breaks
(scripts/user_models.py, the same builders scripts/bench_quant.py measures)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import user_models  # noqa: E402

sys.path.pop(0)


@pytest.fixture(scope="session")
def tabular(tmp_path_factory):
    """The folder holding tab.keras (a Normalization-first MLP) and tab.csv."""
    folder = tmp_path_factory.mktemp("tabular")
    user_models.tabular(folder)
    return folder


@pytest.fixture(scope="session")
def spiky(tmp_path_factory):
    """The folder holding spiky.keras (a CNN with one outlier channel) and digits.npz."""
    folder = tmp_path_factory.mktemp("spiky")
    user_models.spiky_cnn(folder)
    return folder
