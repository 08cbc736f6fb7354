"""On-device runner for gpt-tf `.tflite` exports: numpy + ai_edge_litert + sentencepiece.

Nothing here imports TensorFlow or `gpt_tf`, so the package runs where only
the LiteRT interpreter is installed. Exported model directories
(`gpt-tf export tflite RUN_DIR --name NAME` -> `tflite/NAME/`) live beside
this code.

    python -m tflite.run tflite/NAME --prompt "ROMEO." --stream
"""

from tflite.runtime import Generation, ModelDirError, ModelInputError, TFLiteLM
from tflite.sampling import Sampler

__all__ = ["Generation", "ModelDirError", "ModelInputError", "Sampler", "TFLiteLM"]
