"""Priors of the spectral model (paper section 2.7) and their defaults.

All priors are proper, so that the Bayes free energy is defined. The paper
fixes one of them, ``E_WL - E0 ~ Normal(0, 4.5 eV)``; the others are weakly
informative and scaled from the spectrum: its energy window
``[E_min, E_max]`` of span ``L``, median energy step ``dE``, intensity range
``R = max(y) - min(y)`` and starting level ``y_start`` (median of the first
five points).

==============  ======================================  =====================
parameter       prior                                   default
==============  ======================================  =====================
y0              Normal(mean, sd)                        (y_start, R)
H               Uniform(low, high)                      (0, 2 R)
E0              Uniform(low, high)                      (E_min, E_max)
Gamma           LogUniform(low, high)                   (dE, L / 4)
A               Uniform(low, high)                      (0, R L / 4)
E_WL - E0       Normal(mean, sd)                        (0, 4.5 eV)
w               LogUniform(low, high)                   (dE, L / 4)
eta             Uniform(low, high)                      (0, 1)
amplitude_k     Uniform(low, high), each k              (0, R / 2)
centre_k        ordered Uniform(low, high)              (E_min, E_max)
width_k         LogUniform(low, high), each k           (dE, L / 4)
==============  ======================================  =====================

``centre_1 < centre_2 < ... < centre_K``: the K centres are the order
statistics of K uniform draws (density ``K! / (high - low)^K``), so that the
Gaussians cannot swap labels.

The Gaussian priors are the tightest of the defaults on purpose: peaks other
than the white line are taken to be no taller than half the spectrum's range
and no wider than a quarter of its window. Wider boxes cost the free energy
of every extra Gaussian ``ln`` of the box ratio (they penalise larger K
more) and make the intermediate rungs of the tempered runs much slower to
mix. Override them when a spectrum has taller or broader features.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

from .._errors import StackValidationError
from .model import N_BASE

__all__ = ["Prior", "SpectralPrior"]

_PAIR_FIELDS = (
    "y0",
    "H",
    "E0",
    "Gamma",
    "A",
    "E_WL_minus_E0",
    "w",
    "eta",
    "amplitude",
    "centre",
    "width",
)
_LOG_FIELDS = ("Gamma", "w", "width")
_NORMAL_FIELDS = ("y0", "E_WL_minus_E0")


@dataclasses.dataclass(frozen=True)
class Prior:
    """Prior settings; ``None`` means the data-scaled default (module table).

    Each field is a pair: ``(mean, sd)`` for the normal priors (``y0``,
    ``E_WL_minus_E0``), ``(low, high)`` for the others (log-uniform for the
    widths ``Gamma``, ``w``, ``width``). ``amplitude``, ``centre`` and
    ``width`` apply to every Gaussian.

    Examples
    --------
    >>> Prior(E0=(7705.0, 7715.0), width=(0.5, 5.0))  # doctest: +ELLIPSIS
    Prior(y0=None, H=None, E0=(7705.0, 7715.0), ...)
    """

    y0: tuple[float, float] | None = None
    H: tuple[float, float] | None = None
    E0: tuple[float, float] | None = None
    Gamma: tuple[float, float] | None = None
    A: tuple[float, float] | None = None
    E_WL_minus_E0: tuple[float, float] | None = (0.0, 4.5)
    w: tuple[float, float] | None = None
    eta: tuple[float, float] | None = (0.0, 1.0)
    amplitude: tuple[float, float] | None = None
    centre: tuple[float, float] | None = None
    width: tuple[float, float] | None = None

    @classmethod
    def coerce(cls, prior) -> Prior:
        """Turn ``None``, a dict or a Prior into a Prior, checking the keys."""
        if prior is None:
            return cls()
        if isinstance(prior, Prior):
            return prior
        if not isinstance(prior, Mapping):
            raise TypeError(
                "prior must be None, a dict or a xasviz.bayes.Prior; got "
                f"{type(prior).__name__}."
            )
        unknown = sorted(set(prior) - set(_PAIR_FIELDS))
        if unknown:
            raise ValueError(
                f"Unknown prior keys {unknown}; the keys are {list(_PAIR_FIELDS)}."
            )
        return cls(**{k: tuple(v) if v is not None else None for k, v in prior.items()})

    def resolve(self, energy: np.ndarray, y: np.ndarray) -> dict[str, tuple]:
        """Numbers for every field, the defaults scaled from one spectrum.

        Parameters
        ----------
        energy, y : ndarray, shape (N,)

        Returns
        -------
        dict of str -> (float, float)

        Raises
        ------
        ValueError
            When a pair is malformed or a prior cannot cover the data (energy
            priors outside the energy window, empty ranges).
        """
        e_min, e_max = float(energy[0]), float(energy[-1])
        span = e_max - e_min
        de = float(np.median(np.diff(energy)))
        r = float(np.ptp(y))
        y_start = float(np.median(y[:5]))
        default = {
            "y0": (y_start, r),
            "H": (0.0, 2.0 * r),
            "E0": (e_min, e_max),
            "Gamma": (de, span / 4.0),
            "A": (0.0, r * span / 4.0),
            "E_WL_minus_E0": (0.0, 4.5),
            "w": (de, span / 4.0),
            "eta": (0.0, 1.0),
            "amplitude": (0.0, 0.5 * r),
            "centre": (e_min, e_max),
            "width": (de, span / 4.0),
        }
        out = {}
        for name in _PAIR_FIELDS:
            given = getattr(self, name)
            pair = default[name] if given is None else given
            out[name] = _check_pair(name, pair)
        for name in ("E0", "centre"):
            lo, hi = out[name]
            if hi <= e_min or lo >= e_max:
                raise ValueError(
                    f"The prior of {name} is ({lo}, {hi}) eV but the spectrum "
                    f"covers {e_min}..{e_max} eV: the prior excludes the data. "
                    f"Give a range that overlaps the energy window, or leave "
                    f"{name} out of prior= for the default."
                )
        if not 0.0 <= out["eta"][0] < out["eta"][1] <= 1.0:
            raise ValueError(
                f"The prior of eta must lie within [0, 1]; got {out['eta']}."
            )
        return out


def _check_pair(name: str, pair) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise ValueError(
            f"The prior of {name} must be a pair of numbers; got {pair!r}."
        ) from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"The prior of {name} must be finite; got {pair!r}.")
    if name in _NORMAL_FIELDS:
        if b <= 0:
            raise ValueError(
                f"The prior of {name} is (mean, sd) with sd > 0; got {pair!r}."
            )
    elif b <= a:
        raise ValueError(
            f"The prior of {name} is (low, high) with low < high; got {pair!r}."
        )
    elif name in _LOG_FIELDS and a <= 0:
        raise ValueError(
            f"The prior of {name} is log-uniform and needs low > 0; got {pair!r}."
        )
    return (a, b)


class SpectralPrior:
    """The normalised prior density of eq. 14's parameters in sampling space.

    Parameters
    ----------
    bounds : dict
        Output of :meth:`Prior.resolve`.
    k : int
        Number of Gaussians.
    ordered : bool
        True (default): the centres are ordered, ``centre_1 < ... < centre_K``,
        with the order-statistics density ``K! / (high - low)^K``, so that
        labels cannot swap. False: the K centres are independent uniforms
        (density ``1 / (high - low)^K``) and the Gaussians are exchangeable.
        The model curve is symmetric under any relabelling of the Gaussians,
        so both priors give the same evidence ``Z`` (the unordered posterior
        is K! copies of the ordered one, each with ``1 / K!`` of the prior
        mass); the tempered runs sample the unordered form because walkers
        then never have a move rejected for crossing another centre.

    Notes
    -----
    Implements the two methods the tempering code needs:
    ``sample(rng, n) -> (n, D)`` (exact, independent draws) and
    ``logpdf(theta (M, D)) -> (M,)``, ``-inf`` outside the support.
    """

    def __init__(self, bounds: dict[str, tuple], k: int, ordered: bool = True):
        self.bounds = bounds
        self.k = int(k)
        self.ordered = bool(ordered)
        self.ndim = N_BASE + 3 * self.k
        # Uniform boxes in sampling space: (column, low, high).
        b = bounds
        box = [
            (1, *b["H"]),
            (2, *b["E0"]),
            (3, *np.log(b["Gamma"])),
            (4, *b["A"]),
            (6, *np.log(b["w"])),
            (7, *b["eta"]),
        ]
        k0 = N_BASE
        for i in range(self.k):
            box.append((k0 + i, *b["amplitude"]))
            box.append((k0 + self.k + i, *b["centre"]))
            box.append((k0 + 2 * self.k + i, *np.log(b["width"])))
        self._cols = np.array([c for c, _, _ in box], dtype=int)
        self._low = np.array([lo for _, lo, _ in box])
        self._high = np.array([hi for _, _, hi in box])
        # Box densities; ordering multiplies the centres' joint density by K!
        # (order statistics of K uniforms).
        self._log_norm = float(-np.sum(np.log(self._high - self._low)))
        if self.ordered:
            self._log_norm += math.lgamma(self.k + 1)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Independent draws, shape (n, D), in sampling space."""
        theta = np.empty((n, self.ndim))
        theta[:, self._cols] = rng.uniform(self._low, self._high, (n, len(self._cols)))
        m, s = self.bounds["y0"]
        theta[:, 0] = rng.normal(m, s, n)
        m, s = self.bounds["E_WL_minus_E0"]
        theta[:, 5] = theta[:, 2] + rng.normal(m, s, n)
        if self.ordered and self.k > 1:
            c = slice(N_BASE + self.k, N_BASE + 2 * self.k)
            theta[:, c] = np.sort(theta[:, c], axis=1)
        return theta

    def logpdf(self, theta: np.ndarray) -> np.ndarray:
        """Log prior density in sampling space, shape (M,); -inf off support."""
        x = theta[:, self._cols]
        inside = np.all((x >= self._low) & (x <= self._high), axis=1)
        if self.ordered and self.k > 1:
            c = theta[:, N_BASE + self.k : N_BASE + 2 * self.k]
            inside &= np.all(np.diff(c, axis=1) > 0, axis=1)
        m, s = self.bounds["y0"]
        lp = _normal_logpdf(theta[:, 0], m, s)
        m, s = self.bounds["E_WL_minus_E0"]
        lp += _normal_logpdf(theta[:, 5] - theta[:, 2], m, s)
        lp += self._log_norm
        return np.where(inside, lp, -np.inf)

    def blocks(self) -> list[np.ndarray]:
        """Groups of coupled coordinates: the step, the white line, and one
        group per Gaussian (its amplitude, centre and width)."""
        out = [np.arange(0, 4), np.arange(4, N_BASE)]
        for i in range(self.k):
            out.append(N_BASE + i + self.k * np.arange(3))
        return out

    def lower_upper(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds per column for a local optimiser (inf for normal priors)."""
        lo = np.full(self.ndim, -np.inf)
        hi = np.full(self.ndim, np.inf)
        lo[self._cols] = self._low
        hi[self._cols] = self._high
        return lo, hi


def _normal_logpdf(x, mean, sd):
    z = (x - mean) / sd
    return -0.5 * z * z - np.log(sd) - 0.5 * np.log(2.0 * np.pi)


def check_spectrum_for_prior(energy: np.ndarray, y: np.ndarray, k_max: int) -> None:
    """Refuse spectra the model cannot be fitted to; messages name the fix."""
    n = y.size
    need = N_BASE + 3 * k_max + 1
    if n < need:
        raise StackValidationError(
            f"The spectrum has {n} points but the model with k_max={k_max} "
            f"Gaussians has {N_BASE + 3 * k_max} parameters (plus the noise "
            f"level); it needs at least {need} points. Lower k_max (at most "
            f"{max((n - 1 - N_BASE) // 3, -1)}) or use a finer energy grid."
        )
    if np.ptp(y) <= 0:
        raise StackValidationError(
            "The spectrum is flat (every value equal): there is no edge step or "
            "peak to decompose."
        )
