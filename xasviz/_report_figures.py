"""Bokeh figures of the HTML report (maps, spectra, heat maps, tables).

Pure Bokeh: the report must work as one offline file, so every interaction is
either a built-in Bokeh tool or a small ``CustomJS`` callback over numbers
embedded in the page.
"""

from __future__ import annotations

import html

import numpy as np
from bokeh.models import (
    BasicTicker,
    ColorBar,
    ColumnDataSource,
    CustomJS,
    Div,
    FixedTicker,
    HoverTool,
    LinearColorMapper,
    Range1d,
)
from bokeh.palettes import Greys256, Viridis256
from bokeh.plotting import figure

from ._style import ENERGY_LABEL, PALETTE

TOOLS = "pan,wheel_zoom,box_zoom,reset,save"

__all__ = [
    "PALETTE",
    "MapGrid",
    "map_figure",
    "spectra_figure",
    "heatmap_figure",
    "html_table",
    "section",
]


_DIVERGING = tuple(
    f"#{int(r):02x}{int(g):02x}{int(b):02x}"
    for r, g, b in zip(
        np.interp(np.linspace(0, 1, 64), [0, 0.5, 1], [33, 247, 178]),
        np.interp(np.linspace(0, 1, 64), [0, 0.5, 1], [102, 247, 24]),
        np.interp(np.linspace(0, 1, 64), [0, 0.5, 1], [172, 247, 43]),
    )
)


class MapGrid:
    """Pixel grid shared by every map of a report: coordinates, spacing, size.

    Parameters
    ----------
    x, y : ndarray, shapes (nx,), (ny,)
        Pixel-centre coordinates (regularly spaced).
    units : str
        Units of x and y, used in axis labels.
    """

    def __init__(self, x, y, units: str = "pixel"):
        self.x = np.asarray(x, dtype=float)
        self.y = np.asarray(y, dtype=float)
        self.dx = float(self.x[1] - self.x[0]) if self.x.size > 1 else 1.0
        self.dy = float(self.y[1] - self.y[0]) if self.y.size > 1 else 1.0
        self.units = "µm" if units in ("um", "micron", "microns") else units
        # One pair of ranges for all maps: zooming one map zooms them all.
        x0, x1 = self.x[0] - self.dx / 2, self.x[-1] + self.dx / 2
        y0, y1 = self.y[0] - self.dy / 2, self.y[-1] + self.dy / 2
        self.x_range = Range1d(x0, x1, bounds="auto")
        # Pixel indices: row 0 at the top, as the detector frame is shown.
        # Physical coordinates (stage positions): y increases upwards.
        if units == "pixel":
            self.y_range = Range1d(y1, y0, bounds="auto")
        else:
            self.y_range = Range1d(y0, y1, bounds="auto")

    @property
    def shape(self) -> tuple[int, int]:
        return self.y.size, self.x.size

    def frame_size(self, width: int) -> tuple[int, int]:
        """Frame (width, height) in screen pixels giving equal aspect."""
        ny, nx = self.shape
        ratio = (ny * abs(self.dy)) / (nx * abs(self.dx))
        height = int(round(width * ratio))
        if height > 1.6 * width:  # a tall strip: fix the height instead
            return int(round(1.6 * width / ratio)), int(1.6 * width)
        return width, max(height, 40)

    def js_args(self) -> dict:
        return {
            "x0": float(self.x[0]),
            "y0": float(self.y[0]),
            "dx": self.dx,
            "dy": self.dy,
            "nx": int(self.x.size),
            "ny": int(self.y.size),
        }


def image_source(arr: np.ndarray, name: str | None = None) -> ColumnDataSource:
    """An image ColumnDataSource holding ``arr`` (ny, nx) as binary float32."""
    return ColumnDataSource(
        {"image": [np.ascontiguousarray(arr, dtype=np.float32)]}, name=name
    )


