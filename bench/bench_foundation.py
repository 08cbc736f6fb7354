"""Foundation benchmark: training tokens/s, generation ms/token, peak RSS.

Each measurement runs in its own process (so peak RSS is per measurement) and
the rounds interleave the contenders, so a noisy neighbour hits all of them.
Contenders at the reference config (vocab 8192, context 256, 4 layers, width
256, 4 heads, MLP 1024, batch 16, fp32; identical to the `mini` preset):

- gpt-tf training step (the real `build_train_step`, XLA on), random tokens;
- gpt-tf generation with the KV cache (fused XLA while loop);
- gpt-tf generation without the cache (XLA forward of the whole buffer per token);
- keras-hub `GPT2CausalLM.generate` (XLA) at the same shape;
- PyTorch (if installed): the same architecture, eager training step and a KV-cache loop.

Usage:
    python bench/bench_foundation.py [--rounds 2] [--out bench/results/foundation.json]
"""

import argparse
import json
import os
import statistics
import time

from common import format_or_dash, report, run_interleaved, torch_available

REFERENCE = dict(vocab_size=8192, sequence_length=256, num_layers=4, hidden_dim=256,
                 num_heads=4, intermediate_dim=1024)
BATCH, PROMPT, NEW = 16, 32, 128
SECTIONS = ("train_gpt_tf", "generate_cached", "generate_nocache", "generate_keras_hub",
            "train_torch", "generate_torch")


def train_gpt_tf(steps=12, precision="float32", xla=True):
    """Tokens/s of the real gpt-tf train step on random tokens."""
    import tensorflow as tf

    import gpt_tf  # noqa: F401
    from gpt_tf.config import ModelConfig, TrainConfig
    from gpt_tf.models import GPTCausalLM
    from gpt_tf.optimizer import make_optimizer
    from gpt_tf.training import build_train_step

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    train_config = TrainConfig(batch_size=BATCH, steps=1000, xla=xla, mixed_precision=precision)
    policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    with strategy.scope():
        model = GPTCausalLM.from_model_config(ModelConfig(**REFERENCE), dtype=policy)
        optimizer = make_optimizer(train_config, model)
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64)
    tokens = tf.random.stateless_uniform((BATCH, REFERENCE["sequence_length"] + 1), [1, 2],
                                         0, REFERENCE["vocab_size"], dtype=tf.int32)
    dataset = tf.data.Dataset.from_tensors((tokens[:, :-1], tokens[:, 1:])).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    train_step = build_train_step(strategy, model, optimizer, train_config, step)
    for _ in range(3):  # compile + warm up
        float(train_step(iterator)[0])
    started = time.perf_counter()
    for _ in range(steps):
        loss = train_step(iterator)[0]
    float(loss)
    elapsed = time.perf_counter() - started
    return {"tokens_per_second": steps * BATCH * REFERENCE["sequence_length"] / elapsed}


def _prompt():
    import numpy as np

    return [int(t) for t in np.random.default_rng(0).integers(3, REFERENCE["vocab_size"], PROMPT)]


def generate_cached(repeats=3):
    import gpt_tf  # noqa: F401
    from gpt_tf.config import ModelConfig
    from gpt_tf.generation import Generator
    from gpt_tf.models import GPTCausalLM

    model = GPTCausalLM.from_model_config(ModelConfig(**REFERENCE))
    generator = Generator(model)
    prompt = _prompt()
    generator.generate([prompt], NEW)  # compile
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = generator.generate([prompt], NEW)
        times.append(time.perf_counter() - started)
        assert len(result.token_ids[0]) == NEW
    return {"ms_per_token": 1000 * min(times) / NEW, "ms_per_token_median": 1000 * statistics.median(times) / NEW}


def generate_nocache(repeats=2):
    import numpy as np
    import tensorflow as tf

    import gpt_tf  # noqa: F401
    from gpt_tf.config import ModelConfig
    from gpt_tf.models import GPTCausalLM

    model = GPTCausalLM.from_model_config(ModelConfig(**REFERENCE))
    length = PROMPT + NEW

    @tf.function(jit_compile=True)
    def next_token(tokens, position):
        logits = model(tokens, training=False)  # the whole buffer, every step
        return tf.argmax(tf.gather(logits, position - 1, axis=1), axis=-1, output_type=tf.int32)

    def run():
        tokens = np.zeros((1, length), np.int32)
        tokens[0, :PROMPT] = _prompt()
        for position in range(PROMPT, length):
            tokens[0, position] = int(next_token(tf.constant(tokens), tf.constant(position))[0])
        return tokens

    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return {"ms_per_token": 1000 * min(times) / NEW}


