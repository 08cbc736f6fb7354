"""Serving errors with the HTTP status TF Serving would return."""

from gpt_tf.errors import UserError

# HTTP status -> gRPC status code name (as TF Serving maps them).
GRPC_CODES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 413: "RESOURCE_EXHAUSTED",
              429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE", 500: "INTERNAL"}


class ServingError(UserError):
    """A request the server refuses; `status` is the HTTP status code.

    The REST server answers `{"error": str(error)}` with this status; the
    clients raise it for such answers.
    """

    def __init__(self, status, message):
        super().__init__(message)
        self.status = int(status)
        self.message = message


def bad_request(message):
    return ServingError(400, message)


def not_found(message):
    return ServingError(404, message)


class ServerUnavailable(UserError):
    """The server cannot be reached (connection refused, DNS, timeout)."""
