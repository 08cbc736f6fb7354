"""Runs every app on real held-out examples with the shipped models and prints the answers.

The four apps on the shipped SavedModel (in process), one app through the
TFLite runner (int8, no TensorFlow in that code path) and one through a
TF-Serving-compatible REST server (`gpt-tf serve`, started here on a free
port). Examples come from held-out data (test books, test works, test
sentences), never from training data.

Usage (from the repository root): python -m apps.demo
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

from apps import generate, qa, sentiment, translate
from apps._common import run

SAVED_MODEL = os.path.join("saved_models", "multitask")
TFLITE_MODEL = os.path.join("tflite", "multitask-int8")
MODEL_NAME = "multitask"

# Held-out examples, chosen mechanically by tools/demo_examples.py (the first of each test
# split passing a stated filter, never training data): a Bible verse and a software message
# to translate, a Shakespeare and a Wikipedia cloze question, two whole movie reviews and two
# product-review snippets. The modern ones come from the evaluation-only (out-of-domain) sets.
EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_examples.json")
PROMPTS = ["ROMEO. O, she doth teach", "To configure the database connection, set"]


def _load_examples():
    with open(EXAMPLES, encoding="utf-8") as handle:
        return json.load(handle)


def _short(text, limit=160):
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"


def _section(title):
    print(f"\n== {title}")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url, process, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gpt-tf serve exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                state = json.load(response)["model_version_status"][0]["state"]
                if state == "AVAILABLE":
                    return
        except (OSError, ValueError, KeyError, IndexError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def main():
    for path in (SAVED_MODEL, TFLITE_MODEL):
        if not os.path.exists(path):
            print(f"apps.demo: error: '{path}' is missing; run from the repository root, or "
                  "rebuild the shipped models with `make models`", file=sys.stderr)
            return 2
    examples = _load_examples()
    _section(f"generate (SavedModel {SAVED_MODEL})")
    for prompt in PROMPTS:
        print(generate.generate(prompt, model=SAVED_MODEL, max_new_tokens=40, seed=1))
    _section("translate en -> fr (SavedModel)")
    for example in examples["translate"]:
        print(f"[{example['from']}]\n{example['text']}\n-> "
              f"{translate.translate(example['text'], model=SAVED_MODEL)}\n"
              f"(reference: {example['reference']})")
    _section("question answering (SavedModel; cloze questions: @placeholder is the answer)")
    for example in examples["qa"]:
        result = qa.answer(example["context"], example["question"], model=SAVED_MODEL)
        print(f"[{example['from']}]\nQ: {example['question']}\nA: {result['answer']!r} "
              f"(score {result['score']:.2f}, no_answer={result['no_answer']}; reference "
              f"{example['reference']!r})")
    _section("sentiment (SavedModel; whole reviews are read in windows)")
    texts = [example["text"] for example in examples["sentiment"]]
    for example, verdict in zip(examples["sentiment"],
                                sentiment.classify(texts, model=SAVED_MODEL)):
        probabilities = ", ".join(f"{k} {v:.2f}" for k, v in verdict["probabilities"].items())
        print(f"[{example['from']}] {_short(example['text'])!r}\n  -> {verdict['label']} "
              f"({probabilities}; {verdict['chunks']} window(s); reference "
              f"{example['reference']})")

    technical = examples["translate"][-1]["text"]
    _section(f"translate through the TFLite runner ({TFLITE_MODEL}, int8)")
    print(f"{technical}\n-> {translate.translate(technical, model=TFLITE_MODEL)}")

    port = _free_port()
    _section(f"sentiment through the REST server (gpt-tf serve on port {port})")
    server = subprocess.Popen(
        [sys.executable, "-m", "gpt_tf.cli", "serve", "--model_base_path", SAVED_MODEL,
         "--model_name", MODEL_NAME, "--rest_api_port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/v1/models/{MODEL_NAME}"
        _wait_ready(url, server)
        snippets = [e["text"] for e in examples["sentiment"][2:]]
        for text, verdict in zip(snippets, sentiment.classify(snippets, model=url)):
            print(f"{text!r}: {verdict['label']} (REST {url})")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(run("apps.demo", lambda argv: main()))
