"""Declarations as data: pydantic models that refuse unknown keys, with one-line errors.

Contracts, pull sources and settings are all declared by people (YAML files,
environment variables); a misspelt key must fail loudly rather than be ignored.
Every such declaration is a ``Declared`` model, and ``declaration_error`` turns
pydantic's report into one line naming the file and the key path, e.g.
``bookings.yaml: columns[3].disclosur: unknown key (known: name, type, ...)``.
Messages never quote the declared value.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["Declared", "ValidationError", "declaration_error", "read_yaml"]


class Declared(BaseModel):
    """Base of every declaration model: unknown keys are refused, values are not changed later."""
    model_config = ConfigDict(extra="forbid", frozen=True)


# libyaml's parser when PyYAML was built with it: the same safe loading, several times faster
# than the pure-Python one (every intake and DAG run reads every contract once).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path, error: type[Exception], where: str) -> object:
    """A YAML file's content; ``error`` with one line when it is not YAML."""
    try:
        return yaml.load(Path(path).read_text(), Loader=_SAFE_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError:
        raise error(f"{where}: not valid YAML") from None


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class that holds the last key of ``loc`` (for the list of known keys)."""
    current: object = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        current = _inner_model(current.model_fields[part].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation) -> object:
    """The model inside ``list[M]``, ``tuple[M, ...]``, ``M | None``; the annotation otherwise."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, tuple, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            inner = _inner_model(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation


def _path(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def declaration_error(where: str, model: type[BaseModel], error: ValidationError) -> str:
    """One line for the first problem pydantic found (and how many more there are)."""
    problems = error.errors(include_input=False, include_url=False)
    # A misspelt key also leaves a required one missing: name the misspelling, it says what to fix.
    first = min(problems, key=lambda p: p["type"] != "extra_forbidden")
    loc = tuple(p for p in first["loc"] if p != "function-after")  # validator wrappers add no key
    if first["type"] == "extra_forbidden":
        holder = _model_at(model, loc)
        known = f" (known: {', '.join(holder.model_fields)})" if holder else ""
        reason = f"unknown key{known}"
    else:
        reason = first["msg"][:1].lower() + first["msg"][1:]
        if reason.startswith("value error, "):
            reason = reason[len("value error, "):]
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"{where}: {_path(loc) + ': ' if loc else ''}{reason}{more}"
