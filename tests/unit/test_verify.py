"""Checks compare what the stages achieved with what each .tflite's inspection holds (no TensorFlow).

Each technique's ``checks`` (reached through :func:`edgeopt.verify.run_checks`) and the int8 format's
own check, on typed stage outcomes and variants.
"""

from __future__ import annotations

from edgeopt.techniques import TECHNIQUES
from edgeopt.types import StageOutcome, Variant
from edgeopt.verify import int8_checks, run_checks


def variant(name, pattern_2_4=None, per_channel_unique=(4, 4, 30), sparsity=0.5, **inspect):
    tensors = {
        f"w{i}": {"role": "weight", "unique_values": 99, "unique_values_per_channel_max": u}
        for i, u in enumerate(per_channel_unique)
    }
    tensors["b"] = {"role": "bias", "unique_values": 1, "unique_values_per_channel_max": 1}
    return Variant(name=name, format=name, status="ok", sparsity=sparsity,
                   inspect={"pattern_2_4": pattern_2_4, "per_tensor": tensors, **inspect})


def outcome(kind, params, achieved) -> StageOutcome:
    return StageOutcome(kind=kind, params=params, achieved=achieved)


PRUNE_2_4 = outcome("prune", {"structure": "2:4", "target_sparsity": 0.5}, {"m_by_n_groups_share": 0.9})
CLUSTER_4 = outcome("cluster", {"clusters": 4}, {"clustered_layers": ["a", "b"]})


def checks_of(stage, variants):
    return TECHNIQUES[stage.kind].checks(stage, variants)


def test_2_4_compliance_below_the_pruned_share_fails():
    checks = checks_of(PRUNE_2_4, [variant("float32", 0.95), variant("int8", 0.5)])
    assert [c.status for c in checks] == ["ok", "fail"]
    assert "falls short of 0.900" in checks[1].message


def test_reference_variants_and_failed_rows_are_not_checked():
    rows = [
        Variant(name="keras_float", format="keras", status="ok"),
        variant("trained_float32", 0.0).replace(name="trained_float32", format="float32"),
        Variant.failed("int8", "int8", "the converter failed"),
    ]
    pruned = PRUNE_2_4.replace(achieved={**PRUNE_2_4.achieved, "pruned_weight_fraction": 0.9})
    assert run_checks([pruned, CLUSTER_4], rows) == []


def test_unstructured_pruning_has_no_pattern_check():
    prune = outcome("prune", {"structure": "unstructured", "target_sparsity": 0.5}, {})
    assert checks_of(prune, [variant("int8", 0.1)]) == []


def test_sparsity_is_checked_against_the_target_times_the_pruned_share():
    prune = outcome("prune", {"structure": "unstructured", "target_sparsity": 0.8},
                    {"pruned_weight_fraction": 0.5})
    checks = checks_of(prune, [variant("float32", sparsity=0.39), variant("int8", sparsity=0.37)])
    assert [(c.check, c.status, c.measured) for c in checks] == [("sparsity", "ok", 0.39),
                                                                ("sparsity", "fail", 0.37)]
    assert checks[0].expected == ">= 0.380"
    assert checks[1].message == ("int8: weight sparsity 0.370 in the .tflite (falls short of 0.380 = target "
                                 "0.80 x 0.500 of weights in pruned layers - 0.02)")


def test_cluster_count_counts_tensors_within_k_values_per_channel():
    ok = checks_of(CLUSTER_4, [variant("int8")])
    assert ok[0].status == "ok" and ok[0].measured == 2
    lost = checks_of(CLUSTER_4, [variant("int8", per_channel_unique=(4, 40, 30))])
    assert lost[0].status == "fail" and "1 of 3 weight tensors" in lost[0].message


def test_run_checks_gathers_each_stages_checks_then_the_int8_check():
    checks = run_checks([PRUNE_2_4, CLUSTER_4], [variant("int8", 1.0, float_ops=[])])
    assert [c.check for c in checks] == ["pattern_2_4", "clusters", "int8_ops"]


