"""The audio–sheet player: embedded data, input validation, and (with chromium) its script."""

import base64
import io
import json
import re
import shutil
import subprocess
import wave

import numpy as np
import pytest
from PIL import Image

from sheetlab.widgets import CursorTrack, audio_sheet_player, cursor_position

SR = 22050
W, H = 800, 1100


def make_page(mark: bool = False) -> np.ndarray:
    """A white (H, W) page with two five-line staves (systems at y 100–300 and 500–700)."""
    page = np.full((H, W), 255, np.uint8)
    for top in (100, 500):
        for k in range(5):
            page[top + 40 + 25 * k: top + 42 + 25 * k, 50:750] = 0
    if mark:
        page[1000:1010, 300:500] = 0
    return page


PAGES = [make_page(), make_page(mark=True)]
AUDIO = (0.3 * np.sin(2 * np.pi * 440 * np.arange(4 * SR) / SR)).astype(np.float32)


def make_track(**kwargs) -> CursorTrack:
    """Three notes on system 1, two on system 2 of page 1, then three on page 2."""
    fields = dict(
        times_s=np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]),
        page=np.array([0, 0, 0, 0, 0, 1, 1, 1]),
        x=np.array([100.0, 400, 700, 100, 700, 100, 400, 700]),
        y0=np.array([100.0, 100, 100, 500, 500, 100, 100, 100]),
        y1=np.array([300.0, 300, 300, 700, 700, 300, 300, 300]),
        label="true",
    )
    fields.update(kwargs)
    return CursorTrack(**fields)


TRUE = make_track()
PREDICTED = make_track(times_s=TRUE.times_s + 0.3, label="predicted", color="#1f77b4")


def data_uris(html: str, mime: str) -> list[bytes]:
    found = re.findall(rf'src="data:{mime};base64,([A-Za-z0-9+/=]+)"', html)
    return [base64.b64decode(m) for m in found]


def embedded_json(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="[^"]+">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


@pytest.mark.parametrize("t, expected", [
    (-1.0, (0, 100.0, 100.0, 300.0)),   # before the first entry: at the first
    (0.0, (0, 100.0, 100.0, 300.0)),
    (0.25, (0, 250.0, 100.0, 300.0)),   # halfway between two notes of one system
    (0.75, (0, 550.0, 100.0, 300.0)),
    (1.25, (0, 700.0, 100.0, 300.0)),   # last note of a system: no interpolation to the next
    (1.75, (0, 400.0, 500.0, 700.0)),
    (2.25, (0, 700.0, 500.0, 700.0)),   # last note of the page: no interpolation across the turn
    (2.5, (1, 100.0, 100.0, 300.0)),
    (3.25, (1, 550.0, 100.0, 300.0)),
    (9.0, (1, 700.0, 100.0, 300.0)),    # after the last entry: at the last
])
def test_cursor_position(t, expected):
    assert cursor_position(TRUE, t) == pytest.approx(expected)


def test_cursor_position_without_interpolation_jumps():
    assert cursor_position(TRUE, 0.25, interpolate=False) == (0, 100.0, 100.0, 300.0)
    assert cursor_position(TRUE, 0.5, interpolate=False) == (0, 400.0, 100.0, 300.0)


def test_html_embeds_downscaled_pages_and_the_audio():
    html = audio_sheet_player(PAGES, AUDIO, SR, [TRUE], width_px=300).data
    pngs = data_uris(html, "image/png")
    assert len(pngs) == 2
    for png in pngs:
        image = Image.open(io.BytesIO(png))
        assert image.size == (600, round(H * 600 / W))  # at most twice the display width
        assert image.mode == "L"
    (wav,) = data_uris(html, "audio/wav")
    with wave.open(io.BytesIO(wav)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SR)
        assert w.getnframes() == len(AUDIO)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    np.testing.assert_allclose(pcm / 32767, AUDIO, atol=1 / 32767)


def test_small_pages_are_not_upscaled():
    html = audio_sheet_player(PAGES, AUDIO, SR, [TRUE], width_px=700).data
    assert Image.open(io.BytesIO(data_uris(html, "image/png")[0])).size == (W, H)


