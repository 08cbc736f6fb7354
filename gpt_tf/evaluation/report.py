"""The evaluation report: every task metric next to its baseline, per backend.

`evaluate_tasks` runs the held-out data of each task through one or more
model targets (any `open_client` target: a run, a SavedModel, a REST URL, a
TFLite export) and the task's baselines; `write_report` writes
`report.json` and `report.md` with a "beats baseline: yes/no" for every
(metric, baseline, backend).

| task        | data (default)        | metrics                              | baselines |
|-------------|-----------------------|--------------------------------------|-----------|
| `lm`        | `lm-en` test works    | perplexity, bits per byte            | unigram (add-one) |
| `translate` | `mt-en-fr` test books | sacreBLEU BLEU, chrF (+ signatures)  | copy source |
| `qa`        | `qa-en` test works    | SQuAD v1.1 exact match, F1           | sliding window |
| `sentiment` | `sentiment-en` test   | accuracy, macro-F1, confusion matrix | majority, BoW LR |

(BoW LR: bag-of-words logistic regression.)

Examples are an evenly spaced, deterministic subset of the split when a
limit is set, the same for every backend.
"""

import dataclasses
import datetime
import json
import math
import os
import time

from gpt_tf import task_table
from gpt_tf.errors import UserError
from gpt_tf.evaluation import baselines as baselines_lib
from gpt_tf.evaluation import metrics, significance

# The evaluated tasks and their data, limits, metrics and titles: `gpt_tf.task_table`.
TASKS = tuple(e.name for e in task_table.EVALUATIONS)
LM = task_table.task(task_table.GENERATE).evaluation.name  # "lm"
DEFAULT_DATA = {e.name: e.data for e in task_table.EVALUATIONS}
# Out-of-domain test sets: evaluation-only data sets no training step may use
# (`registry.check_trainable`), from other publishers and domains than the training data.
# Baselines that learn (unigram, bag-of-words) learn from the in-domain side: the model's own
# fine-tuning data set for the task (its task card) when prepared, else `BASELINE_TRAIN`,
# else the task's in-domain data set.
OUT_OF_DOMAIN = {e.name: e.out_of_domain for e in task_table.EVALUATIONS}
BASELINE_TRAIN = {"lm-en-wiki": "lm-en-docs"}
# Examples per task (lm: tokens) when no limit is given.
DEFAULT_LIMITS = {e.name: e.limit for e in task_table.EVALUATIONS}
# metric -> (display name, higher is better, decimals)
METRICS = {
    "perplexity": ("perplexity", False, 2),
    "bits_per_byte": ("bits per byte", False, 4),
    "bleu": ("BLEU", True, 2),
    "chrf": ("chrF", True, 2),
    "exact_match": ("exact match", True, 2),
    "f1": ("F1", True, 2),
    "accuracy": ("accuracy", True, 4),
    "macro_f1": ("macro-F1", True, 4),
}
TASK_METRICS = {e.name: e.metrics for e in task_table.EVALUATIONS}
TASK_TITLES = {e.name: e.title for e in task_table.EVALUATIONS}


@dataclasses.dataclass
class Target:
    """A model to evaluate: `label` names its column (e.g. `keras`, `tflite-int8`)."""

    label: str
    target: str


def evenly_spaced(items, limit):
    """At most `limit` items, evenly spaced over the list (all when limit <= 0)."""
    items = list(items)
    if limit <= 0 or limit >= len(items):
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


# ---- data ----------------------------------------------------------------------------------


def _is_name(source):
    return not os.path.exists(source)


