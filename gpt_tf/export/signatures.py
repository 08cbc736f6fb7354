"""The serving signatures of an exported GPT: text and ids in, text and ids out.

Every input is batch-first (`(B,)` or `(B, T)`), so TF Serving's row format
(`instances`) and columnar format (`inputs`) both work. Scalar sampling
controls would break the row format; they are per-row inputs of the
`generate` signatures instead, and `serving_default` takes only prompts and
uses the defaults fixed at export.

- `serving_default`: `prompt` str -> `completion` str (export-time defaults).
- `generate`: `prompt` + per-row `max_new_tokens`, `temperature`, `top_k`,
  `top_p`, `repetition_penalty`, `seed` -> `completion`, `num_tokens`,
  `stop_reason`, `prompt_tokens_truncated`.
- `generate_ids`: `token_ids` (B, T) int32 right-padded, `lengths` + the same
  controls -> `token_ids` (B, N), `num_tokens`, `stop_reason`,
  `prompt_tokens_truncated`.
- `score`: `text` -> `log_likelihood`, `num_tokens`, `perplexity`, `truncated`.
- `tokenize`: `text` -> `token_ids` (B, T) padded with the pad id, `lengths`.
- `detokenize`: `token_ids` (B, T) -> `text`.
- `logits`: `token_ids` (B, T) -> `logits` (B, V) float32, at each row's last position.
- `prefill`/`decode`: the batch-1 stepwise API with an explicit cache
  (`stepwise.py`), used for streaming.
- task signatures (`tasks.py`).

Text prompts are prefixed with the end-of-text id, as in training and
`gpt-tf generate`; `generate_ids` takes ids exactly as given.
"""

import tensorflow as tf

from gpt_tf.errors import UserError
from gpt_tf.export.generation_graph import GraphGenerator, validate_sampling
from gpt_tf.export.stepwise import StepwiseGraph
from gpt_tf.export.tasks import ClassificationTask, GenerationTask, template_pieces

CLASSIFY_METHOD = "tensorflow/serving/classify"


def _spec(shape, dtype, name):
    return tf.TensorSpec(shape, dtype, name=name)


def _sampling_specs():
    return [
        _spec([None], tf.int32, "max_new_tokens"),
        _spec([None], tf.float32, "temperature"),
        _spec([None], tf.int32, "top_k"),
        _spec([None], tf.float32, "top_p"),
        _spec([None], tf.float32, "repetition_penalty"),
        _spec([None], tf.int32, "seed"),
    ]


