"""Shared look of the views and the report: labels and colours."""

__all__ = ["ENERGY_LABEL", "PALETTE"]

ENERGY_LABEL = "Energy (eV)"

#: Colour-blind friendly categorical palette (Okabe-Ito, then Tol bright).
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#D55E00",
    "#56B4E9",
    "#F0E442",
    "#000000",
    "#AA3377",
    "#66CCEE",
    "#228833",
    "#BBBBBB",
)
