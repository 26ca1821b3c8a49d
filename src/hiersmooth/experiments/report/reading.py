"""Reading an experiment folder for its report: the config, the tidy results and the cell statuses.

Reads only the files the experiment runner writes — ``experiment.yaml`` (the config), ``results.csv`` (one
row per cell × certificate × threat) and, if present, ``cells.csv`` (one row per cell with its status) — and
checks them: every value a finite number where one is expected, accuracies in [0, 1], threat counts
non-negative integers, one clean accuracy per cell and one row per cell and threat. The rows of one
certificate become a :class:`Results`: per :class:`Setting` (a method with one parameter setting), the clean
accuracy of each seed, and the certified accuracy of each seed at each threat key.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ...config_files import read_yaml
from ...defaults import CERTIFICATES
from ...threat import BUDGETS, INTEGER_AXES, TEXT_NAMES
from .threats import _threat_text, axis_value

_ACCURACIES = ["certified_accuracy", "clean_accuracy"]
_SHORT_NAMES = {
    "selection.p": "$p$",
    "selection.size": "$k$",
    "noise.sigma": r"$\sigma$",
    "noise.p_plus": "$p_+$",
    "noise.p_minus": "$p_-$",
}


@dataclass(frozen=True)
class Setting:
    """One method with one parameter setting: the cells of all its seeds share it."""

    method: str
    params: tuple[tuple[str, float | str], ...]

    def describe(self) -> str:
        """The parameters in full, e.g. ``selection.p=0.85, noise.sigma=0.25``."""
        return ", ".join(f"{name}={_number_text(value)}" for name, value in self.params) or "-"

    def short(self) -> str:
        """The parameters for a plot label (matplotlib mathtext), e.g. ``$p$=.85 $\\sigma$=.25``."""
        return " ".join(
            f"{_SHORT_NAMES.get(name, name.rsplit('.', 1)[-1])}={_number_text(value, short=True)}"
            for name, value in self.params
        )


@dataclass
class Results:
    """The seed-level results of one experiment folder, for one certificate.

    ``axes`` are the threat axes of results.csv (threat-grid axis names, ``rows`` first; the columns
    :attr:`columns`): ``("rows", "eps")`` for gaussian-type results, ``("rows", "added", "deleted")`` for
    sparse/graph results, ``("rows", "l1")`` for uniform-type results, ``("rows",)`` where every method is an
    ablation and the threat is the number of changed rows alone. ``clean[setting][seed]`` is a cell's smoothed
    (clean) accuracy; ``certified[setting][key][seed]`` its certified accuracy at the threat ``key``, the values
    on those axes: (r, ε), (r, ra, rd), (r, ℓ1) or (r,).
    """

    directory: Path
    config: dict
    certificate: str
    axes: tuple[str, ...]
    param_columns: tuple[str, ...]
    methods: list[str]
    clean: dict[Setting, dict[str, float]]
    certified: dict[Setting, dict[tuple, dict[str, float]]]
    statuses: Counter

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.directory.name))

    @property
    def columns(self) -> tuple[str, ...]:
        """The threat columns of results.csv: r, then eps | ra, rd | l1 | nothing."""
        return tuple(TEXT_NAMES[axis] for axis in self.axes)

    def threat_keys(self) -> list[tuple]:
        """Every threat key present in the results, sorted."""
        return sorted({key for by_threat in self.certified.values() for key in by_threat})


def load_results(results_dir) -> Results:
    """Read ``experiment.yaml``, ``results.csv`` and (if present) ``cells.csv`` of an experiment folder.

    Keeps the rows of the certificate named by ``certify.certificate`` (multiclass if absent). Raises
    ValueError naming the file and what is wrong for a missing file or malformed content.
    """
    directory = Path(results_dir)
    if not directory.is_dir():
        raise ValueError(f"results folder {directory} does not exist")
    config = _read_config(directory / "experiment.yaml")
    certify = config.get("certify") or {}
    certificate = certify.get("certificate", "multiclass") if isinstance(certify, dict) else None
    if certificate not in CERTIFICATES:
        raise ValueError(
            f"{directory / 'experiment.yaml'}: certify.certificate={certificate!r}; allowed: {', '.join(CERTIFICATES)}"
        )
    path = directory / "results.csv"
    header, rows = _read_csv(path)
    axes, params = _parse_header(path, header)
    clean: dict[Setting, dict[str, float]] = {}
    certified: dict[Setting, dict[tuple, dict[str, float]]] = {}
    cells: dict[str, tuple[Setting, str, float]] = {}
    order: list[str] = []
    for line, row in rows:
        if row["certificate"] not in CERTIFICATES:
            raise ValueError(
                f"{path} line {line}: certificate={row['certificate']!r}; allowed: {', '.join(CERTIFICATES)}"
            )
        if row["certificate"] != certificate:
            continue
        setting = Setting(row["method"], tuple((name, _param_value(row[name])) for name in params if row[name] != ""))
        seed, accuracy = row["seed"], _accuracy(path, line, row, "clean_accuracy")
        if row["cell"] not in cells:
            if seed in clean.get(setting, {}):
                raise ValueError(
                    f"{path} line {line}: cell {row['cell']} repeats method {setting.method} "
                    f"({setting.describe()}) with seed {seed}"
                )
            cells[row["cell"]] = (setting, seed, accuracy)
            clean.setdefault(setting, {})[seed] = accuracy
            if setting.method not in order:
                order.append(setting.method)
        elif cells[row["cell"]] != (setting, seed, accuracy):
            raise ValueError(
                f"{path} line {line}: cell {row['cell']} changes its method, parameters, seed or clean_accuracy "
                "between rows"
            )
        key = _row_key(path, line, row, axes)
        by_seed = certified.setdefault(setting, {}).setdefault(key, {})
        if seed in by_seed:
            raise ValueError(f"{path} line {line}: cell {row['cell']} has threat {_threat_text(key, axes)} twice")
        by_seed[seed] = _accuracy(path, line, row, "certified_accuracy")
    if not cells:
        raise ValueError(f"{path}: no rows for the {certificate} certificate (certify.certificate in experiment.yaml)")
    configured = list(config.get("methods") or {}) if isinstance(config.get("methods"), dict) else []
    methods = [method for method in configured if method in order]
    methods += [method for method in order if method not in configured]
    statuses = _read_statuses(directory / "cells.csv")
    return Results(directory, config, certificate, axes, tuple(params), methods, clean, certified, statuses)


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise ValueError(f"{path}: file not found (the experiment config the runner writes)")
    config = read_yaml(path, "experiment")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: must be a mapping (name, certify, methods, ...), got {type(config).__name__}")
    return config


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    if not path.is_file():
        raise ValueError(f"{path}: file not found (the tidy results the runner writes)")
    with open(path, newline="") as file:
        reader = csv.reader(file)
        try:
            header = next(reader, None)
            if not header:
                raise ValueError(f"{path}: empty file")
            rows = []
            for line, values in enumerate(reader, start=2):
                if len(values) != len(header):
                    raise ValueError(f"{path} line {line}: {len(values)} values for {len(header)} columns")
                rows.append((line, dict(zip(header, values))))
        except (csv.Error, UnicodeDecodeError) as error:  # not text, or a field beyond the csv module's limit
            raise ValueError(f"{path}: not a readable CSV file ({error})") from None
    if not rows:
        raise ValueError(f"{path}: no rows")
    return header, rows


def _parse_header(path: Path, header: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """The threat axes (rows and the budget of one kind of threat, :data:`hiersmooth.threat.BUDGETS`) and the
    parameter columns, checking the column order."""
    if header[:3] != ["cell", "method", "seed"] or "certificate" not in header:
        raise ValueError(
            f"{path}: columns must be cell, method, seed, <parameters>, certificate, r, ...; found {', '.join(header)}"
        )
    split = header.index("certificate")
    families = [("rows", *budget) for budget in BUDGETS.values()]
    for axes in families:
        if header[split + 1 :] == [TEXT_NAMES[axis] for axis in axes] + _ACCURACIES:
            return axes, header[3:split]
    tails = (", ".join([TEXT_NAMES[axis] for axis in axes] + _ACCURACIES) for axes in families)
    raise ValueError(
        f"{path}: columns after certificate must be {' | '.join(tails)}; found {', '.join(header[split + 1 :])}"
    )


def _number(path: Path, line: int, row: dict, column: str) -> float:
    try:
        value = float(row[column])
    except ValueError:
        raise ValueError(f"{path} line {line}: {column}={row[column]!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{path} line {line}: {column}={row[column]!r} is not finite")
    return value


def _accuracy(path: Path, line: int, row: dict, column: str) -> float:
    value = _number(path, line, row, column)
    if not 0 <= value <= 1:
        raise ValueError(f"{path} line {line}: {column}={row[column]!r} must lie in [0, 1]")
    return value


def _count(path: Path, line: int, row: dict, column: str) -> int:
    value = _number(path, line, row, column)
    if value != int(value) or value < 0:
        raise ValueError(f"{path} line {line}: {column}={row[column]!r} must be a non-negative integer")
    return int(value)


def _row_key(path: Path, line: int, row: dict, axes: tuple[str, ...]) -> tuple:
    read = {axis: _count if axis in INTEGER_AXES else _number for axis in axes}
    return tuple(axis_value(axis, read[axis](path, line, row, TEXT_NAMES[axis])) for axis in axes)


def _param_value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _read_statuses(path: Path) -> Counter:
    """How many cells of ``cells.csv`` have each status (empty if the file is absent)."""
    if not path.is_file():
        return Counter()
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        try:
            if "status" not in (reader.fieldnames or []):
                raise ValueError(f"{path}: missing column 'status'")
            return Counter(row["status"] for row in reader)
        except (csv.Error, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not a readable CSV file ({error})") from None


def _number_text(value: float | str, short: bool = False) -> str:
    if isinstance(value, str):
        return value
    text = f"{value:g}"
    return text[1:] if short and text.startswith("0.") else text
