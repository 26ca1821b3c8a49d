"""Reading the project's YAML files (smoothing, run, experiment configs) with one clear error per problem."""

from __future__ import annotations

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