def test_int8_export_with_float_ops_fails_and_names_them():
    (ok,) = int8_checks([variant("int8", float_ops=[])])
    (bad,) = int8_checks([variant("int8", float_ops=["SOFTMAX", "MEAN", "SOFTMAX"])])
    assert ok.status == "ok" and ok.message == "int8: every op computes in int8"
    assert bad.status == "fail" and bad.measured == 3 and bad.message == "int8: float ops left: MEAN, SOFTMAX"
    assert int8_checks([variant("float32", float_ops=["ADD"])]) == []


def test_checks_are_written_in_report_json_shape():
    (check,) = int8_checks([variant("int8", float_ops=[])])
    assert check.to_json() == {"variant": "int8", "check": "int8_ops", "expected": "no float ops",
                               "measured": 0, "status": "ok", "message": "int8: every op computes in int8"}


def test_other_m_by_n_patterns_are_checked_against_their_own_share():
    prune = outcome("prune", {"structure": "1:4", "target_sparsity": 0.75}, {"m_by_n_groups_share": 0.9})
    rows = [
        variant("int8", 1.0, pattern={"structure": "1:4", "share": 0.4}),
        variant("float32", pattern={"structure": "1:4", "share": 0.95}),
    ]
    checks = checks_of(prune, rows)
    assert [(c.check, c.status) for c in checks] == [("pattern_1_4", "fail"), ("pattern_1_4", "ok")]
    assert "1:4 compliance 0.400" in checks[0].message  # 2:4 compliance of 1.0 does not count


def _stage(kind: str, losses: list[float]):
    from edgeopt.types import StageOutcome

    return StageOutcome(kind=kind, history={"loss": losses})


def test_a_stage_whose_loss_exploded_fails_naming_it_and_what_to_try():
    from edgeopt.verify import loss_checks

    checks = loss_checks([_stage("prune", [0.2, 0.14, 0.13]), _stage("quantize", [11.9, 4.0])],
                         {"loss": [0.3, 0.12]})
    assert [c.ok for c in checks] == [True, False]
    assert ("stage 2 (quantize): the fine-tuning loss jumped from 0.13 to 4 (epoch 2, the last; worst 11.9)"
            in checks[1].message)
    assert "stages[1].learning_rate" in checks[1].message


def test_the_usual_dip_of_a_new_mask_is_no_explosion():
    from edgeopt.verify import loss_checks

    checks = loss_checks([_stage("prune", [0.2, 0.05])], {"loss": [0.01]})  # 20x but small
    assert all(c.ok for c in checks)


def test_a_first_stage_after_no_training_is_not_judged():
    from edgeopt.verify import loss_checks

    assert loss_checks([_stage("quantize", [50.0])], {}) == []


def test_a_distilled_fine_tune_is_judged_on_its_label_loss_not_the_teacher_term():
    from edgeopt.types import StageOutcome
    from edgeopt.verify import loss_checks

    distilled = StageOutcome(kind="prune_channels", history={
        "loss": [11.8, 9.0], "label_loss": [0.09, 0.05], "distillation_loss": [13.0, 10.0]})
    checks = loss_checks([distilled, _stage("quantize", [0.06])], {"loss": [0.4, 0.0283]})
    assert [c.ok for c in checks] == [True, True]  # 0.09 after 0.0283; then 0.06 after 0.05
    exploded = StageOutcome(kind="prune_channels", history={"loss": [12.0], "label_loss": [2.5]})
    assert not loss_checks([exploded], {"loss": [0.03]})[0].ok


def test_a_stage_that_recovers_from_its_first_epochs_is_judged_where_it_ends():
    from edgeopt.verify import loss_checks

    # removing 70 % of the channels wrecks the first epoch; fine-tuning brings it back
    checks = loss_checks([_stage("prune_channels", [1.6, 0.4, 0.09])], {"loss": [0.004]})
    assert checks[0].ok and "0.09 at its end" in checks[0].message
