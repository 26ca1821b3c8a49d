"""Reading the project's config files (smoothing, run, experiment YAML) with one clear error per problem."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml


def read_yaml(path, what: str):
    """The parsed content of YAML file ``path`` (``yaml.safe_load``); a ValueError ``"{what} {path}: ..."`` when it
    cannot be read or is not valid YAML."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"{what} {path}: cannot be read ({error.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"{what} {path}: not valid YAML ({str(error).splitlines()[0]})") from None


def build_dataclass(section: str, cls, options: dict, kind: str | None = None):
    """``cls(**options)`` for config section ``section``; a ValueError naming unknown options (with the allowed
    ones) or missing required ones, said of ``kind`` when the section has a kind."""
    fields = dataclasses.fields(cls)
    allowed = sorted(f.name for f in fields)
    of_kind = f" for kind {kind!r}" if kind else ""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{section}: unknown option {', '.join(unknown)}{of_kind} (allowed: {', '.join(allowed) or 'none'})")
    missing = sorted(f.name for f in fields if f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING and f.name not in options)
    if missing:
        raise ValueError(f"{section}: kind {kind!r} needs {', '.join(missing)}" if kind else f"{section}: missing {', '.join(missing)}")
    return cls(**options)
