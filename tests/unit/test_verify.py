"""verify.py compares what the stages asked for with what each .tflite's inspection holds (no TensorFlow)."""

from __future__ import annotations

from edgeopt.verify import cluster_checks, pattern_checks, technique_checks


def variant(name, pattern=None, per_channel_unique=(4, 4, 30)):
    tensors = {
        f"w{i}": {"role": "weight", "unique_values": 99, "unique_values_per_channel_max": u}
        for i, u in enumerate(per_channel_unique)
    }
    tensors["b"] = {"role": "bias", "unique_values": 1, "unique_values_per_channel_max": 1}
    return {
        "name": name,
        "format": name,
        "status": "ok",
        "inspect": {"pattern_2_4": pattern, "per_tensor": tensors},
    }


PRUNE_2_4 = {"kind": "prune", "params": {"structure": "2:4"}, "achieved": {"m_by_n_groups_share": 0.9}}
CLUSTER_4 = {"kind": "cluster", "params": {"clusters": 4}, "achieved": {"clustered_layers": ["a", "b"]}}


def test_2_4_compliance_below_the_pruned_share_fails():
    checks = pattern_checks([PRUNE_2_4], [variant("float32", 0.95), variant("int8", 0.5)])
    assert [c["status"] for c in checks] == ["ok", "fail"]
    assert "falls short of 0.900" in checks[1]["message"]


def test_reference_variants_and_failed_rows_are_not_checked():
    rows = [
        {"name": "keras_float", "format": "keras", "status": "ok", "inspect": {}},
        {**variant("trained_float32", 0.0), "name": "trained_float32"},
        {"name": "int8", "format": "int8", "status": "failed", "inspect": {}},
    ]
    assert pattern_checks([PRUNE_2_4], rows) == []


def test_unstructured_pruning_has_no_pattern_check():
    prune = {"kind": "prune", "params": {"structure": "unstructured"}, "achieved": {}}
    assert pattern_checks([prune], [variant("int8", 0.1)]) == []


def test_cluster_count_counts_tensors_within_k_values_per_channel():
    ok = cluster_checks([CLUSTER_4], [variant("int8")])
    assert ok[0]["status"] == "ok" and ok[0]["measured"] == 2
    lost = cluster_checks([CLUSTER_4], [variant("int8", per_channel_unique=(4, 40, 30))])
    assert lost[0]["status"] == "fail" and "1 of 3 weight tensors" in lost[0]["message"]


def test_technique_checks_combine_both():
    checks = technique_checks([PRUNE_2_4, CLUSTER_4], [variant("int8", 1.0)])
    assert {c["check"] for c in checks} == {"pattern_2_4", "clusters"}


def test_other_m_by_n_patterns_are_checked_against_their_own_share():
    prune = {"kind": "prune", "params": {"structure": "1:4"}, "achieved": {"m_by_n_groups_share": 0.9}}
    rows = [
        {**variant("int8", 1.0), "inspect": {**variant("int8")["inspect"], "pattern_2_4": 1.0,
                                             "pattern": {"structure": "1:4", "share": 0.4}}},
        {**variant("float32"), "inspect": {**variant("float32")["inspect"],
                                           "pattern": {"structure": "1:4", "share": 0.95}}},
    ]
    checks = pattern_checks([prune], rows)
    assert [(c["check"], c["status"]) for c in checks] == [("pattern_1_4", "fail"), ("pattern_1_4", "ok")]
    assert "1:4 compliance 0.400" in checks[0]["message"]  # 2:4 compliance of 1.0 does not count
