class UserError(Exception):
    """A mistake the user can fix (bad path, flag, file). main.py prints it as one line and exits 2."""
