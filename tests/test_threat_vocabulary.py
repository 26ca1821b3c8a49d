"""One threat vocabulary and one integer validator.

``Threat`` takes the names of threat text (r, eps, ra, rd, l1) as keywords as well as its field names (rows, l2,
added, deleted, l1); ``str(threat)`` is the threat text ``Threat.parse`` reads back to the same threat; the report
prints and names every kind of threat from the same names. ``hiersmooth.checks.check_integer`` is the one check
that a value is an integer in a range, used by every layer."""

from __future__ import annotations

import argparse
import ast
import inspect
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hiersmooth
from hiersmooth.checks import check_integer
from hiersmooth.experiments.report.threats import _threat_slug, _threat_text, threat_key
from hiersmooth.threat import BUDGETS, SPELLINGS, TEXT_NAMES, Threat, parse_threat_text

SOURCE = Path(hiersmooth.__file__).parent


def test_text_names_are_keywords():
    assert Threat(r=1, eps=0.5) == Threat(rows=1, l2=0.5) == Threat(1, l2=0.5) == Threat(r=1, l2=0.5)
    assert Threat(r=1, ra=0, rd=8) == Threat(rows=1, added=0, deleted=8) == Threat(1, ra=0, deleted=8)
    assert Threat(r=1, rd=8) == Threat(rows=1, added=0, deleted=8)  # a missing one of ra, rd counts as 0
    assert Threat(r=1, l1=0.5) == Threat(rows=1, l1=0.5) and Threat(r=2) == Threat(rows=2) == Threat(2)
    assert Threat(r=3, eps=0.25).l2 == 0.25 and Threat(r=3, ra=2).added == 2
    # The keywords are exactly the spellings of threat text.
    assert set(inspect.signature(Threat).parameters) == set(SPELLINGS)


@pytest.mark.parametrize(
    "keywords, message",
    [
        ({"r": 1, "rows": 1}, "give r or rows, not both"),
        ({"r": 1, "eps": 0.5, "l2": 0.5}, "give eps or l2, not both"),
        ({"r": 1, "ra": 0, "added": 0}, "give ra or added, not both"),
        ({"r": 1, "rd": 2, "deleted": 3}, "give rd or deleted, not both"),
        ({"r": 1, "eps": 0.5, "l1": 0.5}, "give one budget"),
        ({"r": 1, "eps": 0.5, "rd": 1}, "give one budget"),
        # errors name the value as the caller spelled it
        ({"r": -1}, "r=-1: must be a non-negative integer"),
        ({"rows": -1}, "rows=-1: must be a non-negative integer"),
        ({"r": True}, "r=True: must be a non-negative integer"),
        ({"r": 1.0}, "r=1.0: must be a non-negative integer"),
        ({"r": 1, "rd": -2}, "rd=-2: must be a non-negative integer"),
        ({"rows": 1, "deleted": -2}, "deleted=-2: must be a non-negative integer"),
        ({"r": 1, "eps": math.nan}, "eps=nan: must be a finite number >= 0"),
        ({"rows": 1, "l2": math.inf}, "l2=inf: must be a finite number >= 0"),
    ],
)
def test_bad_threats_are_one_line_errors(keywords, message):
    with pytest.raises(ValueError, match=message) as error:
        Threat(**keywords)
    assert "\n" not in str(error.value)


def test_rows_are_required():
    with pytest.raises(TypeError, match="give the changed rows"):
        Threat(eps=0.5)


def test_str_is_threat_text():
    assert str(Threat(r=1, eps=0.5)) == "r=1,eps=0.5"
    assert str(Threat(r=1, ra=0, rd=8)) == "r=1,ra=0,rd=8"
    assert str(Threat(r=1, l1=0.5)) == "r=1,l1=0.5"
    assert str(Threat(r=2)) == "r=2"
    assert str(Threat(r=1, eps=1)) == "r=1,eps=1" and str(Threat(r=0, eps=0)) == "r=0,eps=0"
    assert str(Threat(r=1, eps=1 / 3)) == "r=1,eps=0.3333333333333333"  # as many digits as it takes, no fewer
    assert str(Threat(r=1, eps=-0.0)) == "r=1,eps=0"
    assert f"{Threat(r=1, rd=2)}" == Threat(r=1, rd=2).text == "r=1,ra=0,rd=2"
    assert Threat(r=1, ra=0, rd=8).axes == {"rows": 1, "added": 0, "deleted": 8}
    # Errors that name a threat name it in threat text.
    with pytest.raises(ValueError, match=r"threat r=1,eps=0\.5 does not fit uniform noise"):
        hiersmooth.Uniform(1.0).lower(0.9, Threat(r=1, eps=0.5))


_COUNTS = st.integers(0, 2**63 - 1) | st.integers(0, 50)
_NORMS = st.floats(min_value=0, allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, 0.1, 0.25, 1e-300])
THREATS = st.one_of(
    st.builds(lambda r: Threat(r=r), _COUNTS),
    st.builds(lambda r, eps: Threat(r=r, eps=eps), _COUNTS, _NORMS),
    st.builds(lambda r, l1: Threat(rows=r, l1=l1), _COUNTS, _NORMS),
    st.builds(lambda r, ra, rd: Threat(r=r, ra=ra, rd=rd), _COUNTS, _COUNTS | st.none(), _COUNTS | st.none()),
)


