"""Runs every app on a real example with the shipped models and prints the answers.

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

SAVED_MODEL = os.path.join("saved_models", "multitask")
TFLITE_MODEL = os.path.join("tflite", "multitask-int8")
MODEL_NAME = "multitask"

# Held-out examples, chosen mechanically (not cherry-picked): the first mt-en-fr test
# pair of 20-70 characters (Ruth 1:3), the first qa-en test question
# (cymbeline), and the first short positive and negative sentiment-en
# test sentences.
TRANSLATE = "Elimelech, Naomi's husband, died; and she was left, and her two sons."
TRANSLATE_REFERENCE = 'Élimélec, mari de Naomi, mourut, et elle resta avec ses deux fils.'
QA_CONTEXT = "It had been pity you should have been put together with so mortal a purpose as then each bore, upon importance of so slight and trivial a nature. By your pardon, sir, I was then a young traveller; rather shunn'd to go even with what I heard than in my every action to be guided by others' experiences: but upon my mended judgement--if I offend to say it is mended--my quarrel was not altogether slight. Faith, yes, to be put to the arbitrement of swords, and by such two that would by all likelihood have confounded one the other, or have fallen both. Can we, with manners, ask what was the difference? Safely, I think; 'twas a contention in public, which may, without contradiction, suffer the report. It was much like an argument that fell out last night, where each of us fell in praise of our country-mistresses; this gentleman at that time vouching--and upon warrant of bloody affirmation--his to be more fair, virtuous, wise, chaste, constant, qualified, and less attemptable than any the rarest of our ladies in France. That lady is not now living, or this gentleman's opinion by this worn out. She holds her virtue still, and I my mind. You must not so far prefer her 'fore ours of Italy."
QA_QUESTION = "Being so far provok'd as I was in @placeholder, I would abate her nothing, though I profess myself her adorer, not her friend."
QA_REFERENCE = 'France'
SENTIMENTS = ['a refreshingly authentic coming-of-age tale .', "i can't recommend it . but it's surprisingly harmless ."]
SENTIMENT_REFERENCES = ["positive", "negative"]
PROMPT = "ROMEO. O, she doth teach"


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
    _section(f"generate (SavedModel {SAVED_MODEL})")
    print(generate.generate(PROMPT, model=SAVED_MODEL, max_new_tokens=40, seed=1))
    _section("translate en -> fr (SavedModel)")
    print(f"{TRANSLATE}\n-> {translate.translate(TRANSLATE, model=SAVED_MODEL)}\n"
          f"(reference: {TRANSLATE_REFERENCE})")
    _section("question answering (SavedModel)")
    result = qa.answer(QA_CONTEXT, QA_QUESTION, model=SAVED_MODEL)
    print(f"Q: {QA_QUESTION}\nA: {result['answer']!r} (chars {result['start']}-{result['end']}, "
          f"score {result['score']:.2f}, no_answer={result['no_answer']}; reference "
          f"{QA_REFERENCE!r})")
    _section("sentiment (SavedModel)")
    for text, verdict in zip(SENTIMENTS, sentiment.classify(SENTIMENTS, model=SAVED_MODEL)):
        probabilities = ", ".join(f"{k} {v:.2f}" for k, v in verdict["probabilities"].items())
        print(f"{text!r}: {verdict['label']} ({probabilities})")
    print(f"(references: {', '.join(SENTIMENT_REFERENCES)})")

    _section(f"translate through the TFLite runner ({TFLITE_MODEL}, int8)")
    print(f"{TRANSLATE}\n-> {translate.translate(TRANSLATE, model=TFLITE_MODEL)}")

    port = _free_port()
    _section(f"sentiment through the REST server (gpt-tf serve on port {port})")
    server = subprocess.Popen(
        [sys.executable, "-m", "gpt_tf.cli", "serve", "--model_base_path", SAVED_MODEL,
         "--model_name", MODEL_NAME, "--rest_api_port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/v1/models/{MODEL_NAME}"
        _wait_ready(url, server)
        for text, verdict in zip(SENTIMENTS, sentiment.classify(SENTIMENTS, model=url)):
            print(f"{text!r}: {verdict['label']} (REST {url})")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
