"""Which of a set of named tensors hold NaN or infinite values (a diverged or damaged state).

One scan for every reader of weights: a checkpoint resumed or evaluated, a backbone exported
or loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch


def non_finite(tensors: Iterable[tuple[str, object]]) -> Iterator[tuple[str, int]]:
    """``(name, count of NaN or infinite values)`` for each floating-point tensor among
    ``tensors`` that holds any, in their order (lazily: a caller that needs the first stops
    there); entries that are not floating-point tensors are skipped."""
    for name, value in tensors:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                yield name, bad
