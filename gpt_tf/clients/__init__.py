"""One client interface over four backends: Keras run, SavedModel, TF Serving REST, TFLite.

    from gpt_tf.clients import open_client
    client = open_client("runs/tasks")                          # Keras, in process
    client = open_client("saved_models/tasks")                  # SavedModel, in process
    client = open_client("http://localhost:8501/v1/models/tasks")  # TF Serving REST
    client = open_client("tflite/tasks-int8")                   # TFLite runner

    client.generate(["ROMEO."], max_new_tokens=40, temperature=0.8, top_k=40,
                    stream=lambda row, text: print(text, end=""))
    client.score("<|text|>a fine film<|label|>", ["positive", "negative"])
    client.tokenize(["some text"])
"""

from gpt_tf.clients.base import Client, Completion
from gpt_tf.clients.open import open_client, resolve_target

__all__ = ["Client", "Completion", "open_client", "resolve_target"]
