"""Answer a question about a text: the answer span, its offsets and a score.

    python -m apps.qa --context "It had been pity ..." --question "Who ...?"
    python -m apps.qa --context-file passage.txt --question "..." --question "..." --json
    >>> from apps.qa import answer
    >>> answer("Hie you, Messala, ...", "Where, where, @placeholder, doth his body lie?")
"""

import sys

from apps._common import base_parser, client_from_args, get_client, print_json, run
from gpt_tf.errors import UserError


def answer(context, question, model=None, max_answer_tokens=None, doc_stride=None,
           min_answer_logprob=None):
    """`{"answer", "start", "end", "score", "no_answer", ...}` for one question."""
    from gpt_tf.tasks.qa import answer as answer_one

    return answer_one(get_client(model), context, question, max_answer_tokens, doc_stride,
                      min_answer_logprob)


def main(argv=None):
    from gpt_tf.task_data.formats import check_user_text
    from gpt_tf.tasks.qa import SUGGESTED_MIN_ANSWER_LOGPROB, answer_questions, check_floor

    parser = base_parser("qa", "Extractive question answering with a fine-tuned gpt-tf model.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--context", help="the passage")
    source.add_argument("--context-file", help="a UTF-8 file holding the passage")
    parser.add_argument("--question", action="append", required=True,
                        help="the question (repeatable)")
    parser.add_argument("--max-answer-tokens", type=int, default=None)
    parser.add_argument("--doc-stride", type=int, default=None,
                        help="tokens between overlapping context windows")
    parser.add_argument("--min-answer-logprob", type=float, default=None, metavar="NATS",
                        help="answer 'no answer' when the answer's mean log-probability per "
                             "token is below this (e.g. %(suggested)s: on Wikipedia questions "
                             "fewer confidently wrong answers, a few right ones lost; "
                             "bench/qa_floor.py); default: no floor"
                             % {"suggested": SUGGESTED_MIN_ANSWER_LOGPROB})
    args = parser.parse_args(argv)
    check_floor(args.min_answer_logprob, "--min-answer-logprob")  # before the model loads
    context, where = args.context, "--context"
    if args.context_file:
        where = f"--context-file '{args.context_file}'"
        try:
            with open(args.context_file, encoding="utf-8") as handle:
                context = handle.read()
        except UnicodeDecodeError as error:
            raise UserError(f"{where} is not UTF-8 text ({error.reason} at byte {error.start}); "
                            "convert it first, e.g. `iconv -f latin1 -t utf-8`") from None
        except OSError as error:
            raise UserError(f"cannot read {where}: {error.strerror or error}") from None
    # Bad text fails before the model loads, named by its flag.
    for what, text in [(where, context)] + [(f"--question {n + 1}", q)
                                            for n, q in enumerate(args.question)]:
        check_user_text(text, what)
    client = client_from_args(args)
    results = answer_questions(client, [(context, q) for q in args.question],
                               args.max_answer_tokens, args.doc_stride,
                               min_answer_logprob=args.min_answer_logprob)
    if args.json:
        print_json([{"question": q, **r} for q, r in zip(args.question, results)])
        return 0
    for question, result in zip(args.question, results):
        if "below_floor" in result:
            print(f"{question}\n  no answer: '{result['below_floor']}' was found in the text "
                  f"but its log-prob per token, {result['logprob_per_token']:.3f}, is below "
                  f"--min-answer-logprob {args.min_answer_logprob}")
        elif result["no_answer"]:
            print(f"{question}\n  no answer in the text (score {result['score']:.2f})")
        else:
            print(f"{question}\n  {result['answer']}  [characters {result['start']}-"
                  f"{result['end']}, log-prob {result['score']:.3f} "
                  f"({result['logprob_per_token']:.3f} per token), "
                  f"{result['windows']} window(s)]")
    return 0


if __name__ == "__main__":
    sys.exit(run("apps.qa", main))
