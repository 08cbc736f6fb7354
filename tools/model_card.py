"""Writes MODEL_CARD.md for a shipped model from its run files and the evaluation report.

    python tools/model_card.py --run models/multitask --report reports/evaluation/report.json \\
        --training runs/portable/output/history.json --out models/multitask/MODEL_CARD.md

Every number in the card is read from those files; nothing is typed in by hand.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gpt_tf.config import ModelConfig, selection_score  # noqa: E402
from gpt_tf.evaluation import significance  # noqa: E402

PORTABLE_PRETRAINING = (
    "`gpt-tf data mix lm-en mt-en-fr sentiment-en sentiment-en-3class`: the 35 training plays of "
    "lm-en, the English and the French verses of the mt-en-fr training books (as monolingual "
    "text, the pairs are left for fine-tuning), and the texts (no labels) of the sentiment "
    "training splits; test splits never")


def _load(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _stage_line(name, stage):
    config = stage["config"]
    ran = stage["history"][-1]["step"] if stage.get("history") else config["steps"]
    tokens = ran * config["batch_size"]
    best = stage.get("best_validation_loss")
    where = f"best validation loss {best:.4f} at step {stage['best_step']}" if best else \
        "weights reused from an earlier run"
    return (f"| {name} | {ran} of {config['steps']} | {config['batch_size']} x 256 ({tokens * 256 / 1e6:.0f}M "
            f"tokens) | {config['learning_rate']:g} -> {config['min_learning_rate']:g}, warmup "
            f"{config['warmup_steps']} | {where} |")


def _gpt_tf_stage_line(name, run):
    """A training-table row from a gpt-tf run directory (config.json + history.jsonl)."""
    config = _load(os.path.join(run, "config.json"))["train"]
    history = []
    path = os.path.join(run, "history.jsonl")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            history = [json.loads(line) for line in handle if line.strip()]
    metric = config.get("best_metric", "loss")
    last_step = max((h.get("step", 0) for h in history), default=0)
    history = [h for h in history if "validation_loss" in h]
    best = min(history, key=lambda h: selection_score(h, metric)) if history else None
    where = ("no validation recorded" if best is None else
             f"best validation loss {best['validation_loss']:.4f} at step {best['step']}"
             if metric == "loss" else
             f"best {metric} {abs(selection_score(best, metric)):.4f} at step {best['step']} "
             f"(validation loss {best['validation_loss']:.4f})")
    if best is not None and not config.get("restore_best_weights") and best["step"] != last_step:
        where += f"; the weights are the last step's ({last_step})"
    tokens = config["steps"] * config["batch_size"] * 256
    return (f"| {name} | {config['steps']} | {config['batch_size']} x 256 ({tokens / 1e6:.0f}M "
            f"tokens) | {config['learning_rate']:g} -> {config['min_learning_rate']:g}, warmup "
            f"{config['warmup_steps']}, {config['mixed_precision']}{_changes_text(run)} | "
            f"{where} |")


def _changes_text(run):
    """'; resumed at step N with train.k a -> b' for each resume that changed settings.

    config.json holds the last settings only; config_changes.jsonl says what came before.
    """
    path = os.path.join(run, "config_changes.jsonl")
    if not os.path.isfile(path):
        return ""
    with open(path, encoding="utf-8") as handle:
        changes = [json.loads(line) for line in handle if line.strip()]
    return "".join(
        f"; resumed at step {c['step']} with "
        + ", ".join(f"{key} {_setting(old)} -> {_setting(new)}"
                    for key, (old, new) in c["train"].items())
        for c in changes)


def _setting(value):
    """A config value as the card prints it: numbers in `:g` form, the rest as they are."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f"{value:g}" if number else str(value)


def _mixture_text(mixture):
    counts = mixture["counts"]["train"]
    return (f"`gpt-tf data mix {' '.join(mixture['sets'])}`: {counts['characters'] / 1e6:.1f} M "
            f"characters in {counts['documents']:,} documents (train splits; translation pairs "
            "as monolingual English and French text, sentiment texts without labels); test "
            "splits and the evaluation-only sets never")