def map_figure(
    grid: MapGrid,
    source: ColumnDataSource,
    *,
    title: str,
    clabel: str,
    width: int = 300,
    palette=Viridis256,
    low: float | None = None,
    high: float | None = None,
    name: str | None = None,
    ticks: dict[int, str] | None = None,
    tap: bool = False,
    robust: bool = False,
):
    """An equal-aspect map with a colour bar, hover and linked zoom.

    Returns
    -------
    (figure, color_mapper)
    """
    data = np.asarray(source.data["image"][0], dtype=float)
    finite = data[np.isfinite(data)]
    # Robust limits (1st-99th percentile) keep a few outliers, e.g. failed
    # peak fits, from washing out the colour scale; hover shows true values.
    qlo, qhi = (1.0, 99.0) if robust else (0.0, 100.0)
    if low is None:
        low = float(np.percentile(finite, qlo)) if finite.size else 0.0
    if high is None:
        high = float(np.percentile(finite, qhi)) if finite.size else 1.0
    if high <= low:
        low, high = low - 0.5, high + 0.5
    fw, fh = grid.frame_size(width)
    tools = TOOLS + (",tap" if tap else "")
    fig = figure(
        title=title,
        frame_width=fw,
        frame_height=fh,
        x_range=grid.x_range,
        y_range=grid.y_range,
        tools=tools,
        active_scroll="wheel_zoom",
        toolbar_location="above",
        name=name,
        x_axis_label=f"x ({grid.units})",
        y_axis_label=f"y ({grid.units})",
    )
    mapper = LinearColorMapper(palette=palette, low=low, high=high, nan_color="white")
    ny, nx = grid.shape
    img = fig.image(
        image="image",
        source=source,
        x=grid.x[0] - grid.dx / 2,
        y=grid.y[0] - grid.dy / 2,
        dw=nx * grid.dx,
        dh=ny * grid.dy,
        color_mapper=mapper,
    )
    bar = ColorBar(color_mapper=mapper, title=clabel, width=12, title_standoff=8)
    if ticks:
        bar.ticker = FixedTicker(ticks=list(ticks))
        bar.major_label_overrides = {int(k): v for k, v in ticks.items()}
    else:
        bar.ticker = BasicTicker(desired_num_ticks=6)
    fig.add_layout(bar, "right")
    # Hover only the image: markers drawn on top have no "image" column.
    fig.add_tools(
        HoverTool(
            renderers=[img],
            tooltips=[("x", "$x{0.[0]}"), ("y", "$y{0.[0]}"), (clabel, "@image")],
        )
    )
    _style(fig)
    return fig, mapper


def spectra_figure(
    title: str,
    ylabel: str,
    *,
    width: int = 440,
    height: int = 280,
    name: str | None = None,
    x_label: str = ENERGY_LABEL,
):
    """An empty line-plot figure with the energy axis in eV and hover."""
    fig = figure(
        title=title,
        frame_width=width,
        frame_height=height,
        tools=TOOLS,
        active_scroll="wheel_zoom",
        toolbar_location="above",
        x_axis_label=x_label,
        y_axis_label=ylabel,
        name=name,
    )
    fig.add_tools(HoverTool(tooltips=[("", "$name"), ("x", "$x{0.00}"), ("y", "$y")]))
    _style(fig)
    return fig


def add_lines(fig, x, curves: dict[str, np.ndarray], *, width=2.0, dash="solid"):
    """Draw several curves over the same ``x`` with a clickable legend."""
    for i, (label, y) in enumerate(curves.items()):
        fig.line(
            np.asarray(x, dtype=float),
            np.asarray(y, dtype=float),
            legend_label=str(label),
            name=str(label),
            color=PALETTE[i % len(PALETTE)],
            line_width=width,
            line_dash=dash,
        )
    finish_legend(fig)


def finish_legend(fig, outside: bool | None = None):
    """Clickable legend; with more than three entries it moves beside the
    plot, where it cannot hide the curves. Safe to call more than once."""
    if not fig.legend:
        return
    leg = fig.legend[0]
    leg.click_policy = "hide"
    leg.label_text_font_size = "9pt"
    leg.background_fill_alpha = 0.6
    if outside is None:
        outside = len(leg.items) > 3
    if outside and leg not in fig.right:
        fig.center = [r for r in fig.center if r is not leg]
        fig.add_layout(leg, "right")
        leg.location = "top_left"
    elif leg not in fig.right:
        leg.location = "top_left"


