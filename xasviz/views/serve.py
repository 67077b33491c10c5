"""One page with every view a result holds, and a loopback-only server."""

from __future__ import annotations

import logging
import socket

import panel as pn
import xarray as xr

from .._errors import StackValidationError
from ._common import extension, get_group
from .bayes import BayesView
from .crosscheck import CrossCheckView, PTEView
from .domains import DomainExplorer
from .rank import RankSelector
from .stack import StackExplorer

__all__ = ["explore", "serve"]

logger = logging.getLogger(__name__)


def explore(results) -> pn.viewable.Viewable:
    """Tabs with every view the results hold.

    Parameters
    ----------
    results : xarray.DataTree, xarray.Dataset or xarray.DataArray
        A results tree of :func:`xasviz.analyze` (each group found gets its
        tab: stack, BCV, domains, k-means, PTE, Bayes), an ONMF Dataset, or a
        stack (dims y, x, energy).
    """
    extension()
    if isinstance(results, xr.DataArray):
        return StackExplorer(results)
    if isinstance(results, xr.Dataset):
        if "domains" in results and "spectra" in results:
            return DomainExplorer(results)
        if "stack" in results:
            return StackExplorer(results["stack"])
        raise StackValidationError(
            "explore needs a stack, an onmf Dataset or a results DataTree; got a "
            f"Dataset with {sorted(map(str, results.data_vars))}."
        )
    if not isinstance(results, xr.DataTree):
        raise TypeError(
            "explore needs an xarray DataTree, Dataset or DataArray; got "
            f"{type(results).__name__}."
        )
    tabs = []
    if get_group(results, "input") is not None:
        tabs.append(("Stack", StackExplorer.from_results(results)))
    if get_group(results, "bcv") is not None:
        tabs.append(("Rank (BCV)", RankSelector.from_results(results)))
    if get_group(results, "onmf") is not None:
        tabs.append(("Domains", DomainExplorer.from_results(results)))
    if get_group(results, "correlation_kmeans") is not None:
        tabs.append(("ONMF vs k-means", CrossCheckView.from_results(results)))
    if get_group(results, "pte") is not None:
        tabs.append(("Peak-top energy", PTEView.from_results(results)))
    if get_group(results, "bayes") is not None:
        tabs.append(("Bayes", BayesView.from_results(results)))
    if not tabs:
        raise StackValidationError(
            "the results tree holds none of the groups /input, /bcv, /onmf, "
            "/correlation_kmeans, /pte, /bayes."
        )
    return pn.Tabs(*tabs, dynamic=True)


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def serve(
    obj,
    port: int = 5006,
    address: str = "127.0.0.1",
    show: bool = False,
    threaded: bool = False,
    title: str = "xasviz",
):
    """Serve a view (or everything in a result) with Panel on the loopback.

    Parameters
    ----------
    obj : view, xarray.DataTree, Dataset or DataArray
        A view object, or anything :func:`explore` accepts.
    port : int
        TCP port; 0 picks a free one.
    address : str
        Interface to listen on. Only loopback addresses are accepted: the
        server has no authentication.
    show : bool
        Open a browser tab.
    threaded : bool
        Run in a background thread and return the server (stop it with
        ``server.stop()``); otherwise block until interrupted.

    Returns
    -------
    The Panel server (when ``threaded``).
    """
    if address not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(
            f"address must be a loopback address ('127.0.0.1'); got {address!r}. "
            "The server has no authentication; reach it from elsewhere through an "
            "SSH tunnel (ssh -L 5006:127.0.0.1:5006 host)."
        )
    if not isinstance(obj, pn.viewable.Viewable | pn.viewable.Viewer):
        obj = explore(obj)
    port = int(port) or _free_port(address)
    logger.info("serving xasviz views on http://%s:%d/", address, port)
    return pn.serve(
        obj,
        port=port,
        address=address,
        websocket_origin=[f"{address}:{port}", f"localhost:{port}"],
        show=show,
        threaded=threaded,
        title=title,
    )
