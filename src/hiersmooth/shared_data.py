"""Where the project's shared material lives: ``$HIERSMOOTH_SHARED``, else ``../shared`` beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

_REPOSITORY = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """The shared folder (data/, reference/); a clear error saying where it looked when it is missing."""
    candidates = [Path(os.environ["HIERSMOOTH_SHARED"])] if os.environ.get("HIERSMOOTH_SHARED") else []
    candidates += [Path.cwd().parent / "shared", _REPOSITORY.parent / "shared"]
    for candidate in candidates:
        if (candidate / "reference").is_dir():
            return candidate.resolve()
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise FileNotFoundError(f"shared folder not found (looked in {looked}); set HIERSMOOTH_SHARED to its path")
