#!/usr/bin/env python
"""Where one `edgeopt compress` run spends its time, step by step, in one process.

Wraps the pipeline's steps (fits, conversions, measurements, the report, gzip sizes, the Keras
model's score and save) with timers, runs ``edgeopt compress RECIPE --quiet`` through the CLI and
prints the seconds each took, largest first. Used by docs/overhead.md.

    .venv/bin/python scripts/profile_compress.py models/digits_cnn/recipe.yaml
"""

from __future__ import annotations

import collections
import contextlib
import functools
import sys
import tempfile
import time

SECONDS: dict[str, float] = collections.defaultdict(float)


def timed(module, name: str) -> None:
    """Replace ``module.name`` by the same function, timed into SECONDS[name]."""
    function = getattr(module, name)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SECONDS[name] += time.perf_counter() - start

    setattr(module, name, wrapper)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    start = time.perf_counter()
    import edgeopt.convert as convert
    import edgeopt.pipeline as pipeline
    import edgeopt.train as train
    from edgeopt.cli import main as cli
    from edgeopt.kerasapi import keras

    SECONDS["imports (TensorFlow included)"] = time.perf_counter() - start
    for module, names in ((train, ["fit"]), (convert, ["convert"]),
                          (pipeline, ["measure", "write_report", "gzip_size", "keras_metrics", "run_stages",
                                      "load_model", "copy_model", "inspection", "evaluate_tflite"])):
        for name in names:
            timed(module, name)
    timed(keras.Model, "save")
    with tempfile.TemporaryDirectory() as out:
        sys.argv = ["edgeopt", "compress", sys.argv[1], "--out", f"{out}/run", "--quiet"]
        start = time.perf_counter()
        with contextlib.suppress(SystemExit):
            cli()
        SECONDS["compress, all of it"] = time.perf_counter() - start
    for name, seconds in sorted(SECONDS.items(), key=lambda item: -item[1]):
        print(f"{seconds:7.2f} s  {name}", file=sys.__stderr__)


if __name__ == "__main__":
    main()
