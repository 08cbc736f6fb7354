"""Task layer: fine-tuning runs, and the task logic the apps use.

The prompt formats and the fine-tuning data are core, below training:
`gpt_tf.task_data` (`formats`, `windows` and `data` here re-export them).

- `finetune`: `prepare_finetune_run` (a run directory that starts from a base run).
- `translate`, `qa`, `sentiment`, `generate`: task logic over any
  `gpt_tf.clients.Client` backend.
"""