def load_task_data(task, source, split="test", limit=None, cache_dir=None, train_source=None,
                   baseline_source=None):
    """Held-out examples (and baseline training data) of one task.

    Args:
        task: `lm`, `translate`, `qa` or `sentiment`.
        source: a prepared data set name or a file (lm: a file or folder).
        split: `test` or `validation` (named data sets).
        limit: examples (lm: tokens, applied later); None: the task default.
        cache_dir: data set cache.
        train_source: for a file `source`, the baselines' training data
            (lm: text files; sentiment: labelled texts); a named data set
            uses its own train split.
        baseline_source: a prepared data set whose train split trains the
            baselines instead (needed for an evaluation-only set, which has
            no train split).

    Returns:
        dict with `examples`, `train` (baseline training data or None) and `about`.
    """
    from gpt_tf import datasets

    limit = DEFAULT_LIMITS[task] if limit is None else limit
    named = _is_name(source)
    about = f"{source} ({split})" if named else source
    if task == LM:
        if named:
            files = datasets.lm_split_files(source, cache_dir)
            if split not in files:
                raise UserError(f"data set '{source}' has no '{split}' split")
            docs, train = files[split], files.get("train")
            if baseline_source:
                train = ([baseline_source] if not _is_name(baseline_source)
                         else datasets.lm_split_files(baseline_source, cache_dir)["train"])
        else:
            docs = [source]
            train = [baseline_source or train_source] if (baseline_source or train_source) \
                else None
        return {"examples": datasets.load_text_files(docs), "train_files": train,
                "about": about, "limit": limit}
    paths = datasets.split_paths(source, cache_dir) if named else {split: source}
    if split not in paths:
        raise UserError(f"data set '{source}' has no '{split}' split")
    if task == task_table.TRANSLATE:
        pairs = datasets.load_translation_pairs(paths[split])
        language = None
        if named:
            from gpt_tf.datasets import registry

            language = registry.translation_languages(source)
        return {"examples": evenly_spaced(pairs, limit), "about": about, "languages": language,
                "total": len(pairs)}
    if task == task_table.QA:
        questions = datasets.load_squad(paths[split])
        return {"examples": evenly_spaced(questions, limit), "about": about,
                "total": len(questions)}
    texts = datasets.load_sentiment(paths[split])
    if baseline_source:
        train = datasets.load_sentiment(
            baseline_source if not _is_name(baseline_source)
            else datasets.split_paths(baseline_source, cache_dir)["train"])
    elif named:
        train = datasets.load_sentiment(paths["train"]) if "train" in paths else None
    else:
        train = datasets.load_sentiment(train_source) if train_source else None
    return {"examples": evenly_spaced(texts, limit), "train": train, "about": about,
            "total": len(texts), "baseline_data": baseline_source or (source if named else
                                                                      train_source)}


# ---- one task on one client ----------------------------------------------------------------


