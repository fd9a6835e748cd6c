"""The percentile ranges keep only a stream's extremes yet give numpy's own percentiles of all of it."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.calibrate import _Tails


@pytest.mark.parametrize("percentile", [99.9, 99.99, 100.0])
def test_tails_of_a_stream_give_numpys_percentiles_of_the_whole(percentile):
    rng = np.random.default_rng(0)
    batches = [rng.standard_cauchy(size=(16, 5, 7)).astype(np.float32) for _ in range(40)]
    values = np.concatenate([b.reshape(-1) for b in batches])
    tails = _Tails(int((len(values) - 1) * (100.0 - percentile) / 100.0))
    for batch in batches:
        tails.add(batch)
    low, high = tails.bounds()
    assert high == np.percentile(values, percentile, method="higher")
    assert low == np.percentile(values, 100.0 - percentile, method="lower")
    assert len(tails.high) <= tails.rank + 1  # the stream itself is not kept
