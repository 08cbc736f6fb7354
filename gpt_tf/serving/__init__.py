"""Serving: a TF-Serving-compatible REST (and gRPC) server, and clients.

Public API:
    ModelManager, ModelSpec, specs_from_config_file   (gpt_tf.serving.models)
    ModelServer, ServerOptions                         (gpt_tf.serving.server)
    BatchingParameters, BatchScheduler                 (gpt_tf.serving.batching)
    ServingClient, GrpcServingClient                   (gpt_tf.serving.client)
    ServingError, ServerUnavailable                    (gpt_tf.serving.errors)

The client module needs only the standard library; the server imports
TensorFlow.
"""

from gpt_tf.serving.client import GrpcServingClient, ServingClient
from gpt_tf.serving.errors import ServerUnavailable, ServingError

__all__ = ["GrpcServingClient", "ServerUnavailable", "ServingClient", "ServingError"]
