"""Moved to `gpt_tf.task_data.examples`; this name stays for old imports."""

from gpt_tf.task_data.examples import *  # noqa: F401,F403
