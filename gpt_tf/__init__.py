"""gpt-tf: a GPT suite on Keras 3 and TensorFlow.

Keras is pinned to the TensorFlow backend here, before anything imports keras,
so users never have to set `KERAS_BACKEND` themselves. How much TensorFlow logs
is the command lines' choice (`gpt_tf.logs`), not the library's.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