class ServingSignatures:
    """Builds the signature functions of one exported model.

    Args:
        model: a `GPTCausalLM`.
        tokenizer: its `gpt_tf.tokenizer.Tokenizer`.
        tasks: `GenerationTask`/`ClassificationTask` objects.
        max_new_tokens_limit: largest `max_new_tokens` accepted.
        defaults: sampling settings of `serving_default`
            (`max_new_tokens`, `temperature`, `top_k`, `top_p`, `repetition_penalty`).
        jit_compile: compile the generation loops with XLA.
        stepwise: add the batch-1 `prefill`/`decode` signatures.
    """

    def __init__(self, model, tokenizer, tasks=(), max_new_tokens_limit=None, defaults=None,
                 jit_compile=True, stepwise=True):
        self.model = model
        self.tokenizer = tokenizer
        self.tasks = list(tasks)
        self.sequence_length = int(model.backbone.sequence_length)
        self.vocab_size = int(model.backbone.vocab_size)
        if tokenizer.vocab_size != self.vocab_size:
            raise UserError(f"tokenizer has {tokenizer.vocab_size} tokens but the model "
                            f"{self.vocab_size}; export the run's own tokenizer")
        self.max_new_tokens_limit = int(max_new_tokens_limit or self.sequence_length // 2)
        if not 1 <= self.max_new_tokens_limit < self.sequence_length:
            raise UserError(f"max_new_tokens_limit must be in [1, {self.sequence_length - 1}]")
        self.defaults = dict(max_new_tokens=min(64, self.max_new_tokens_limit), temperature=0.0,
                             top_k=0, top_p=1.0, repetition_penalty=1.0)
        self.defaults.update(defaults or {})
        if not 1 <= self.defaults["max_new_tokens"] <= self.max_new_tokens_limit:
            raise UserError("default max_new_tokens must be in [1, max_new_tokens_limit]")
        self.end_of_text_id = int(tokenizer.end_of_text_id)
        self.pad_id = int(tokenizer.pad_id)  # 0 for SentencePiece; GPT-2's id 0 is '!'
        # A fresh in-graph tokenizer (a tracked tf.Module holding its model or tables).
        self.graph_tokenizer = tokenizer.graph_tokenizer
        self.generator = GraphGenerator(model, [self.end_of_text_id], jit_compile=jit_compile)
        self.jit_compile = jit_compile
        self.stepwise = StepwiseGraph(model) if stepwise else None
        self._task_generators = {}

    # ---- helpers -------------------------------------------------------------------------

    def _prompt_ids(self, text):
        # text (B,) -> [end_of_text] + pieces, right-padded (B, T) and lengths (B,).
        ids = self.graph_tokenizer.tokenize(text)
        eot = tf.fill([tf.shape(text)[0], 1], self.end_of_text_id)
        ids = tf.concat([tf.RaggedTensor.from_tensor(eot), ids], axis=1)
        return ids.to_tensor(0), tf.cast(ids.row_lengths(), tf.int32)

    def _check_ids(self, token_ids):
        return [
            tf.debugging.assert_non_negative(token_ids, message="token_ids must be >= 0"),
            tf.debugging.assert_less(token_ids, self.vocab_size,
                                     message=f"token_ids must be < vocab size {self.vocab_size}"),
        ]

    def _check_batch(self, *tensors):
        batch = tf.shape(tensors[0])[0]
        checks = [tf.debugging.assert_positive(batch, message="the batch is empty")]
        for tensor in tensors[1:]:
            checks.append(tf.debugging.assert_equal(
                tf.shape(tensor)[0], batch,
                message="all inputs must have the same batch size (first dimension)"))
        return checks

    def _detokenize(self, token_ids, lengths):
        return self.graph_tokenizer.detokenize(
            tf.RaggedTensor.from_tensor(token_ids, lengths=lengths))

    def _run_generation(self, generator, ids, lengths, max_new_tokens, temperature, top_k,
                        top_p, repetition_penalty, seed):
        checks = validate_sampling(max_new_tokens, temperature, top_k, top_p,
                                   repetition_penalty, self.max_new_tokens_limit)
        checks += self._check_batch(ids, lengths, max_new_tokens, temperature, top_k, top_p,
                                    repetition_penalty, seed)
        with tf.control_dependencies(checks):
            ids = tf.identity(ids)
        return generator.generate(ids, lengths, max_new_tokens, temperature, top_k, top_p,
                                  repetition_penalty, seed)

    # ---- generic signatures --------------------------------------------------------------

    def serving_default(self, prompt):
        batch = tf.shape(prompt)[0]
        d = self.defaults
        out = self.generate(prompt, tf.fill([batch], d["max_new_tokens"]),
                            tf.fill([batch], float(d["temperature"])), tf.fill([batch], d["top_k"]),
                            tf.fill([batch], float(d["top_p"])),
                            tf.fill([batch], float(d["repetition_penalty"])),
                            tf.zeros([batch], tf.int32))
        return {"completion": out["completion"]}

    def generate(self, prompt, max_new_tokens, temperature, top_k, top_p, repetition_penalty,
                 seed):
        ids, lengths = self._prompt_ids(prompt)
        out = self._run_generation(self.generator, ids, lengths, max_new_tokens, temperature,
                                   top_k, top_p, repetition_penalty, seed)
        return {
            "completion": self._detokenize(out["token_ids"], out["num_tokens"]),
            "num_tokens": out["num_tokens"],
            "stop_reason": out["stop_reason"],
            "prompt_tokens_truncated": out["prompt_tokens_truncated"],
        }

    def generate_ids(self, token_ids, lengths, max_new_tokens, temperature, top_k, top_p,
                     repetition_penalty, seed):
        width = tf.shape(token_ids)[1]
        checks = self._check_ids(token_ids) + [
            tf.debugging.assert_positive(lengths, message="lengths must be >= 1"),
            tf.debugging.assert_less_equal(lengths, width,
                                           message="lengths must be <= token_ids width"),
        ]
        with tf.control_dependencies(checks):
            token_ids = tf.identity(token_ids)
        return self._run_generation(self.generator, token_ids, lengths, max_new_tokens,
                                    temperature, top_k, top_p, repetition_penalty, seed)

    def score(self, text):
        ids, lengths = self._prompt_ids(text)
        limit = self.sequence_length
        truncated = lengths > limit
        ids, lengths = ids[:, :limit], tf.minimum(lengths, limit)
        logits = self.model(ids, training=False)  # (B, T, V)
        log_probs = tf.nn.log_softmax(logits[:, :-1], axis=-1)
        targets = ids[:, 1:]
        picked = tf.gather(log_probs, targets[:, :, None], batch_dims=2)[:, :, 0]
        mask = tf.range(tf.shape(targets)[1])[None, :] < (lengths - 1)[:, None]
        log_likelihood = tf.reduce_sum(tf.where(mask, picked, 0.0), axis=-1)
        count = lengths - 1
        perplexity = tf.exp(-log_likelihood / tf.cast(tf.maximum(count, 1), tf.float32))
        return {"log_likelihood": log_likelihood, "num_tokens": count,
                "perplexity": perplexity, "truncated": truncated}

    def tokenize(self, text):
        ids = self.graph_tokenizer.tokenize(text)
        return {"token_ids": ids.to_tensor(self.pad_id), "lengths": tf.cast(ids.row_lengths(), tf.int32)}

    def detokenize(self, token_ids):
        with tf.control_dependencies(self._check_ids(token_ids)):
            token_ids = tf.identity(token_ids)
        return {"text": self.graph_tokenizer.detokenize(token_ids)}

    def logits(self, token_ids):
        # Next-token logits at each row's last position, (B, V): the full (B, T, V)
        # made a legal 16 x 256 request a 678 MB JSON answer (issue 15), on TF Serving
        # too. Per-token likelihoods come from `score`; rows are capped so one answer
        # stays under 2**20 floats on any server.
        max_rows = max(1, (1 << 20) // self.vocab_size)
        shape = tf.shape(token_ids)
        checks = self._check_ids(token_ids) + [
            tf.debugging.assert_less_equal(
                shape[1], self.sequence_length,
                message=f"token_ids may have at most {self.sequence_length} positions"),
            tf.debugging.assert_positive(shape[1], message="token_ids needs one position"),
            tf.debugging.assert_less_equal(
                shape[0], max_rows, message=f"logits takes at most {max_rows} rows per request "
                                            f"(each returns {self.vocab_size} floats)")]
        with tf.control_dependencies(checks):
            token_ids = tf.identity(token_ids)
        hidden = self.model.backbone(token_ids, training=False)[:, -1]  # (B, D)
        # GPTCausalLM's tied head, on the last position only (test_export checks parity).
        logits = self.model.backbone.token_embedding(hidden, reverse=True)  # (B, V)
        return {"logits": tf.cast(logits, tf.float32)}

    # ---- task signatures -----------------------------------------------------------------

    def _fill_template(self, template, inputs):
        parts = []
        for literal, field in template_pieces(template):
            if literal:
                parts.append(literal)
            if field is not None:
                parts.append(inputs[field])
        batch = tf.shape(next(iter(inputs.values())))[0]
        parts = [tf.fill([batch], p) if isinstance(p, str) else p for p in parts]
        return tf.strings.join(parts) if len(parts) > 1 else parts[0]

    def _stop_ids(self, task):
        stop = [self.end_of_text_id]
        for text in task.stop:
            ids = self.tokenizer.encode(text)
            if len(ids) != 1:
                raise UserError(f"task '{task.name}': stop string {text!r} is {len(ids)} tokens; "
                                "stop strings must be single tokens (e.g. a separator)")
            stop.append(ids[0])
        return stop

    def generation_task(self, task):
        """`fn(**inputs) -> {task.output: text}` for a `GenerationTask`."""
        generator = GraphGenerator(self.model, self._stop_ids(task), jit_compile=self.jit_compile)

        def fn(**inputs):
            prompt = self._fill_template(task.template, inputs)
            ids, lengths = self._prompt_ids(prompt)
            batch = tf.shape(prompt)[0]
            out = self._run_generation(
                generator, ids, lengths, tf.fill([batch], task.max_new_tokens),
                tf.zeros([batch]), tf.zeros([batch], tf.int32), tf.ones([batch]),
                tf.ones([batch]), tf.zeros([batch], tf.int32))
            return {task.output: self._detokenize(out["token_ids"], out["num_tokens"])}

        specs = [_spec([None], tf.string, name) for name in task.inputs]
        return fn, specs

    def _label_scores(self, task, text):
        label_ids = [self.tokenizer.encode(t) for t in task.label_texts]
        longest = max(len(ids) for ids in label_ids)
        if longest >= self.sequence_length // 2:
            raise UserError(f"task '{task.name}': label texts are too long for the context")
        prompt = self._fill_template(task.template, {task.input: text})
        full, lengths = self._prompt_ids(prompt)  # (B, T), (B,)
        # Keep the end of long prompts: the label is scored right after it.
        room = self.sequence_length - longest
        kept_len = tf.minimum(lengths, room)
        positions = (lengths - kept_len)[:, None] + tf.range(tf.reduce_max(kept_len))[None, :]
        positions = tf.minimum(positions, tf.shape(full)[1] - 1)
        kept = tf.RaggedTensor.from_tensor(tf.gather(full, positions, batch_dims=1),
                                           lengths=kept_len)
        prompt_len = kept_len
        batch = tf.shape(prompt)[0]
        rows = []
        for label in label_ids:
            label_tensor = tf.RaggedTensor.from_tensor(
                tf.tile(tf.constant([label], tf.int32), [batch, 1]))
            rows.append(tf.concat([kept, label_tensor], axis=1))
        seqs = tf.concat(rows, axis=0)  # (K*B, None)
        dense = seqs.to_tensor(0)
        backbone = self.model.backbone
        hidden = backbone(dense, training=False)  # (K*B, T, D)
        # Only the positions that predict label tokens go through the
        # vocabulary projection: `longest` per row, not all T.
        starts = tf.tile(prompt_len, [len(label_ids)])  # first label position per row
        ends = tf.cast(seqs.row_lengths(), tf.int32)
        targets_at = starts[:, None] + tf.range(longest)[None, :]  # (K*B, longest)
        valid = targets_at < ends[:, None]
        targets_at = tf.minimum(targets_at, tf.shape(dense)[1] - 1)
        picked_hidden = tf.gather(hidden, targets_at - 1, batch_dims=1)  # (K*B, longest, D)
        logits = tf.cast(backbone.token_embedding(picked_hidden, reverse=True), tf.float32)
        log_probs = tf.nn.log_softmax(logits, axis=-1)
        targets = tf.gather(dense, targets_at, batch_dims=1)
        picked = tf.gather(log_probs, targets[:, :, None], batch_dims=2)[:, :, 0]
        totals = tf.reduce_sum(tf.where(valid, picked, 0.0), axis=-1)  # (K*B,)
        totals = tf.transpose(tf.reshape(totals, (len(label_ids), batch)))  # (B, K)
        scores = tf.nn.softmax(totals, axis=-1)
        labels = tf.constant(list(task.labels))
        classes = tf.tile(labels[None, :], [batch, 1])
        return classes, scores, tf.gather(labels, tf.argmax(scores, axis=-1))

    def classification_task(self, task):
        """`(text_fn, text_specs, classify_fn, classify_specs)` for a `ClassificationTask`."""

        def text_fn(**inputs):
            text = inputs[task.input]
            with tf.control_dependencies(self._check_batch(text)):
                text = tf.identity(text)
            classes, scores, label = self._label_scores(task, text)
            return {"label": label, "scores": scores, "classes": classes}

        def classify_fn(inputs):
            features = tf.io.parse_example(
                inputs, {task.input: tf.io.FixedLenFeature([], tf.string, default_value="")})
            text = features[task.input]
            with tf.control_dependencies(self._check_batch(text)):
                text = tf.identity(text)
            classes, scores, _ = self._label_scores(task, text)
            return {"classes": classes, "scores": scores}

        return (text_fn, [_spec([None], tf.string, task.input)],
                classify_fn, [_spec([None], tf.string, "inputs")])

    # ---- everything ----------------------------------------------------------------------

    def endpoints(self):
        """`[(name, fn, input_signature, method_name)]` in export order."""
        string_batch = [_spec([None], tf.string, "prompt")]
        ids_batch = [_spec([None, None], tf.int32, "token_ids")]
        endpoints = [
            ("serving_default", self.serving_default, string_batch, None),
            ("generate", self.generate, string_batch + _sampling_specs(), None),
            ("generate_ids", self.generate_ids,
             ids_batch + [_spec([None], tf.int32, "lengths")] + _sampling_specs(), None),
            ("score", self.score, [_spec([None], tf.string, "text")], None),
            ("tokenize", self.tokenize, [_spec([None], tf.string, "text")], None),
            ("detokenize", self.detokenize, ids_batch, None),
            ("logits", self.logits, ids_batch, None),
        ]
        for task in self.tasks:
            if isinstance(task, GenerationTask):
                fn, specs = self.generation_task(task)
                endpoints.append((task.name, _keyword_wrapper(fn, task.inputs), specs, None))
            elif isinstance(task, ClassificationTask):
                text_fn, text_specs, classify_fn, classify_specs = self.classification_task(task)
                endpoints.append((task.name + "_text", _keyword_wrapper(text_fn, [task.input]),
                                  text_specs, None))
                endpoints.append((task.name, classify_fn, classify_specs, CLASSIFY_METHOD))
            else:
                raise UserError(f"unsupported task object {task!r}")
        if self.stepwise is not None:
            specs = self.stepwise.input_signatures()
            endpoints.append(("prefill", self.stepwise.prefill, specs["prefill"], None))
            endpoints.append(("decode", self.stepwise.decode, specs["decode"], None))
        return endpoints


def _keyword_wrapper(fn, names):
    """Positional -> keyword call, so input names come from the TensorSpecs."""
    names = list(names)

    def wrapper(*args):
        return fn(**dict(zip(names, args)))

    return wrapper
