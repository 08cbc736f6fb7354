"""Fine-tuning data, below training and the task layer: prompt formats, windows, examples.

- `formats`: the prompt format of each task (translate, qa, sentiment, generate).
- `windows`: long texts cut into windows that fit a token budget (training and inference).
- `examples`: task specs -> examples -> packed windows with the loss masked on prompts
  (`task_dataset`, which `gpt_tf.training` reads for `"kind": "tasks"` runs).

Core modules: they import neither `gpt_tf.training` nor `gpt_tf.tasks`, which
both use them. (`gpt_tf.tasks.formats`, `.windows` and `.data` re-export them.)
"""
