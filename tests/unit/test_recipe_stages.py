"""Stage schemas and ordering rules of issue 3: rejected before any training, with the field path."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgeopt.cli import cli
from edgeopt.errors import RecipeError
from edgeopt.recipe import parse_recipe

BASE = {"model": "digits_cnn", "data": "digits"}


def stages(*items):
    return parse_recipe({**BASE, "stages": list(items)}).stages


def error_of(*items) -> str:
    with pytest.raises(RecipeError) as caught:
        stages(*items)
    return str(caught.value)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            [{"kind": "quantize"}, {"kind": "prune", "target_sparsity": 0.5}],
            "quantize must be the last stage",
        ),
        (
            [{"kind": "distill", "teacher": "digits_cnn"}, {"kind": "distill", "teacher": "digits_cnn"}],
            "only one distill stage",
        ),
        (
            [{"kind": "prune", "target_sparsity": 0.5}, {"kind": "distill", "teacher": "digits_cnn"}],
            "distill must be the first stage",
        ),
        ([{"kind": "cluster"}, {"kind": "prune", "target_sparsity": 0.5}], "prune must come before cluster"),
        ([{"kind": "quantize"}, {"kind": "quantize"}], "only one quantize stage"),
    ],
)
def test_orders_that_cannot_work_are_rejected(items, message):
    assert message in error_of(*items)


def test_full_collaborative_order_is_accepted():
    kinds = [
        s.kind
        for s in stages(
            {"kind": "distill", "teacher": "digits_cnn"},
            {"kind": "prune", "target_sparsity": 0.8},
            {"kind": "cluster", "clusters": 8},
            {"kind": "quantize"},
        )
    ]
    assert kinds == ["distill", "prune", "cluster", "quantize"]


def test_structure_2_4_implies_half_sparsity_and_rejects_a_contradiction():
    (prune,) = stages({"kind": "prune", "structure": "2:4"})
    assert prune.target_sparsity == 0.5 and prune.m_by_n == (2, 4)
    assert "fixes target_sparsity at 0.5" in error_of(
        {"kind": "prune", "structure": "2:4", "target_sparsity": 0.8}
    )
    assert "stages[0]" in error_of({"kind": "prune", "structure": "4:2"})


def test_ptq_trains_nothing():
    (ptq,) = stages({"kind": "quantize", "mode": "ptq"})
    assert ptq.epochs == 0
    assert "mode ptq needs no training" in error_of({"kind": "quantize", "mode": "ptq", "epochs": 2})


def test_cluster_and_distill_fields_are_validated_with_paths():
    assert "stages[0].clusters" in error_of({"kind": "cluster", "clusters": 1})
    assert "stages[0].alpha" in error_of({"kind": "distill", "teacher": "digits_cnn", "alpha": 1.5})
    assert "did you mean 'clusters'" in error_of({"kind": "cluster", "clustrs": 8})


def _compress(tmp_path, recipe_text: str):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(recipe_text)
    return CliRunner().invoke(cli, ["compress", str(recipe), "--out", str(tmp_path / "out")])


def test_compress_rejects_an_invalid_order_before_training(tmp_path):
    result = _compress(
        tmp_path,
        "model: digits_cnn\ndata: digits\nstages:\n  - {kind: quantize}\n"
        "  - {kind: prune, target_sparsity: 0.5}\n",
    )
    assert result.exit_code == 2
    assert "quantize must be the last stage" in result.stderr
    assert not (tmp_path / "out").exists()


def test_prune_schedule_that_cannot_reach_its_target_is_refused_before_training(tmp_path):
    result = _compress(
        tmp_path,
        "model: digits_cnn\ndata: digits\ntrain: {epochs: 30}\n"
        "stages:\n  - {kind: prune, target_sparsity: 0.8, epochs: 2, frequency: 500}\n",
    )
    assert result.exit_code == 2, result.output
    line = result.output.strip()  # one line: no "training ..." progress line came before it
    assert "stages[0].frequency (now 500)" in line and "\n" not in line and "Traceback" not in line
    assert not (tmp_path / "out").exists()
