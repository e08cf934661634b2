"""The inputs of ``eta_c`` read off a training run: data scale ``x`` and target ratio ``tau``.

docs/theory.md#theory-in-a-run. tian2021's threshold with inputs ``X = x I`` and
augmentation ``X' = sigma^2 X`` is ``eta_c = x tau^2 / (4 (1 + sigma^2))``
(:func:`nocollapse.diagnostics.critical_eta`); with ``X`` and ``X'`` sharing eigenvectors
each mode ``j`` has its own, ``eta_c,j = x_j tau^2 / (4 (1 + sigma_j^2))``. A run supplies
them by:

- :func:`data_modes`: ``x_j`` and ``sigma_j^2`` per mode, measured from the data at the
  input of the weight-decayed linear map (several augmented views of each input), on one
  uncentred footing; :func:`mode_critical_etas` turns them into ``eta_c,j``;
- :func:`data_scale`: the monitor's in-run figure, the variance of that input along the
  map's rows (it sees the map's outputs only, so it weights ``X`` by the modes the map
  keeps: it rises as weak modes die; a threshold is read from :func:`data_modes`);
- :func:`target_online_ratio`: ``tau`` as the theory defines it (``Wa = tau W``): the
  magnitude ratio of the target's outputs to the online outputs on the same inputs, not
  clipped;
- :func:`theory_time`: the theory's time ``lr * steps / (1 - momentum)`` of an SGD run;
- :func:`smoothed`: the median of the last :data:`ESTIMATE_WINDOW` estimates, which is
  what the collapse warning quotes;
- ``sigma^2`` is :func:`nocollapse.diagnostics.augmentation_ratio`.

Public names used by other packages (the monitor, ``report``, ``sweep``): keep them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from nocollapse.diagnostics._arrays import ArrayInput, as_array, as_embeddings
from nocollapse.diagnostics.linear_theory import critical_eta
from nocollapse.errors import ConfigError

ESTIMATE_WINDOW = 10  # logs in a smoothed estimate (the monitor logs every 20 steps: 200 steps)


def data_scale(z1: ArrayInput, z2: ArrayInput, weight: ArrayInput,
               bias: ArrayInput | None = None, *, gain: float = 1.0) -> float:
    """``x``: the data scale of the linear theory's threshold, from one batch of a run.

    ``z1, z2``: ``(B, d)`` online outputs of two views of the same ``B`` inputs, produced
    by a last linear map ``z = weight h + bias`` (``weight`` ``(d, n)``, ``bias`` ``(d,)``
    or ``None``). With ``X`` the second moment of the map's mean-view input, the two
    views' cross moment is ``E[<z1 - b, z2 - b>] = tr(W X W^T)`` (the augmentation
    noise of the views is independent), so ``tr(W X W^T) / ||W||_F^2`` is ``X``'s
    variance along ``W``'s rows: exactly ``x`` when ``X = x I``.

    ``gain``: the training loss's gradient over the theory's, one direction (the loss
    table's ``LossDefinition.gain``: 2 for ``l2``), times 2 for a sum of two directions.
    Unchanged by a rescaling ``(W, b) -> c (W, b)`` (a normalised loss's cosines do not
    see it either; an earlier version divided by ``rms|p| rms|z_t|`` and so read
    ``1 / ||W||^2``, which weight decay sets). It weights ``X`` by ``W``'s rows, so it
    is not the data's spectrum: :func:`data_modes` is. Returns ``nan`` when ``weight`` is
    zero or the cross moment is not positive (a collapsed batch).
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
    if not gain > 0:
        raise ConfigError(f"gain={gain!r} must be > 0")
    cross = float(np.mean(np.sum(a * b, axis=1)))
    norm2 = float(np.sum(w**2))
    if not (cross > 0 and norm2 > 0):
        return math.nan
    return gain * cross / norm2


def target_online_ratio(online: ArrayInput, target: ArrayInput) -> float:
    """``tau``: the target/online weight ratio of the theory (``Wa = tau W``).

    ``online``, ``target``: ``(B, d)`` outputs of the online and the target network on
    the **same** inputs. ``tau = ||target|| / ||online||`` (Frobenius over the batch):
    for a linear network it is ``sqrt(tr(Wa X Wa^T) / tr(W X W^T))``, ``tau`` exactly
    when ``Wa = tau W``. Not clipped: ``tau > 1`` (an online network that shrinks under
    its weight decay faster than the EMA follows) is a value of the theory's equation,
    and raises ``eta_c`` as ``tau^2``. A magnitude ratio: the least-squares
    ``<target, online> / ||online||^2`` (the earlier estimate) also carries the cosine
    between the two, and read 0.54 where the target's last layer was 2.08 times the
    online's. ``nan`` for an all-zero ``online``. SimSiam's target is the online output: 1.
    """
    z, t = as_embeddings(online, "online"), as_embeddings(target, "target")
    if z.shape != t.shape:
        raise ConfigError(f"online {z.shape} and target {t.shape} must have the same shape")
    norm2 = float(np.sum(z * z))
    if norm2 <= 0:
        return math.nan
    return math.sqrt(float(np.sum(t * t)) / norm2)


def theory_time(lr: float, steps: float, momentum: float = 0.0) -> float:
    """The theory's time of ``steps`` SGD steps: ``lr * steps / (1 - momentum)``.

    Heavy-ball momentum ``m`` multiplies a constant gradient's steady step by
    ``1 / (1 - m)``, so the flow's time (in which ``eta`` and ``eta_c`` are rates) runs at
    ``lr / (1 - m)`` a step. A horizon ``2 eta t`` of a few units lets the weight decay act.
    """
    if not lr > 0 or steps < 0:
        raise ConfigError(f"lr={lr!r} must be > 0 and steps={steps!r} >= 0")
    if not 0.0 <= momentum < 1.0:
        raise ConfigError(f"momentum={momentum!r} must lie in [0, 1)")
    return lr * steps / (1.0 - momentum)


@dataclass(frozen=True)
class DataModes:
    """The data at a linear map's input, per eigenmode of ``X = E[hbar hbar^T]``.

    ``x``: ``X``'s eigenvalues, descending (uncentred: the theory's ``X`` is a second
    moment); ``sigma2``: ``u_j^T X' u_j / x_j``, the augmentation variance along mode ``j``
    over its data variance (``X' = E Var(h | input)``); ``basis``: the ``u_j`` as columns.
    Modes with ``x_j <= 0`` (sampling noise) have ``sigma2`` ``inf``.
    """

    x: np.ndarray
    sigma2: np.ndarray
    basis: np.ndarray


def data_modes(views: ArrayInput) -> DataModes:
    """``x_j``, ``sigma_j^2`` of the data at a linear map's input from ``(N, q, n)`` views.

    ``views[i, k]``: the map's input ``h`` for view ``k`` of input ``i`` (``q >= 2``
    augmentations each). ``hbar_i`` is the mean of the ``q`` views; its second moment
    carries ``X' / q``, so ``X = mean hbar hbar^T - X'/q`` with ``X'`` the views' unbiased
    covariance around their own mean (``q - 1`` degrees of freedom), i.e. the mean
    product of two different views of one input. The map's weights do not enter: a
    rescaled map has the same modes.
    """
    h = as_array(views)
    if h.ndim != 3 or h.shape[0] < 2 or h.shape[1] < 2:
        raise ConfigError(f"data_modes needs views of shape (N >= 2 inputs, q >= 2 views, "
                          f"n); got {h.shape}")
    n_inputs, q, _ = h.shape
    means = h.mean(axis=1)
    spread = (h - means[:, None, :]).reshape(-1, h.shape[2])
    noise = spread.T @ spread / (n_inputs * (q - 1))
    second = means.T @ means / n_inputs - noise / q
    x, basis = np.linalg.eigh((second + second.T) / 2)
    x, basis = x[::-1].copy(), basis[:, ::-1].copy()
    along = np.einsum("ij,ik,kj->j", basis, noise, basis)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma2 = np.where(x > 0, along / np.where(x > 0, x, 1.0), math.inf)
    return DataModes(x=x, sigma2=sigma2, basis=basis)


def mode_critical_etas(modes: DataModes, tau: float = 1.0, gain: float = 1.0) -> np.ndarray:
    """``eta_c,j = gain x_j tau^2 / (4 (1 + sigma_j^2))`` per mode (0 where ``x_j <= 0``).

    Each mode of the linear theory with ``X``, ``X'`` sharing eigenvectors obeys
    ``dp/dt = x_j p^2 [tau - (1 + sigma_j^2) p] - eta p`` on its invariant, so a weight
    decay above ``eta_c,j`` collapses mode ``j``: above the smallest modes' thresholds
    the collapse is dimensional, above the largest complete. ``gain``: the training loss's
    gradient over the theory's (:func:`data_scale`).
    """
    if not gain > 0:
        raise ConfigError(f"gain={gain!r} must be > 0")
    per_unit = critical_eta(np.where(np.isfinite(modes.sigma2), modes.sigma2, 0.0), tau)
    return np.where(modes.x > 0, gain * np.clip(modes.x, 0.0, None) * per_unit, 0.0)


def smoothed(values: Iterable[float], window: int = ESTIMATE_WINDOW) -> float:
    """The median of the last ``window`` finite ``values`` (``nan`` when there are none).

    A median, not a mean: one log taken during a loss spike moves it by at most one
    rank. ``window >= 1``.
    """
    if window < 1:
        raise ConfigError(f"window={window!r} must be >= 1")
    finite = [float(v) for v in values if math.isfinite(v)]
    return statistics.median(finite[-window:]) if finite else math.nan