@settings(max_examples=400, deadline=None)
@given(THREATS)
def test_parse_reads_back_str(threat):
    text = str(threat)
    assert Threat.parse(text) == threat
    assert parse_threat_text(text) == threat.axes
    assert " " not in text and text.split(",")[0] == f"r={threat.rows}"
    assert [part.partition("=")[0] for part in text.split(",")] == [TEXT_NAMES[axis] for axis in threat.axes]
    assert tuple(threat.axes) == ("rows", *BUDGETS[threat.kind])


@pytest.mark.parametrize(
    "threat, axes, text, slug",
    [  # the report's printed text and file slugs (the first three as in the recorded results/*/report)
        (Threat(r=1, eps=0.5), ("rows", "eps"), "r=1, ε=0.5", "r1_eps0.5"),
        (Threat(r=1, ra=0, rd=2), ("rows", "added", "deleted"), "r=1, ra=0, rd=2", "r1_ra0_rd2"),
        (Threat(r=2), ("rows",), "r=2", "r2"),
        (Threat(r=1, l1=0.5), ("rows", "l1"), "r=1, l1=0.5", "r1_l1_0.5"),
    ],
)
def test_report_names_every_kind_of_threat(threat, axes, text, slug):
    key = threat_key(threat, axes)
    assert key == threat_key(parse_threat_text(str(threat)), axes) == threat_key(threat.axes, axes)
    assert _threat_text(key, axes) == text and _threat_slug(key, axes) == slug


@pytest.mark.parametrize("value", [5, 0, 10, np.int64(7), np.uint8(3)])
def test_check_integer_accepts_integers(value):
    result = check_integer("k", value, 0, 10)
    assert result == value and type(result) is int


@pytest.mark.parametrize(
    "value, least, most, message",
    [
        (True, 0, None, "k=True: must be an integer >= 0"),
        (False, 0, None, "k=False: must be an integer >= 0"),
        (np.bool_(True), 0, None, "must be an integer >= 0"),
        (2.0, 0, None, "k=2.0: must be an integer >= 0"),
        (math.nan, 0, None, "k=nan: must be an integer >= 0"),
        (math.inf, 0, None, "k=inf: must be an integer >= 0"),
        (np.float64(3), 0, None, "must be an integer >= 0"),
        ("3", 0, None, "k='3': must be an integer >= 0"),
        (None, 1, None, "k=None: must be an integer >= 1"),
        (np.array(3), 0, None, "must be an integer >= 0"),
        (0, 1, None, "k=0: must be an integer >= 1"),
        (-1, 0, None, "k=-1: must be an integer >= 0"),
        (11, 1, 10, "k=11: must be an integer >= 1 and <= 10"),
        (2**64, 0, 2**63 - 1, f"k={2**64}: must be an integer >= 0 and <= {2**63 - 1}"),
    ],
)
def test_check_integer_refuses(value, least, most, message):
    with pytest.raises(ValueError) as error:
        check_integer("k", value, least, most)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_check_integer_own_wording():
    with pytest.raises(ValueError, match=r"^points=0: the number of points per cloud must be an integer >= 1$"):
        check_integer("points", 0, 1, rule="the number of points per cloud must be an integer >= 1")


def test_checks_is_the_base_of_the_base_layer():
    tree = ast.parse((SOURCE / "checks.py").read_text())
    imported = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert all(isinstance(node, ast.ImportFrom) and node.level == 0 for node in imported)
    assert {node.module for node in imported} <= {"__future__", "numbers"}


def test_the_validators_use_check_integer():
    """Each former copy of the integer check now refuses what check_integer refuses, with its own wording."""
    from hiersmooth.cli import _int_in
    from hiersmooth.data.images import check_split
    from hiersmooth.data.point_clouds import image_points
    from hiersmooth.models.images import layer_width
    from hiersmooth.seeds import SeedPlan
    from hiersmooth.smoothing.selection import Subset

    for call, message in [
        (lambda: SeedPlan(seed=True), "seed=True: must be an integer >= 0"),
        (lambda: SeedPlan(block_size=0), "block_size=0: must be an integer >= 1"),
        (lambda: Subset(size=2.0), "selection.size=2.0: must be an integer >= 1"),
        (lambda: Subset(size=2, entities=False), "selection.entities=False: must be an integer >= 1"),
        (lambda: layer_width("hidden", np.float32(4)), "model.hidden=np.float32(4.0): must be an integer >= 1"),
        (lambda: check_split(-1, 0.5), "seed=-1: must be an integer >= 0"),
        (
            lambda: image_points(np.zeros((1, 4, 4)), 0, np.random.default_rng(0)),
            "points=0: the number of points per cloud must be an integer >= 1",
        ),
    ]:
        with pytest.raises(ValueError) as error:
            call()
        assert message in str(error.value), (message, str(error.value))
    assert layer_width("hidden", np.int64(4)) == 4 and SeedPlan(np.int64(3)).seed == 3
    parse = _int_in(1, 10)
    assert parse("7") == 7
    for text, message in [("0", "'0' must be an integer in [1, 10]"), ("x", "'x' is not an integer")]:
        with pytest.raises(argparse.ArgumentTypeError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parse(text)


def test_training_patience_refuses_bool():
    from hiersmooth.run_config import TrainingConfig, _check_training

    with pytest.raises(ValueError, match=r"training.patience=True: must be an integer >= 1 or null"):
        _check_training(TrainingConfig(epochs=1, patience=True))
    with pytest.raises(ValueError, match=r"training.epochs=1.5: must be an integer >= 1"):
        _check_training(TrainingConfig(epochs=1.5))
