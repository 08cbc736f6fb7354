"""The training progress shown on the console by `gpt-tf train` and `gpt-tf finetune`.

A leaf module (standard library only): the command lines of every layer share it.
"""

import sys


class ConsoleProgress:
    """Progress bar with step, loss, tokens/s and ETA; one line per eval."""

    def __init__(self, stream=None, quiet=False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty()

    def __call__(self, kind, info):
        if kind == "start":
            self._line(f"training {info['parameters']:,} parameters with {info['strategy']} "
                       f"({info['replicas']} replica(s)), {info['tokens_per_step']:,} tokens/step, "
                       f"steps {info['step']}->{info['steps']}")
        elif kind == "resume":
            self._line(f"resumed at step {info['step']} from {info['checkpoint']}")
        elif kind == "restore_best":
            self._line(f"model.keras holds the best checkpoint: step {info['step']} "
                       f"(by validation {info['metric']})")
        elif kind == "init":
            self._line(f"initialised from the weights of {info['from']}")
        elif kind == "warning":
            self._line(f"warning: {info['message']}")
        elif kind == "step" and not self.quiet:
            width = 24
            done = int(width * info["step"] / info["steps"])
            eta = info["eta_seconds"]
            text = (f"[{'#' * done}{'.' * (width - done)}] step {info['step']}/{info['steps']} "
                    f"loss {info['loss']:.4f} {info['tokens_per_second']:,.0f} tok/s "
                    f"ETA {int(eta // 60)}m{int(eta % 60):02d}s")
            if self.tty:
                self.stream.write("\r" + text)
                self.stream.flush()
            else:
                self._line(text)
        elif kind == "eval":
            bpb = info.get("validation_bits_per_byte")
            accuracies = "".join(f" {key[len('validation_'):]} {value:.4f}"
                                 for key, value in info.items() if key.endswith("_accuracy"))
            self._line(f"eval step {info['step']}: validation loss {info['validation_loss']:.4f} "
                       f"ppl {info['validation_perplexity']:.2f}"
                       + (f" bpb {bpb:.4f}" if bpb is not None else "") + accuracies)
        elif kind == "sample" and not self.quiet:
            for text in info["texts"]:
                self._line(f"sample step {info['step']}: {text!r}")

    def _line(self, text):
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()
