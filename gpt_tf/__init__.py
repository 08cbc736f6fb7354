"""gpt-tf: a GPT suite on Keras 3 and TensorFlow.

Keras is pinned to the TensorFlow backend here, before anything imports keras,
so users never have to set `KERAS_BACKEND` themselves.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
