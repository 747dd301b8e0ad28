"""What the library reports reaches the console through `logging` (logger "compression_tool" and its children):
the CLIs call `report_to_console()`; a program using the library configures logging as it likes."""
import logging
import sys


class ConsoleLines(logging.Handler):
    """Each record as a plain line: INFO on stdout, WARNING and above on stderr. The streams are looked up at
    every record, so that a redirected sys.stdout (a test, a notebook) receives them."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        print(self.format(record), file=stream, flush=True)


def report_to_console(level: int = logging.INFO) -> None:
    """Show the library's reports as the CLIs print them (once per process, whichever CLI asks first)."""
    logger = logging.getLogger("compression_tool")
    if not any(isinstance(h, ConsoleLines) for h in logger.handlers):
        logger.addHandler(ConsoleLines())
    logger.setLevel(level)
    logger.propagate = False
