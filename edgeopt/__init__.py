"""edgeopt: Keras model -> small, fast, verified TFLite/LiteRT model, with measured proof.

Importing this package is cheap: it never imports TensorFlow. Modules that need TensorFlow get Keras
through :mod:`edgeopt.kerasapi`, which is the single place that chooses tf_keras.
"""

__version__ = "0.1.0"
