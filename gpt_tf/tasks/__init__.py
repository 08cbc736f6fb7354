"""Task layer: prompt formats, fine-tuning data and runs, and the task logic the apps use.

- `formats`: the prompt format of each task (translate, qa, sentiment, generate).
- `data`: task examples -> packed windows with the loss masked on prompts
  (`task_dataset`, used by `gpt_tf.training.train` for `"kind": "tasks"` runs).
- `finetune`: `prepare_finetune_run` (a run directory that starts from a base run).
- `translate`, `qa`, `sentiment`, `generate`: task logic over any
  `gpt_tf.clients.Client` backend.
"""
