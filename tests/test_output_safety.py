"""Outputs never destroy anything: --out that is an input, a pipe, a device, a folder or a foreign file is refused;
every file is written atomically; one run per output (a lock naming its PID); resuming compares contents, not the
spelling of paths; a damaged results folder is one line, not a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hiersmooth.certify.votes import Votes, load_votes, save_votes
from hiersmooth.certify_run import Checkpoint
from hiersmooth.cli import main
from hiersmooth.experiments.grid import load_experiment
from hiersmooth.models.images import SmallCNN
from hiersmooth.results import LOCK, check_output, output_lock

REPO = Path(__file__).resolve().parents[1]
GAUSSIAN = REPO / "configs" / "smoothing" / "cifar10_hierarchical_gaussian.yaml"
FIXTURE = REPO / "tests" / "data" / "report_fixture"


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("hiersmooth: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def votes_run(tmp_path):
    rng = np.random.default_rng(0)
    votes = tmp_path / "votes.npz"
    np.savez(
        votes,
        pre_votes=rng.multinomial(20, [0.7, 0.2, 0.1], size=6),
        votes=rng.multinomial(100, [0.7, 0.2, 0.1], size=6),
        labels=np.zeros(6, dtype=int),
    )
    smoothing = tmp_path / "smoothing.yaml"
    shutil.copy(GAUSSIAN, smoothing)
    return tmp_path, ["certify-votes", str(votes), "--smoothing", str(smoothing), "--rows", "1", "--eps", "0,0.1"]


@pytest.mark.parametrize("target", ["votes.npz", "smoothing.yaml"])
def test_certify_votes_never_replaces_its_inputs_even_with_force(votes_run, capsys, target):
    tmp_path, args = votes_run
    before = (tmp_path / target).read_bytes()
    for force in ([], ["--force"]):
        assert main(args + ["--out", str(tmp_path / target)] + force) == 2
        assert "is an input of this run" in _error(capsys)
        assert (tmp_path / target).read_bytes() == before
    assert not (tmp_path / (target + ".json")).exists()


def test_an_input_under_another_spelling_is_still_an_input(votes_run, capsys, monkeypatch):
    tmp_path, args = votes_run
    monkeypatch.chdir(tmp_path)
    os.symlink(tmp_path / "votes.npz", tmp_path / "link.npz")
    before = (tmp_path / "votes.npz").read_bytes()
    for out in ("./votes.npz", str(tmp_path / "sub" / ".." / "votes.npz"), "link.npz"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        assert main(args + ["--out", out, "--force"]) == 2
        assert "is an input of this run" in _error(capsys)
    assert (tmp_path / "votes.npz").read_bytes() == before


def test_a_file_hiersmooth_did_not_write_is_kept_unless_forced(votes_run, capsys):
    tmp_path, args = votes_run
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("my notes\n")
    assert main(args + ["--out", str(unrelated)]) == 2
    assert "was not written by hiersmooth" in _error(capsys) and "--force" in capsys.readouterr().err + "--force"
    assert unrelated.read_text() == "my notes\n"
    # a per-point file or sidecar beside OUT that is someone else's is protected the same way
    sidecar = tmp_path / "table.json"
    sidecar.write_text('{"mine": true}\n')
    assert main(args + ["--out", str(tmp_path / "table.csv")]) == 2
    assert "table.json: exists and was not written by hiersmooth" in _error(capsys)
    assert sidecar.read_text() == '{"mine": true}\n' and not (tmp_path / "table.csv").exists()
    assert main(args + ["--out", str(unrelated), "--force"]) == 0
    assert unrelated.read_text().startswith("certificate,")


def test_rerunning_on_its_own_previous_output_needs_no_force(votes_run, capsys):
    tmp_path, args = votes_run
    out = tmp_path / "out" / "table.csv"
    assert main(args + ["--out", str(out)]) == 0
    assert json.loads((tmp_path / "out" / "table.json").read_text())["written_by"] == "hiersmooth"
    assert main(args + ["--out", str(out), "--eps", "0,0.2"]) == 0
    assert "0.2" in out.read_text()


def test_a_sidecar_naming_the_file_marks_it_as_hiersmooths_own(votes_run, capsys):
    tmp_path, args = votes_run
    out = tmp_path / "table.csv"
    assert main(args + ["--out", str(out)]) == 0
    (tmp_path / ".table.csv.lock").unlink()  # as left by an earlier version: no lock file, only the sidecar
    check_output(out, [], False)
    assert main(args + ["--out", str(out)]) == 0


def test_a_pipe_a_directory_or_a_device_is_refused_even_with_force(votes_run, capsys):
    tmp_path, args = votes_run
    fifo, folder = tmp_path / "pipe", tmp_path / "folder"
    os.mkfifo(fifo)
    folder.mkdir()
    for out, kind in ((fifo, "named pipe"), (folder, "directory")):
        assert main(args + ["--out", str(out), "--force"]) == 2
        assert kind in _error(capsys)
    assert fifo.is_fifo() and folder.is_dir() and not any(folder.iterdir())
    with pytest.raises(ValueError, match=r"--out /dev/null: is a character device"):
        check_output("/dev/null", [], True)
    with pytest.raises(ValueError, match=r"^--out /dev/null/x.csv: cannot be used \(Not a directory\)"):
        check_output("/dev/null/x.csv", [], True)


def test_an_output_under_a_file_is_one_line(votes_run, capsys):
    tmp_path, args = votes_run
    (tmp_path / "plain").write_text("x")
    assert main(args + ["--out", str(tmp_path / "plain" / "table.csv")]) == 2
    assert "--out" in _error(capsys)
    assert main(["report", str(FIXTURE), "--out", str(tmp_path / "plain")]) == 2
    assert "not a folder" in _error(capsys)
    assert (tmp_path / "plain").read_text() == "x"


_HOLD = (
    "import sys\nfrom hiersmooth.results import output_lock\n"  # holds the lock until its stdin is closed
    "with output_lock(sys.argv[1]):\n    print('held', flush=True)\n    sys.stdin.read()\n"
)


def test_a_second_run_into_a_locked_output_names_the_pid(votes_run, capsys):
    tmp_path, args = votes_run
    out = tmp_path / "table.csv"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path / ".table.csv.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(args + ["--out", str(out)]) == 2
        assert f"in use by another hiersmooth run (PID {holder.pid}" in _error(capsys)
        assert not out.exists()
        with pytest.raises(ValueError, match=f"PID {holder.pid}"):
            with output_lock(tmp_path / ".table.csv.lock"):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert main(args + ["--out", str(out)]) == 0  # released when its holder died


def test_a_stale_lock_is_taken_over(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock = tmp_path / "results" / LOCK
    lock.parent.mkdir()
    lock.write_text(f"{gone.pid}\n")
    with output_lock(lock):
        assert lock.read_text() == f"{os.getpid()}\n"
    with output_lock(lock):  # and released again at the end of the block
        pass


def test_a_kill_while_writing_votes_leaves_no_partial_file(tmp_path, monkeypatch):
    votes = Votes(np.array([[3, 1], [0, 4]]), np.array([[9, 1], [2, 8]]), np.array([0, 1]))
    target = tmp_path / "votes.npz"

    def killed(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        save_votes(target, votes)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    save_votes(target, votes)
    before = target.read_bytes()
    monkeypatch.setattr(np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        save_votes(target, votes)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["votes.npz"]
    monkeypatch.undo()
    np.testing.assert_array_equal(load_votes(target).votes, votes.votes)


def test_checkpoints_of_two_runs_never_share_a_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "progress.npz"
    (tmp_path / "progress.npz.partial").mkdir()  # the fixed partial name another run would be writing
    first = Checkpoint(path, {"run": 1}, 2, 2, 3)
    first.counts["estimation"][0, 1] = 7
    names = []
    real = os.replace
    monkeypatch.setattr(
        os, "replace", lambda source, target: (names.append(Path(source).name), real(source, target))[1]
    )
    first.save()
    first.save()
    assert len(set(names)) == 2 and all(name.startswith(".progress.npz.") for name in names)
    assert Checkpoint(path, {"run": 1}, 2, 2, 3).counts["estimation"][0, 1] == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.npz", "progress.npz.partial"]


@pytest.fixture
def image_run(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "images.npz", images=rng.random((3, 1, 8, 8)).astype(np.float32), labels=rng.integers(0, 3, 3))
    torch.manual_seed(0)
    torch.save(SmallCNN(2, 3).state_dict(), tmp_path / "cnn.pt")
    shutil.copy(GAUSSIAN, tmp_path / "smoothing.yaml")
    return tmp_path


def _certify(folder, out, relative=False) -> list[str]:
    where = (lambda name: name) if relative else (lambda name: str(folder / name))
    return [
        "certify",
        "--smoothing",
        where("smoothing.yaml"),
        "--model",
        "hiersmooth.models.images:SmallCNN",
        "--weights",
        where("cnn.pt"),
        "--data",
        where("images.npz"),
        "--n0",
        "10",
        "--n",
        "40",
        "--num-classes",
        "3",
        "--no-progress",
        "--rows",
        "1",
        "--eps",
        "0",
        "--out",
        str(out),
    ]


def test_resuming_compares_contents_not_the_spelling_of_paths(image_run, monkeypatch, capsys):
    assert main(_certify(image_run, image_run / "out")) == 0
    votes = load_votes(image_run / "out" / "votes.npz").votes
    monkeypatch.chdir(image_run)
    assert (
        main(_certify(image_run, "out", relative=True)) == 0
    )  # was: "written by a different run (differs in data, ...)"
    sidecar = json.loads((image_run / "out" / "certified_accuracy.json").read_text())
    assert sidecar["inputs"]["data"] == str(image_run / "images.npz")  # resolved, for information
    copy = image_run.parent / (image_run.name + "_copy")
    shutil.copytree(image_run, copy)
    assert main(_certify(copy, copy / "out")) == 0
    np.testing.assert_array_equal(load_votes(copy / "out" / "votes.npz").votes, votes)
    # what the votes depend on still counts: other data content is another run
    np.savez(copy / "images.npz", images=np.zeros((3, 1, 8, 8), np.float32), labels=np.zeros(3, int))
    assert main(_certify(copy, copy / "out")) == 2
    assert "differs in data_sha256" in _error(capsys)


def test_certify_keeps_a_foreign_file_in_its_folder_and_its_inputs(image_run, capsys):
    out = image_run / "out"
    out.mkdir()
    (out / "votes.npz").write_bytes(b"someone else's votes")
    assert main(_certify(image_run, out)) == 2
    assert "votes.npz: exists and was not written by hiersmooth" in _error(capsys)
    assert (out / "votes.npz").read_bytes() == b"someone else's votes"
    assert (
        main(
            _certify(
                image_run,
                image_run / "images.npz",
            )
            + ["--force"]
        )
        == 2
    )
    assert "not a folder" in _error(capsys)
    assert main(_certify(image_run, out) + ["--force"]) == 0
    load_votes(out / "votes.npz")
    assert (out / LOCK).is_file()


def test_train_never_replaces_its_own_config(tmp_path, capsys):
    config = tmp_path / "trained" / "config.yaml"
    config.parent.mkdir()
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"name": "digits"},
                "model": {"name": "small_cnn"},
                "smoothing": {"selection": {"kind": "all"}, "noise": {"kind": "gaussian", "sigma": 0.25}},
            }
        )
    )
    before = config.read_bytes()
    assert main(["train", str(config), "--out", str(config.parent), "--force", "--no-progress"]) == 2
    assert "is an input of this run" in _error(capsys)
    assert config.read_bytes() == before


TINY = {
    "name": "tiny",
    "data": {"name": "digits"},
    "model": {"name": "small_cnn"},
    "threats": {"rows": [1], "eps": [0.0]},
    "methods": {
        "gaussian": {
            "smoothing": {"selection": {"kind": "bernoulli", "p": 0.8}, "noise": {"kind": "gaussian", "sigma": 0.25}}
        }
    },
}


@pytest.mark.parametrize("name", ["../x", "../../etc/x", "a/b", "..", ".", "", 7])
def test_an_experiment_name_must_be_a_plain_folder_name(tmp_path, capsys, monkeypatch, name):
    with pytest.raises(ValueError, match=r"^experiment\.name="):
        load_experiment({**TINY, "name": name})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "e.yaml").write_text(yaml.safe_dump({**TINY, "name": name}))
    assert main(["run", "e.yaml", "--dry-run"]) == 2
    assert "experiment.name=" in _error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.yaml"]
    assert load_experiment({**TINY, "name": "digits_v1.2-b"}).name == "digits_v1.2-b"


def test_a_damaged_results_folder_is_one_line(tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(FIXTURE, results)
    (results / "experiment.yaml").write_text("name: [unclosed\n")
    assert main(["report", str(results)]) == 2
    assert "experiment.yaml" in _error(capsys)
    experiment = tmp_path / "e.yaml"
    experiment.write_text(yaml.safe_dump(TINY))
    (results / LOCK).write_text("")  # a results folder this version wrote (the fixture predates lock files)
    assert main(["run", str(experiment), "--out", str(results), "--no-progress"]) == 2  # resuming into it
    assert "experiment.yaml" in _error(capsys) and not (results / "cells").exists()

    shutil.rmtree(results)
    shutil.copytree(FIXTURE, results)
    lines = (results / "results.csv").read_text().splitlines()
    header = lines[0].split(",")
    drop = header.index("certificate")
    (results / "results.csv").write_text(
        "\n".join(",".join(v for i, v in enumerate(line.split(",")) if i != drop) for line in lines) + "\n"
    )
    assert main(["report", str(results)]) == 2
    assert "results.csv" in _error(capsys)


def test_report_reruns_into_its_own_folder_but_keeps_foreign_files(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(FIXTURE), "--out", str(out)]) == 0
    assert main(["report", str(FIXTURE), "--out", str(out)]) == 0
    foreign = tmp_path / "other"
    foreign.mkdir()
    (foreign / "summary.md").write_text("my summary")
    assert main(["report", str(FIXTURE), "--out", str(foreign)]) == 2
    assert "summary.md: exists and was not written by hiersmooth" in _error(capsys)
    assert (foreign / "summary.md").read_text() == "my summary" and not list(foreign.glob("*.png"))
    assert main(["report", str(FIXTURE), "--out", str(foreign), "--force"]) == 0
    assert (foreign / "summary.md").read_text().startswith("# Report")


def test_a_damaged_cell_of_a_results_folder_is_one_line_naming_the_file(tmp_path, capsys):
    experiment, results = tmp_path / "e.yaml", tmp_path / "results"
    experiment.write_text(yaml.safe_dump(TINY, sort_keys=False))
    assert main(["run", str(experiment), "--out", str(results), "--dry-run"]) == 0
    certify = results / "cells" / load_experiment(TINY).cells[0].name / "certify"
    certify.mkdir(parents=True)
    (results / "experiment.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    (certify / "certified_accuracy.json").write_text('{"summary": ')  # cut off mid-write by an older version
    assert main(["run", str(experiment), "--out", str(results), "--no-progress"]) == 2
    assert "certified_accuracy.json is damaged" in _error(capsys)
    (certify / "certified_accuracy.json").write_text(
        json.dumps(
            {"summary": {"binary": {"clean_certified_accuracy": 1.0}, "multiclass": {"clean_certified_accuracy": 1.0}}}
        )
    )
    (certify / "certified_accuracy.csv").write_text("certificate,r\nbinary,1\n")  # no eps, no certified_accuracy
    assert main(["run", str(experiment), "--out", str(results), "--no-progress"]) == 2
    assert "certified_accuracy.csv is damaged" in _error(capsys)
    assert not (results / "results.csv").exists()
