"""Datasets: the built-in ones (``digits``, ``facepose``), and the choice between them and the user's data.

Every dataset is a :class:`~edgeopt.dataset.Dataset` with float32 inputs and a fixed train/test split,
so figures are comparable across runs and releases. Built-in data never touches the network:

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 real samples), pixels scaled to
  [0, 1], shape (8, 8, 1); a stratified 80/20 split with seed 0 (1,437 train / 360 test).
- ``digits32``: the same digits and split, upsampled to 32x32x1 by bilinear interpolation.
- ``facepose``: a deterministic generator of 32x32 grayscale synthetic faces labelled with
  (yaw, pitch) in degrees, yaw uniform in [-75, 75] and pitch uniform in [-45, 45]. Train and test
  are drawn from independent seeded streams (8,000 / 2,000 samples). See :func:`make_facepose`.

:func:`load_dataset` reads a built-in name, or the user's data (an ``.npz`` or ``.csv`` file, an image
folder, a loader), through the one registry of data sources, :data:`SOURCES` (kind ->
:class:`~edgeopt.sources.Source`): the built-in sets here, the user's kinds in :mod:`edgeopt.sources`.
The dataset type and the checks of its arrays live in :mod:`edgeopt.dataset`, below both; this module
re-exports them (see ``__all__``).

This module imports no TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeopt.dataset import (
    BINARY,
    CLASSIFICATION,
    MAX_CLASSES,
    MAX_NPZ_ARRAY_BYTES,
    MULTI_OUTPUT,
    NUMERIC_KINDS,
    REGRESSION,
    Arrays,
    Dataset,
    binary_labels,
    check_dataset_arrays,
    check_named_arrays,
    check_outputs,
    n_samples,
    names_of,
    shape_fits,
    take,
)
from edgeopt.errors import InputError
from edgeopt.paths import check_path
from edgeopt.sources import (
    CSV,
    IMAGES,
    LOADER,
    NAME_SEPARATOR,
    NPZ,
    NPZ_KEYS,
    DataSpec,
    Source,
    group_named,
    load_npz,
)
from edgeopt.trainspec import steps_per_epoch

# Re-exported from edgeopt.dataset, edgeopt.sources and edgeopt.trainspec, where they live, for the
# code that reads datasets from here; the rest is this module's own.
__all__ = ["BINARY", "CLASSIFICATION", "MAX_CLASSES", "MAX_NPZ_ARRAY_BYTES", "MULTI_OUTPUT", "NUMERIC_KINDS",
           "REGRESSION", "Arrays", "Dataset", "binary_labels", "check_dataset_arrays", "check_named_arrays",
           "check_outputs", "n_samples", "names_of", "shape_fits", "take", "NAME_SEPARATOR", "NPZ_KEYS",
           "DataSpec", "Source", "group_named", "load_npz", "steps_per_epoch",
           "FACEPOSE_YAW_RANGE", "FACEPOSE_PITCH_RANGE", "FACEPOSE_SIZE", "FACEPOSE_N_TRAIN",
           "FACEPOSE_N_TEST", "FACEPOSE_NOISE_STD", "load_digits", "DIGIT_CLASSES", "DIGITS32_SIZE",
           "upsample_bilinear", "load_digits32", "make_facepose", "load_facepose", "BUILTIN",
           "BUILTIN_SOURCE", "SOURCES", "FALLBACK", "source_for", "load_dataset", "load_source"]

FACEPOSE_YAW_RANGE = (-75.0, 75.0)
FACEPOSE_PITCH_RANGE = (-45.0, 45.0)
FACEPOSE_SIZE = 32
FACEPOSE_N_TRAIN = 8000
FACEPOSE_N_TEST = 2000
FACEPOSE_NOISE_STD = 0.08


def load_digits() -> Dataset:
    """scikit-learn's bundled digits, stratified 80/20 split with seed 0."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., np.newaxis]
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    return Dataset("digits", CLASSIFICATION, x_train, y_train, x_test, y_test, classes=DIGIT_CLASSES)


DIGIT_CLASSES = tuple(str(digit) for digit in range(10))


DIGITS32_SIZE = 32


