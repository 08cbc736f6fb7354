"""The multi-worker launcher's process handling, with stand-in worker programs (fast)."""

import sys
import time

from gpt_tf import launcher

_CHATTY = (sys.executable, "-c", "for i in range(200): print('line', i)\nprint('last line')")


def test_every_line_a_worker_wrote_reaches_on_output_before_the_launcher_returns():
    # A slow consumer (a terminal, a pipe read late) keeps the workers' last lines
    # in their pipes after the processes have exited; they must still come through.
    seen = {0: [], 1: []}

    def slow_output(index, line):
        if line == "line 0":
            time.sleep(0.6)
        seen[index].append(line)

    status = launcher.run_workers([], 2, max_restarts=0, program=_CHATTY, on_output=slow_output)
    assert status == 0
    for index in (0, 1):
        assert len(seen[index]) == 201, f"worker {index}: {len(seen[index])} lines"
        assert seen[index][-1] == "last line"


def test_a_failing_worker_returns_its_status_after_its_output():
    failing = (sys.executable, "-c", "import sys\nprint('bad config')\nsys.exit(2)")
    seen, events = [], []
    status = launcher.run_workers([], 2, max_restarts=3, program=failing,
                                  on_output=lambda index, line: seen.append(line),
                                  on_event=lambda kind, info: events.append(kind))
    assert status == 2  # a user error is not restarted
    assert "restart" not in events and "bad config" in seen


def test_output_callbacks_never_overlap():
    # Two workers' output threads print at once; a callback that prints in pieces
    # (as `print` does: the text, then the newline) must not be interleaved.
    active, overlaps, seen = [0], [], []

    def on_output(index, line):
        active[0] += 1
        if active[0] > 1:
            overlaps.append(line)
        time.sleep(0.0005)
        seen.append(index)
        active[0] -= 1

    assert launcher.run_workers([], 2, max_restarts=0, program=_CHATTY, on_output=on_output) == 0
    assert not overlaps and sorted(seen) == [0] * 201 + [1] * 201
