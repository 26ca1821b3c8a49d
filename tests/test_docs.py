"""The documentation site builds with ``mkdocs build --strict``: every page of the nav exists, every ``:::`` API
block names a module that exists and whose docstrings griffe parses without a warning, every link and anchor
resolves. The build reads only the repository (no network)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parents[1]
DOCS = REPOSITORY / "docs"


def _nav_pages(nav) -> list[str]:
    """Every Markdown file named in an mkdocs nav (nested lists of {title: page-or-list})."""
    pages = []
    for entry in nav:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            pages.extend(_nav_pages(value) if isinstance(value, list) else [value])
    return pages


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPOSITORY / "mkdocs.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """``mkdocs build --strict`` of the repository into a temporary site folder (the checkout stays untouched)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, out


@pytest.fixture(scope="module")
def site(build) -> Path:
    done, out = build
    if done.returncode != 0:
        pytest.skip("the site did not build: see test_the_site_builds_strictly")
    return out


def test_the_site_builds_strictly(build):
    done, _ = build
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"mkdocs build --strict failed (exit {done.returncode}):\n{output}"
    assert not re.search(r"^(WARNING|ERROR)\b", output, re.MULTILINE), output


def test_every_nav_page_exists_and_is_built(config, site):
    pages = _nav_pages(config["nav"])
    assert pages, "mkdocs.yml has an empty nav"
    for page in pages:
        assert (DOCS / page).is_file(), f"nav names {page}, which is not in docs/"
        built = site / (page[:-3] + "/index.html" if not page.endswith("index.md") else page[:-3] + ".html")
        assert built.is_file(), f"{page} was not built ({built} missing)"


def test_every_docs_page_is_in_the_nav(config):
    pages = set(_nav_pages(config["nav"]))
    for path in DOCS.rglob("*.md"):
        assert path.relative_to(DOCS).as_posix() in pages, f"{path} is not in mkdocs.yml's nav"


def _ids(html: Path) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', html.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    "page, names",
    [
        (
            "api/smoothing/index.html",
            [
                "hiersmooth.smoothing.hierarchical.Smoothing",
                "hiersmooth.smoothing.hierarchical.from_config",
                "hiersmooth.smoothing.selection.Bernoulli",
                "hiersmooth.smoothing.noise.Sparse",
                "hiersmooth.smoothing.sampler.Sampler",
            ],
        ),
        (
            "api/certificates/index.html",
            [
                "hiersmooth.certify.certification.certify_votes",
                "hiersmooth.certify.certification.VoteCertificates",
                "hiersmooth.certify.certificates.Certificate",
                "hiersmooth.certify.votes.load_votes",
                "hiersmooth.certify.bounds.clopper_pearson_lower",
            ],
        ),
        (
            "api/classifier/index.html",
            [
                "hiersmooth.classifier.SmoothedClassifier",
                "hiersmooth.classifier.SmoothedClassifier.certify",
                "hiersmooth.certify_run.certify_dataset",
            ],
        ),
        (
            "api/data-models-training/index.html",
            [
                "hiersmooth.trained.certify_checkpoint",
                "hiersmooth.models.images.SmallCNN",
                "hiersmooth.trained.train_run",
                "hiersmooth.run_config.load_run_config",
                "hiersmooth.data.graphs.load_graph",
            ],
        ),
        (
            "api/experiments/index.html",
            [
                "hiersmooth.experiments.runner.run_experiment",
                "hiersmooth.experiments.report.make_report",
                "hiersmooth.experiments.grid.load_experiment",
            ],
        ),
        ("api/index.html", ["hiersmooth.threat.Threat", "hiersmooth.defaults.DEFAULT_ALPHA"]),
    ],
)
def test_api_pages_render_the_public_names(site, page, names):
    ids = _ids(site / page)
    missing = [name for name in names if name not in ids]
    assert not missing, f"{page} does not document {missing}"


def test_the_top_level_page_lists_every_public_name(site):
    import hiersmooth  # light: imports neither torch nor scipy

    html = (site / "api/index.html").read_text(encoding="utf-8")
    missing = [name for name in hiersmooth.__all__ if f"<code>{name}</code>" not in html]
    assert not missing, f"docs/api/index.md does not list the public names {missing}"


def test_the_api_pages_show_rendered_docstrings(site):
    html = (site / "api/classifier/index.html").read_text(encoding="utf-8")
    assert "estimated by Monte Carlo" in html  # SmoothedClassifier's docstring
    assert 'doc-section-title">Parameters:' in html and 'doc-section-title">Returns:' in html  # numpy sections parsed
    for page in (site / "api").rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<autoref" not in text, f"{page}: an unprocessed cross-reference"
        assert not re.search(r":(class|func|meth|mod|data|attr):<code>", text), f"{page}: a raw Sphinx role"


def test_the_pages_load_nothing_from_the_network_but_mathjax(site):
    """Fonts, styles and scripts are the theme's own files; only the mathematics page loads MathJax from a CDN."""
    external = {}
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        for url in re.findall(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="(https?://[^"]+)"', html):
            external.setdefault(url, set()).add(page.relative_to(site).as_posix())
    mathjax = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"
    assert set(external) <= {mathjax}, f"pages load {sorted(external)}"
    assert external.get(mathjax, set()) <= {"mathematics/index.html"}, external
