import time


def time_stamp() -> str:
    """The original's file-name stamp: current time truncated to minutes, YYYY-MM-DD-HH-MM."""
    return time.strftime("%Y-%m-%d-%H-%M")