def generate_keras_hub(repeats=3):
    import numpy as np

    import gpt_tf  # noqa: F401  (before keras_hub: sets the Keras backend)

    # isort: split
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=REFERENCE["vocab_size"], num_layers=REFERENCE["num_layers"],
        num_heads=REFERENCE["num_heads"], hidden_dim=REFERENCE["hidden_dim"],
        intermediate_dim=REFERENCE["intermediate_dim"],
        max_sequence_length=REFERENCE["sequence_length"])
    lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    lm.compile(sampler="greedy")
    lm.jit_compile = True
    length = PROMPT + NEW
    ids = np.zeros((1, length), np.int32)
    ids[0, :PROMPT] = _prompt()
    mask = np.zeros((1, length), bool)
    mask[0, :PROMPT] = True
    inputs = {"token_ids": ids, "padding_mask": mask}
    lm.generate(inputs, stop_token_ids=None)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        lm.generate(inputs, stop_token_ids=None)
        times.append(time.perf_counter() - started)
    return {"ms_per_token": 1000 * min(times) / NEW}


def _torch_model():
    import torch
    from torch import nn

    c = REFERENCE

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(c["hidden_dim"]), nn.LayerNorm(c["hidden_dim"])
            self.qkv = nn.Linear(c["hidden_dim"], 3 * c["hidden_dim"])
            self.proj = nn.Linear(c["hidden_dim"], c["hidden_dim"])
            self.fc = nn.Linear(c["hidden_dim"], c["intermediate_dim"])
            self.out = nn.Linear(c["intermediate_dim"], c["hidden_dim"])

        def forward(self, x, cache=None, index=0):
            b, t, d = x.shape
            h = c["num_heads"]
            q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
            if cache is not None:
                cache[0][:, :, index:index + t] = k
                cache[1][:, :, index:index + t] = v
                k, v = cache[0][:, :, :index + t], cache[1][:, :, :index + t]
                attn = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=t > 1)
            else:
                attn = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(attn.transpose(1, 2).reshape(b, t, d))
            return x + self.out(torch.nn.functional.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(c["vocab_size"], c["hidden_dim"])
            self.pos = nn.Embedding(c["sequence_length"], c["hidden_dim"])
            self.blocks = nn.ModuleList(Block() for _ in range(c["num_layers"]))
            self.ln = nn.LayerNorm(c["hidden_dim"])

        def forward(self, ids, caches=None, index=0):
            t = ids.shape[1]
            x = self.tok(ids) + self.pos(torch.arange(index, index + t))
            for i, block in enumerate(self.blocks):
                x = block(x, None if caches is None else caches[i], index)
            return self.ln(x) @ self.tok.weight.T

    return GPT()


def train_torch(steps=12):
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = _torch_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    tokens = torch.randint(0, REFERENCE["vocab_size"], (BATCH, REFERENCE["sequence_length"] + 1))

    def step():
        logits = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 tokens[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - started
    return {"tokens_per_second": steps * BATCH * REFERENCE["sequence_length"] / elapsed,
            "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__}


def generate_torch(repeats=3):
    import torch

    torch.set_num_threads(2)
    model = _torch_model().eval()
    c = REFERENCE
    head_dim = c["hidden_dim"] // c["num_heads"]

    @torch.inference_mode()
    def run():
        caches = [torch.zeros(2, 1, c["num_heads"], PROMPT + NEW, head_dim)
                  for _ in range(c["num_layers"])]
        ids = torch.tensor([_prompt()])
        logits = model(ids, caches, 0)
        token = logits[:, -1].argmax(-1, keepdim=True)
        for index in range(PROMPT, PROMPT + NEW - 1):
            token = model(token, caches, index)[:, -1].argmax(-1, keepdim=True)

    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return {"ms_per_token": 1000 * min(times) / NEW, "torch_threads": torch.get_num_threads()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="bench/results/foundation.json")
    args = parser.parse_args()
    if args.section:
        report(globals()[args.section]())
        return
    sections = [s for s in SECTIONS if "torch" not in s or torch_available()]
    runs = run_interleaved(__file__, "--section", sections, args.rounds)

    def best(section, key, pick):
        values = [r[key] for r in runs.get(section, []) if key in r]
        return pick(values) if values else None

    table = {s: {"tokens_per_second": best(s, "tokens_per_second", max),
                 "ms_per_token": best(s, "ms_per_token", min),
                 "peak_rss_mb": best(s, "peak_rss_mb", max)} for s in sections}
    print(f"\nreference config {REFERENCE}, batch {BATCH}; generation batch 1, prompt {PROMPT}, "
          f"{NEW} new tokens; best of {args.rounds} interleaved rounds, cpu_count={os.cpu_count()}")
    print(f"{'measurement':<22}{'train tok/s':>14}{'gen ms/token':>14}{'peak RSS MB':>14}")
    for section, row in table.items():
        print(f"{section:<22}{format_or_dash(row['tokens_per_second'], '%.0f'):>14}"
              f"{format_or_dash(row['ms_per_token'], '%.3f'):>14}"
              f"{format_or_dash(row['peak_rss_mb'], '%.0f'):>14}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump({"config": REFERENCE, "batch": BATCH, "prompt": PROMPT, "new_tokens": NEW,
                   "rounds": args.rounds, "table": table, "runs": runs}, handle, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
