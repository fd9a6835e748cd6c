"""One technique contract, one registry: a new technique is one module plus one line (no TensorFlow here).

A fake technique registered in a fixture is accepted by the recipe, placed by the one ordering check
and checked by :func:`edgeopt.verify.run_checks`, with no other edit; the built-in techniques share
one shape, keep TensorFlow out of import, and answer the pipeline's questions through hooks.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Literal

import numpy as np
import pytest
from pydantic import Field

from edgeopt.data import CLASSIFICATION, Dataset
from edgeopt.errors import InputError, RecipeError
from edgeopt.recipe import check_stage_order, parse_recipe
from edgeopt.techniques import TECHNIQUES, Placement, Technique
from edgeopt.techniques.base import FineTune, stage_outcome
from edgeopt.types import Check, StageOutcome, Variant
from edgeopt.verify import run_checks

BASE = {"model": "digits_cnn", "data": "digits"}
PRUNE = {"kind": "prune", "target_sparsity": 0.5}


class FakeStage(FineTune):
    kind: Literal["fake"] = "fake"
    strength: int = Field(3, ge=1)


class Fake(Technique):
    """A technique that asks for nothing TensorFlow-side and checks every export once."""

    kind = "fake"
    Stage = FakeStage
    placement = Placement(once=True, after=("prune",), why="it reads the zeros pruning leaves")

    def apply(self, model, stage, ctx):
        return model

    def outcome(self, stripped, stage, ctx, history) -> StageOutcome:
        return stage_outcome(stage, history, {"strength": stage.strength}, {}, "faked")

    def checks(self, outcome, variants) -> list[Check]:
        return [Check(variant=v.name, check="fake", measured=outcome.achieved["strength"]) for v in variants]


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(TECHNIQUES, "fake", Fake())
    return TECHNIQUES["fake"]


def stages(*items):
    return parse_recipe({**BASE, "stages": list(items)}).stages


def error_of(*items) -> str:
    with pytest.raises(RecipeError) as caught:
        stages(*items)
    return str(caught.value)


def test_a_registered_technique_stage_is_parsed_validated_and_dumped(fake):
    (stage,) = stages({"kind": "fake", "strength": 5})
    assert isinstance(stage, FakeStage) and stage.strength == 5
    recipe = parse_recipe({**BASE, "stages": [PRUNE, {"kind": "fake"}]})
    assert recipe.resolved()["stages"][1] == {"epochs": 2, "learning_rate": None, "batch_size": None,
                                              "kind": "fake", "strength": 3}
    assert "stages[0].strength" in error_of({"kind": "fake", "strength": 0})
    assert "did you mean 'strength'" in error_of({"kind": "fake", "strenght": 2})


def test_a_registered_technique_placement_is_applied_by_the_one_ordering_check(fake):
    assert "stages: prune must come before fake (it reads the zeros pruning leaves)" in error_of(
        {"kind": "fake"}, PRUNE)
    assert "only one fake stage is allowed (found 2)" in error_of({"kind": "fake"}, {"kind": "fake"})
    # the built-ins' rules still hold around it
    last = error_of({"kind": "quantize"}, {"kind": "fake"})
    assert "quantize must be the last stage ('fake' follows it)" in last
    assert [s.kind for s in stages({"kind": "distill", "teacher": "digits_cnn"}, PRUNE, {"kind": "fake"},
                                   {"kind": "quantize"})] == ["distill", "prune", "fake", "quantize"]


def test_a_registered_technique_checks_are_run(fake):
    outcome = fake.outcome(None, FakeStage(strength=4), None, {"loss": [1.0]})
    params = {"epochs": 2, "learning_rate": None, "batch_size": None, "kind": "fake", "strength": 4}
    assert outcome.to_json() == {"kind": "fake", "params": params, "history": {"loss": [1.0]},
                                 "achieved": {"strength": 4}, "skipped_layers": {}, "summary": "faked"}
    checks = run_checks([outcome], [Variant(name="float32", format="float32")])
    assert [(c.check, c.measured) for c in checks] == [("fake", 4)]


def test_an_unregistered_kind_is_refused_with_the_registered_ones():
    message = error_of({"kind": "fake"})
    assert "stages[0]: input tag 'fake' found using 'kind' does not match any of the expected tags: " \
           "'prune', 'cluster', 'quantize', 'distill'" in message


@pytest.mark.parametrize(
    ("placement", "kinds", "message"),
    [
        (Placement(first=True), ["prune", "fake"],
         "stages: fake must be the first stage ('prune' comes before it and would be undone)"),
        (Placement(last=True, why="it seals the model"), ["fake", "prune"],
         "stages: fake must be the last stage (it seals the model; 'prune' follows it)"),
        (Placement(after=("cluster", "prune")), ["fake", "prune"], "stages: prune must come before fake"),
    ],
)
def test_placement_rules_read_as_data(monkeypatch, placement, kinds, message):
    monkeypatch.setitem(TECHNIQUES, "fake", type("Placed", (Fake,), {"placement": placement})())
    with pytest.raises(ValueError) as caught:
        check_stage_order(kinds)
    assert str(caught.value) == message
    check_stage_order(["fake"])  # alone, it is always in place


CONTRACT = ("kind", "Stage", "placement", "exports_float_from_here", "guided", "validate", "apply",
            "callbacks", "strip", "scope", "outcome", "checks", "guidance", "sparse_encoding",
            "inspect_pattern", "model_files")
CORE = ("kind", "Stage", "placement", "validate", "apply", "callbacks", "strip", "scope", "outcome", "checks")


@pytest.mark.parametrize("kind", list(TECHNIQUES))
def test_every_technique_has_the_same_shape(kind):
    technique = TECHNIQUES[kind]
    module = sys.modules[type(technique).__module__]
    assert module.TECHNIQUE is technique and technique.kind == kind
    assert technique.Stage.model_fields["kind"].default == kind
    defined = [name for name in vars(type(technique)) if name in CONTRACT]
    assert defined == sorted(defined, key=CONTRACT.index), "contract members out of order"
    assert set(CORE) <= set(defined)
    for name in defined:
        member = getattr(type(technique), name)
        if callable(member) and not isinstance(member, type):
            assert member.__doc__, f"{kind}.{name} has no docstring"


def one(item):
    (stage,) = stages(item)
    return stage


def test_the_pipeline_asks_hooks_not_names():
    prune, cluster, quantize, distill = (TECHNIQUES[k] for k in ("prune", "cluster", "quantize", "distill"))
    sparse, two_four = one({**PRUNE, "policy": "xnnpack_sparse"}), one({"kind": "prune", "structure": "2:4"})
    clustered, qat = one({"kind": "cluster"}), one({"kind": "quantize"})
    teacher = one({"kind": "distill", "teacher": "model.keras"})
    assert prune.sparse_encoding(sparse) and not prune.sparse_encoding(two_four)
    assert prune.inspect_pattern(two_four) == (2, 4) and prune.inspect_pattern(sparse) is None
    assert not cluster.sparse_encoding(clustered) and cluster.inspect_pattern(clustered) is None
    assert not quantize.exports_float_from_here and prune.exports_float_from_here
    assert not distill.guided and cluster.guided and quantize.guided
    assert distill.model_files(teacher) == (("teacher", "model.keras"),) and quantize.model_files(qat) == ()
    assert quantize.guidance(qat, None) is None


def test_prune_refuses_a_schedule_that_cannot_reach_its_target_before_training():
    rng = np.random.default_rng(0)
    data = Dataset("tiny", CLASSIFICATION, rng.normal(size=(100, 4)).astype(np.float32), np.arange(100) % 2,
                   rng.normal(size=(10, 4)).astype(np.float32), np.arange(10) % 2)
    recipe = parse_recipe({**BASE, "stages": [{**PRUNE, "epochs": 2, "frequency": 500}]})
    with pytest.raises(InputError, match=r"stages\[0\]\.frequency \(now 500\)"):
        TECHNIQUES["prune"].validate(recipe.stages[0], 0, data, recipe.train)
    reachable = parse_recipe({**BASE, "stages": [{**PRUNE, "epochs": 2, "frequency": 2}]})
    TECHNIQUES["prune"].validate(reachable.stages[0], 0, data, reachable.train)


def test_techniques_recipe_and_checks_import_without_tensorflow():
    code = ("import sys, edgeopt.recipe, edgeopt.verify, edgeopt.techniques; "
            "sys.exit('tensorflow' in sys.modules or 'tf_keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
