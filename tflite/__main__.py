"""`python -m tflite MODEL_DIR --prompt TEXT` (same as `python -m tflite.run`)."""

import sys

from tflite.run import main

sys.exit(main())