def lm_chunks(texts, count_tokens, sequence_length, max_tokens):
    """Held-out text cut into chunks of at most `sequence_length - 1` tokens, evenly sampled."""
    from gpt_tf.task_data.windows import text_windows

    chunks = []
    for text in texts:
        chunks.extend(text[s:e] for s, e in text_windows(text, count_tokens, sequence_length - 1))
    if max_tokens > 0 and chunks:
        per_chunk = max(1, sum(count_tokens(chunks[:8])) // min(8, len(chunks)))
        chunks = evenly_spaced(chunks, max(1, max_tokens // per_chunk))
    return chunks


# Per-example statistics for the paired bootstrap ride along under this key and
# are dropped from the report once `compare` has used them.
STATS = "_statistics"


def _lm_result(log_likelihoods, tokens, chunks):
    byte_counts = [len(c.encode("utf-8")) for c in chunks]
    nll, total_tokens, total_bytes = -sum(log_likelihoods), sum(tokens), sum(byte_counts)
    return {"perplexity": metrics.perplexity(nll, total_tokens),
            "bits_per_byte": metrics.bits_per_byte(nll, total_bytes), "tokens": total_tokens,
            "bytes": total_bytes,
            STATS: significance.lm_statistics(log_likelihoods, tokens, byte_counts)}


def run_lm(client, chunks):
    scores = []
    for first in range(0, len(chunks), 8):
        scores.extend(client.score("", chunks[first:first + 8]))
    return _lm_result(scores, client.count_tokens(chunks), chunks)


def run_translate(client, data):
    from gpt_tf.tasks.translate import (
        label_leak,
        model_pair,
        placeholders,
        placeholders_differ,
        translate,
    )

    source, target = data["languages"] or model_pair(client)
    pairs = data["examples"]
    hypotheses = translate(client, [p.source for p in pairs], source, target)
    references = [p.target for p in pairs]
    result = _translation_scores(hypotheses, references)
    result["label_leaks"] = sum(bool(label_leak(p.source, h, client))
                                for p, h in zip(pairs, hypotheses))
    with_fields = [(p, h) for p, h in zip(pairs, hypotheses) if placeholders(p.source)]
    if with_fields:
        result["placeholder_sources"] = len(with_fields)
        result["placeholder_mismatches"] = sum(placeholders_differ(p.source, h)
                                               for p, h in with_fields)
    result["samples"] = [{"source": p.source, "reference": p.target, "hypothesis": h}
                         for p, h in list(zip(pairs, hypotheses))[:3]]
    return result


def run_qa(client, data):
    from gpt_tf.tasks.qa import answer_questions

    questions = data["examples"]
    answers = answer_questions(client, [(q.context, q.question) for q in questions],
                               min_answer_logprob=data.get("min_answer_logprob"))
    predictions = [a["answer"] for a in answers]
    scores = _squad_scores(predictions, questions)
    scores["no_answer_rate"] = sum(a["no_answer"] for a in answers) / len(answers)
    per_question = metrics.squad_question_scores(
        predictions, [[x.text for x in q.answers] for q in questions])
    scores["confidently_wrong_rate"] = sum(
        not a["no_answer"] and f1 == 0.0 for a, (_, f1) in zip(answers, per_question)
    ) / len(answers)
    scores["samples"] = [{"question": q.question, "gold": q.answers[0].text,
                          "predicted": a["answer"], "score": a["score"]}
                         for q, a in list(zip(questions, answers))[:3]]
    return scores


def run_sentiment(client, data, labels):
    from gpt_tf.tasks.sentiment import classify, model_labels

    examples = data["examples"]
    if len(labels) < 2:  # a small sample may hold one label: score the model's own
        labels = sorted(set(model_labels(client)) | set(labels))
    results = classify(client, [e.text for e in examples], labels=labels)
    return _classification([r["label"] for r in results], [e.label for e in examples], labels)


def _classification(predicted, gold, labels):
    names, matrix = metrics.confusion_matrix(predicted, gold, labels)
    return {"accuracy": metrics.accuracy(predicted, gold),
            "macro_f1": metrics.macro_f1(predicted, gold, labels),
            "confusion_matrix": {"labels": names, "matrix": matrix},
            STATS: significance.classification_statistics(predicted, gold, names)}


def _translation_scores(hypotheses, references):
    return {"bleu": metrics.bleu(hypotheses, references)["score"],
            "chrf": metrics.chrf(hypotheses, references)["score"],
            STATS: significance.translation_statistics(hypotheses, references)}


def _squad_scores(predictions, questions):
    truths = [[x.text for x in q.answers] for q in questions]
    return {**metrics.squad_scores(predictions, truths),
            STATS: significance.squad_statistics(predictions, truths)}


# ---- baselines -----------------------------------------------------------------------------


def lm_baseline(data, chunks, client):
    if not data.get("train_files"):
        return {}
    from gpt_tf import datasets

    vocab = client.vocab_size
    # Pieces of about 4000 characters, cut at line ends: small enough for any
    # server's string limit (tokenization can cross a cut; a baseline does not mind).
    pieces = []
    for doc in datasets.load_text_files(data["train_files"]):
        piece = ""
        for line in doc.split("\n"):
            piece += line + "\n"
            if len(piece) >= 4000:
                pieces.append(piece)
                piece = ""
        if piece:
            pieces.append(piece)
    train_ids = []
    for first in range(0, len(pieces), 256):
        train_ids.extend(client.tokenize(pieces[first:first + 256]))
    if vocab is None:
        vocab = 1 + max(max(ids) for ids in train_ids if ids)
    model = baselines_lib.UnigramLM(vocab).fit(train_ids)
    chunk_ids = client.tokenize(chunks)
    scores = [model.log_likelihood(ids) for ids in chunk_ids]
    return {"unigram (add-one)": _lm_result(scores, [len(ids) for ids in chunk_ids], chunks)}


def translate_baseline(data):
    pairs = data["examples"]
    hypotheses = baselines_lib.copy_source([p.source for p in pairs])
    references = [p.target for p in pairs]
    return {"copy source": _translation_scores(hypotheses, references)}


def qa_baseline(data):
    questions = data["examples"]
    model = baselines_lib.SlidingWindowQA()
    predictions = [model.predict(q.context, q.question) for q in questions]
    return {"sliding window": _squad_scores(predictions, questions)}


def sentiment_baselines(data, labels):
    train = data.get("train")
    if not train:
        return {}
    texts = [e.text for e in data["examples"]]
    gold = [e.label for e in data["examples"]]
    majority = baselines_lib.MajorityClass().fit([e.label for e in train])
    bow = baselines_lib.BagOfWordsLogisticRegression().fit([e.text for e in train],
                                                           [e.label for e in train])
    return {"majority class": _classification(majority.predict(texts), gold, labels),
            "bag-of-words logistic regression": _classification(bow.predict(texts), gold,
                                                                labels)}


# ---- the whole report ----------------------------------------------------------------------


def _beats(value, baseline, higher):
    if value is None or baseline is None or not math.isfinite(value):
        return False
    return value > baseline if higher else value < baseline


def compare(task_report, task):
    """Adds `comparisons`: one row per (metric, baseline, backend).

    Each row has the value, the baseline's, `beats_baseline`, and, when both
    sides kept per-example statistics, the paired bootstrap of the margin
    (`improvement`, `ci95`, `significant` (significantly better), `verdict` (better,
    worse or within noise); see `gpt_tf.evaluation.significance`).
    The statistics themselves are dropped from the report afterwards.
    """
    rows = []
    for metric in TASK_METRICS[task]:
        higher = METRICS[metric][1]
        for baseline, values in task_report["baselines"].items():
            for label, result in task_report["results"].items():
                if "error" in result:
                    value = None
                else:
                    value = result.get(metric)
                row = {"metric": metric, "higher_is_better": higher, "baseline": baseline,
                       "baseline_value": values.get(metric), "backend": label,
                       "value": value,
                       "beats_baseline": _beats(value, values.get(metric), higher)}
                model_rows = (result.get(STATS) or {}).get(metric)
                baseline_rows = (values.get(STATS) or {}).get(metric)
                if value is not None and model_rows is not None and baseline_rows is not None:
                    row.update(significance.paired_bootstrap(metric, model_rows, baseline_rows,
                                                             higher))
                rows.append(row)
    task_report["comparisons"] = rows
    task_report["versus_first"] = _versus_first(task_report, task)
    for result in (*task_report["results"].values(), *task_report["baselines"].values()):
        result.pop(STATS, None)
    return task_report


# Per-token metrics compare two models only when they cut the text into the same tokens
# (bits per byte compares any two).
PER_TOKEN_METRICS = ("perplexity",)


def _versus_first(task_report, task):
    """With several models (columns), each later one against the first, paired on the same
    examples: is a candidate better than the shipped model, or int8 TFLite worse than Keras?
    One row per (metric, model): `reference`, the values, and the paired bootstrap."""
    results = list(task_report["results"].items())
    if len(results) < 2 or "error" in results[0][1] or not results[0][1].get(STATS):
        return []  # no first model to compare with (it failed): not a silent substitute
    (reference, first), rows = results[0], []
    for metric in TASK_METRICS[task]:
        higher = METRICS[metric][1]
        for label, result in results[1:]:
            if "error" in result or result.get(metric) is None or first.get(metric) is None:
                continue
            if metric in PER_TOKEN_METRICS and result.get("tokens") != first.get("tokens"):
                continue  # another tokenizer: per-token values are in other units
            model_rows = (result.get(STATS) or {}).get(metric)
            reference_rows = first[STATS].get(metric)
            if model_rows is None or reference_rows is None:
                continue
            rows.append({"metric": metric, "higher_is_better": higher, "backend": label,
                         "target": result.get("target"), "reference": reference,
                         "reference_target": first.get("target"), "value": result[metric],
                         "reference_value": first.get(metric),
                         **significance.paired_bootstrap(metric, model_rows, reference_rows,
                                                         higher)})
    return rows


def _evaluate_set(task, task_data, targets, client_for, say):
    """One task on one data set: baselines, then every target; returns the report entry."""
    first = client_for(targets[0])
    entry = {"data": task_data["about"], "results": {}, "baselines": {},
             "metrics": list(TASK_METRICS[task])}
    run = _SETUPS[task](entry, task_data, first, say)
    for target in targets:
        started = time.perf_counter()
        say(f"{task}: {target.label} on {entry['examples']} examples of {entry['data']}")
        try:
            client = client_for(target)
            result = run(client)
        except UserError as error:
            result = {"error": str(error)}
            say(f"{task}: {target.label} failed: {error}")
        result["seconds"] = round(time.perf_counter() - started, 2)
        result["target"] = str(getattr(target.target, "target", target.target))
        entry["results"][target.label] = result
    return compare(entry, task)



# Each evaluated task's own part of `_evaluate_set`: fills the entry (examples,
# baselines) and returns `run(client) -> result` (the tasks: `gpt_tf.task_table`).
def _setup_lm(entry, task_data, first, say):
    chunks = lm_chunks(task_data["examples"], first.count_tokens,
                       first.sequence_length, task_data["limit"])
    entry["examples"] = len(chunks)
    say(f"{LM}: unigram baseline on {len(chunks)} chunks")
    entry["baselines"] = lm_baseline(task_data, chunks, first)
    return lambda client: run_lm(client, chunks)


def _setup_translate(entry, task_data, first, say):
    entry["examples"] = len(task_data["examples"])
    entry["baselines"] = translate_baseline(task_data)
    sources = [p.source for p in task_data["examples"]]
    references = [p.target for p in task_data["examples"]]
    entry["signatures"] = {
        "bleu": metrics.bleu(sources, references)["signature"],
        "chrf": metrics.chrf(sources, references)["signature"]}
    return lambda client: run_translate(client, task_data)


def _setup_qa(entry, task_data, first, say):
    entry["examples"] = len(task_data["examples"])
    entry["baselines"] = qa_baseline(task_data)
    if task_data.get("min_answer_logprob") is not None:
        entry["min_answer_logprob"] = task_data["min_answer_logprob"]
    return lambda client: run_qa(client, task_data)


def _setup_sentiment(entry, task_data, first, say):
    entry["examples"] = len(task_data["examples"])
    labels = sorted({e.label for e in task_data["examples"]}
                    | {e.label for e in (task_data.get("train") or [])})
    entry["labels"] = labels
    entry["baseline_data"] = task_data.get("baseline_data")
    say(f"{task_table.SENTIMENT}: fitting the baselines")
    entry["baselines"] = sentiment_baselines(task_data, labels)
    return lambda client: run_sentiment(client, task_data, labels)


_SETUPS = {LM: _setup_lm, task_table.TRANSLATE: _setup_translate, task_table.QA: _setup_qa,
           task_table.SENTIMENT: _setup_sentiment}

def _tuned_data(client, task, cache_dir=None):
    """`(name, prepared)`: the registry data set the model was fine-tuned on for `task` (its
    task card) and whether it is prepared, or `(None, False)` (a file, an unknown or an
    evaluation-only name, or no task card)."""
    from gpt_tf.datasets import api, registry

    name = (((client.task_card or {}).get("tasks") or {}).get(task) or {}).get("data")
    if not name or os.path.exists(name):
        return None, False
    try:
        if registry.get_spec(name).evaluation_only:
            return None, False
        return name, api.is_prepared(name, cache_dir)
    except UserError:
        return None, False


def _domain(name, cache_dir):
    """The `domain` line of a prepared data set's card, if it has one."""
    from gpt_tf import datasets

    try:
        return datasets.load_card(name, cache_dir).get("domain")
    except UserError:
        return None


def _failures(entries):
    failures = [f"{name}: {row['backend']} {row['metric']} vs {row['baseline']}"
                for name, entry in entries for row in entry["comparisons"]
                if not row["beats_baseline"]]
    failures += [f"{name}: no baseline (no training data for it)"
                 for name, entry in entries if not entry["baselines"]]
    noise = [f"{name}: {row['backend']} {row['metric']} vs {row['baseline']}"
             for name, entry in entries for row in entry["comparisons"]
             if row["beats_baseline"] and row.get("significant") is False]
    return failures, noise


def evaluate_tasks(targets, tasks=TASKS, data=None, split="test", limits=None, progress=None,
                   open_options=None, cache_dir=None, out_of_domain=None):
    """Evaluates model targets on tasks against baselines, in and out of domain.

    Args:
        targets: `{task: [Target, ...]}` (each task its own models) or a list
            of `Target` used for every task.
        tasks: subset of `TASKS`.
        data: `{task: data set name or file}` (defaults: `DEFAULT_DATA`), and
            for files `{"lm_train": ..., "sentiment_train": ...}` (baselines);
            `"qa_min_answer_logprob"`: the QA answers' floor on every QA set
            (see `gpt_tf.tasks.qa.answer_questions`).
        split: `test` or `validation` (in-domain data; out-of-domain sets are
            always their `test` split).
        limits: `{task or data set name: examples}` (lm: tokens); 0 means all; a data
            set's own limit wins over its task's.
        progress: optional `fn(str)` for progress lines.
        open_options: keyword arguments for `open_client`.
        cache_dir: data set cache.
        out_of_domain: `{task: [data set names]}` of out-of-domain sets (the
            CLI's default is `OUT_OF_DOMAIN`); None: none. A set that is not
            prepared is skipped with a note.

    Returns:
        The report dict (see `write_report`): `tasks` holds the in-domain
        entries, `out_of_domain` a list of entries per task.
    """
    from gpt_tf.clients import open_client

    say = progress or (lambda line: None)
    data = {**DEFAULT_DATA, **(data or {})}
    limits = {**DEFAULT_LIMITS, **(limits or {})}
    out_of_domain = out_of_domain or {}
    if not isinstance(targets, dict):
        targets = {task: list(targets) for task in tasks}
    _check_request(tasks, targets, data, limits, out_of_domain)
    report = {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "split": split, "tasks": {}, "out_of_domain": {}, "skipped": []}
    clients = {}

    def client_for(target):
        if target.target not in clients:
            say(f"opening {target.label} model {getattr(target.target, 'target', target.target)}")
            clients[target.target] = open_client(target.target, **(open_options or {}))
        return clients[target.target]

    try:
        for task in tasks:
            say(f"{task}: loading {data[task]} ({split})")
            task_data = load_task_data(task, data[task], split,
                                       limits.get(data[task], limits[task]), cache_dir,
                                       data.get(f"{task}_train"))
            _qa_floor(task, task_data, data)
            entry = _evaluate_set(task, task_data, targets[task], client_for, say)
            domain = _domain(data[task], cache_dir) if _is_name(data[task]) else None
            entry["domain"] = "in-domain" + (f": {domain}" if domain else "")
            report["tasks"][task] = entry
            for name in out_of_domain.get(task, ()):
                _evaluate_out_of_domain(report, task, name, data, limits, targets[task],
                                        client_for, cache_dir, say)
    finally:
        for client in clients.values():
            client.close()
    report["summary"] = _summary(report)
    return report


def _check_request(tasks, targets, data, limits, out_of_domain):
    unknown = sorted(set(limits) - set(TASKS) - set(data.values())
                     - {n for names in out_of_domain.values() for n in names})
    if unknown:
        raise UserError(f"a limit names {unknown}, which is neither a task nor a data set of "
                        "this evaluation")
    for task in tasks:
        if task not in TASKS:
            raise UserError(f"unknown task '{task}'; use one of {', '.join(TASKS)} or all")
        if not targets.get(task):
            raise UserError(f"no model to evaluate for task '{task}'; pass --model")


def _qa_floor(task, task_data, data):
    if task == task_table.QA and data.get("qa_min_answer_logprob") is not None:
        task_data["min_answer_logprob"] = data["qa_min_answer_logprob"]


def _evaluate_out_of_domain(report, task, name, data, limits, targets, client_for, cache_dir,
                            say):
    """Adds the entry of out-of-domain set `name` to `report` (or a note if it is not prepared)."""
    from gpt_tf.datasets import api

    if _is_name(name) and not api.is_prepared(name, cache_dir):
        report["skipped"].append(f"{task}: {name} (not prepared: run `gpt-tf data "
                                 f"prepare {name}`)")
        say(f"{task}: skipping {name}, not prepared")
        return
    # learned baselines learn from the in-domain side (see OUT_OF_DOMAIN)
    in_domain = data[task] if _is_name(data[task]) else data.get(f"{task}_train")
    baseline = None
    if task == LM:
        baseline = BASELINE_TRAIN.get(name) or in_domain
    elif task == task_table.SENTIMENT:
        tuned, prepared = _tuned_data(client_for(targets[0]), task, cache_dir)
        baseline = tuned if prepared else in_domain
        if tuned and not prepared:
            report["skipped"].append(
                f"{task}: {name}'s learned baselines learn from {in_domain}, not from "
                f"{tuned}, the model's own sentiment data (not prepared: run `gpt-tf data "
                f"prepare {tuned}`)")
            say(f"{task}: {tuned} is not prepared; {name}'s learned baselines learn from "
                f"{in_domain}")
    say(f"{task}: out of domain, loading {name}")
    ood_data = load_task_data(task, name, "test", limits.get(name, limits[task]),
                              cache_dir, baseline_source=baseline)
    _qa_floor(task, ood_data, data)
    ood = _evaluate_set(task, ood_data, targets, client_for, say)
    ood["domain"] = "out-of-domain: " + (_domain(name, cache_dir) or name)
    ood["baseline_data"] = baseline
    report["out_of_domain"].setdefault(task, []).append(ood)


def _summary(report):
    failures, noise = _failures(report["tasks"].items())
    ood_failures, ood_noise = _failures(
        (f"{task} ({entry['data']})", entry)
        for task, entries in report["out_of_domain"].items() for entry in entries)
    return {"all_beat_baselines": not failures, "not_beaten": failures,
            "not_significant": noise,
            "out_of_domain_all_beat_baselines": not ood_failures,
            "out_of_domain_not_beaten": ood_failures,
            "out_of_domain_not_significant": ood_noise}


# ---- writing -------------------------------------------------------------------------------


def _fmt(metric, value):
    if value is None:
        return "n/a"
    decimals = METRICS[metric][2]
    return f"{value:.{decimals}f}"


def render_markdown(report):
    """The report as Markdown: a summary table (in-domain and out-of-domain columns), then a
    table per task and data set, metric and baseline against every backend."""
    lines = ["# Evaluation report", "",
             f"Created {report['created']}, held-out split `{report['split']}`. Each cell is the "
             "model's value and whether it beats the baseline on that row "
             "(lower is better for perplexity and bits per byte, higher for the rest).", ""]
    summary = report.get("summary", {})
    verdict = "yes" if summary.get("all_beat_baselines") else "no"
    lines += [f"**Every metric beats its baseline: {verdict}.**" + (
        " (in domain)" if report.get("out_of_domain") else "")]
    if report.get("out_of_domain"):
        verdict = "yes" if summary.get("out_of_domain_all_beat_baselines") else "no"
        lines += ["", f"**Out of domain, every metric beats its baseline: {verdict}.**"]
    lines.append("")
    if "not_significant" in summary:
        noise = len(summary["not_significant"]) + len(summary.get("out_of_domain_not_significant",
                                                                   []))
        lines += [f"Wins within sampling noise (the 95% paired-bootstrap interval of the margin "
                  f"reaches 0): {noise}" + (", listed at the end." if noise else "."), ""]
    lines += _summary_table(report)
    for task, entry in report["tasks"].items():
        lines += _entry_lines(task, entry, f"## {TASK_TITLES[task]} (`{task}`)")
        for ood in report.get("out_of_domain", {}).get(task, []):
            lines += _entry_lines(task, ood, f"### {TASK_TITLES[task]}, out of domain: "
                                             f"{ood['data']}")
    for heading, key in (("Not beaten", "not_beaten"),
                         ("Not beaten out of domain", "out_of_domain_not_beaten"),
                         ("Beaten, but within sampling noise", "not_significant"),
                         ("Beaten out of domain, but within sampling noise",
                          "out_of_domain_not_significant")):
        if summary.get(key):
            lines += [f"## {heading}", ""] + [f"- {item}" for item in summary[key]] + [""]
    if report.get("skipped"):
        lines += ["## Skipped", ""] + [f"- {item}" for item in report["skipped"]] + [""]
    return "\n".join(lines)


def _cell(entry, metric, backend):
    """`value vs baseline (yes/no)` for the first baseline of a metric."""
    rows = [r for r in entry["comparisons"] if r["metric"] == metric and r["backend"] == backend]
    if not rows or rows[-1]["value"] is None:
        return "n/a" if not rows else "error"
    row = rows[-1]  # the strongest baseline is listed last (bag-of-words after majority)
    verdict = "yes" if row["beats_baseline"] else "no"
    return (f"{_fmt(metric, row['value'])} vs {_fmt(metric, row['baseline_value'])} "
            f"({verdict})")


def _summary_table(report):
    """One row per task, metric and backend: the in-domain set, then each out-of-domain set."""
    ood = report.get("out_of_domain") or {}
    width = max([len(v) for v in ood.values()] + [0])
    if not width:
        return []
    header = ["task", "metric", "backend", "in domain"] + [f"out of domain {i + 1}"
                                                          for i in range(width)]
    lines = ["Summary: model value vs the strongest baseline (beats it: yes/no); the data set "
             "of each column is named in the task's row.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task, entry in report["tasks"].items():
        sets = [entry] + list(ood.get(task, []))
        cells = [task, "data set", ""] + [f"`{e['data']}`" for e in sets]
        lines.append("| " + " | ".join(cells + [""] * (width + 1 - len(sets))) + " |")
        for metric in entry["metrics"]:
            for backend in entry["results"]:
                cells = [task, METRICS[metric][0], backend]
                cells += [_cell(e, metric, backend) for e in sets]
                cells += [""] * (width + 1 - len(sets))
                lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _entry_lines(task, entry, heading):
    backends = list(entry["results"])
    lines = [heading, "", f"Data: {entry['data']}, {entry['examples']} "
             f"{'chunks' if task == LM else 'examples'}."
             + (f" Domain: {entry['domain']}." if entry.get("domain") else "")
             + (f" Learned baselines trained on `{entry['baseline_data']}` (train split)."
                if entry.get("baseline_data") else ""), ""]
    header = ["metric", "baseline", "baseline value"] + backends
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for metric in entry["metrics"]:
        for baseline, values in entry["baselines"].items():
            cells = [METRICS[metric][0], baseline, _fmt(metric, values.get(metric))]
            for label in backends:
                row = next(r for r in entry["comparisons"] if r["metric"] == metric
                           and r["baseline"] == baseline and r["backend"] == label)
                if "error" in entry["results"][label]:
                    cells.append("error")
                else:
                    verdict = "yes" if row["beats_baseline"] else "no"
                    cells.append(f"{_fmt(metric, row['value'])} (beats baseline: {verdict})")
            lines.append("| " + " | ".join(cells) + " |")
        if not entry["baselines"]:
            cells = [METRICS[metric][0], "none (no training data)", "n/a"]
            cells += [_fmt(metric, entry["results"][b].get(metric)) for b in backends]
            lines.append("| " + " | ".join(cells) + " |")
    lines += _margin_table(entry, backends)
    lines += _versus_first_table(entry)
    lines.append("")
    lines.append("Time per backend: " + ", ".join(
        f"{b} {entry['results'][b].get('seconds', 0):.1f} s" for b in backends) + ".")
    for label in backends:
        if "error" in entry["results"][label]:
            lines.append(f"- {label}: error: {entry['results'][label]['error']}")
    if task == task_table.TRANSLATE:
        lines += ["", "sacreBLEU signatures:", "",
                  f"- BLEU: `{entry['signatures']['bleu']}`",
                  f"- chrF: `{entry['signatures']['chrf']}`"]
        leaks = ", ".join(f"{b} {entry['results'][b]['label_leaks']}" for b in backends
                          if "label_leaks" in entry["results"][b])
        if leaks:
            lines += ["", f"Translations holding a task label word or separator that the source "
                          f"lacks: {leaks}."]
        fields = ", ".join(
            f"{b} {entry['results'][b]['placeholder_mismatches']} of "
            f"{entry['results'][b]['placeholder_sources']}" for b in backends
            if "placeholder_mismatches" in entry["results"][b])
        if fields:
            lines += ["", "Translations whose placeholders (`%s`, `%(name)s`, `{name}`, "
                          f"`${{name}}`, tags, entities) differ from the source's: {fields}."]
    if task == task_table.QA:
        rates = ", ".join(
            f"{b} {entry['results'][b]['no_answer_rate']:.1%} no answer, "
            f"{entry['results'][b].get('confidently_wrong_rate', 0):.1%} confidently wrong"
            for b in backends if "no_answer_rate" in entry["results"][b])
        lines += ["", "SQuAD v1.1 exact match and F1 in percent. Confidently wrong: an answer "
                      f"given (not 'no answer') with F1 0. {rates}."]
        if entry.get("min_answer_logprob") is not None:
            lines += ["", "Answers whose mean log-probability per token is below "
                          f"{entry['min_answer_logprob']:g} nats were turned down (no answer; "
                          "`--qa-min-answer-logprob`)."]
    if task == task_table.SENTIMENT:
        for label in backends:
            matrix = entry["results"][label].get("confusion_matrix")
            if not matrix:
                continue
            names = matrix["labels"]
            lines += ["", f"Confusion matrix, {label} (rows: gold, columns: predicted):", "",
                      "| gold \\ predicted | " + " | ".join(names) + " |",
                      "|" + "---|" * (len(names) + 1)]
            for name, row in zip(names, matrix["matrix"]):
                lines.append(f"| {name} | " + " | ".join(str(c) for c in row) + " |")
    lines.append("")
    return lines


def _margin_table(entry, backends):
    """Markdown lines: each margin over its baseline with its 95% bootstrap interval."""
    rows = [r for r in entry["comparisons"] if "ci95" in r]
    if not rows:
        return []
    resamples = rows[0]["resamples"]
    lines = ["", f"Margin over the baseline (positive: the model is better) with its 95% "
             f"interval, paired bootstrap over the examples ({resamples} resamples): *better* "
             "or *worse* when the whole interval is on one side of 0, else *within noise*:", "",
             "| metric | baseline | " + " | ".join(backends) + " |",
             "|" + "---|" * (len(backends) + 2)]
    for metric in entry["metrics"]:
        decimals = METRICS[metric][2]
        for baseline in entry["baselines"]:
            cells = [METRICS[metric][0], baseline]
            for label in backends:
                row = next((r for r in rows if r["metric"] == metric
                            and r["baseline"] == baseline and r["backend"] == label), None)
                if row is None:
                    cells.append("n/a")
                    continue
                low, high = row["ci95"]
                cells.append(f"{row['improvement']:+.{decimals}f} [{low:+.{decimals}f}, "
                             f"{high:+.{decimals}f}] {row['verdict']}")
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _versus_first_table(entry):
    """Markdown lines: each later model's margin over the first, with its 95% interval."""
    rows = entry.get("versus_first") or []
    if not rows:
        return []
    def name(label, target):
        return f"{label} (`{target}`)" if target and target not in label else label

    reference = rows[0]["reference"]
    tokens = ("; perplexity only between models that cut the text into the same tokens, bits "
              "per byte always" if any(r["metric"] == "bits_per_byte" for r in rows) else "")
    lines = ["", f"Against the first model, {name(reference, rows[0]['reference_target'])}, "
             f"on the same examples (positive: better than it), paired bootstrap{tokens}:", "",
             "| metric | model | value | " + f"{reference} | margin [95%] |", "|---|---|---|---|---|"]
    for row in rows:
        metric, _, decimals = METRICS[row["metric"]]
        low, high = row["ci95"]
        lines.append(f"| {metric} | {name(row['backend'], row['target'])} | "
                     f"{row['value']:.{decimals}f} | "
                     f"{row['reference_value']:.{decimals}f} | {row['improvement']:+.{decimals}f} "
                     f"[{low:+.{decimals}f}, {high:+.{decimals}f}] {row['verdict']} |")
    return lines


def write_report(report, output_dir):
    """Writes `report.json` and `report.md` into `output_dir` (each atomically).

    Returns:
        `(json_path, markdown_path)`.
    """
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for name, text in (("report.json", json.dumps(report, indent=2, ensure_ascii=False,
                                                   default=_json_default)),
                       ("report.md", render_markdown(report))):
        path = os.path.join(output_dir, name)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        os.replace(tmp, path)
        paths.append(path)
    return tuple(paths)


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
