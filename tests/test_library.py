"""The library at the centre: every command is one Python call, with the command line's files, checks and errors.

Drives ``certify_dataset`` with the objects a user has (an image tensor, a ``Dataset``, a PyG ``Data`` graph with
``test_mask``), resumes a killed ``certify_dataset`` to identical votes, compares each library call with its
command, and checks the layers (no module imports the CLI; ``hiersmooth --help`` imports neither torch nor scipy).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import hiersmooth
from hiersmooth.certify.votes import load_votes
from hiersmooth.cli import main
from hiersmooth.models.graphs import GCN
from hiersmooth.models.images import SmallCNN

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "src" / "hiersmooth"
GAUSSIAN = REPO / "configs" / "smoothing" / "cifar10_hierarchical_gaussian.yaml"
SPARSE = REPO / "configs" / "smoothing" / "cora_ml_hierarchical_sparse.yaml"
OUTPUTS = ("votes.npz", "certified_accuracy.csv", "certified_accuracy.points.csv", "certified_accuracy.points.npz")


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    pixels, labels = rng.random((4, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 4)
    np.savez(tmp_path / "images.npz", images=pixels, labels=labels)
    torch.manual_seed(0)
    model = SmallCNN(2, 3)
    torch.save(model.state_dict(), tmp_path / "cnn.pt")
    return tmp_path, torch.from_numpy(pixels), labels, model


def _classifier(model, smoothing=GAUSSIAN, classes=3, seed=3):
    return hiersmooth.SmoothedClassifier(model, smoothing, classes, seed=seed)


def test_certify_dataset_on_a_tensor_writes_what_the_command_writes(images):
    folder, pixels, labels, model = images
    result = _classifier(model).certify_dataset(
        pixels, 20, 60, 0.05, 32, labels=labels, out=folder / "lib", progress=False, rows=[1, 2], eps="0,0.1"
    )
    argv = [
        "certify",
        "--smoothing",
        str(GAUSSIAN),
        "--model",
        "hiersmooth.models.images:SmallCNN",
        "--weights",
        str(folder / "cnn.pt"),
        "--data",
        str(folder / "images.npz"),
        "--n0",
        "20",
        "--n",
        "60",
        "--alpha",
        "0.05",
        "--num-classes",
        "3",
        "--seed",
        "3",
        "--rows",
        "1,2",
        "--eps",
        "0,0.1",
        "--no-progress",
        "--out",
        str(folder / "cli"),
    ]
    assert main(argv) == 0
    for name in OUTPUTS[:3]:  # the same votes, table and per-point rows, byte for byte
        assert (folder / "lib" / name).read_bytes() == (folder / "cli" / name).read_bytes(), name
    # results read naturally: counts as (points, classes) arrays, no result.votes.votes
    assert result.pre_votes.shape == result.votes.shape == (4, 3) and result.votes.dtype == np.int64
    assert (result.votes.sum(axis=1) == 60).all() and (result.pre_votes.sum(axis=1) == 20).all()
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.correct, result.selected == labels)
    assert result.binary.largest_l2([1, 2]).shape == (4, 2)
    sidecar = json.loads((folder / "lib" / "certified_accuracy.json").read_text())
    assert sidecar["inputs"]["data"] == "in memory" and len(sidecar["inputs"]["data_sha256"]) == 64


def test_a_dataset_of_pairs_gives_the_votes_of_the_tensor(images):
    _, pixels, labels, model = images

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(pixels)

        def __getitem__(self, index):
            return pixels[index], int(labels[index])

    from_tensor = _classifier(model).certify_dataset(pixels, 10, 30, labels=labels, progress=False)
    from_pairs = _classifier(model).certify_dataset(Pairs(), 10, 30, batch_size=7, progress=False)
    np.testing.assert_array_equal(from_pairs.votes, from_tensor.votes)
    np.testing.assert_array_equal(from_pairs.pre_votes, from_tensor.pre_votes)
    np.testing.assert_array_equal(from_pairs.labels, labels)


def _graph():
    from torch_geometric.data import Data

    rng = np.random.default_rng(1)
    nodes, features = 30, 12
    x = torch.from_numpy((rng.random((nodes, features)) < 0.2).astype(np.float32))
    edges = rng.integers(0, nodes, (2, 80))
    edge_index = torch.from_numpy(np.concatenate([edges, edges[::-1]], axis=1))
    mask = torch.zeros(nodes, dtype=torch.bool)
    mask[[2, 5, 11, 17]] = True
    return Data(x=x, edge_index=edge_index, y=torch.from_numpy(rng.integers(0, 3, nodes)), test_mask=mask)


def test_a_pyg_graph_is_certified_at_its_test_mask(tmp_path):
    data = _graph()
    torch.manual_seed(0)
    model = GCN(data.num_node_features + 1, 3)
    result = _classifier(model, SPARSE).certify_dataset(
        data, 8, 24, 0.05, 4, out=tmp_path / "graph", progress=False, rows=[1], added=[0], deleted=[0, 1]
    )
    assert result.votes.shape == (4, 3)
    np.testing.assert_array_equal(result.labels, data.y[data.test_mask].numpy())
    by_arrays = _classifier(model, SPARSE).certify_dataset(
        data.x.to_sparse_csr(),
        8,
        24,
        0.05,
        4,
        edge_index=data.edge_index,
        labels=data.y,
        nodes=[2, 5, 11, 17],
        progress=False,
    )
    np.testing.assert_array_equal(by_arrays.votes, result.votes)
    assert json.loads((tmp_path / "graph" / "certified_accuracy.json").read_text())["nodes"] == [2, 5, 11, 17]
    np.testing.assert_array_equal(load_votes(tmp_path / "graph" / "votes.npz").votes, result.votes)


def test_a_killed_certify_dataset_resumes_to_identical_votes(images, monkeypatch, fail_after):
    from hiersmooth import classifier as classifier_module

    folder, pixels, labels, model = images
    reference = _classifier(model).certify_dataset(pixels, 20, 300, labels=labels, batch_size=50, progress=False)
    # one pass checks the class count, then each image needs 1 selection + 6 estimation passes: die in image 2,
    # at its third estimation pass (one worker thread, so the passes run in order and the point is exact)
    hook = fail_after(model, 1 + 7 + 3)
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(classifier_module, "CPU_WORKERS", 1)
        _classifier(model).certify_dataset(
            pixels, 20, 300, labels=labels, batch_size=50, out=folder / "run", progress=False, checkpoint_seconds=1e9
        )
    hook.remove()
    with np.load(folder / "run" / "progress.npz") as saved:  # what was counted is kept, block by block
        np.testing.assert_array_equal(saved["cursor"], [[1, 3], [1, 1], [0, 0], [0, 0]])
        assert saved["votes"].sum() == 300 + 100
    resumed = _classifier(model).certify_dataset(
        pixels, 20, 300, labels=labels, batch_size=64, out=folder / "run", progress=False
    )
    np.testing.assert_array_equal(resumed.votes, reference.votes)
    np.testing.assert_array_equal(resumed.pre_votes, reference.pre_votes)
    # other weights are another run: refused in one line, the checkpoint kept
    other = SmallCNN(2, 3)
    with pytest.raises(ValueError, match=r"written by a different run \(differs in weights_sha256\)"):
        _classifier(other).certify_dataset(pixels, 20, 300, labels=labels, out=folder / "run", progress=False)


def test_the_library_refuses_what_the_command_refuses(images):
    folder, pixels, labels, model = images
    (folder / "foreign").mkdir()
    (folder / "foreign" / "votes.npz").write_bytes(b"not ours")
    with pytest.raises(ValueError, match="exists and was not written by hiersmooth"):
        _classifier(model).certify_dataset(pixels, 4, 8, labels=labels, out=folder / "foreign", progress=False)
    assert (folder / "foreign" / "votes.npz").read_bytes() == b"not ours"
    with pytest.raises(ValueError, match="is an input of this run"):
        hiersmooth.certify_votes(_votes_file(folder), GAUSSIAN, out=_votes_file(folder))
    with pytest.raises(ValueError, match=r"data: must be images .* got str"):
        _classifier(model).certify_dataset("images.npz", 4, 8)
    with pytest.raises(ValueError, match="--added does not apply to gaussian noise"):
        _classifier(model).certify_dataset(pixels, 4, 8, labels=labels, progress=False).grid(added=[1])
    with pytest.raises(ValueError, match=r"labels: hold class 5, but the classifier has 3 classes"):
        _classifier(model).certify_dataset(pixels, 4, 8, labels=[0, 1, 2, 5], out=folder / "bad", progress=False)
    with pytest.raises(ValueError, match=r"data: image values must lie in \[0, 1\]"):
        _classifier(model).certify_dataset(pixels * 2, 4, 8)


def _votes_file(folder: Path) -> Path:
    path = folder / "votes_in.npz"
    if not path.exists():
        pre = np.array([[90, 5, 5], [10, 80, 10], [30, 30, 40]])
        np.savez(path, pre_votes=pre, votes=pre * 10, labels=np.array([0, 1, 2]))
    return path


def test_certify_votes_from_python_writes_the_files_of_the_command(tmp_path):
    votes = _votes_file(tmp_path)
    result = hiersmooth.certify_votes(votes, GAUSSIAN, out=tmp_path / "lib" / "c.csv", rows="1-2", eps=[0, 0.5])
    assert (
        main(
            [
                "certify-votes",
                str(votes),
                "--smoothing",
                str(GAUSSIAN),
                "--out",
                str(tmp_path / "cli" / "c.csv"),
                "--rows",
                "1-2",
                "--eps",
                "0,0.5",
            ]
        )
        == 0
    )
    for name in ("c.csv", "c.points.csv"):
        assert (tmp_path / "lib" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes()
    loaded = hiersmooth.load_votes(votes)
    again = hiersmooth.certify_votes(loaded, hiersmooth.from_config(GAUSSIAN))
    assert [row["certified_accuracy"] for row in again.grid(rows=[1, 2], eps=[0, 0.5]).table] == [
        row["certified_accuracy"] for row in result.grid(rows="1-2", eps="0,0.5").table
    ]
    mapping = hiersmooth.certify_votes(
        {"pre_votes": loaded.pre_votes, "votes": loaded.votes, "labels": loaded.labels}, GAUSSIAN
    )
    np.testing.assert_array_equal(mapping.binary.p_lower, result.binary.p_lower)


def test_every_public_name_is_reachable_and_documented():
    for name in hiersmooth.__all__:
        value = getattr(hiersmooth, name)
        assert name in dir(hiersmooth)
        if callable(value):
            assert (value.__doc__ or "").strip(), f"hiersmooth.{name} has no docstring"
    for name in (
        "certify_votes",
        "load_votes",
        "save_votes",
        "Threat",
        "from_config",
        "SmoothedClassifier",
        "certify_checkpoint",
        "train_run",
        "run_experiment",
        "make_report",
    ):
        assert name in hiersmooth.__all__
    assert callable(hiersmooth.SmoothedClassifier.certify_dataset)


def _imports(path: Path) -> set[str]:
    """The modules ``path`` imports, resolved to absolute names."""
    package = ".".join(path.relative_to(SOURCE.parent).with_suffix("").parts)
    package = package if path.name == "__init__.py" else package.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_module_imports_the_command_line_or_passes_argv():
    offenders = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path.name in ("cli.py", "__main__.py"):
            continue
        imports = _imports(path)
        if "hiersmooth.cli" in imports or "argparse" in imports:
            offenders.append(str(path.relative_to(REPO)))
    assert not offenders, f"only cli.py and __main__.py may know the command line: {offenders}"


def test_help_imports_neither_torch_nor_scipy():
    code = (
        "import sys\nfrom hiersmooth.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'scipy', 'matplotlib', 'torch_geometric') if m in sys.modules)\n"
        "print('HEAVY', heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr
    usage = subprocess.run(
        [sys.executable, "-c", code.replace("['--help']", "['certify-votes']")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "HEAVY []" in usage.stdout, usage.stdout + usage.stderr
    assert "hiersmooth: error: " in usage.stderr


def test_train_run_experiment_and_report_from_python(tmp_path):
    from test_experiments import TINY

    experiment = {**TINY, "methods": {"hierarchical": TINY["methods"]["hierarchical"]}}
    results = hiersmooth.run_experiment(experiment, tmp_path / "results", progress=False, log=lambda line: None)
    rows = (results / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 * 2  # header + certificates × r × eps
    paths = hiersmooth.make_report(results, ["r=1,eps=0.25"])
    assert {path.name for path in paths} >= {"pareto_r1_eps0.25.png", "summary.md"}
    with pytest.raises(ValueError, match="holds another experiment"):
        hiersmooth.run_experiment({**experiment, "seeds": [1]}, results, progress=False)
    # train_run: a mapping in, a checkpoint folder out; a folder of foreign files is refused
    config = {key: experiment[key] for key in ("data", "model", "training")} | {"smoothing": GAUSSIAN_CONFIG}
    folder = hiersmooth.train_run(config, tmp_path / "model", progress=False)
    assert (folder / "model.pt").is_file() and (folder / "config.yaml").is_file()
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "model.pt").write_bytes(b"mine")
    with pytest.raises(ValueError, match="exists and was not written by hiersmooth"):
        hiersmooth.train_run(config, tmp_path / "foreign", progress=False)


GAUSSIAN_CONFIG = {"selection": {"kind": "bernoulli", "p": 0.8}, "noise": {"kind": "gaussian", "sigma": 0.25}}


def test_the_quickstart_notebook_is_committed_without_outputs():
    import nbformat

    notebook = nbformat.read(REPO / "examples" / "quickstart.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert len(code) >= 5
    assert all(not cell.outputs and cell.execution_count is None for cell in code), "clear the notebook's outputs"
    text = "\n".join(cell.source for cell in code)
    for call in ("certify_votes", "train_run", "certify_checkpoint", "certify_dataset", "Data("):
        assert call in text


LAYERS = [  # each layer imports only itself and the layers before it (README, "Layout")
    ["checks", "devices", "rounding", "threat", "defaults", "config_files", "shared_data", "results", "seeds"]
    + ["distributed"]
    + ["progress"],
    ["smoothing"],
    ["certify"],
    ["classifier", "certify_run", "sequential_run", "inputs"],
    ["data", "models", "run_config"],
    ["train", "trained"],
    ["experiments", "demo"],
    ["cli", "__main__", "__init__"],
]


def _layer(module: str) -> int:
    part = module.split(".")[1] if module.count(".") else "__init__"
    return next(index for index, names in enumerate(LAYERS) if part in names)


def test_dependencies_point_one_way():
    upward = []
    for path in sorted(SOURCE.rglob("*.py")):
        module = ".".join(path.relative_to(SOURCE.parent).with_suffix("").parts).removesuffix(".__init__")
        own = _layer(module if module != "hiersmooth" else "hiersmooth.__init__")
        for imported in _imports(path):
            if imported.startswith("hiersmooth.") and imported.count(".") >= 1:
                try:
                    their = _layer(imported)
                except StopIteration:
                    continue  # a name imported from the package itself (hiersmooth.X where X is not a module)
                if their > own:
                    upward.append(f"{module} -> {imported}")
    assert not upward, f"imports against the layers {LAYERS}: {sorted(set(upward))}"


def test_dense_noise_on_a_sparse_graph_makes_its_features_dense():
    """Gaussian noise puts noise on every value of a selected row: sparse CSR features are made dense for it (as
    Cora-ML's are in experiments/cora_ml_gaussian.yaml) instead of being refused."""
    data = _graph()
    torch.manual_seed(0)
    model = GCN(data.num_node_features + 1, 3)
    smoothing = {"selection": {"kind": "bernoulli", "p": 0.8}, "noise": {"kind": "gaussian", "sigma": 0.5}}
    sparse = _classifier(model, smoothing).certify_dataset(
        data.x.to_sparse_csr(),
        6,
        12,
        0.05,
        4,
        edge_index=data.edge_index,
        labels=data.y,
        nodes=data.test_mask,
        progress=False,
    )
    dense = _classifier(model, smoothing).certify_dataset(
        data.x, 6, 12, 0.05, 4, edge_index=data.edge_index, labels=data.y, nodes=data.test_mask, progress=False
    )
    np.testing.assert_array_equal(sparse.votes, dense.votes)
    assert sparse.votes.shape == (4, 3) and (sparse.votes.sum(axis=1) == 12).all()