def upsample_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """Resize (n, h, w, 1) images to (n, size, size, 1) by bilinear interpolation (pixel centres aligned)."""
    n, h, w = images.shape[:3]
    ys = np.clip((np.arange(size) + 0.5) * h / size - 0.5, 0, h - 1)
    xs = np.clip((np.arange(size) + 0.5) * w / size - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[None, :, None, None], (xs - x0)[None, None, :, None]
    top = images[:, y0][:, :, x0] * (1 - wx) + images[:, y0][:, :, x1] * wx
    bottom = images[:, y1][:, :, x0] * (1 - wx) + images[:, y1][:, :, x1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def load_digits32() -> Dataset:
    """The same digits and split, upsampled to 32x32x1 (bilinear): input for mobilenet_v2-style models."""
    small = load_digits()
    return Dataset("digits32", CLASSIFICATION, upsample_bilinear(small.x_train, DIGITS32_SIZE), small.y_train,
                   upsample_bilinear(small.x_test, DIGITS32_SIZE), small.y_test, classes=DIGIT_CLASSES)


def _rotate(points: np.ndarray, yaw_deg: np.ndarray, pitch_deg: np.ndarray) -> np.ndarray:
    """Rotate head-frame points (x right, y down, z towards the camera) by yaw then pitch.

    points: (F, 3); angles: (N,). Returns (N, F, 3). Positive yaw turns the face to the image
    right; positive pitch tilts it up.
    """
    yaw = np.deg2rad(yaw_deg)[:, None]
    pitch = np.deg2rad(pitch_deg)[:, None]
    x, y, z = points[:, 0][None], points[:, 1][None], points[:, 2][None]
    x1 = x * np.cos(yaw) + z * np.sin(yaw)
    z1 = -x * np.sin(yaw) + z * np.cos(yaw)
    y2 = y * np.cos(pitch) - z1 * np.sin(pitch)
    z2 = y * np.sin(pitch) + z1 * np.cos(pitch)
    return np.stack([x1, y2, z2], axis=-1)


# Facial features on the head sphere (unit radius): position, darkness, blob size (x, y) in radii.
_FEATURES = np.array(
    [
        # x, y, z, intensity, sigma_x, sigma_y
        [-0.36, -0.22, 0.0, -0.60, 0.13, 0.10],  # left eye
        [0.36, -0.22, 0.0, -0.60, 0.13, 0.10],  # right eye
        [0.00, 0.12, 0.0, -0.35, 0.08, 0.13],  # nose (shadow)
        [0.00, 0.45, 0.0, -0.50, 0.25, 0.08],  # mouth
        [0.00, -0.80, 0.0, -0.40, 0.50, 0.15],  # hairline
    ],
    dtype=np.float64,
)
_NOSE_TIP_PROTRUSION = 1.18  # the nose sits in front of the sphere, so it moves more with the pose


def make_facepose(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` synthetic 32x32 faces and their (yaw, pitch) labels in degrees.

    A head is a soft-edged ellipse of random size (radius 10-12 px) and position (centre jitter
    sigma 1 px) on a random background; eyes, nose, mouth and hairline are Gaussian blobs placed by
    rotating points on the head sphere by yaw and pitch and projecting them orthographically;
    features turned away from the camera fade out. Brightness and contrast vary per image and
    Gaussian pixel noise (sigma 0.08) is added; pixels are clipped to [0, 1]. Deterministic for a
    given (n, seed).

    Returns:
        x: float32 (n, 32, 32, 1); y: float32 (n, 2) holding (yaw, pitch) in degrees.
    """
    rng = np.random.default_rng(seed)
    yaw = rng.uniform(*FACEPOSE_YAW_RANGE, size=n)
    pitch = rng.uniform(*FACEPOSE_PITCH_RANGE, size=n)
    radius = rng.uniform(10.0, 12.0, size=n)[:, None, None]
    cx = (FACEPOSE_SIZE / 2 + rng.normal(0, 1.0, size=n))[:, None, None]
    cy = (FACEPOSE_SIZE / 2 + rng.normal(0, 1.0, size=n))[:, None, None]
    background = rng.uniform(0.05, 0.35, size=n)[:, None, None]
    skin = rng.uniform(0.6, 0.85, size=n)[:, None, None]

    grid = np.arange(FACEPOSE_SIZE, dtype=np.float64) + 0.5
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    gx, gy = gx[None], gy[None]

    # Head outline: an ellipse a little narrower than tall, with a soft edge.
    ellipse = ((gx - cx) / (0.85 * radius)) ** 2 + ((gy - cy) / radius) ** 2
    head = 1.0 / (1.0 + np.exp((ellipse - 1.0) * 12.0))
    image = background + (skin - background) * head

    points = _FEATURES[:, :3].copy()
    points[:, 2] = np.sqrt(np.clip(1.0 - points[:, 0] ** 2 - points[:, 1] ** 2, 0.0, None))
    points[2, 2] *= _NOSE_TIP_PROTRUSION
    rotated = _rotate(points, yaw, pitch)  # (n, F, 3)
    for f in range(len(_FEATURES)):
        px = cx[:, 0, 0] + radius[:, 0, 0] * rotated[:, f, 0]
        py = cy[:, 0, 0] + radius[:, 0, 0] * rotated[:, f, 1]
        facing = np.clip(rotated[:, f, 2] * 3.0, 0.0, 1.0)  # fade as the feature turns away
        sx = radius[:, 0, 0] * _FEATURES[f, 4] * (0.35 + 0.65 * np.clip(rotated[:, f, 2], 0.0, 1.0))
        sy = radius[:, 0, 0] * _FEATURES[f, 5]
        blob = np.exp(
            -0.5
            * (
                ((gx - px[:, None, None]) / sx[:, None, None]) ** 2
                + ((gy - py[:, None, None]) / sy[:, None, None]) ** 2
            )
        )
        image = image + _FEATURES[f, 3] * facing[:, None, None] * blob * head

    contrast = rng.uniform(0.8, 1.2, size=n)[:, None, None]
    brightness = rng.uniform(-0.1, 0.1, size=n)[:, None, None]
    image = (image - 0.5) * contrast + 0.5 + brightness
    image = image + rng.normal(0.0, FACEPOSE_NOISE_STD, size=image.shape)
    x = np.clip(image, 0.0, 1.0).astype(np.float32)[..., np.newaxis]
    y = np.stack([yaw, pitch], axis=1).astype(np.float32)
    return x, y


def load_facepose() -> Dataset:
    """The facepose regression data: 8,000 train (seed 1) and 2,000 test (seed 2) faces."""
    x_train, y_train = make_facepose(FACEPOSE_N_TRAIN, seed=1)
    x_test, y_test = make_facepose(FACEPOSE_N_TEST, seed=2)
    return Dataset("facepose", REGRESSION, x_train, y_train, x_test, y_test, unit="degrees",
                   output_names=("yaw", "pitch"))


BUILTIN = {"digits": load_digits, "digits32": load_digits32, "facepose": load_facepose}

# A recipe's data: by name (a str, not a DataSpec: a path named like a built-in set is read as the set).
BUILTIN_SOURCE = Source("builtin", claims=lambda given: isinstance(given, str) and given in BUILTIN,
                        load=lambda name: BUILTIN[name]())

# The one registry of data sources: kind -> Source (see edgeopt.sources.Source for the contract). The
# first that claims what ``data:`` gives reads it; an existing path none claims is read as an .npz
# (FALLBACK), whose own checks then say what is wrong with it. A new source is one line here.
SOURCES: dict[str, Source] = {
    "builtin": BUILTIN_SOURCE,
    "loader": LOADER,
    "images": IMAGES,
    "csv": CSV,
    "npz": NPZ,
}
FALLBACK = "npz"


def source_for(given) -> Source | None:
    """The source that reads ``given`` (a name or a :class:`DataSpec`): the first in :data:`SOURCES`
    that claims it, else the fallback for an existing path; None when nothing reads it."""
    claiming = next((source for source in SOURCES.values() if source.claims(given)), None)
    if claiming is None and isinstance(given, DataSpec) and given.path and Path(given.path).exists():
        return SOURCES[FALLBACK]
    return claiming


def load_source(spec: DataSpec) -> Dataset:
    """The dataset a ``data:`` mapping describes (a loader, or a path with options)."""
    source = source_for(spec)
    if source is None:
        raise InputError(f"data.path: {spec.path} not found; give an .npz file, a folder of class folders "
                         "or a .csv file")
    return source.load(spec)


def load_dataset(spec) -> Dataset:
    """A built-in dataset by name, user data by path (.npz, folder of class folders, .csv), or a
    :class:`~edgeopt.sources.DataSpec` mapping (options, or a loader): read by the source of
    :data:`SOURCES` that claims it, into one :class:`~edgeopt.dataset.Dataset`."""
    if isinstance(spec, DataSpec):
        return load_source(spec)
    named = source_for(spec)  # a name a source knows: a built-in set (or a registered source's)
    if named is not None:
        return named.load(spec)
    path = check_path(spec, "data")
    if path.exists() or path.suffix.lower() in (".npz", ".csv"):
        if not path.exists():
            raise InputError(f"data: {path} not found (give a built-in name: {', '.join(BUILTIN)}, an .npz "
                             "or .csv file, or a folder of class folders)")
        return load_source(DataSpec(path=str(path)))
    raise InputError(f"data: unknown dataset '{spec}' (built-in: {', '.join(BUILTIN)}; or a path to an .npz "
                     "or .csv file, or to a folder of class folders)")
