"""Figures without global state: a matplotlib ``Figure`` on an Agg canvas, saved atomically.

matplotlib is imported only here, inside the functions, and pyplot is never used, so drawing
does not change the backend of an interactive session and ``import passage`` does not need it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from passage.files import atomic_write

if TYPE_CHECKING:
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    """A matplotlib Figure of ``width`` x ``height`` inches drawn by the Agg (PNG) renderer."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("drawing needs matplotlib: pip install 'passage[plots]'") from None
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | os.PathLike, dpi: int = 150) -> None:
    """Write ``fig`` to ``path`` as PNG; a crash mid-write leaves no half-written file."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


def colormap(name: str) -> Colormap:
    """A registered matplotlib colormap by name (e.g. 'RdBu')."""
    import matplotlib

    return matplotlib.colormaps[name]
