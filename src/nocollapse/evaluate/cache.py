"""A user cache of evaluation results (baselines), keyed by everything that decides them.

The directory is ``$NOCOLLAPSE_CACHE``, else ``$XDG_CACHE_HOME/nocollapse``, else
``~/.cache/nocollapse``. One JSON file per key, named by the key's hash and holding
the key itself, so a hash collision or a damaged file is recomputed, never trusted.
Files are written through a temporary file and a rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from nocollapse.errors import quoted
from nocollapse.runio import atomic_write_text
from nocollapse.runio.records import is_finite_number


def cache_dir() -> Path:
    """Where cached results live (not created here)."""
    explicit = os.environ.get("NOCOLLAPSE_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "nocollapse"


def tensor_fingerprint(tensor: torch.Tensor) -> str:
    """A short hash of a tensor's shape, dtype and bytes: which images, not just how many."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
    digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _path_for(kind: str, key: Mapping[str, object]) -> Path:
    text = json.dumps(key, sort_keys=True, default=str)
    name = hashlib.sha256(text.encode()).hexdigest()[:32]
    return cache_dir() / kind / f"{name}.json"


def read_cached(kind: str, key: Mapping[str, object]) -> dict[str, float] | None:
    """The stored figures for ``key``, or None when absent, damaged or stored for another
    key; a figure that is not an accuracy (a finite number in [0, 1]) makes the entry
    ignored, with a line on stderr naming the file."""
    path = _path_for(kind, key)
    if path.is_symlink() or not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    same_key = json.loads(json.dumps(key, sort_keys=True, default=str))
    if not isinstance(stored, dict) or stored.get("key") != same_key:
        return None
    result = stored.get("result")
    if not isinstance(result, dict) or not result or not all(
            _is_accuracy(value) for value in result.values()):
        shown = (", ".join(f"{name}={quoted(value, 24)}" for name, value in result.items())
                 if isinstance(result, dict) else quoted(result, 40))
        print(f"nocollapse: the cached evaluation {path} holds {shown or 'no figures'}, "
              "not accuracies in [0, 1]; it is ignored and computed again",
              file=sys.stderr, flush=True)
        return None
    return {str(name): float(value) for name, value in result.items()}


def _is_accuracy(value: object) -> bool:
    """Every cached figure is an accuracy: a finite number in [0, 1]."""
    return is_finite_number(value) and 0.0 <= value <= 1.0


def write_cached(kind: str, key: Mapping[str, object], result: Mapping[str, object]) -> None:
    """Store ``result`` for ``key`` atomically; a cache that cannot be written is skipped."""
    payload = {"key": json.loads(json.dumps(key, sort_keys=True, default=str)), "result": result}
    # a read-only home must not fail an evaluation that has already succeeded
    with contextlib.suppress(OSError):  # OutputError is an OSError too
        atomic_write_text(_path_for(kind, key), json.dumps(payload, indent=2, sort_keys=True))


def cached(kind: str, key: Mapping[str, object],
           compute: Callable[[], dict[str, float]]) -> tuple[dict[str, float], bool]:
    """``(result, from_cache)``: the stored result for ``key``, else ``compute()`` stored."""
    found = read_cached(kind, key)
    if found is not None:
        return found, True
    result = compute()
    write_cached(kind, key, result)
    return result, False
