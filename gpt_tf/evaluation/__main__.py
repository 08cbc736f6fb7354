import sys

from gpt_tf.evaluation.cli import main

sys.exit(main())