def heatmap_figure(
    values: np.ndarray,
    rows: list[str],
    cols: list[str],
    *,
    title: str,
    row_label: str,
    col_label: str,
    match: np.ndarray | None = None,
    name: str | None = None,
):
    """A correlation table as a heat map with the value in each cell.

    ``match[i]`` (column index matched to row ``i``) outlines the matched
    pairs.
    """
    values = np.asarray(values, dtype=float)
    r_idx, c_idx = np.meshgrid(
        np.arange(len(rows)), np.arange(len(cols)), indexing="ij"
    )
    src = ColumnDataSource(
        {
            "row": [rows[i] for i in r_idx.ravel()],
            "col": [cols[j] for j in c_idx.ravel()],
            "value": values.ravel(),
            "text": [f"{v:.2f}" for v in values.ravel()],
            "text_color": [
                "white" if abs(v) > 0.6 else "black" for v in values.ravel()
            ],
        }
    )
    fig = figure(
        title=title,
        x_range=cols,
        y_range=list(reversed(rows)),
        frame_width=max(200, 42 * len(cols)),
        frame_height=max(120, 32 * len(rows)),
        tools="hover,save",
        tooltips=[
            (row_label, "@row"),
            (col_label, "@col"),
            ("cosine", "@value{0.000}"),
        ],
        toolbar_location="above",
        x_axis_label=col_label,
        y_axis_label=row_label,
        name=name,
    )
    mapper = LinearColorMapper(palette=_DIVERGING, low=-1, high=1)
    fig.rect(
        "col",
        "row",
        1,
        1,
        source=src,
        fill_color={"field": "value", "transform": mapper},
        line_color="white",
    )
    fig.text(
        "col",
        "row",
        text="text",
        source=src,
        text_align="center",
        text_baseline="middle",
        text_font_size="9pt",
        text_color="text_color",
    )
    if match is not None:
        pairs = [
            (cols[int(m)], rows[i]) for i, m in enumerate(match) if 0 <= m < len(cols)
        ]
        if pairs:
            c, r = zip(*pairs)
            fig.rect(
                list(c),
                list(r),
                0.92,
                0.92,
                fill_alpha=0,
                line_color="black",
                line_width=3,
                legend_label="matched pair",
            )
            fig.legend.location = "top_right"
            fig.legend.label_text_font_size = "8pt"
            fig.add_layout(fig.legend[0], "below")
    fig.add_layout(ColorBar(color_mapper=mapper, title="cosine", width=10), "right")
    fig.grid.visible = False
    fig.axis.major_tick_line_color = None
    _style(fig)
    return fig


def html_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    """A plain HTML table (values escaped, inline styles)."""
    cell = (
        "border:1px solid #ccc;padding:2px 8px;text-align:left;"
        "vertical-align:top;max-width:640px;word-break:break-all"
    )
    head = "".join(
        f"<th style='{cell};background:#eef3f8'>{html.escape(h)}</th>" for h in header
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td style='{cell}'>{html.escape(str(c))}</td>" for c in r)
        + "</tr>"
        for r in rows
    )
    return (
        "<table style='border-collapse:collapse;font-size:10pt;margin:6px 0 12px 0'>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def section(anchor: str, title: str, text: str = "") -> Div:
    """A section heading (with an anchor for the table of contents)."""
    para = f"<p style='max-width:900px'>{text}</p>" if text else ""
    return Div(
        name=f"section_{anchor}",
        text=f"<h2 id='{anchor}' style='margin:28px 0 4px 0;border-bottom:2px solid "
        f"#0072B2'>{html.escape(title)}</h2>{para}",
        sizing_mode="stretch_width",
    )


def _style(fig) -> None:
    fig.title.text_font_size = "12pt"
    fig.axis.axis_label_text_font_size = "11pt"
    fig.axis.axis_label_text_font_style = "normal"
    fig.axis.major_label_text_font_size = "10pt"


def tap_callback(code: str, **args) -> CustomJS:
    return CustomJS(args=args, code=code)


GREYS = tuple(reversed(Greys256))
