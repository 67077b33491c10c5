"""Cross-checks of a factorization (paper sections 2.5, 2.6, 3.3, 3.4).

Independent views of the same stack that a user can hold the ONMF domains
against:

- :func:`kmeans`: k-means clusters of the pixel spectra (eq. 12);
- :func:`correlate`: the cosine-similarity table between two sets of maps
  (eq. 13) with the optimal one-to-one matching;
- :func:`peak_top_energy`: the peak-top-energy (white-line) map from a
  Gaussian fitted to every pixel spectrum;
- :func:`pte_classes`: the PTE map split into D1-D3 by two thresholds chosen
  to match the domains best.
"""

from ._classes import pte_classes
from ._correlate import correlate
from ._kmeans import kmeans
from ._pte import peak_top_energy

__all__ = ["kmeans", "correlate", "peak_top_energy", "pte_classes"]
