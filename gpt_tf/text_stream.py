"""Streaming text: token ids that arrive one by one, shown as whole characters.

With byte fallback a character outside the vocabulary (an emoji, a rare
accent) is several byte tokens; decoded before its last byte arrives it ends
in U+FFFD. `StreamDecoder` holds such a tail back until it completes, so a
stream never shows a replacement character the final text does not have.
Used by `gpt-tf generate --stream`, every client backend and the serving
stream. A leaf module (standard library only). `tflite/runtime.py`
(`generate_text`) keeps a copy: the on-device runner must not import `gpt_tf`.
"""


class StreamDecoder:
    """Turns token ids arriving one by one into text pieces, whole characters only.

    Args:
        decode: `fn(list of ids) -> str`, the tokenizer's decode.

    Attributes:
        ids: the ids pushed so far.
        emitted: the text returned so far (the pieces joined).
    """

    def __init__(self, decode):
        self.decode = decode
        self.ids = []
        self.emitted = ""

    def push(self, token_id):
        """Adds a token; returns the new complete text (may be '')."""
        self.ids.append(int(token_id))
        return self._advance(self.decode(self.ids), hold_incomplete=True)

    def finish(self, text=None):
        """The text not yet returned, at the end of the stream.

        Args:
            text: the final text if the caller has it (e.g. the completion
                decoded once more); default: the decode of every id pushed.
                An incomplete character left at the end is returned as it
                decodes (U+FFFD), as the final text has it.
        """
        return self._advance(self.decode(self.ids) if text is None else text,
                             hold_incomplete=False)

    def _advance(self, text, hold_incomplete):
        # A multi-byte character split over byte tokens decodes to U+FFFD until
        # complete; a decode that rewrites earlier text waits for one that does not.
        if (hold_incomplete and text.endswith("\ufffd")) or not text.startswith(self.emitted):
            return ""
        piece = text[len(self.emitted):]
        self.emitted = text
        return piece