def card(run, reports, training=None, base=None, mixture=None):
    config = _load(os.path.join(run, "config.json"))
    task_card = _load(os.path.join(run, "task_card.json"))
    model = config["model"]
    lines = [f"# Model card: {os.path.basename(os.path.abspath(run))}", "",
             f"A GPT (decoder-only Transformer, {model['num_layers']} blocks, width "
             f"{model['hidden_dim']}, {model['num_heads']} heads, context "
             f"{model['sequence_length']}, vocabulary {model['vocab_size']}, tied embeddings; "
             f"{ModelConfig(**model).num_parameters() / 1e6:.2f}M parameters) trained from scratch by gpt-tf, "
             "then fine-tuned on several tasks at once; the prompt format tells it which.", "",
             "## Tasks and data", "", "| task | data (held-out splits never trained on) | "
             "prompt |", "|---|---|---|"]
    for task, info in task_card["tasks"].items():
        prompt = task_card.get("prompt_formats", {}).get(task, "")
        lines.append(f"| {task} | {info['data']} | `{prompt}` |")
    pretraining = _mixture_text(mixture) if mixture else PORTABLE_PRETRAINING
    lines += ["", f"Pretraining text: {pretraining}. Data cards: `gpt-tf data info NAME`, "
              "docs/DATASETS.md.", ""]
    if base:
        lines += ["## Training", "", "| stage | steps | batch | learning rate | result |",
                  "|---|---|---|---|---|", _gpt_tf_stage_line("pretraining", base),
                  _gpt_tf_stage_line("fine-tuning", run),
                  "", f"Dropout {model['dropout']}, AdamW, trained on 2 CPU cores with gpt-tf's "
                  "TensorFlow loop (`make models`); the fine-tuned weights are "
                  + (f"the best validation checkpoint by "
                     f"{config['train'].get('best_metric', 'loss')} (train.restore_best_weights)."
                     if config["train"].get("restore_best_weights") else "the last step's."),
                  ""]
    if training:
        lines += ["## Training", "", "| stage | steps | batch | learning rate | result |",
                  "|---|---|---|---|---|", _stage_line("pretraining", training["pretrain"])]
        chosen = training["finetune_trials"][training["chosen_trial"]]
        lines.append(_stage_line("fine-tuning", chosen))
        sweep = ", ".join(f"lr {t['config']['learning_rate']:g}: {t['best_validation_loss']:.4f}"
                          for t in training["finetune_trials"])
        lines += ["", f"Fine-tuning learning rates tried (best validation loss on answer "
                  f"tokens): {sweep}; the lowest was kept. Dropout {model['dropout']}, weight "
                  f"decay {chosen['config']['weight_decay']}, AdamW, gradient clipping "
                  f"{chosen['config']['clip_norm']}. Trained with "
                  f"{training.get('backend', 'jax')} on one GPU by tools/portable_train.py "
                  "(`make models-portable`).", ""]
        if os.path.isfile(os.path.join(run, "init_from.json")):
            base_model = _load(os.path.join(run, "init_from.json")).get("base_model")
            lines += ["Then fine-tuned further on this machine with gpt-tf's TensorFlow loop "
                      "(the run's own `config.json` and `history.jsonl`"
                      + (f"; its starting point: {base_model}" if base_model else "") + "):",
                      "",
                      "| stage | steps | batch | learning rate | result |", "|---|---|---|---|---|",
                      _gpt_tf_stage_line("adaptation fine-tuning (CPU)", run), ""]
    lines += ["## Evaluation", ""]
    not_beaten = []
    for report in reports:
        lines += [f"From `{report['path']}` ({report['created']}, split `{report['split']}`). "
                  "Each row: the model's value next to its baseline; the margin's 95% "
                  "interval is a paired bootstrap over the examples (*within noise* when "
                  "the interval reaches 0).", "",
                  "| task | metric | backend | examples | value | baseline | baseline value | "
                  "beats it | margin [95% interval] |", "|---|---|---|---|---|---|---|---|---|"]
        sections = [(task, section) for task, section in report["tasks"].items()]
        sections += [(f"{task} (out of domain: {section['data']})", section)
                     for task, entries in (report.get("out_of_domain") or {}).items()
                     for section in entries]
        for task, section in sections:
            for c in section.get("comparisons", []):
                verdict = "yes" if c["beats_baseline"] else "**no**"
                if "ci95" in c and significance.verdict(c["ci95"]) == "within noise":
                    verdict += ", within noise"
                margin = (f"{c['improvement']:+.4g} [{c['ci95'][0]:+.4g}, {c['ci95'][1]:+.4g}]"
                          if "ci95" in c else "n/a")
                lines.append(f"| {task} | {c['metric']} | {c['backend']} | "
                             f"{section.get('examples', '')} | {c['value']:.4g} | "
                             f"{c['baseline']} | {c['baseline_value']:.4g} | {verdict} | "
                             f"{margin} |")
        not_beaten += [f"{item} ({report['path']})"
                       for item in report["summary"].get("not_beaten", [])]
        not_beaten += [f"out of domain: {item} ({report['path']})"
                       for item in report["summary"].get("out_of_domain_not_beaten", [])]
        lines.append("")
    lines += ["Every metric beats its baseline: "
              + ("yes." if not not_beaten else "no; not beaten: " + "; ".join(not_beaten) + "."),
              "", "## Limits", "",
              "- A 5M-parameter model trained on about " + (
                  f"{mixture['counts']['train']['characters'] / 1e6:.0f} M characters"
                  if mixture else "14.5 M characters") + " of public text: expect short, "
              "plain outputs; the out-of-domain rows above say how it does on text from "
              "publishers it never saw. The QA data is template-made cloze questions (see "
              "docs/DATASETS.md), not human-written questions.",
              "- It can generate anything its training text contains; do not use it for "
              "decisions about people.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="the shipped run directory")
    parser.add_argument("--report", action="append", required=True,
                        help="report.json of gpt-tf evaluate (repeatable)")
    parser.add_argument("--training", help="history.json of tools/portable_train.py")
    parser.add_argument("--base", help="the pretraining run directory (gpt-tf's own loop)")
    parser.add_argument("--mixture", help="mixture.json of the pretraining mixture")
    parser.add_argument("--out", action="append", required=True, help="card path (repeatable)")
    args = parser.parse_args(argv)
    reports = []
    for path in args.report:
        reports.append({**_load(path), "path": path})
    text = card(args.run, reports, _load(args.training) if args.training else None,
                base=args.base, mixture=_load(args.mixture) if args.mixture else None)
    for path in args.out:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
