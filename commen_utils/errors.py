import sys


class UserError(Exception):
    """A mistake the user can fix (bad path, flag, file). main.py prints it as one line and exits 2."""


def exit_code(run) -> int:
    """Run a CLI body; a UserError becomes one line on stderr and exit code 2."""
    try:
        run()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
