"""Progress bars: shown on a terminal, never in logs or error output."""


def hidden(progress: bool) -> bool | None:
    """tqdm's `disable`: None shows bars on a terminal only, so that logs and error output stay clean."""
    return None if progress else True
