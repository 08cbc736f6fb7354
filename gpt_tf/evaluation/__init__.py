"""Evaluation of the task models: metrics, baselines and the Markdown + JSON report.

- `metrics`: sacreBLEU BLEU/chrF, SQuAD v1.1 EM/F1, accuracy, macro-F1,
  confusion matrix, perplexity, bits per byte.
- `baselines`: unigram LM, copy source, sliding-window QA, majority class,
  bag-of-words logistic regression.
- `report`: `evaluate_tasks(...)` and `write_report(...)`.
- `cli`: `add_task_arguments(parser)` / `run_task_evaluation(args)` for
  `gpt-tf evaluate --task ...`.
"""
