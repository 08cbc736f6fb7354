"""Moved to `gpt_tf.task_data.formats`; this name stays for old imports."""

from gpt_tf.task_data.formats import *  # noqa: F401,F403
