"""Bayesian spectroscopy: edge step, white line and Gaussian peaks (section 2.7).

:func:`decompose` splits an absorption spectrum into an arctan edge step, a
pseudo-Voigt white line and ``K`` Gaussians (paper eqs. 14-15), with ``K``
and the noise level chosen by the Bayes free energy from one replica-exchange
run per ``K``, and reports the MAP, posterior medians and 95 % intervals.
:func:`model_curve` and :func:`model_components` evaluate the model.
"""

from __future__ import annotations

from .decompose import auto_ladder, decompose, noise_estimate
from .model import model_components, model_curve, output_names, param_names
from .priors import Prior

__all__ = [
    "decompose",
    "model_curve",
    "model_components",
    "param_names",
    "output_names",
    "Prior",
    "noise_estimate",
    "auto_ladder",
]
