"""Ctrl-C and SIGTERM during training: a flag the loop checks after each step, so it saves a checkpoint and
stops with `TrainingInterrupted` instead of dying mid-write."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from cnnlab.errors import CnnlabError


class TrainingInterrupted(CnnlabError):
    """Ctrl-C or SIGTERM: a checkpoint was saved; the message says how to resume. The CLI exits with 128 + the
    signal's number (130 for Ctrl-C, 143 for SIGTERM), the shell's convention for "stopped by a signal"."""

    def __init__(self, message: str, signal_name: str = "SIGINT") -> None:
        super().__init__(message)
        self.exit_code = 128 + signal.Signals[signal_name].value


@contextmanager
def stop_requests():
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step, so it can save before exiting. Yields the
    list of signal names received (empty until one comes); outside the main thread, signals cannot be caught."""
    requested: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if requested:  # a second Ctrl-C means "now"
            raise KeyboardInterrupt
        requested.append(signal.Signals(signum).name)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield requested
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
