"""Choices as StrEnums: a frozen config checks its own, and the CLIs build `choices=` from the same enums."""
from enum import StrEnum

from .errors import UserError


def check_choices(config, **enums: type[StrEnum]) -> None:
    """In a frozen dataclass's __post_init__: each named field must be one of its enum's values, or one line naming
    the choices is raised (the field's name is the flag's). The field keeps the plain string (equal to the member):
    an enum object would travel into checkpoints, which weights_only loading then refuses."""
    for name, enum in enums.items():
        value = getattr(config, name)
        if value not in set(enum):
            raise UserError(f"--{name} {value}: choose one of {', '.join(enum)}")
        object.__setattr__(config, name, enum(value).value)
