"""flowlab.mapview: a frame is a PNG of the size the text column allows, it shows what it is
given (a different map gives a different picture), and mismatched arrays are refused."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from flowlab.mapview import map_frame


def _arrays(shift=0.0):
    g = torch.linspace(-2, 2, 21)
    x1, x2 = torch.meshgrid(g, g, indexing="ij")
    return x1 + shift, (x1 - x2).abs(), torch.exp(-(x1**2 + x2**2))


def test_frame_is_a_png_within_the_column():
    png = map_frame(*_arrays(), extent=(-2, 2, -2, 2), step=10)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert 400 < image.width <= 700 and image.height < image.width


def test_frames_differ_when_the_maps_differ():
    a = map_frame(*_arrays(), extent=(-2, 2, -2, 2), step=0)
    b = map_frame(*_arrays(shift=1.5), extent=(-2, 2, -2, 2), step=0)
    assert a != b


def test_mismatched_arrays_are_refused():
    z1, d, p = _arrays()
    with pytest.raises(ValueError, match="one shape"):
        map_frame(z1, d[:-1], p, extent=(-2, 2, -2, 2), step=0)
