import contextlib
import os
import sys
import tempfile
import traceback


class UserError(Exception):
    """A mistake the user can fix (bad path, flag, file). The CLIs print it as one line and exit 2 (or the
    subclass's `exit_status`: an outcome a script should tell apart)."""
    exit_status = 2


@contextlib.contextmanager
def step(name: str):
    """Name the work inside the block (a layer, a backend): an unexpected exception raised there is reported
    with the steps it was raised in, outermost first."""
    try:
        yield
    except Exception as error:
        with contextlib.suppress(AttributeError):  # an exception type without a __dict__ goes unnamed
            error.steps = [name, *getattr(error, "steps", [])]
        raise


def internal_error_line(what: str, error: BaseException) -> str:
    """Write the full traceback of an unexpected exception to a file of its own; return the one line that
    reports it and names that file."""
    fd, path = tempfile.mkstemp(prefix="compression_tool-", suffix=".traceback.txt")
    with os.fdopen(fd, "w") as f:
        f.write("".join(traceback.format_exception(error)))
    where = f" at {' > '.join(error.steps)}" if getattr(error, "steps", None) else ""
    message = (str(error).strip().splitlines() or [""])[0]
    return f"internal error in {what}{where}: {type(error).__name__}: {message} (traceback: {path})"


def exit_code(run, what: str | None = None, debug: bool = False) -> int:
    """Run a CLI body: a UserError becomes one line on stderr and exit code 2; any other exception one line
    naming a file with its traceback, and exit code 1 (outputs are written whole or not at all, so none is
    left half-written); Ctrl-C exit code 130. `debug` re-raises instead. `what`: the CLI or mode, named in
    the line (default: the file `run` comes from)."""
    what = what or f"{run.__module__.rpartition('.')[2]}.py"
    try:
        run()
    except UserError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt as e:
        print(f"interrupted: {e or 'no output was written for the unfinished step'}", file=sys.stderr)
        return 130
    except Exception as e:
        if debug:
            raise
        print(internal_error_line(what, e), file=sys.stderr)
        return 1
    return 0
