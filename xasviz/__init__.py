"""xasviz: spatial domains in 2D X-ray absorption spectroscopy image stacks.

Load a stack (:func:`open_stack`), normalise it (:func:`normalize`), subtract a
reference spectrum (:func:`subtract_reference`), choose the number of domains by
bi-cross-validation (:func:`bcv`), factorize with a one-sided orthogonal NMF
(:func:`onmf`), cross-check against k-means and a peak-top-energy map, decompose
each domain spectrum with Bayesian spectroscopy (:mod:`xasviz.bayes`) and look at
everything in linked Jupyter views or a standalone HTML report.

Reference: H. Tanimoto et al., "Non-negative matrix factorization for 2D-XAS
images of lithium ion batteries", J. Phys. Commun. 5, 115005 (2021),
doi:10.1088/2399-6528/ac3461.
"""

from __future__ import annotations

import importlib

from ._errors import (
    ConvergenceWarning,
    DataQualityWarning,
    StackValidationError,
    XasvizWarning,
)
from ._validation import validate_spectrum, validate_stack
from ._version import __version__

# Public names -> defining module. Imported on first use so that
# ``import xasviz`` stays fast and views (Panel, Bokeh) load only when asked.
_LAZY = {
    "as_stack": "io",
    "open_stack": "io",
    "open_spectrum": "io",
    "save": "io",
    "load": "io",
    "normalize": "preprocess",
    "subtract_reference": "preprocess",
    "to_optical_density": "preprocess",
    "crop": "preprocess",
    "bin_stack": "preprocess",
    "dead_pixel_mask": "preprocess",
    "onmf": "factorize",
    "bcv": "factorize",
    "kmeans": "compare",
    "correlate": "compare",
    "peak_top_energy": "compare",
    "pte_classes": "compare",
    "analyze": "pipeline",
    "report": "report",
    "synthetic": None,
    "bayes": None,
    "views": None,
    "testing": None,
}

__all__ = [
    "__version__",
    "ConvergenceWarning",
    "DataQualityWarning",
    "StackValidationError",
    "XasvizWarning",
    "validate_spectrum",
    "validate_stack",
    *_LAZY,
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'xasviz' has no attribute {name!r}")
    module = _LAZY[name]
    if module is None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)


# The accessor is registered explicitly here (not as a side effect of some
# other import) so that ``stack.xas`` exists as soon as xasviz is imported.
from . import accessor as _accessor  # noqa: E402,F401
