"""Model artifacts in the lake: `LAKE_ROOT/models/<name>/v<N>/{model.joblib, metadata.json}`.

A version folder appears whole or not at all: it is written as a hidden staging
folder beside it and renamed into place (one rename on one file system). A folder
`v<N>` with no `ModelVersion` row is what a crashed publish left; the next publish,
holding the model's lock, replaces it.
"""

from __future__ import annotations

import json
import secrets
import shutil
import threading
from pathlib import Path

import joblib
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
_cache: dict[str, tuple[Path, object]] = {}  # name -> (its folder, loaded artifact)
_lock = threading.Lock()


def model_folder(name: str) -> Path:
    return Path(settings.LAKE_ROOT) / "models" / name


def stage(name: str, artifact) -> Path:
    """Write the artifact into a new staging folder; returns it (slow part, no lock held)."""
    folder = model_folder(name)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".staging-{secrets.token_hex(6)}"
    staging.mkdir()
    joblib.dump(artifact, staging / MODEL_FILE, compress=3)
    return staging


def publish(staging: Path, name: str, version: int, metadata: dict) -> Path:
    """Add the metadata and rename the staging folder to `v<version>` (under the lock)."""
    (staging / METADATA_FILE).write_text(
        json.dumps(metadata, indent=2, sort_keys=True, cls=DjangoJSONEncoder), encoding="utf-8"
    )
    final = model_folder(name) / f"v{version}"
    if final.exists():  # left by a publish whose transaction did not commit
        shutil.rmtree(final)
    staging.rename(final)
    return final


def discard(path: Path | None) -> None:
    if path is not None and path.exists():
        shutil.rmtree(path, ignore_errors=True)


def relative(path: Path) -> str:
    return str(path.relative_to(Path(settings.LAKE_ROOT)))


def load(name: str, path: str):
    """The artifact in the folder `path`, loaded once per process (one per model is kept).

    joblib is pickle, which runs code when loading: `models/` must be writable by the
    portal's processes only (see README)."""
    folder = Path(settings.LAKE_ROOT) / path
    with _lock:
        cached = _cache.get(name)
        if cached and cached[0] == folder:
            return cached[1]
    artifact = joblib.load(folder / MODEL_FILE)
    with _lock:
        _cache[name] = (folder, artifact)
    return artifact


def clear_cache() -> None:
    with _lock:
        _cache.clear()
