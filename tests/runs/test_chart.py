"""Charts and their drawing: round ticks, lines broken at missing values, a legend clear of the data,
PNGs whose pixels show the lines, SVGs that parse, pictures with text of any script."""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET

from PIL import Image

from lmtrain.runs.chart import (
    BarPanel,
    Chart,
    Curve,
    HeatPanel,
    Key,
    Level,
    LinePanel,
    log_ticks,
    nice_ticks,
    tick_text,
)
from lmtrain.runs.chart_drawing import draw_chart
from lmtrain.runs.drawing import Label, Picture, Stroke, dashes

SVG = "{http://www.w3.org/2000/svg}"


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(7.27, 7.61) == [7.3, 7.4, 7.5, 7.6]
    assert nice_ticks(0.0, 0.3) == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
    assert nice_ticks(1, 40, integer=True) == [10.0, 20.0, 30.0, 40.0]
    assert nice_ticks(1, 3, integer=True) == [1.0, 2.0, 3.0]  # a count axis: no tick at 1.5
    assert nice_ticks(5.0, 5.0) == [5.0] and nice_ticks(math.nan, 1.0) == []
    assert log_ticks(3.0, 900.0) == [5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]
    assert log_ticks(1.0, 1e6) == [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6]


def test_tick_text_has_the_decimals_the_spacing_needs():
    assert [tick_text(v, [7.3, 7.4]) for v in (7.3, 7.4)] == ["7.3", "7.4"]
    assert [tick_text(v, [0.0, 0.05, 0.1]) for v in (0.05, 0.1)] == ["0.05", "0.10"]
    assert [tick_text(v, [0.0, 0.25, 0.5]) for v in (0.25, 0.5)] == ["0.25", "0.50"]
    assert [tick_text(v, [0.0, 0.2]) for v in (0.0, 0.2)] == ["0", "0.2"]
    assert tick_text(20000.0, [10000.0, 20000.0]) == "20000" and tick_text(3e6, [0.0, 3e6]) == "3e+06"


def test_dashes_alternate_along_the_line():
    pieces = dashes(((0.0, 0.0), (20.0, 0.0)), 5.0, 3.0)
    assert [(p[0][0], p[-1][0]) for p in pieces] == [(0.0, 5.0), (8.0, 13.0), (16.0, 20.0)]
    assert dashes(((0.0, 0.0), (20.0, 0.0)), 5.0, 0.0) == [((0.0, 0.0), (20.0, 0.0))]  # not an endless loop


def test_missing_values_break_a_line_and_ranges_ignore_them():
    panel = LinePanel("loss", "step", [Curve([1, 2, 3, 4, 5], [3.0, 2.5, math.nan, 2.0, 1.0], "#1f77b4")])
    assert panel.x_range() == (1, 5)
    low, high = panel.y_range()
    assert low < 1.0 < 3.0 < high and math.isfinite(low)
    picture = draw_chart(Chart([panel], 1, (600, 400)))
    lines = [s for s in picture.shapes if isinstance(s, Stroke) and s.color == "#1f77b4"]
    assert [len(line.points) for line in lines] == [2, 2]  # steps 1-2 and 4-5, not across the gap


def test_log_axis_for_values_spanning_decades():
    panel = LinePanel("ppl", "step", [Curve([1, 2, 3], [5000.0, 300.0, 40.0], "#1f77b4")], log_y=True)
    assert panel.y_ticks() == [50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0]


def test_legend_goes_to_the_corner_with_the_fewest_points():
    # a line along the top: the legend must not sit in an upper corner
    top_line = Curve(list(range(50)), [1.0] * 49 + [0.0], "#d62728")
    panel = LinePanel("x", "step", [top_line], keys=[Key("run", "#d62728")])
    picture = draw_chart(Chart([panel], 1, (600, 400)))
    label = next(s for s in picture.shapes if isinstance(s, Label) and s.text == "run")
    assert label.at[1] > 200  # in the lower half


