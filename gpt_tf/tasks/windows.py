"""Moved to `gpt_tf.task_data.windows`; this name stays for old imports."""

from gpt_tf.task_data.windows import *  # noqa: F401,F403
