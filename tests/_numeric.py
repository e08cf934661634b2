"""Shared test helpers: finite differences, and float tolerances derived from the dtype's
precision and the problem's conditioning (never from what one CPU printed).

The bounds are worst-case first-order error bounds (Higham, *Accuracy and Stability of
Numerical Algorithms*, 2nd ed.), so they hold on every BLAS/LAPACK code path (MKL's
``MKL_CBWR=AVX512/AVX2/COMPATIBLE``, OpenBLAS): a path may round differently, never worse
than the bound. Each test says in a comment which bound it uses and why.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch


def numeric_grad(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """``df/dx`` by central differences, entry by entry (shape of ``x``)."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[idx] = h
        grad[idx] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


def eps(dtype: torch.dtype = torch.float32) -> float:
    """Machine epsilon of ``dtype`` (twice the unit roundoff ``u``)."""
    return float(torch.finfo(dtype).eps)


def unit_roundoff(dtype: torch.dtype = torch.float32) -> float:
    """``u``: the largest relative error of one rounding to ``dtype``."""
    return eps(dtype) / 2


def gamma(n: int, dtype: torch.dtype = torch.float32) -> float:
    """Higham's ``gamma_n = n u / (1 - n u)``: the relative error bound of an ``n``-term
    sum or dot product accumulated in ``dtype`` (any order, so any SIMD path)."""
    nu = n * unit_roundoff(dtype)
    return nu / (1 - nu)


def gram_error(z: torch.Tensor, dtype: torch.dtype = torch.float32) -> float:
    """Bound on ``||fl(Z^T Z / B) - Z^T Z / B||_2`` for ``Z`` (``B x d``, exact values given
    in float64) rounded to ``dtype`` and multiplied in it: the rounding of ``Z`` (``2u``
    relative on each product) plus ``gamma_B`` of the accumulation, each times
    ``|| |Z|^T |Z| ||_2 <= ||Z||_F^2`` (Higham, Thm 3.5)."""
    batch = z.shape[0]
    bound = (2 * unit_roundoff(dtype) + gamma(batch + 1, dtype))
    return bound * float((z.double() ** 2).sum()) / batch


def eigh_error(norm: float, d: int, dtype: torch.dtype = torch.float32) -> float:
    """Backward error of a symmetric eigensolver working in ``dtype`` on a ``d x d`` matrix
    of 2-norm ``norm``: the computed eigenpairs are exact for ``F + E`` with
    ``||E||_2 <= p(d) eps ||F||_2`` (LAPACK Users' Guide 4.7); ``p(d) = d`` taken, a
    generous choice of its "modestly growing function"."""
    return d * eps(dtype) * norm


def normalised_error(delta: float, top: float) -> float:
    """``||F'/s' - F/s||_2`` for ``||F' - F||_2 <= delta`` and ``s = s_max`` (so
    ``|s' - s| <= delta`` by Weyl): ``delta/s`` from the numerator, ``delta/s`` from the
    normaliser (first order), and ``delta/s`` more where the negative eigenvalues of ``F'``
    (``>= -delta`` for a PSD ``F``) are clamped to 0."""
    return 3 * delta / top


def sqrt_function_error(delta: float) -> float:
    """``||A^{1/2} - B^{1/2}||_2 <= ||A - B||_2^{1/2}`` for PSD ``A, B`` (the square root is
    operator monotone; Bhatia, *Matrix Analysis*, X.1): how a perturbation near a zero
    eigenvalue is amplified by the square root."""
    return math.sqrt(delta)


def lipschitz_function_error(lipschitz: float, delta: float, d: int) -> float:
    """Entrywise bound on ``f(A) - f(B)`` for symmetric ``d x d`` ``A, B`` with
    ``||A - B||_2 <= delta`` and ``f`` ``lipschitz``-Lipschitz on their spectra:
    ``|f(A) - f(B)|_max <= ||f(A) - f(B)||_F <= L ||A - B||_F <= L sqrt(d) delta``
    (Kittaneh 1985: Lipschitz functions are Lipschitz in the Frobenius norm)."""
    return lipschitz * math.sqrt(d) * delta


def rounding_error(value: torch.Tensor, dtype: torch.dtype = torch.float32) -> float:
    """The rounding of ``value`` to ``dtype`` (stored results): ``u`` times its largest entry."""
    return unit_roundoff(dtype) * float(value.abs().max())


def forward_error_bound(module: torch.nn.Module, x: torch.Tensor,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Entrywise first-order bound on the rounding error of ``module``'s eval-mode forward
    pass on ``x`` in ``dtype`` (any kernel, any batch split).

    A convolution or linear layer of fan-in ``K`` adds at most ``gamma_{K+1} |W| |h|`` (a
    dot product plus the bias; Higham Thm 3.5), a batch norm (eval: one affine map), a
    residual sum or an activation a few ``u``, a pooling window of ``n`` cells
    ``gamma_n``. Later layers carry an error at most by their absolute values (ReLU and
    max-pooling are 1-Lipschitz), so the error is at most the sum of those relative
    terms times the forward pass of the network with absolute weights on ``|x|``.
    """
    absolute = copy.deepcopy(module).double().eval()
    relative = 0.0
    window = x.shape[-1] * x.shape[-2] if x.dim() == 4 else 1  # the largest pooling window
    for layer in absolute.modules():
        if isinstance(layer, torch.nn.Conv2d | torch.nn.Linear):
            relative += gamma(layer.weight[0].numel() + 1, dtype)
            layer.weight.data.abs_()
            if layer.bias is not None:
                layer.bias.data.abs_()
        elif isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            assert layer.running_mean is not None and layer.running_var is not None
            scale = 1 / (layer.running_var + layer.eps).sqrt()
            if layer.affine:
                scale = scale * layer.weight.data
            shift = -layer.running_mean * scale + (layer.bias.data if layer.affine else 0)
            if layer.affine:  # y = |scale| x + |shift|
                layer.running_mean.zero_()
                layer.running_var.fill_(1 - layer.eps)
                layer.weight.data.copy_(scale.abs())
                layer.bias.data.copy_(shift.abs())
            else:  # scale > 0 already: move the mean so the shift is |shift|
                layer.running_mean.copy_(-shift.abs() / scale)
            relative += 4 * unit_roundoff(dtype)
        elif isinstance(layer, torch.nn.modules.pooling._AdaptiveAvgPoolNd
                        | torch.nn.modules.pooling._AvgPoolNd):
            relative += gamma(window, dtype)
        elif not list(layer.children()):
            relative += 2 * unit_roundoff(dtype)  # an activation, a residual sum, a copy
    with torch.no_grad():
        magnitude = absolute(x.double().abs())
    return relative * magnitude