def test_png_shows_the_lines_baselines_and_legend(tmp_path):
    panel = LinePanel(
        "eval/acc",
        "step",
        [Curve([1, 2, 3], [0.1, 0.5, 0.7], "#ff7f0e", markers=True)],
        levels=[Level(0.3, "#000000", "majority baseline (0.3)")],
    )
    chart = Chart([panel, panel], 2, (600, 400), title="a run")
    image = Image.open(io.BytesIO(draw_chart(chart).png())).convert("RGB")
    assert image.size == chart.size == (1200, 400)
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 20)}
    assert (255, 127, 14) in colours  # the curve's orange, drawn solid
    assert panel.legend() == ["majority baseline (0.3)"]


def test_svg_parses_and_escapes_text():
    panel = BarPanel(["<PER>", "LOC & MISC"], [("run", "#1f77b4", [0.5, 0.9])], "F1", title='runs "a" & b')
    root = ET.fromstring(draw_chart(Chart([panel], 1, (600, 400))).svg())
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "<PER>" in texts and "LOC & MISC" in texts and 'runs "a" & b' in texts
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == "#1f77b4"]
    assert len(bars) == 2 and float(bars[1].get("height")) > float(bars[0].get("height"))  # 0.9 over 0.5


def test_heat_map_text_is_white_on_dark_cells():
    panel = HeatPanel(["a", "b"], [[9, 1], [0, 5]], [[0.9, 0.1], [0.0, 1.0]], "confusion")
    picture = draw_chart(Chart([panel], 1, (400, 400)))
    counts = {s.text: s.color for s in picture.shapes if isinstance(s, Label) and s.text.isdigit()}
    assert counts == {"9": "#ffffff", "1": "#000000", "0": "#000000", "5": "#ffffff"}


def test_text_of_any_script_and_turned_labels_draw():
    picture = Picture(200, 100)
    picture.add(Label((100, 50), "Zürich — Ωmega жук", 12, "#000000", "mm"))
    picture.add(Label((100, 50), "turned", 12, "#000000", "rt", angle=45))
    image = Image.open(io.BytesIO(picture.png()))
    assert image.size == (200, 100) and image.convert("L").getextrema()[0] < 100  # dark text on white


def test_values_at_the_float_limits_stay_inside_the_frame():
    curve = Curve([1, 2, 10**15], [1e308, -1e308, 3.0], "#1f77b4")
    for panel in (
        LinePanel("x", "step", [curve]),
        LinePanel("ppl", "step", [Curve([1, 2], [5e-324, 1e308], "#1f77b4")], log_y=True),
    ):
        picture = draw_chart(Chart([panel], 1, (600, 400)))
        points = [p for s in picture.shapes if isinstance(s, Stroke) and s.color == "#1f77b4" for p in s.points]
        assert points and all(0 <= x <= 600 and 0 <= y <= 400 for x, y in points)
        assert all(math.isfinite(v) for v in panel.y_ticks())


def test_the_legend_avoids_where_lines_run_not_only_their_corners():
    from lmtrain.runs.chart_drawing import _along

    assert _along([(0.0, 0.0), (10.0, 0.0)], every=4.0) == [(0.0, 0.0), (10 / 3, 0.0), (20 / 3, 0.0), (10.0, 0.0)]
    # a line across the top (a point at each end) and two lone points at the bottom corners: counting corners
    # only, every corner holds one point; counting where lines run, the legend goes below the line
    top = Curve([0, 100], [1.0, 1.0], "#d62728")
    dots = Curve([0, 50, 100], [0.0, math.nan, 0.0], "#1f77b4")
    panel = LinePanel("x", "step", [top, dots], keys=[Key("run", "#d62728")])
    picture = draw_chart(Chart([panel], 1, (600, 400)))
    label = next(s for s in picture.shapes if isinstance(s, Label) and s.text == "run")
    assert label.at[1] > 200


def test_a_long_title_is_cut_short_to_fit():
    from lmtrain.runs.chart_drawing import _fit
    from lmtrain.runs.drawing import text_width

    title = "optim.lr=" + "9" * 20_000
    cut = _fit(title, 12.0, 300.0)
    assert cut.endswith("…") and text_width(cut, 12.0) <= 300.0 < text_width(cut[:-1] + "9…", 12.0)
    assert _fit("short", 12.0, 300.0) == "short"