def test_audio_can_be_embedded_at_a_lower_rate():
    html = audio_sheet_player(PAGES, AUDIO, SR, [TRUE], embed_sr=SR // 2).data
    with wave.open(io.BytesIO(data_uris(html, "audio/wav")[0])) as w:
        assert (w.getframerate(), w.getnframes()) == (SR // 2, len(AUDIO) // 2)
    assert embedded_json(html)["duration"] == pytest.approx(len(AUDIO) / SR)


def test_embedded_alignment_equals_the_input():
    html = audio_sheet_player(PAGES, AUDIO, SR, [TRUE, PREDICTED], interpolate=False).data
    data = embedded_json(html)
    assert data["pages"] == [{"width": W, "height": H}] * 2
    assert data["interpolate"] is False
    assert data["duration"] == pytest.approx(4.0)
    for got, track in zip(data["tracks"], [TRUE, PREDICTED]):
        assert (got["label"], got["color"]) == (track.label, track.color)
        assert got["t"] == track.times_s.tolist()
        for key in ("page", "x", "y0", "y1"):
            assert got[key] == getattr(track, key).tolist()


def test_a_label_cannot_close_the_script():
    html = audio_sheet_player(PAGES, AUDIO, SR, [make_track(label="</script><b>")]).data
    assert html.count("</script>") == 2
    assert embedded_json(html)["tracks"][0]["label"] == "</script><b>"


def test_players_have_distinct_ids():
    players = [audio_sheet_player(PAGES, AUDIO, SR, [TRUE]).data for _ in range(2)]
    ids = [re.search(r'<div id="([^"]+)"', html).group(1) for html in players]
    assert ids[0] != ids[1]


@pytest.mark.parametrize("kwargs, message", [
    (dict(x=np.zeros(7)), "x has shape"),
    (dict(times_s=np.array([0.0, 0.5, 0.5, 1.5, 2, 2.5, 3, 3.5])), "strictly increasing"),
    (dict(page=np.array([0.0, 0, 0, 0, 0, 1, 1, 1])), "integers"),
    (dict(page=np.array([0, 0, 0, 0, 0, -1, 1, 1])), "negative page"),
    (dict(y1=np.full(8, 50.0)), "y1 < y0"),
    (dict(x=np.full(8, np.nan)), "NaN"),
    (dict(color="red;background:url(x)"), "CSS colour"),
    (dict(times_s=[], page=np.array([], int), x=[], y0=[], y1=[]), "empty"),
])
def test_bad_tracks_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_track(**kwargs)


@pytest.mark.parametrize("pages, audio, tracks, message", [
    ([PAGES[0]], AUDIO, [TRUE], r"page index 1 at entry 5 is out of range for 1 page"),
    (PAGES, AUDIO, [make_track(x=np.full(8, 900.0))], "outside page 0 of 800x1100"),
    ([], AUDIO, [TRUE], "at least one page"),
    ([PAGES[0].astype(float), PAGES[1]], AUDIO, [TRUE], r"pages\[0\] must be .* uint8"),
    (PAGES, AUDIO, [], "at least one CursorTrack"),
    (PAGES, AUDIO, [(0, 1)], "not a CursorTrack"),
    (PAGES, np.stack([AUDIO, AUDIO]), [TRUE], "mono"),
    (PAGES, (AUDIO * 32767).astype(np.int16), [TRUE], "float"),
])
def test_bad_player_input_is_refused(pages, audio, tracks, message):
    with pytest.raises(ValueError, match=message):
        audio_sheet_player(pages, audio, SR, tracks)


# --- the script, in a real browser -------------------------------------------------------------

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)

GRID = [round(t, 3) for t in np.arange(-0.5, 4.5, 0.05)]

# Runs after two players on one page; writes what it sees into <pre id="result">.
HARNESS = """<pre id="result"></pre><script>
const [first, second] = document.querySelectorAll(".sheetlab-player");
const bars = p => Array.from(p.querySelectorAll(".sl-cursor"));
const images = p => Array.from(p.querySelectorAll(".sl-page"));
function state(player) {
  const page = images(player).findIndex(img => img.style.display === "block");
  const rect = images(player)[page].getBoundingClientRect();
  const bar = b => ({display: b.style.display, left: b.style.left,
                     center_px: b.getBoundingClientRect().left + b.offsetWidth / 2 - rect.left,
                     top_px: b.getBoundingClientRect().top - rect.top});
  return {page: page, readout: player.querySelector(".sl-readout").textContent,
          legend: player.querySelector(".sl-legend").textContent,
          bars: bars(player).map(bar), width_px: rect.width};
}
function click(player, px, py) {  // a click at page pixel (px, py) of the page shown
  const img = images(player).find(img => img.style.display === "block");
  const rect = img.getBoundingClientRect();
  const size = JSON.parse(document.getElementById(player.id + "-data").textContent).pages[0];
  img.parentElement.dispatchEvent(new MouseEvent("click", {bubbles: true,
    clientX: rect.left + px / size.width * rect.width,
    clientY: rect.top + py / size.height * rect.height}));
  return player.querySelector("audio").currentTime;
}
const result = {grid: GRID.map(t => first.sheetlab.position(JSON.parse(
  document.getElementById(first.id + "-data").textContent).tracks[1], t))};
const audio = first.querySelector("audio");
audio.currentTime = 3.25;
audio.dispatchEvent(new Event("timeupdate"));
result.at_325 = state(first);
result.second = state(second);
result.click_page2 = click(first, 250, 200);
first.querySelector(".sl-prev").click();
result.after_prev = audio.currentTime;
result.click_system1 = click(first, 250, 200);
result.after_click = state(first);
result.click_system2 = click(first, 400, 600);
first.querySelector(".sl-next").click();
result.after_next = audio.currentTime;
result.after_next_state = state(first);
first.sheetlab.show(59.96);
result.readout_5996 = first.querySelector(".sl-readout").textContent;
document.getElementById("result").textContent = JSON.stringify(result);
</script>"""


@pytest.fixture(scope="module")
def browser_result(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    first = audio_sheet_player(PAGES, AUDIO, SR, [TRUE, PREDICTED], width_px=600).data
    second = audio_sheet_player(PAGES, AUDIO, SR, [TRUE], width_px=400).data
    path = tmp_path_factory.mktemp("player") / "page.html"
    harness = HARNESS.replace("GRID", json.dumps(GRID))
    path.write_text(f"<!doctype html><html><body>{first}{second}{harness}</body></html>")
    profile = tmp_path_factory.mktemp("profile")
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={profile}",
         "--window-size=800,1400", "--virtual-time-budget=2000", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    match = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert match and match.group(1), f"the harness wrote no result; DOM starts with {dom[:500]!r}"
    return json.loads(match.group(1))


def test_browser_position_matches_python(browser_result):
    for t, got in zip(GRID, browser_result["grid"]):
        page, x, y0, y1 = cursor_position(PREDICTED, t)
        assert (got["page"], got["y0"], got["y1"]) == (page, y0, y1), t
        assert got["x"] == pytest.approx(x, abs=1e-9), t


def test_browser_turns_the_page_and_places_the_cursors(browser_result):
    state = browser_result["at_325"]
    assert state["page"] == 1
    assert state["readout"] == "0:03.3 / 0:04.0 \u00b7 page 2 of 2"
    assert browser_result["readout_5996"].startswith("1:00.0 / ")
    scale = state["width_px"] / W
    for bar, track in zip(state["bars"], [TRUE, PREDICTED]):
        page, x, y0, _ = cursor_position(track, 3.25)
        assert bar["display"] == "block"
        assert float(bar["left"].rstrip("%")) == pytest.approx(100 * x / W, abs=1e-4)
        assert bar["center_px"] == pytest.approx(x * scale, abs=1.0)
        assert bar["top_px"] == pytest.approx(y0 * scale, abs=1.0)


def test_browser_players_are_independent(browser_result):
    second = browser_result["second"]
    assert second["page"] == 0 and len(second["bars"]) == 1
    assert second["readout"].startswith("0:00.0")


def test_browser_click_seeks_and_buttons_turn(browser_result):
    # clicks land on whole CSS pixels: 1 px is 4/3 page px, under 0.003 s here
    assert browser_result["click_page2"] == pytest.approx(2.75, abs=0.01)
    assert browser_result["after_prev"] == 0.0
    assert browser_result["click_system1"] == pytest.approx(0.25, abs=0.01)
    assert browser_result["after_click"]["page"] == 0
    assert browser_result["click_system2"] == pytest.approx(1.75, abs=0.01)
    assert browser_result["after_next"] == pytest.approx(2.5)


def test_browser_hides_a_cursor_on_another_page(browser_result):
    state = browser_result["after_next_state"]  # 2.5 s: true on page 2, predicted on page 1
    assert state["page"] == 1
    assert [bar["display"] for bar in state["bars"]] == ["block", "none"]
    assert state["legend"] == "truepredicted (on page 1)"


# --- live views ---------------------------------------------------------------------------------

import ipywidgets  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sheetlab.widgets import LiveView, figure_png, live_view, strip_track  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Recorder:
    """A render function that draws a line of the given height and records its calls."""

    def __init__(self, with_audio=True, caption=None):
        self.calls, self.with_audio, self.caption = [], with_audio, caption
        self.tone = AUDIO[: SR // 2] * 0.5  # one array object, returned on every call

    def __call__(self, height, label):
        self.calls.append((height, label))
        fig, ax = plt.subplots(figsize=(2, 1))
        ax.plot([0, 1], [0, height])
        ax.set_title(label)
        if not self.with_audio:
            return fig
        audio = self.tone if height < 5 else AUDIO[: SR // 4] * 0.1
        return fig, audio, self.caption


def controls():
    return {"height": ipywidgets.IntSlider(value=1, min=0, max=10),
            "label": ipywidgets.Dropdown(options=["a", "b"], value="a")}


def wav_of(view):
    with wave.open(io.BytesIO(bytes(view.audio.value))) as w:
        return (w.getnchannels(), w.getsampwidth(), w.getframerate(),
                np.frombuffer(w.readframes(w.getnframes()), "<i2"))


def test_live_view_renders_once_at_construction():
    render = Recorder()
    view = live_view(render, controls())
    assert isinstance(view, LiveView) and isinstance(view, ipywidgets.VBox)
    assert render.calls == [(1, "a")] and view.renders == 1
    assert bytes(view.image.value).startswith(PNG_SIGNATURE)
    assert plt.get_fignums() == []  # the figure was closed: nothing else shows it


def test_live_view_rerenders_on_every_control_change():
    render = Recorder()
    view = live_view(render, controls())
    first = view.image.value
    view.controls["height"].value = 7
    view.controls["label"].value = "b"
    assert render.calls == [(1, "a"), (7, "a"), (7, "b")] and view.renders == 3
    assert view.values() == {"height": 7, "label": "b"}
    assert bytes(view.image.value).startswith(PNG_SIGNATURE) and view.image.value != first


def test_live_view_audio_is_a_normalised_mono_wav():
    view = live_view(Recorder(), controls(), sr=SR)
    channels, width, rate, pcm = wav_of(view)
    assert (channels, width, rate, len(pcm)) == (1, 2, SR, SR // 2)
    assert np.abs(pcm).max() == 32767  # peak-normalised
    np.testing.assert_allclose(pcm / 32767, AUDIO[: SR // 2] / np.abs(AUDIO[: SR // 2]).max(),
                               atol=1 / 32767)
    assert view.audio.layout.display is None
    view.controls["height"].value = 8  # a different array: re-encoded
    assert len(wav_of(view)[3]) == SR // 4


def test_live_view_without_normalisation_keeps_the_level():
    view = live_view(Recorder(), controls(), sr=SR, normalize=False)
    pcm = wav_of(view)[3]
    np.testing.assert_allclose(pcm / 32767, 0.5 * AUDIO[: SR // 2], atol=1 / 32767)


def test_live_view_reuses_the_wav_of_the_same_audio_object():
    render = Recorder()
    view = live_view(render, controls())
    encoded = view.audio.value
    view.controls["height"].value = 2  # the same array object comes back
    assert view.audio.value is encoded and view.renders == 2


def test_live_view_without_audio_hides_the_player_and_shows_a_caption():
    view = live_view(Recorder(with_audio=False), controls())
    assert view.audio.layout.display == "none" and view.caption.layout.display == "none"
    captioned = live_view(Recorder(caption="<b>hello</b>"), controls(), columns=1)
    assert captioned.caption.value == "<b>hello</b>" and captioned.caption.layout.display is None
    rows = [c for c in captioned.children if isinstance(c, ipywidgets.HBox)]
    assert [len(r.children) for r in rows] == [1, 1]


def test_live_view_keeps_the_picture_when_render_gives_no_figure():
    picture = []

    def render(height):
        if height > 5:
            return None, None, "too high"
        fig = plt.figure(figsize=(1, 1))
        picture.append(height)
        return fig

    view = live_view(render, {"height": ipywidgets.IntSlider(value=1, max=10)})
    before = view.image.value
    view.controls["height"].value = 9
    assert view.image.value == before and view.caption.value == "too high"


@pytest.mark.parametrize("render, control, message", [
    (lambda height: "not a figure", ipywidgets.IntSlider(), "matplotlib figure"),
    (lambda height: (None, None, None, None), ipywidgets.IntSlider(), "tuple of 4"),
    (lambda height: None, ipywidgets.Button(), "not an ipywidgets widget with a value"),
])
def test_live_view_refuses_bad_input(render, control, message):
    with pytest.raises(ValueError, match=message):
        live_view(render, {"height": control})


def test_figure_png_closes_the_figure():
    sizes = []
    for dpi in (50, 100):
        fig, ax = plt.subplots(figsize=(2, 1))
        ax.plot([0, 1])
        png = figure_png(fig, dpi=dpi)
        assert png.startswith(PNG_SIGNATURE) and plt.get_fignums() == []
        sizes.append(Image.open(io.BytesIO(png)).size[0])
    assert 1.8 * sizes[0] < sizes[1] < 2.2 * sizes[0]  # pixels scale with the dpi


# --- cursor tracks from the unrolled score ------------------------------------------------------


class FakeStrip:
    """Two systems: strip x 0-100 is page 0 x 50-150, strip x 100-200 is page 1 x 50-150."""

    system_x = np.array([0, 100, 200])

    def to_page(self, x):
        x = np.asarray(x, float)
        k = np.clip(np.searchsorted(self.system_x, x, side="right") - 1, 0, 1)
        return k, 50 + x - self.system_x[k], np.where(k, 500.0, 100.0), np.where(k, 700.0, 300.0)


def test_strip_track_maps_to_pages_sorts_and_drops_repeated_times():
    track = strip_track(FakeStrip(), [0.0, 1.0, 0.5, 1.0, 2.0], [10.0, 30.0, 20.0, 40.0, 150.0],
                        label="true", color="#2ca02c")
    assert track.times_s.tolist() == [0.0, 0.5, 1.0, 2.0]
    assert track.x.tolist() == [60.0, 70.0, 80.0, 100.0]  # the first of the two at 1.0 s
    assert track.page.tolist() == [0, 0, 0, 1]
    assert track.y0.tolist() == [100.0, 100.0, 100.0, 500.0]
    assert (track.label, track.color) == ("true", "#2ca02c")
    with pytest.raises(ValueError, match="one length"):
        strip_track(FakeStrip(), [0.0, 1.0], [1.0])


def test_table_formats_every_kind_of_cell():
    from sheetlab.widgets import table

    page = table([{"name": "a<b", "share": 0.1234, "n": 12345, "x": 2.0, "ok": True, "none": None},
                  {"name": "c", "share": 1.0, "n": 1, "x": 1234.5, "ok": False, "none": 3}],
                 caption="cap & co", percent=("share",)).data
    assert "<caption>cap &amp; co</caption>" in page
    assert "<th>name</th><th>share</th><th>n</th><th>x</th><th>ok</th><th>none</th>" in page
    assert "a&lt;b" in page and "12.3 %" in page and "100.0 %" in page
    assert ">12,345<" in page and ">1,234.5<" in page and ">yes<" in page and "<td>–</td>" in page
    assert page.count("<tr>") == 3
    with pytest.raises(ValueError, match="at least one row"):
        table([])
