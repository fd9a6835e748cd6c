"""Built-in datasets and .npz loading. No TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.data import FACEPOSE_PITCH_RANGE, FACEPOSE_YAW_RANGE, load_dataset, load_digits, make_facepose
from edgeopt.errors import InputError


def test_digits_split_is_fixed_stratified_and_real():
    a, b = load_digits(), load_digits()
    assert len(a.x_train) + len(a.x_test) == 1797
    assert len(a.x_test) == 360 and a.input_shape == (8, 8, 1) and a.output_dim == 10
    np.testing.assert_array_equal(a.y_test, b.y_test)
    counts = np.bincount(a.y_test)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: about 36 per class
    assert a.x_train.min() >= 0.0 and a.x_train.max() <= 1.0


def test_facepose_is_deterministic_and_covers_the_documented_ranges():
    x1, y1 = make_facepose(500, seed=3)
    x2, y2 = make_facepose(500, seed=3)
    np.testing.assert_array_equal(x1, x2)
    assert x1.shape == (500, 32, 32, 1) and y1.shape == (500, 2)
    assert FACEPOSE_YAW_RANGE[0] <= y1[:, 0].min() < -70 and 70 < y1[:, 0].max() <= FACEPOSE_YAW_RANGE[1]
    assert FACEPOSE_PITCH_RANGE[0] <= y1[:, 1].min() < -40 and 40 < y1[:, 1].max() <= FACEPOSE_PITCH_RANGE[1]


def test_facepose_images_depend_on_pose():
    # Same seed stream, so only the pose draws differ between faces: mirrored yaw must move pixels.
    x, y = make_facepose(200, seed=4)
    left, right = x[y[:, 0] < -40].mean(axis=0), x[y[:, 0] > 40].mean(axis=0)
    assert np.abs(left - right).max() > 0.1


def test_npz_round_trip(tmp_path):
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.random((20, 4)),
        y_train=rng.integers(0, 3, 20),
        x_test=rng.random((5, 4)),
        y_test=rng.integers(0, 3, 5),
    )
    d = load_dataset(str(path))
    assert d.task == "classification" and d.input_shape == (4,) and len(d.x_test) == 5


def test_npz_with_mismatched_lengths_is_rejected(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(
        path,
        x_train=np.zeros((20, 4)),
        y_train=np.zeros(19, int),
        x_test=np.zeros((5, 4)),
        y_test=np.zeros(5, int),
    )
    with pytest.raises(InputError, match="x_train has 20 samples but y_train has 19"):
        load_dataset(str(path))


def test_npz_with_missing_arrays_is_rejected(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((20, 4)), y_train=np.zeros(20, int))
    with pytest.raises(InputError, match="missing arrays x_test, y_test"):
        load_dataset(str(path))


def test_unknown_dataset_name_lists_builtins():
    with pytest.raises(InputError, match="built-in: digits"):
        load_dataset("mnist")
