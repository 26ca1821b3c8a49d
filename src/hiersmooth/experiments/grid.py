"""An experiment: methods × parameter grids × seeds, each cell trained, certified and aggregated.

    name: digits
    data: {name: digits}
    model: {name: small_cnn}
    training: {epochs: 10, batch_size: 64, lr: 0.003}
    certify: {n0: 100, n: 1000, alpha: 0.01, batch_size: 1000, certificate: multiclass}
    seeds: [0, 1, 2]
    threats: {rows: [1, 2, 3, 4], eps: [0.0, 0.25, 0.5]}          # graphs: {rows: [...], added: [...], deleted: [...]}
    pareto: [{rows: 2, eps: 0.25}]                               # threats of the Pareto fronts in the report
    methods:
      hierarchical_gaussian:
        smoothing: {selection: {kind: bernoulli}, noise: {kind: gaussian}, indicator: true}
        grid: {selection.p: [0.7, 0.85], noise.sigma: [0.25, 0.5]}     # dotted keys into ``smoothing``
        model: {...}                                                   # optional: overrides of the model options

A cell is one (method, parameter setting, seed): its smoothing is the method's with the grid values filled in,
its training and certification use the seed.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from ..checks import check_integer
from ..config_files import read_yaml
from ..defaults import CERTIFICATES, DEFAULT_PROCEDURE, SEQUENTIAL_PROCEDURES
from ..run_config import RunConfig, load_run_config
from ..smoothing.hierarchical import NOISES
from ..threat import INTEGER_AXES


@dataclass(frozen=True)
class Cell:
    """One (method, parameter setting, seed) of an experiment, with the run config that trains it."""

    method: str
    params: dict
    seed: int
    run: RunConfig

    @property
    def name(self) -> str:
        """A readable folder name: ``method__selection.p=0.8_noise.sigma=0.25__seed0``."""
        params = "_".join(f"{key}={value}" for key, value in self.params.items()) or "default"
        return re.sub(r"[^A-Za-z0-9_.=-]", "-", f"{self.method}__{params}__seed{self.seed}")


@dataclass(frozen=True)
class Experiment:
    name: str
    raw: dict
    cells: list[Cell]
    threats: dict
    certify: dict
    pareto: list[dict]

    @property
    def targets(self) -> list[dict] | None:
        """The threats a sequential experiment certifies at (``certify.targets``: the Pareto threats, or a list),
        with the empty threat first (its clean certified accuracy); None for a fixed-n grid."""
        return self.certify.get("targets")

    @property
    def result_threats(self) -> list[dict]:
        """Every threat of the results table: the targets of a sequential experiment, else the grid's product."""
        if self.targets is not None:
            return self.targets
        axes = list(self.threats)
        return [dict(zip(axes, values)) for values in itertools.product(*self.threats.values())]

    @property
    def parameters(self) -> list[str]:
        """Every grid parameter of every method, in first-seen order (the results' parameter columns)."""
        return list(dict.fromkeys(key for cell in self.cells for key in cell.params))


CERTIFY_DEFAULTS = {
    "n0": 100,
    "n": 1000,
    "alpha": 0.01,
    "batch_size": 500,
    "certificate": "multiclass",
    "targets": None,  # sequential certification at these threats: "pareto" or a list like experiment.pareto
    "procedure": DEFAULT_PROCEDURE,
}
_KEYS = {"name", "data", "model", "training", "certify", "seeds", "threats", "pareto", "methods"}


