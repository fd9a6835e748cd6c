"""The base of every settings model a user writes: recipe sections, benchmark settings, tolerances.

:class:`Strict` models are frozen, refuse unknown keys with a "did you mean" suggestion, and refuse
``inf`` and ``nan``. It lives apart from :mod:`edgeopt.recipe` so that a section the recipe shares
with another module (:class:`edgeopt.bench.spec.BenchSpec`, also built by ``edgeopt benchmark``; a
technique's stage model) can be defined there without importing the recipe. No TensorFlow.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

SEED_LIMIT = 2**32  # seeds are in [0, 2**32): what NumPy, TensorFlow and Python's random all accept


class Strict(BaseModel):
    """Base for every recipe section: frozen, and unknown keys rejected with a suggestion."""

    # allow_inf_nan: a recipe never means inf or nan (`end_epoch: .inf` would train for ever).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = list(cls.model_fields)
            for key in data:
                if key not in cls.model_fields:
                    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
                    hint = f"did you mean '{close[0]}'?" if close else "known keys: " + ", ".join(known)
                    raise ValueError(f"unknown key '{key}' ({hint})")
        return data
