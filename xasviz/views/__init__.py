"""Interactive views of xasviz results (Panel + HoloViews).

Each view is a parameterised :class:`panel.viewable.Viewer`: its state lives
in typed params (the selected pixel, domain, rank, thresholds), so it can be
driven from code as well as by clicks. Views only display numbers that the
analysis functions computed; no fitting happens in a callback.

Call :func:`extension` once in a notebook: it bundles the JavaScript so the
views render with no network.
"""

from ._common import extension
from .bayes import BayesView
from .crosscheck import CrossCheckView, PTEView
from .domains import DomainExplorer
from .rank import RankSelector
from .serve import explore, serve
from .stack import StackExplorer

__all__ = [
    "extension",
    "explore",
    "serve",
    "StackExplorer",
    "DomainExplorer",
    "RankSelector",
    "CrossCheckView",
    "PTEView",
    "BayesView",
]
