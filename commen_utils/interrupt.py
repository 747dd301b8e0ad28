"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be, and when that is inside a __del__
(a finished progress bar being collected, say) the exception is printed as "ignored" and the run goes on
as if nothing happened. Inside `interruptible()`, Ctrl-C still raises at once, and is also remembered:
`check()` at the loop's safe points raises it again if it was swallowed.
"""
import signal
import threading
from contextlib import contextmanager


class _Interrupts:
    def __init__(self):
        self.seen = False

    def handle(self, *_):
        self.seen = True
        raise KeyboardInterrupt

    def check(self):
        if self.seen:
            raise KeyboardInterrupt


@contextmanager
def interruptible():
    interrupts = _Interrupts()
    # Only the main thread gets signals; and a process started with SIGINT ignored (nohup, a background
    # job of a script) keeps ignoring it.
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield interrupts
        return
    previous = signal.signal(signal.SIGINT, interrupts.handle)
    try:
        yield interrupts
    finally:
        signal.signal(signal.SIGINT, previous)
