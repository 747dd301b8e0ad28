"""Ctrl-C inside `interruptible()` raises at once, and one that Python swallowed (raised inside a __del__)
is raised again at the next check."""
import gc
import os
import signal

import pytest

from commen_utils.interrupt import interruptible


@pytest.fixture(autouse=True)
def terminal_sigint():
    """SIGINT handled as in a terminal, whatever this test run inherited (a background job ignores it)."""
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, inherited)


def test_ctrl_c_raises_at_once():
    with pytest.raises(KeyboardInterrupt), interruptible():
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10 ** 7):  # the handler runs between bytecodes
            pass


def test_a_ctrl_c_swallowed_by_a_destructor_is_raised_at_the_next_check():
    with interruptible() as interrupts:
        class Collected:
            def __del__(self):
                interrupts.handle()  # what the signal handler does, at the moment a finalizer runs

        Collected()
        gc.collect()  # the KeyboardInterrupt is printed as "ignored in __del__" and the code goes on
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back as it was


def test_an_ignored_sigint_stays_ignored():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with interruptible():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
