"""Reading the project's config files (smoothing, run, experiment YAML) with one clear error per problem."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

MAX_YAML_BYTES = 1 << 20  # a config file is a few hundred bytes; anything past 1 MiB is refused unread
MAX_YAML_DEPTH = 50  # nesting of sequences and mappings (shipped configs nest 4 deep)
MAX_YAML_NODES = 1_000_000  # nodes of the document with every alias expanded
_INT64 = (-(1 << 63), (1 << 63) - 1)


class _Refused(yaml.YAMLError):
    """A document over one of the limits (not a syntax error): its message is said as is."""


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that, while composing and so before anything is expanded, refuses documents nesting deeper
    than ``MAX_YAML_DEPTH`` or expanding (aliases counted at their full size) to more than ``MAX_YAML_NODES`` nodes
    (an alias bomb), and integers outside int64 (they would be wrapped or break float arithmetic downstream)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._sizes: dict[int, int] = {}  # id(node) -> its expanded size; nodes live until the document is built

    def _charge(self, size: int, mark) -> None:
        self._nodes += size
        if self._nodes > MAX_YAML_NODES:
            raise _Refused(
                f"expands to more than {MAX_YAML_NODES} nodes (aliases counted in full) near line {mark.line + 1}"
            )

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            self._charge(self._sizes.get(id(node), 1), mark)
            return node
        mark = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise _Refused(f"nests deeper than {MAX_YAML_DEPTH} levels at line {mark.line + 1}")
        self._charge(1, mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if isinstance(node, yaml.SequenceNode):
            self._sizes[id(node)] = 1 + sum(self._sizes.get(id(child), 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            self._sizes[id(node)] = 1 + sum(
                self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value
            )
        return node

    def construct_mapping(self, node, deep=False):
        """A mapping whose keys are all text: a config's option names (``null:`` or ``3:`` is refused)."""
        mapping = super().construct_mapping(node, deep)
        for key in mapping:
            if not isinstance(key, str):
                raise _Refused(f"option names must be text, found {key!r} near line {node.start_mark.line + 1}")
        return mapping

    def construct_yaml_int(self, node):
        value = super().construct_yaml_int(node)
        if not _INT64[0] <= value <= _INT64[1]:
            digits = len(str(abs(value)))
            raise _Refused(
                f"the integer at line {node.start_mark.line + 1} ({digits} digits) is outside the int64 range"
            )
        return value


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def read_yaml(path, what: str):
    """The parsed content of YAML file ``path`` (safe loading: plain types only); a ValueError ``"{what} {path}: ..."``
    when it cannot be read, is not valid YAML, or exceeds a limit: ``MAX_YAML_BYTES`` bytes, ``MAX_YAML_DEPTH`` levels
    of nesting, ``MAX_YAML_NODES`` nodes once aliases are expanded (checked before expanding), integers beyond int64."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_YAML_BYTES + 1)
    except OSError as error:
        raise ValueError(f"{what} {path}: cannot be read ({error.strerror or error})") from None
    if len(data) > MAX_YAML_BYTES:
        raise ValueError(f"{what} {path}: larger than {MAX_YAML_BYTES} bytes; a config file must be smaller")
    loader = None
    try:
        loader = _BoundedLoader(data)  # the reader checks the first characters already
        return loader.get_single_data()
    except _Refused as error:
        raise ValueError(f"{what} {path}: {error}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{what} {path}: not valid YAML ({' '.join(str(error).split())[:300]})") from None
    finally:
        if loader is not None:
            loader.dispose()


def build_dataclass(section: str, cls, options: dict, kind: str | None = None):
    """``cls(**options)`` for config section ``section``; a ValueError naming unknown options (with the allowed
    ones) or missing required ones, said of ``kind`` when the section has a kind."""
    fields = dataclasses.fields(cls)
    allowed = sorted(f.name for f in fields)
    of_kind = f" for kind {kind!r}" if kind else ""
    strange = [key for key in options if not isinstance(key, str)]
    if strange:
        raise ValueError(
            f"{section}: option names must be strings, got {strange[0]!r}{of_kind} "
            f"(allowed: {', '.join(allowed) or 'none'})"
        )
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"{section}: unknown option {', '.join(unknown)}{of_kind} (allowed: {', '.join(allowed) or 'none'})"
        )
    missing = sorted(
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in options
    )
    if missing:
        raise ValueError(
            f"{section}: kind {kind!r} needs {', '.join(missing)}"
            if kind
            else f"{section}: missing {', '.join(missing)}"
        )
    return cls(**options)
