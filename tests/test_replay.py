"""Kernel-free replays: self-contained HTML (no request to any other host), frames that decode
as images, unique ids per player, and a size that lets several share a page."""

from __future__ import annotations

import base64
import io
import re

import matplotlib.image
import numpy as np
import pytest
import torch

import flowlab as fl
import flowlab.replay as replay
from flowlab.chart import loss_chart
from flowlab.pictures import number, png, shape, text_width, write

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def recorded():
    """A realistic player: 50 snapshots (every 2 steps of 100) of a flow learning the circles."""
    flow = fl.Flow(fl.MAF(2, hidden=(16, 16), layers=3), fl.StandardNormal(2))
    x = fl.targets.circles(1000, seed=0)
    valid = fl.targets.circles(1000, seed=1)
    reference = float(-fl.targets.circles_log_prob(valid).mean())
    return replay.record(flow, x, steps=100, every=2, lr=3e-2, valid=valid, reference=reference, title="MAF on circles")


def frames_of(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)]


def test_frames_and_steps(recorded):
    assert len(recorded.frames) == 51 and recorded.steps == list(range(0, 101, 2))
    assert len(recorded.loss) == 100 and recorded.valid_nll


def test_no_external_url(recorded):
    page = recorded.html()
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?//""", page), "a protocol-relative URL loads from another host"
    for url in re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", page):
        assert url == "" or url.startswith("data:"), url
    assert "<script src" not in page and "@import" not in page and "url(" not in page


def test_every_frame_decodes_as_an_image_and_is_in_the_page_once(recorded):
    page = recorded.html()
    frames = frames_of(page)
    assert sorted(frames) == sorted(recorded.frames), "each frame once: the image shown is not repeated in the data"
    for data in frames:
        assert data.startswith(PNG)
        image = matplotlib.image.imread(io.BytesIO(data), format="png")
        assert image.shape[:2] == shape(200, recorded.extent) and np.isfinite(image).all()
    # the pictures change as the flow learns
    assert recorded.frames[0] != recorded.frames[-1]


def test_the_colour_bar_is_numbered_with_the_peak_density(recorded):
    """The top of each frame's colour bar carries that frame's largest density, in the picture itself."""
    from flowlab.pictures import BAR, GAP, TEXT, left_margin

    for frame, peak in zip(recorded.frames[::10], recorded.peaks[::10]):
        image = np.round(matplotlib.image.imread(io.BytesIO(frame), format="png")[..., :3] * 255).astype(int)
        x = left_margin(recorded.extent, 200) + 2 * 200 + 2 * GAP + BAR + 3  # where the colour bar's numbers start
        drawn = np.zeros(shape(200, recorded.extent), np.uint8)
        write(drawn, number(peak), x, 1)
        ink = drawn == TEXT
        assert ink.sum() > 10 and (image[ink] == [40, 40, 40]).all(), f"the colour bar's top does not read {number(peak)}"


def test_numbers_for_the_pictures():
    assert [number(v) for v in (0, 0.1534, 12.34, 153.4, 2000.0, 1.5e-5, -3e20, 1.6e-10, 1e-300)] == \
        ["0", "0.153", "12.3", "153", "2e3", "1.5e-5", "-3e20", "2e-10", "1e-300"]
    from flowlab.pictures import RIGHT

    # a colour bar's top fits in the margin right of the bar
    assert max(text_width(number(v)) for v in np.geomspace(1e-300, 1e300, 2000)) <= RIGHT - 3
    assert text_width("0") == 5 and text_width("0.1") == 5 + 1 + 2 + 1 + 5


def test_size_fits_several_players_on_a_page(recorded):
    size = recorded.nbytes
    print(f"replay of {len(recorded.frames)} frames: {size / 1e6:.2f} MB")
    assert size < 1.5e6


def test_players_have_unique_ids(recorded):
    a, b = recorded.html(), recorded.html()
    ids_a = set(re.findall(r'id="([^"]+)"', a))
    ids_b = set(re.findall(r'id="([^"]+)"', b))
    assert ids_a and not ids_a & ids_b
    assert recorded._repr_html_().startswith("<div")
    assert "Binder" in a and "Colab" in a and "JupyterLab" in a
    assert "rocket" not in a, "a JupyterLab user has no rocket icon: the note must make sense there too"
    assert 'alt="MAF on circles, snapshot at step 100' in a, "the image's text alternative says which snapshot"


def test_png_encoder_round_trip():
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    indices = rng.integers(0, 256, (17, 23), dtype=np.uint8)
    image = matplotlib.image.imread(io.BytesIO(png(indices, palette)), format="png")
    rgb = np.round(image[..., :3] * 255).astype(np.uint8)
    assert np.array_equal(rgb, palette[indices])


def test_painter_uses_the_flows_device(device):
    flow = fl.Flow(fl.MAF(2, hidden=(8,)), fl.StandardNormal(2)).to(device)
    painter = replay.Painter(fl.targets.moons(100, seed=0), grid=8, size=16, samples=10)
    logp, samples = painter.evaluate(flow)
    assert logp.shape == (8, 8) and samples.shape == (10, 2)
    assert painter(flow).startswith(PNG)


def test_record_rejects_bad_input():
    flow = fl.Flow(fl.MAF(2), fl.StandardNormal(2))
    with pytest.raises(ValueError, match="every"):
        replay.record(flow, fl.targets.moons(10), steps=5, every=0)
    with pytest.raises(ValueError, match="columns"):
        replay.record(flow, torch.zeros(10, 3), steps=5)
    with pytest.raises(ValueError, match="2-D"):
        replay.Painter()(fl.Flow(fl.MAF(3), fl.StandardNormal(3)))


def test_loss_chart_handles_empty_and_diverging_curves():
    assert "<svg" in loss_chart([]).svg
    svg = loss_chart([3.0, 2.0, float("nan"), 1e30, 1.0], [2, 4], [2.5, 1.5], reference=1.2, total=10).svg
    assert "nan" not in svg and "inf" not in svg


def test_player_marker_positions_come_from_the_chart(recorded):
    """The player moves its marker to the chart's own x of each frame's step (no second copy of the geometry)."""
    page = recorded.html()
    chart = loss_chart(recorded.loss, recorded.valid_step, recorded.valid_nll, recorded.reference,
                       max(recorded.steps[-1], len(recorded.loss)))
    xs = [float(v) for v in re.search(r'"x": \[([^\]]*)\]', page).group(1).split(",")]
    assert xs == pytest.approx([chart.x_of(s) for s in recorded.steps], abs=0.01)
    assert xs[0] == pytest.approx(chart.left) and xs[-1] == pytest.approx(chart.left + chart.plot_width)


def test_replay_rejects_inconsistent_pieces(recorded):
    frames, steps, loss = recorded.frames[:3], recorded.steps[:3], recorded.loss
    with pytest.raises(ValueError, match="one entry per snapshot"):
        replay.Replay(frames, steps[:2], loss)
    with pytest.raises(ValueError, match="must not decrease"):
        replay.Replay(frames, [0, 4, 2], loss)
    with pytest.raises(ValueError, match="but loss has"):
        replay.Replay(frames, [0, 2, len(loss) + 1], loss)
    with pytest.raises(ValueError, match="fps"):
        replay.Replay(frames, steps, loss, fps=0)
    with pytest.raises(ValueError, match="extent"):
        replay.Replay(frames, steps, loss, extent=float("inf"))
    with pytest.raises(ValueError, match="colour map"):
        replay.Painter(cmap="no such map")
