"""The inputs of ``eta_c`` read off a training run: data scale ``x`` and target ratio ``tau``.

docs/theory.md#theory-in-a-run. tian2021's threshold with inputs ``X = x I`` and
augmentation ``X' = sigma^2 X`` is ``eta_c = x tau^2 / (4 (1 + sigma^2))``
(:func:`nocollapse.diagnostics.critical_eta`). A run supplies the three by:

- :func:`data_scale`: ``x``, the variance of the input of the linear map that produces
  the embeddings, along that map's rows, times the gradient scale of the training loss
  relative to the theory's (:attr:`~nocollapse.diagnostics.loss_definitions.LossDefinition.gain`);
- :func:`target_online_ratio`: ``tau`` as the theory defines it (``Wa = tau W``), the
  least-squares ratio of the target's outputs to the online outputs on the same inputs,
  kept in the theory's range ``[0, 1]``;
- :func:`smoothed`: the median of the last :data:`ESTIMATE_WINDOW` estimates, which is
  what the collapse warning quotes;
- ``sigma^2`` is :func:`nocollapse.diagnostics.augmentation_ratio`.

Public names used by other packages (the monitor, ``report``, ``sweep``): keep them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

import numpy as np

from nocollapse.diagnostics._arrays import ArrayInput, as_array, as_embeddings
from nocollapse.errors import ConfigError

ESTIMATE_WINDOW = 10  # logs in a smoothed estimate (the monitor logs every 20 steps: 200 steps)
TAU_RANGE = (0.0, 1.0)  # the theory's range of tau (docs/theory.md#theory-in-a-run)


def data_scale(z1: ArrayInput, z2: ArrayInput, weight: ArrayInput,
               bias: ArrayInput | None = None, *, prediction: ArrayInput | None = None,
               target: ArrayInput | None = None, gain: float = 1.0) -> float:
    """``x``: the data scale of the linear theory's threshold, from one batch of a run.

    ``z1, z2``: ``(B, d)`` online outputs of two views of the same ``B`` inputs, produced
    by a last linear map ``z = weight h + bias`` (``weight`` ``(d, n)``, ``bias`` ``(d,)``
    or ``None``). With ``X`` the second moment of the map's mean-view input, the two
    views' cross moment is ``E[<z1 - b, z2 - b>] = tr(W X W^T)`` (the augmentation
    noise of the views is independent), so ``tr(W X W^T) / ||W||_F^2`` is ``X``'s
    variance along ``W``'s rows: exactly ``x`` when ``X = x I``.

    ``gain``: the training loss's gradient over the theory's, one direction (the loss
    table's ``LossDefinition.gain``: 2 for ``l2``), times 2 for a sum of two directions.
    ``prediction``, ``target`` (``(B, d)``, both or neither): a normalised (cosine)
    loss, whose gradient carries ``1 / (|p| |z_t|)`` (bao2023); the result is divided
    by ``rms|p| rms|z_t|``. Returns ``nan`` when ``weight`` is zero or the cross moment
    is not positive (a collapsed batch).
    """
    a, b = as_embeddings(z1, "z1"), as_embeddings(z2, "z2")
    w = as_array(weight)
    if a.shape != b.shape or w.ndim != 2 or w.shape[0] != a.shape[1]:
        raise ConfigError(f"z1 {a.shape}, z2 {b.shape} and weight {w.shape}: the views "
                          "must have equal shapes (B, d) and weight the shape (d, n)")
    if bias is not None:
        offset = as_array(bias).ravel()
        if offset.shape != (a.shape[1],):
            raise ConfigError(f"bias {offset.shape} must have shape ({a.shape[1]},)")
        a, b = a - offset, b - offset
    if (prediction is None) != (target is None):
        raise ConfigError("data_scale: give both prediction and target (normalised loss) "
                          "or neither")
    if not gain > 0:
        raise ConfigError(f"gain={gain!r} must be > 0")
    cross = float(np.mean(np.sum(a * b, axis=1)))
    norm2 = float(np.sum(w**2))
    if not (cross > 0 and norm2 > 0):
        return math.nan
    scale = gain * cross / norm2
    if prediction is not None and target is not None:
        p, t = as_embeddings(prediction, "prediction"), as_embeddings(target, "target")
        norms = math.sqrt(float(np.mean(np.sum(p**2, axis=1)))
                          * float(np.mean(np.sum(t**2, axis=1))))
        scale = scale / norms if norms > 0 else math.nan
    return scale


def target_online_ratio(online: ArrayInput, target: ArrayInput) -> float:
    """``tau``: the target/online weight ratio of the theory (``Wa = tau W``), in ``[0, 1]``.

    ``online``, ``target``: ``(B, d)`` outputs of the online and the target network on
    the **same** inputs. The least-squares ``tau`` with ``target ~ tau online`` is
    ``<target, online> / ||online||^2`` (summed over the batch); for a linear network
    with ``Wa = tau W`` it is ``tau`` exactly, and for ``Wa`` not proportional to ``W``
    it is ``<Wa X, W> / <W X, W>``. Clipped to ``[0, 1]``: the EMA keeps ``Wa`` between
    the online network's past and present, so ``tau > 1`` means the online network is
    shrinking, where the threshold's tau is read as 1 (the largest ``eta_c``); ``nan`` for
    an all-zero ``online``. A stop-gradient target (SimSiam) is the online output: 1.
    """
    z, t = as_embeddings(online, "online"), as_embeddings(target, "target")
    if z.shape != t.shape:
        raise ConfigError(f"online {z.shape} and target {t.shape} must have the same shape")
    norm2 = float(np.sum(z * z))
    if norm2 <= 0:
        return math.nan
    return min(max(float(np.sum(t * z)) / norm2, TAU_RANGE[0]), TAU_RANGE[1])


def smoothed(values: Iterable[float], window: int = ESTIMATE_WINDOW) -> float:
    """The median of the last ``window`` finite ``values`` (``nan`` when there are none).

    A median, not a mean: one log taken during a loss spike moves it by at most one
    rank. ``window >= 1``.
    """
    if window < 1:
        raise ConfigError(f"window={window!r} must be >= 1")
    finite = [float(v) for v in values if math.isfinite(v)]
    return statistics.median(finite[-window:]) if finite else math.nan