def load_experiment(source) -> Experiment:
    """Parse and check an experiment file (or mapping): every cell's run config is built and checked here, so a bad
    config fails before anything runs, with one line naming the key."""
    if isinstance(source, (str, Path)):
        raw = read_yaml(source, "experiment")
    else:
        raw = copy.deepcopy(source)
    if not isinstance(raw, dict):
        raise ValueError("experiment: must be a mapping with data, model, methods, threats")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ValueError(f"experiment: unknown key {', '.join(unknown)} (allowed: {', '.join(sorted(_KEYS))})")
    methods = raw.get("methods")
    if not isinstance(methods, dict) or not methods:
        raise ValueError("experiment.methods: must name at least one method with its smoothing and grid")
    seeds = raw.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        raise ValueError(f"experiment.seeds={seeds!r}: must be a non-empty list of integers >= 0")
    certify = {**CERTIFY_DEFAULTS, **(raw.get("certify") or {})}
    unknown = sorted(set(certify) - set(CERTIFY_DEFAULTS))
    if unknown:
        raise ValueError(
            f"experiment.certify: unknown option {', '.join(unknown)} (allowed: {', '.join(CERTIFY_DEFAULTS)})"
        )
    for name in ("n0", "n", "batch_size"):  # checked here: a cell's certify runs only after its training
        check_integer(f"experiment.certify.{name}", certify[name], 1)
    if (
        isinstance(certify["alpha"], bool)
        or not isinstance(certify["alpha"], (int, float))
        or not 0 < certify["alpha"] < 1
    ):
        raise ValueError(f"experiment.certify.alpha={certify['alpha']!r}: must be a number in (0, 1)")
    if certify["certificate"] not in CERTIFICATES:
        raise ValueError(
            f"experiment.certify.certificate={certify['certificate']!r}: must be one of {', '.join(CERTIFICATES)}"
        )
    cells = []
    for method, spec in methods.items():
        cells += _method_cells(raw, method, spec, seeds)
    folders = {}
    for cell in cells:
        other = folders.setdefault(cell.name, cell)
        if other is not cell:
            raise ValueError(
                f"experiment: two cells would share the folder {cell.name} ({other.method} {other.params} seed "
                f"{other.seed} and {cell.method} {cell.params} seed {cell.seed}): a repeated seed or grid value, or "
                "method names that differ only outside letters, digits, _ . = -"
            )
    threats = _threats(raw.get("threats"), cells)
    pareto = raw.get("pareto") or []
    for threat in pareto:
        if not isinstance(threat, dict) or set(threat) != set(threats):
            raise ValueError(
                f"experiment.pareto: {threat!r} must give one value for each threat axis ({', '.join(threats)})"
            )
        outside = [f"{key}={value}" for key, value in threat.items() if value not in threats[key]]
        if outside:
            raise ValueError(f"experiment.pareto: {threat!r} has {', '.join(outside)}, not in experiment.threats")
    certify["targets"] = _targets(certify["targets"], pareto, threats)
    if certify["procedure"] not in SEQUENTIAL_PROCEDURES:
        raise ValueError(
            f"experiment.certify.procedure={certify['procedure']!r}: must be one of {', '.join(SEQUENTIAL_PROCEDURES)}"
        )
    return Experiment(_slug(raw.get("name", "experiment")), raw, cells, threats, certify, pareto)


def _targets(targets, pareto: list[dict], threats: dict) -> list[dict] | None:
    """``certify.targets``: None (fixed n), ``"pareto"`` (the Pareto threats) or a list of threats as in
    ``experiment.pareto``, each with one value per threat axis; the empty threat is put first."""
    if targets is None:
        return None
    if targets == "pareto":
        targets = pareto
    if not isinstance(targets, list) or not targets or not all(isinstance(t, dict) for t in targets):
        raise ValueError(
            f"experiment.certify.targets={targets!r}: must be 'pareto' or a non-empty list of threats such as "
            f"{ {axis: values[-1] for axis, values in threats.items()} }"
        )
    for target in targets:
        if set(target) != set(threats):
            raise ValueError(
                f"experiment.certify.targets: {target!r} must give one value for each threat axis "
                f"({', '.join(threats)})"
            )
    empty = {axis: 0 for axis in threats}
    return [empty, *(target for target in targets if target != empty)]


