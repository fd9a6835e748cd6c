"""edgeopt: Keras model -> small, fast, verified TFLite/LiteRT model, with measured proof.

The Python API (see docs/api.md) is available as ``edgeopt.load_recipe``, ``edgeopt.prepare``,
``edgeopt.compress``, ``edgeopt.run``, ``edgeopt.evaluate_tflite``, ``edgeopt.benchmark``,
``edgeopt.benchmark_models``, ``edgeopt.inspect_tflite``, ``edgeopt.inspection``, ``edgeopt.check``,
``edgeopt.load_report``, ``edgeopt.render_report``, ``edgeopt.models`` and ``edgeopt.search``
(``edgeopt tune``); its names are loaded on first use. Importing this package is cheap: it never
imports TensorFlow. Modules that need TensorFlow get Keras through :mod:`edgeopt.kerasapi`, the single
place that chooses tf_keras. (``evaluate_tflite``, like ``inspect_tflite``, is not named after its module:
``edgeopt.evaluate`` is the module; ``diagnose`` likewise is ``edgeopt.api.diagnose``.)
"""

from edgeopt.version import __version__

_API = ("load_recipe", "prepare", "compress", "run", "Prepared", "Result", "benchmark", "benchmark_models",
        "inspect_tflite", "check", "load_report", "Recipe", "Report", "evaluate_tflite", "Evaluation",
        "search", "inspection", "render_report", "models")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from edgeopt import api

        return getattr(api, name)
    raise AttributeError(f"module 'edgeopt' has no attribute {name!r}")
