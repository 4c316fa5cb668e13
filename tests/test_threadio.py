"""Per-thread output for in-process CLIs run side by side."""

from __future__ import annotations

import io
import sys
import threading

import pytest

from conformance._threadio import thread_output


def test_threads_print_into_their_own_buffers_and_stdout_comes_back() -> None:
    before = sys.stdout, sys.stderr
    buffers = {name: (io.StringIO(), io.StringIO()) for name in ("a", "b")}
    both_inside = threading.Barrier(2)

    def speak(name: str) -> None:
        out, err = buffers[name]
        with thread_output(out, err):
            both_inside.wait(timeout=10)  # both proxies active at once
            sys.stdout.write(f"out from {name}\n")
            sys.stderr.write(f"err from {name}\n")
            both_inside.wait(timeout=10)

    threads = [threading.Thread(target=speak, args=(name,)) for name in buffers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    for name, (out, err) in buffers.items():
        assert out.getvalue() == f"out from {name}\n"
        assert err.getvalue() == f"err from {name}\n"
    assert (sys.stdout, sys.stderr) == before


def test_a_thread_without_buffers_writes_where_it_did_before(
    capsys: pytest.CaptureFixture[str],
) -> None:
    mine = io.StringIO()
    with thread_output(mine, io.StringIO()):
        seen: list[str] = []
        other = threading.Thread(target=lambda: sys.stdout.write("from elsewhere\n"))
        other.start()
        other.join(timeout=10)
        sys.stdout.write("mine\n")
        seen.append(mine.getvalue())
    assert seen == ["mine\n"]
    assert capsys.readouterr().out == "from elsewhere\n"
