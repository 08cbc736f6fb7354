"""`task_card.json`: what a fine-tuned model was tuned for.

The card (tasks, data, language pair, sentiment labels, QA window settings,
prompt formats) is written into a fine-tuning run by
`gpt_tf.tasks.finetune.prepare_finetune_run`, copied into every export, and
read by each client backend. A leaf module (standard library only), so the
TFLite backend reads it without importing TensorFlow.
"""

import json
import os

TASK_CARD = "task_card.json"


def read_task_card(directory):
    """The `task_card.json` in `directory` (a run or an export), or None."""
    path = os.path.join(directory, TASK_CARD)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def write_task_card(directory, card):
    """Writes `card` (a dict) as `directory/task_card.json`."""
    with open(os.path.join(directory, TASK_CARD), "w", encoding="utf-8") as handle:
        json.dump(card, handle, indent=2)
