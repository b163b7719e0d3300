"""User-facing errors: one line naming what was wrong, the value given and what is accepted."""


class VidgenError(Exception):
    """An error caused by the user's input; the CLI prints it as one line and exits non-zero."""


def check(condition: bool, what: str, value, accepted: str) -> None:
    """Raise `VidgenError` unless `condition`: '<what>: got <value!r>; expected <accepted>'."""
    if not condition:
        raise VidgenError(f"{what}: got {value!r}; expected {accepted}")


def positive_number(text: str) -> float | None:
    """The finite number > 0 that `text` spells, else None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if 0 < number < float("inf") else None
