"""The spectral model of Bayesian spectroscopy (paper eqs. 14-15).

``F_K(E) = y0 + H [1/2 + atan((E - E0) / (Gamma/2)) / pi]
+ V(E; A, E_WL, w, eta) + sum_k G_k(E; amplitude_k, centre_k, width_k)``

Symbols and names
-----------------
============  =========  ===========================================  ======
paper         name       meaning                                      unit
============  =========  ===========================================  ======
y0            y0         energy-independent baseline                  int.
H             H          height of the arctan edge step               int.
E0            E0         edge (step) energy                           eV
Gamma         Gamma      full width of the step                       eV
A             A          integrated intensity of the white line       int. eV
E_WL          E_WL       white-line energy (peak-top energy)          eV
omega         w          full width at half maximum of the white line eV
eta           eta        Lorentzian fraction of the pseudo-Voigt      1
G_k height    amplitude_k  peak height of Gaussian k                  int.
G_k centre    centre_k   centre of Gaussian k (ordered, ascending)    eV
G_k width     width_k    full width at half maximum of Gaussian k     eV
============  =========  ===========================================  ======

Parameter vectors are laid out in *model order*
``[y0, H, E0, Gamma, A, E_WL, w, eta, amplitude_1..K, centre_1..K, width_1..K]``
(``8 + 3 K`` values). The samplers work in *sampling space*, the same layout
with ``Gamma``, ``w`` and ``width_k`` replaced by their natural logarithms (the
priors on those are log-uniform, i.e. uniform there).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

__all__ = [
    "N_BASE",
    "param_names",
    "output_names",
    "model_curve",
    "model_components",
    "to_natural",
    "to_sampling",
]

#: Number of parameters of the step + white-line part (eq. 15) plus baseline.
N_BASE = 8
_BASE = ("y0", "H", "E0", "Gamma", "A", "E_WL", "w", "eta")
# Indices (model order) of the parameters sampled on a log scale.
_LOG_BASE = (3, 6)
_FOUR_LN2 = 4.0 * np.log(2.0)
_GAUSS_NORM = np.sqrt(_FOUR_LN2 / np.pi)


def param_names(k: int) -> list[str]:
    """Parameter names in model order for ``k`` Gaussians."""
    names = list(_BASE)
    for group in ("amplitude", "centre", "width"):
        names += [f"{group}_{i}" for i in range(1, k + 1)]
    return names


def output_names(k: int) -> list[str]:
    """Parameter names in the order results report them: ``E_WL`` first.

    White line, then edge step, baseline, then Gaussian by Gaussian
    (``amplitude_1, centre_1, width_1, amplitude_2, ...``).
    """
    names = ["E_WL", "A", "w", "eta", "E0", "H", "Gamma", "y0"]
    for i in range(1, k + 1):
        names += [f"amplitude_{i}", f"centre_{i}", f"width_{i}"]
    return names


def _log_columns(k: int) -> np.ndarray:
    return np.r_[list(_LOG_BASE), np.arange(N_BASE + 2 * k, N_BASE + 3 * k)].astype(int)


def to_natural(theta: np.ndarray, k: int) -> np.ndarray:
    """Sampling space -> model order (exponentiate the log widths).

    Parameters
    ----------
    theta : ndarray, shape (..., 8 + 3 k)
    k : int

    Returns
    -------
    ndarray, same shape
    """
    out = np.array(theta, dtype=np.float64, copy=True)
    cols = _log_columns(k)
    out[..., cols] = np.exp(out[..., cols])
    return out


def to_sampling(params: np.ndarray, k: int) -> np.ndarray:
    """Model order -> sampling space (log of the widths); inverse of to_natural."""
    out = np.array(params, dtype=np.float64, copy=True)
    cols = _log_columns(k)
    out[..., cols] = np.log(out[..., cols])
    return out


def _parts(energy: np.ndarray, p: np.ndarray, k: int):
    """Model parts for a batch of parameter vectors in model order.

    Parameters
    ----------
    energy : ndarray, shape (N,)
    p : ndarray, shape (M, 8 + 3 k), model order (natural widths)

    Returns
    -------
    step : (M, N)   baseline + arctan step (eq. 15, first term, plus y0)
    wl : (M, N)     pseudo-Voigt white line (eq. 15, second term)
    gauss : (M, k, N)  Gaussian peaks (eq. 14)
    """
    e = energy[None, :]
    col = [p[:, i : i + 1] for i in range(N_BASE)]
    y0, height, e0, gamma, area, e_wl, w, eta = col
    step = y0 + height * (0.5 + np.arctan((e - e0) / (0.5 * gamma)) / np.pi)
    # Pseudo-Voigt with unit-area Lorentzian and Gaussian of the same FWHM w.
    d2 = (e - e_wl) ** 2
    half = 0.5 * w
    lor = (half / np.pi) / (d2 + half * half)
    gau = (_GAUSS_NORM / w) * np.exp(-_FOUR_LN2 * d2 / (w * w))
    wl = area * (eta * lor + (1.0 - eta) * gau)
    amp = p[:, N_BASE : N_BASE + k, None]
    cen = p[:, N_BASE + k : N_BASE + 2 * k, None]
    wid = p[:, N_BASE + 2 * k : N_BASE + 3 * k, None]
    gauss = amp * np.exp(-_FOUR_LN2 * ((e[:, None, :] - cen) / wid) ** 2)
    return step, wl, gauss


def _curve(energy: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """Model curve F_K (eq. 14) for a batch, shape (M, N); p in model order."""
    step, wl, gauss = _parts(energy, p, k)
    out = step + wl
    if k:
        out += gauss.sum(axis=1)
    return out


def _exp_floor(x: np.ndarray) -> np.ndarray:
    """``exp(x)`` in place, with ``x`` floored at -700 first.

    Far from its centre a Gaussian's exponent is hugely negative; exp of
    such values underflows to subnormals or zero, which numpy's vectorised
    exp handles on a slow path (6-40 ns a value against 1 ns, measured). The
    floor changes the result by at most exp(-700) ~ 1e-304 per value.
    """
    np.maximum(x, -700.0, out=x)
    return np.exp(x, out=x)


def _residual_chunk(energy, y, th, k, powers, mid) -> np.ndarray:
    """``y - F_K`` for a chunk of sampling-space vectors ``th`` (m, D): (m, N)."""
    y0, height, e0, log_g, area, e_wl, log_w, eta = (
        th[:, i : i + 1] for i in range(N_BASE)
    )
    # Step: y0 + H (1/2 + atan(2 (E - E0) / Gamma) / pi).
    f = np.subtract(energy, e0)
    f *= 2.0 * np.exp(-log_g)
    np.arctan(f, out=f)
    f *= height / np.pi
    f += y0 + 0.5 * height
    # Pseudo-Voigt: A [eta L + (1 - eta) G], both of unit area, FWHM w.
    w = np.exp(log_w)
    d2 = np.subtract(energy, e_wl)
    np.square(d2, out=d2)
    lor = d2 + 0.25 * w * w
    np.reciprocal(lor, out=lor)
    lor *= area * eta * (0.5 * w / np.pi)
    f += lor
    d2 *= -_FOUR_LN2 / (w * w)
    _exp_floor(d2)
    d2 *= area * (1.0 - eta) * _GAUSS_NORM / w
    f += d2
    if k:
        # The exponent -4 ln2 (E - c)^2 / width^2 is a quadratic in E,
        # q0 + q1 u + q2 u^2 with u = E - E_mid, so all of it comes out of
        # one matrix product: a single pass over (m, k, n) instead of
        # four elementwise ones. Centring E keeps the three terms small
        # (|u| <= half the window), so they cancel with no loss that
        # matters: the exponent is exact to ~1e-12 for widths >= 0.1 eV.
        n = energy.size
        rel = th[:, N_BASE + k : N_BASE + 2 * k] - mid
        q2 = -_FOUR_LN2 * np.exp(-2.0 * th[:, N_BASE + 2 * k : N_BASE + 3 * k])
        coef = np.stack([q2 * rel * rel, -2.0 * q2 * rel, q2], axis=-1)
        g = (coef.reshape(-1, 3) @ powers).reshape(th.shape[0], k, n)
        _exp_floor(g)
        f += np.einsum("mk,mkn->mn", th[:, N_BASE : N_BASE + k], g)
    np.subtract(y, f, out=f)
    return f


def _chunks(energy: np.ndarray, theta: np.ndarray, k: int):
    """Chunks of walkers that fit in cache, and the centred energy powers."""
    n = energy.size
    mid = 0.5 * (energy[0] + energy[-1])
    powers = np.stack([np.ones(n), energy - mid, (energy - mid) ** 2])
    chunk = max(32, 2**18 // (max(k, 1) * n))
    return range(0, theta.shape[0], chunk), chunk, powers, mid


def _sum_sq(energy: np.ndarray, y: np.ndarray, theta: np.ndarray, k: int):
    """Sum of squared residuals ``sum_i (y_i - F_K(E_i))^2`` for a batch.

    This is the hot loop of the sampler, so it differs from :func:`_curve` in
    form (not in value): it takes sampling-space parameters directly, works
    in place on chunks of walkers that fit in cache and sums the Gaussians
    with one contraction.

    Parameters
    ----------
    energy, y : ndarray, shape (N,)
    theta : ndarray, shape (M, 8 + 3 k), sampling space

    Returns
    -------
    ndarray, shape (M,)
        ``2 N E_K(theta)`` in the paper's notation.
    """
    out = np.empty(theta.shape[0])
    starts, chunk, powers, mid = _chunks(energy, theta, k)
    for a in starts:
        f = _residual_chunk(energy, y, theta[a : a + chunk], k, powers, mid)
        out[a : a + f.shape[0]] = np.einsum("ij,ij->i", f, f)
    return out


def _residuals(energy: np.ndarray, y: np.ndarray, theta: np.ndarray, k: int):
    """Residuals ``y - F_K`` for a batch, shape (M, N); theta in sampling space.

    The same computation as :func:`_sum_sq`, keeping the residual vectors
    (the peak-redraw move of :mod:`xasviz.bayes.moves` needs them).
    """
    out = np.empty((theta.shape[0], energy.size))
    starts, chunk, powers, mid = _chunks(energy, theta, k)
    for a in starts:
        f = _residual_chunk(energy, y, theta[a : a + chunk], k, powers, mid)
        out[a : a + f.shape[0]] = f
    return out


def _as_vector(params, k: int | None) -> tuple[np.ndarray, int]:
    """Accept a mapping or a DataArray with dim ``param``; return model order."""
    if isinstance(params, xr.DataArray):
        if params.dims != ("param",):
            raise ValueError(
                "params as a DataArray must have the single dim 'param' (e.g. "
                f"result['map']); got dims {params.dims}."
            )
        params = dict(zip(params["param"].values.tolist(), params.values.tolist()))
    if not isinstance(params, Mapping):
        raise TypeError(
            "params must be a mapping of parameter names to values (see "
            "xasviz.bayes.param_names) or a DataArray with dim 'param'; got "
            f"{type(params).__name__}."
        )
    if k is None:
        k = sum(
            1
            for key in params
            if str(key).startswith("centre_") and np.isfinite(params[key])
        )
    names = param_names(k)
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(
            f"params lacks {missing} needed for k={k} Gaussians; expected the "
            f"names {names}."
        )
    vec = np.array([float(params[n]) for n in names])
    if not np.all(np.isfinite(vec)):
        bad = [n for n, v in zip(names, vec) if not np.isfinite(v)]
        raise ValueError(f"params {bad} are not finite; k={k} needs all of {names}.")
    return vec, k


def _energy_array(energy) -> np.ndarray:
    if isinstance(energy, xr.DataArray):
        energy = energy.values
    return np.asarray(energy, dtype=np.float64).ravel()


def model_curve(energy, params, k: int | None = None) -> np.ndarray:
    """Evaluate the model F_K(E) of eqs. 14-15.

    Parameters
    ----------
    energy : array-like, shape (N,)
        Photon energies in eV.
    params : mapping or xarray.DataArray with dim ``param``
        Parameter values by name (see the module docstring), e.g.
        ``result["map"]`` of :func:`xasviz.bayes.decompose`.
    k : int, optional
        Number of Gaussians; by default the number of finite ``centre_*``
        entries (NaN entries are the padding of results with several spectra).

    Returns
    -------
    numpy.ndarray, shape (N,)

    Examples
    --------
    >>> import numpy as np
    >>> p = dict(y0=0, H=1, E0=710, Gamma=1, A=2, E_WL=711, w=2, eta=0.5)
    >>> float(np.round(model_curve([710.0], p)[0], 3))
    1.076
    """
    vec, k = _as_vector(params, k)
    return _curve(_energy_array(energy), vec[None, :], k)[0]


def model_components(energy, params, k: int | None = None) -> dict[str, np.ndarray]:
    """The curves of eq. 14 one by one; they sum to :func:`model_curve`.

    Returns
    -------
    dict of str -> ndarray, shape (N,)
        ``step`` (baseline y0 plus arctan step), ``white_line``
        (pseudo-Voigt), ``gauss_1`` ... ``gauss_k``.
    """
    vec, k = _as_vector(params, k)
    step, wl, gauss = _parts(_energy_array(energy), vec[None, :], k)
    out = {"step": step[0], "white_line": wl[0]}
    for i in range(k):
        out[f"gauss_{i + 1}"] = gauss[0, i]
    return out