def _slug(name) -> str:
    """The experiment's name, which names its results folder: letters, digits, ``_``, ``-`` and ``.``, no ``..``."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name) or ".." in name or name == ".":
        raise ValueError(
            f"experiment.name={name!r}: must be a plain folder name of letters, digits, _, - and . "
            "(no path separators, no ..)"
        )
    return name


def _method_cells(raw: dict, method: str, spec, seeds: list[int]) -> list[Cell]:
    where = f"experiment.methods.{method}"
    if not isinstance(spec, dict) or not isinstance(spec.get("smoothing"), dict):
        raise ValueError(f"{where}: needs a 'smoothing' mapping (and optionally 'grid', 'model')")
    unknown = sorted(set(spec) - {"smoothing", "grid", "model"})
    if unknown:
        raise ValueError(f"{where}: unknown key {', '.join(unknown)} (allowed: smoothing, grid, model)")
    grid = spec.get("grid") or {}
    if not isinstance(grid, dict):
        raise ValueError(f"{where}.grid: must map dotted keys (e.g. noise.sigma) to lists of values")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}.grid.{key}: must be a non-empty list of values (an empty grid has no cells)")
    cells = []
    for combination in itertools.product(*grid.values()):
        params = dict(zip(grid, combination))
        smoothing = copy.deepcopy(spec["smoothing"])
        for key, value in params.items():
            _set_dotted(smoothing, key, value, f"{where}.grid")
        model = {**(raw.get("model") or {}), **(spec.get("model") or {})}
        for seed in seeds:
            config = {
                "data": raw.get("data"),
                "model": model,
                "smoothing": smoothing,
                "training": {**(raw.get("training") or {}), "seed": seed},
            }
            try:
                run = load_run_config(config)
            except ValueError as error:
                raise ValueError(f"{where} {params or ''}: {error}") from None
            cells.append(Cell(method, params, seed, run))
    return cells


def _set_dotted(mapping: dict, key: str, value, where: str) -> None:
    *path, last = key.split(".")
    for part in path:
        if not isinstance(mapping.get(part), dict):
            raise ValueError(f"{where}.{key}: {part!r} is not a section of the method's smoothing")
        mapping = mapping[part]
    mapping[last] = value


def _threats(threats, cells: list[Cell]) -> dict:
    """The threat grid: rows plus the axes of the methods' noise (eps for gaussian, added/deleted for sparse, l1
    for uniform; ablation has none of its own); it must fit every method's noise."""
    if not isinstance(threats, dict) or "rows" not in threats:
        raise ValueError("experiment.threats: must give rows and eps (gaussian) or added and deleted (sparse)")
    families = {cell.run.smoothing.noise.axes: cell.run.smoothing.noise.kind for cell in cells}
    own = {axes: kind for axes, kind in families.items() if axes}
    if len(own) > 1:
        kinds = " and ".join(sorted(own.values()))
        raise ValueError(f"experiment.methods: mix {kinds} noise; one experiment certifies one kind of threat")
    axes = {"rows", *next(iter(own), ())}
    if not own:  # ablation only: its certificate holds for any budget, so any one family's axes may be given
        known = {axis for family in NOISES.values() for axis in family.axes}
        axes = {"rows"} | (set(threats) & known)
    if set(threats) != axes:
        raise ValueError(
            f"experiment.threats: has {', '.join(sorted(threats))}; the methods' noise needs exactly "
            f"{', '.join(sorted(axes))}"
        )
    for key, values in threats.items():
        integer = key in INTEGER_AXES
        if (
            not isinstance(values, list)
            or not values
            or not all(
                isinstance(v, int if integer else (int, float)) and not isinstance(v, bool) and v >= 0 for v in values
            )
        ):
            raise ValueError(
                f"experiment.threats.{key}={values!r}: must be a non-empty list of "
                f"{'integers' if integer else 'numbers'} >= 0"
            )
    return {"rows": sorted(threats["rows"]), **{key: sorted(threats[key]) for key in sorted(set(threats) - {"rows"})}}
