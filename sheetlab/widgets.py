"""Widgets of the book: the audio–sheet player (chapter 2) and live views (every chapter).

The audio–sheet player plays a performance while one or more cursors move over the images of
the score's pages, turning pages as the music does. Everything it needs (the page images as
PNG, the audio as a 16-bit WAV, the alignment as JSON) is embedded in one HTML output with a
small script, so it runs without a kernel: on the HTML pages built by Jupyter Book, in
JupyterLab / Notebook (trusted notebooks) and in Colab. No external JavaScript, no network.

Size of the output: the audio dominates. A mono 16-bit WAV at 22.05 kHz is 44.1 kB per second,
about 59 kB per second in base64, so 60 s of music make about 3.5 MB of HTML and a 3-minute
piece about 10.6 MB (``embed_sr=11025`` halves that). Pages are downscaled to at most twice
the display width, typically 50–200 kB each.

A *live view* (:func:`live_view`) is the book's kernel-side explorer: controls, a picture and
an optional audio player, redrawn whenever a control changes. It draws the matplotlib figure
into an ``ipywidgets.Image`` as PNG and puts the audio into an ``ipywidgets.Audio`` as WAV,
instead of ``ipywidgets.interact`` with ``plt.show()`` and ``IPython.display.Audio``: those
outputs stall notebook execution under nbclient (Jupyter Book, the tests) until the cell times
out (jupyter/nbclient#312). On the static page the view shows the state it was saved in.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import uuid
import wave
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ipywidgets
import numpy as np
from IPython.display import HTML
from PIL import Image

from sheetlab.perform import SAMPLE_RATE
from sheetlab.spectrogram import frame_to_time

if TYPE_CHECKING:
    from sheetlab.following import FollowResult
    from matplotlib.figure import Figure

    from sheetlab.engrave import Strip

_CSS_COLOR = re.compile(r"^[#\w(),.%\s-]+$")


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no truth value
class CursorTrack:
    """Where one cursor is on the pages over time: one entry per event, e.g. per onset (chapter 2).

    Between two consecutive entries on the same page and system (same ``y0`` and ``y1``) the
    player moves the cursor linearly in x; at a change of system or page it jumps. Before the
    first entry the cursor stands at the first entry, after the last at the last.

    Attributes
    ----------
    times_s : (n,) float64
        Times in seconds, strictly increasing.
    page : (n,) int64
        Page index (0-based) at each time.
    x : (n,) float64
        Horizontal cursor position in page pixels (of the full-resolution page).
    y0, y1 : (n,) float64
        Top and bottom of the cursor in page pixels: the vertical extent of the system.
    label : str
        Name shown in the legend, e.g. ``"score"``, ``"true"`` or ``"predicted"``.
    color : str
        CSS colour of the cursor, e.g. ``"#d62728"``.
    """

    times_s: np.ndarray
    page: np.ndarray
    x: np.ndarray
    y0: np.ndarray
    y1: np.ndarray
    label: str = "score"
    color: str = "#d62728"

    def __post_init__(self) -> None:
        def error(what: str) -> ValueError:
            return ValueError(f"CursorTrack {self.label!r}: {what}")

        names = ("times_s", "page", "x", "y0", "y1")
        arrays = {name: np.asarray(getattr(self, name)) for name in names}
        n = arrays["times_s"].shape
        for name, a in arrays.items():
            if a.ndim != 1 or a.shape != n:
                raise error(f"{name} has shape {a.shape}; every array must be 1-D like times_s {n}")
        if n[0] == 0:
            raise error("the track is empty")
        page = arrays.pop("page")
        if not np.issubdtype(page.dtype, np.integer):
            raise error(f"page must hold integers, got dtype {page.dtype}")
        if page.min() < 0:
            raise error(f"negative page index {page.min()}")
        arrays = {name: a.astype(np.float64) for name, a in arrays.items()}
        for name, a in arrays.items():
            if not np.all(np.isfinite(a)):
                raise error(f"{name} holds NaN or infinite values")
        times = arrays["times_s"]
        if np.any(np.diff(times) <= 0):
            i = int(np.argmax(np.diff(times) <= 0))
            raise error(f"times_s must be strictly increasing: times_s[{i}] = {times[i]}, "
                        f"times_s[{i + 1}] = {times[i + 1]}")
        if np.any(arrays["y1"] < arrays["y0"]):
            raise error(f"y1 < y0 at entry {int(np.argmax(arrays['y1'] < arrays['y0']))}")
        if not isinstance(self.color, str) or not _CSS_COLOR.match(self.color):
            raise error(f"{self.color!r} is not a CSS colour")
        object.__setattr__(self, "page", page.astype(np.int64))
        for name, a in arrays.items():
            object.__setattr__(self, name, a)


def cursor_position(
    track: CursorTrack, t: float, *, interpolate: bool = True
) -> tuple[int, float, float, float]:
    """The cursor of ``track`` at time ``t``, as the player's script computes it (chapter 2).

    Parameters
    ----------
    track : CursorTrack
        The cursor track.
    t : float
        Time in seconds.
    interpolate : bool
        Move x linearly between consecutive entries of one system and page; if False, the
        cursor jumps from entry to entry.

    Returns
    -------
    page : int
        Page index.
    x, y0, y1 : float
        Cursor x and vertical extent in page pixels.
    """
    times = track.times_s
    i = max(int(np.searchsorted(times, t, side="right")) - 1, 0)
    x = float(track.x[i])
    j = i + 1
    if interpolate and j < len(times) and t > times[i] and _same_system(track, i, j):
        x += float((t - times[i]) / (times[j] - times[i]) * (track.x[j] - track.x[i]))
    return int(track.page[i]), x, float(track.y0[i]), float(track.y1[i])


def strip_track(strip: Strip, times_s: np.ndarray, strip_x: np.ndarray, *,
                label: str = "score", color: str = "#d62728") -> CursorTrack:
    """A cursor track from times and positions on the unrolled score (chapter 2).

    Each strip x goes back to its page, page x and system with :meth:`Strip.to_page`. The
    entries are put in time order (stable: ties keep their given order), and an entry whose
    time equals the one before it is dropped, so that times increase strictly: two onsets in
    one spectrogram frame, or a grace note struck with its main note, keep the first.

    Parameters
    ----------
    strip : sheetlab.engrave.Strip
        The unrolled score the x refer to.
    times_s : (n,) float
        Times in seconds, e.g. the performed onsets of the correspondences.
    strip_x : (n,) float
        Strip x in px at those times, e.g. the correspondences' x.
    label, color : str
        As in :class:`CursorTrack`.

    Returns
    -------
    CursorTrack
        In page pixels of the strip's engraving.
    """
    times = np.asarray(times_s, dtype=np.float64)
    x = np.asarray(strip_x, dtype=np.float64)
    if times.ndim != 1 or times.shape != x.shape:
        raise ValueError(f"times_s {times.shape} and strip_x {x.shape} must be 1-D of one length")
    order = np.argsort(times, kind="stable")
    times, x = times[order], x[order]
    keep = np.concatenate([[True], np.diff(times) > 0]) if len(times) else np.zeros(0, bool)
    page, page_x, y0, y1 = strip.to_page(x[keep])
    return CursorTrack(times[keep], np.asarray(page, np.int64), np.asarray(page_x),
                       np.asarray(y0), np.asarray(y1), label, color)


def _same_system(track: CursorTrack, i: int, j: int) -> bool:
    return (track.page[i] == track.page[j] and track.y0[i] == track.y0[j]
            and track.y1[i] == track.y1[j])


def audio_sheet_player(
    pages: list[np.ndarray],
    audio: np.ndarray,
    sr: int,
    tracks: list[CursorTrack],
    *,
    width_px: int = 700,
    interpolate: bool = True,
    embed_sr: int | None = None,
) -> HTML:
    """A player: the audio plays while the cursors move over the pages (chapter 2).

    The page shown is the page of the first track (the reference, e.g. the true alignment); a
    cursor of another track is drawn only while it is on that page (the legend says where it
    is otherwise). Clicking on the page seeks to the first track's time at that spot; the
    buttons beside the audio controls turn to the previous / next page.

    Parameters
    ----------
    pages : list of (H, W) uint8
        Grayscale page images, 255 = white. Shown downscaled to at most ``2 * width_px`` wide.
    audio : (n_samples,) float
        Mono audio in [-1, 1] (values beyond are clipped).
    sr : int
        Sample rate of ``audio`` in Hz.
    tracks : list of CursorTrack
        One or more cursors, in page pixels of ``pages``.
    width_px : int
        Maximum display width of the player in CSS pixels.
    interpolate : bool
        Move the cursors smoothly between entries of one system (see :func:`cursor_position`).
    embed_sr : int, optional
        Resample the audio to this rate before embedding, to shrink the output (default: ``sr``).

    Returns
    -------
    IPython.display.HTML
        Self-contained HTML with an inline script; its ``.data`` is the HTML string. In the
        browser, the player's root element carries ``sheetlab = {position, show, seek}`` for
        other scripts (and the tests).
    """
    sizes = _check_pages(pages)
    if not tracks:
        raise ValueError("audio_sheet_player needs at least one CursorTrack")
    for k, track in enumerate(tracks):
        if not isinstance(track, CursorTrack):
            raise ValueError(f"tracks[{k}] is a {type(track).__name__}, not a CursorTrack")
        _check_track_on_pages(track, sizes)
    if width_px <= 0:
        raise ValueError(f"width_px must be positive, got {width_px}")
    audio = _check_audio(audio, sr)
    if embed_sr is not None and embed_sr != sr:
        audio = _resample(audio, sr, embed_sr)
        sr = embed_sr
    data = {
        "pages": [{"width": w, "height": h} for h, w in sizes],
        "tracks": [_track_json(track) for track in tracks],
        "interpolate": bool(interpolate),
        "duration": len(audio) / sr,
    }
    images = [_png_data_uri(page, 2 * width_px) for page in pages]
    player_id = f"sheetlab-player-{uuid.uuid4().hex[:12]}"
    return HTML(_player_html(player_id, images, _wav_data_uri(audio, sr), data, width_px))


def _check_pages(pages: list[np.ndarray]) -> list[tuple[int, int]]:
    """Validate the page images; returns their (H, W) sizes in pixels."""
    if len(pages) == 0:
        raise ValueError("audio_sheet_player needs at least one page image")
    sizes = []
    for p, page in enumerate(pages):
        page = np.asarray(page)
        if page.ndim != 2 or page.dtype != np.uint8 or 0 in page.shape:
            raise ValueError(
                f"pages[{p}] must be a non-empty (H, W) uint8 grayscale image, "
                f"got shape {page.shape} and dtype {page.dtype}"
            )
        sizes.append(page.shape)
    return sizes


def _check_track_on_pages(track: CursorTrack, sizes: list[tuple[int, int]]) -> None:
    """Check that every entry of ``track`` lies on an existing page, inside it."""
    if track.page.max() >= len(sizes):
        i = int(np.argmax(track.page >= len(sizes)))
        raise ValueError(
            f"CursorTrack {track.label!r}: page index {track.page[i]} at entry {i} is out of range "
            f"for {len(sizes)} page(s)"
        )
    heights, widths = np.array(sizes).T[:, track.page]
    outside = (track.x < 0) | (track.x > widths) | (track.y0 < 0) | (track.y1 > heights)
    if outside.any():
        i = int(np.argmax(outside))
        raise ValueError(
            f"CursorTrack {track.label!r}: entry {i} (x={track.x[i]}, y0={track.y0[i]}, "
            f"y1={track.y1[i]}) lies outside page {track.page[i]} of {widths[i]}x{heights[i]} px"
        )


def _check_audio(audio: np.ndarray, sr: int) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"audio must be a non-empty mono (n_samples,) array, got {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be float in [-1, 1], got dtype {audio.dtype}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio holds NaN or infinite samples")
    if sr <= 0:
        raise ValueError(f"sr must be a positive sample rate in Hz, got {sr}")
    return audio


def _resample(audio: np.ndarray, sr: int, new_sr: int) -> np.ndarray:
    """Polyphase resampling of (n,) audio from ``sr`` to ``new_sr`` Hz."""
    from scipy.signal import resample_poly

    if new_sr <= 0:
        raise ValueError(f"embed_sr must be a positive sample rate in Hz, got {new_sr}")
    g = math.gcd(sr, new_sr)
    return resample_poly(audio.astype(np.float64), new_sr // g, sr // g)


def _track_json(track: CursorTrack) -> dict:
    return {
        "label": track.label,
        "color": track.color,
        "t": track.times_s.tolist(),
        "page": track.page.tolist(),
        "x": track.x.tolist(),
        "y0": track.y0.tolist(),
        "y1": track.y1.tolist(),
    }


def _png_data_uri(page: np.ndarray, max_width_px: int) -> str:
    """(H, W) uint8 page -> PNG data URI, downscaled to at most ``max_width_px`` wide."""
    page = np.asarray(page)
    image = Image.fromarray(page)
    h, w = page.shape
    if w > max_width_px:
        image = image.resize((max_width_px, max(1, round(h * max_width_px / w))), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _wav_bytes(audio: np.ndarray, sr: int) -> bytes:
    """(n,) float audio in [-1, 1] (beyond: clipped) -> a mono 16-bit PCM WAV file."""
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sr))
        w.writeframes(pcm.tobytes())
    return buffer.getvalue()


def _wav_data_uri(audio: np.ndarray, sr: int) -> str:
    """(n,) float audio in [-1, 1] -> mono 16-bit PCM WAV data URI."""
    return "data:audio/wav;base64," + base64.b64encode(_wav_bytes(audio, sr)).decode("ascii")


def _player_html(
    player_id: str, images: list[str], audio_uri: str, data: dict, width_px: int
) -> str:
    """The player's HTML: page images, audio controls, readout, the data as JSON, the script."""
    pages = "\n".join(
        f'<img class="sl-page" alt="page {p + 1}" src="{uri}" style="display:'
        f'{"block" if p == 0 else "none"};width:100%;height:auto;margin:0;max-width:none">'
        for p, uri in enumerate(images)
    )
    # JSON inside <script>: "<" escaped so that no "</script>" in a label can end the element
    payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    return f"""\
<div id="{player_id}" class="sheetlab-player" style="max-width:{width_px}px;font:14px sans-serif">
<div class="sl-sheet" style="position:relative;border:1px solid #bbb;cursor:pointer">
{pages}
</div>
<div style="display:flex;align-items:center;gap:6px;margin-top:4px">
<button class="sl-prev" type="button" title="previous page">&#9664;</button>
<audio controls preload="auto" src="{audio_uri}" style="flex:1;min-width:0"></audio>
<button class="sl-next" type="button" title="next page">&#9654;</button>
</div>
<div style="display:flex;justify-content:space-between;flex-wrap:wrap;gap:12px;margin-top:2px">
<span class="sl-readout">{html.escape(_NO_SCRIPT)}</span><span class="sl-legend"></span>
</div>
</div>
<script type="application/json" id="{player_id}-data">{payload}</script>
<script>({_PLAYER_JS})("{player_id}");</script>
"""


_NO_SCRIPT = "The cursor needs JavaScript (in Jupyter: trust the notebook)."

_PLAYER_JS = r"""function (id) {
  "use strict";
  const root = document.getElementById(id);
  const data = JSON.parse(document.getElementById(id + "-data").textContent);
  const audio = root.querySelector("audio");
  const sheet = root.querySelector(".sl-sheet");
  const images = Array.from(root.querySelectorAll(".sl-page"));
  const readout = root.querySelector(".sl-readout");
  const legend = root.querySelector(".sl-legend");
  const reference = data.tracks[0];
  let shownPage = 0;

  // one absolutely positioned bar per track, in % of the page so that it scales with the image
  const cursors = data.tracks.map(function (track) {
    const bar = document.createElement("div");
    bar.className = "sl-cursor";
    bar.title = track.label;
    bar.style.cssText = "position:absolute;display:none;width:3px;transform:translateX(-50%);" +
      "opacity:0.8;pointer-events:none;background:" + track.color;
    sheet.appendChild(bar);
    return bar;
  });
  const legendItems = data.tracks.map(function (track) {
    const item = document.createElement("span");
    item.style.marginLeft = "12px";
    const swatch = document.createElement("span");
    swatch.style.cssText = "display:inline-block;width:10px;height:10px;margin-right:4px;" +
      "background:" + track.color;
    const text = document.createElement("span");
    item.append(swatch, text);
    legend.appendChild(item);
    return text;
  });

  // largest i with times[i] <= t, or -1
  function lastAtOrBefore(times, t) {
    let lo = 0, hi = times.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (times[mid] <= t) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found;
  }

  function sameSystem(track, i, j) {
    return track.page[i] === track.page[j] && track.y0[i] === track.y0[j] &&
      track.y1[i] === track.y1[j];
  }

  // mirrors sheetlab.widgets.cursor_position
  function position(track, t) {
    const i = Math.max(lastAtOrBefore(track.t, t), 0);
    const j = i + 1;
    let x = track.x[i];
    if (data.interpolate && j < track.t.length && t > track.t[i] && sameSystem(track, i, j)) {
      x += (t - track.t[i]) / (track.t[j] - track.t[i]) * (track.x[j] - track.x[i]);
    }
    return {page: track.page[i], x: x, y0: track.y0[i], y1: track.y1[i]};
  }

  // seconds -> "m:ss.s"
  function clock(t) {
    const tenths = Math.round(t * 10), m = Math.floor(tenths / 600), s = (tenths - 600 * m) / 10;
    return m + ":" + (s < 10 ? "0" : "") + s.toFixed(1);
  }

  function show(t) {
    const positions = data.tracks.map(function (track) { return position(track, t); });
    shownPage = positions[0].page;
    images.forEach(function (img, p) { img.style.display = p === shownPage ? "block" : "none"; });
    const size = data.pages[shownPage];
    positions.forEach(function (pos, k) {
      const bar = cursors[k];
      const onPage = pos.page === shownPage;
      bar.style.display = onPage ? "block" : "none";
      if (onPage) {
        bar.style.left = (100 * pos.x / size.width) + "%";
        bar.style.top = (100 * pos.y0 / size.height) + "%";
        bar.style.height = (100 * (pos.y1 - pos.y0) / size.height) + "%";
      }
      const where = onPage ? "" : " (on page " + (pos.page + 1) + ")";
      legendItems[k].textContent = data.tracks[k].label + where;
    });
    readout.textContent = clock(t) + " / " + clock(data.duration) +
      " \u00b7 page " + (shownPage + 1) + " of " + data.pages.length;
  }

  function seek(t) {
    audio.currentTime = t;
    show(t);
  }

  // the reference track's time at page pixel (px, py): nearest system first, then nearest x
  function timeAt(track, page, px, py) {
    let best = -1, bestDy = Infinity, bestDx = Infinity;
    for (let i = 0; i < track.t.length; i++) {
      if (track.page[i] !== page) continue;
      const dy = Math.max(track.y0[i] - py, py - track.y1[i], 0), dx = Math.abs(track.x[i] - px);
      if (dy < bestDy || (dy === bestDy && dx < bestDx)) { best = i; bestDy = dy; bestDx = dx; }
    }
    if (best < 0) return null;
    const i = track.x[best] <= px ? best : best - 1, j = i + 1;
    if (data.interpolate && i >= 0 && j < track.t.length && sameSystem(track, i, j) &&
        track.x[i] <= px && px < track.x[j]) {
      return track.t[i] + (px - track.x[i]) / (track.x[j] - track.x[i]) * (track.t[j] - track.t[i]);
    }
    return track.t[best];
  }

  function turn(step) {
    for (let p = shownPage + step; p >= 0 && p < data.pages.length; p += step) {
      const i = reference.page.indexOf(p);
      if (i >= 0) { seek(reference.t[i]); return; }
    }
  }

  function tick() {
    show(audio.currentTime);
    if (!audio.paused && !audio.ended) requestAnimationFrame(tick);
  }

  audio.addEventListener("play", function () { requestAnimationFrame(tick); });
  ["timeupdate", "seeked", "loadedmetadata"].forEach(function (name) {
    audio.addEventListener(name, function () { show(audio.currentTime); });
  });
  sheet.addEventListener("click", function (event) {
    const rect = images[shownPage].getBoundingClientRect(), size = data.pages[shownPage];
    const px = (event.clientX - rect.left) / rect.width * size.width;
    const py = (event.clientY - rect.top) / rect.height * size.height;
    const t = timeAt(reference, shownPage, px, py);
    if (t !== null) seek(t);
  });
  root.querySelector(".sl-prev").addEventListener("click", function () { turn(-1); });
  root.querySelector(".sl-next").addEventListener("click", function () { turn(1); });
  root.sheetlab = {position: position, show: show, seek: seek};  // for tests and other scripts
  show(audio.currentTime);
}"""


# --------------------------------------------------------------------------- live views


def figure_png(fig: Figure, dpi: float = 80) -> bytes:
    """A matplotlib figure as PNG bytes, cropped to its content; the figure is closed
    (every chapter).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    dpi : float
        Resolution: pixels per inch of the figure's size.

    Returns
    -------
    bytes
        The PNG file.
    """
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


class LiveView(ipywidgets.VBox):
    """Controls, a caption, a picture and an audio player, redrawn on every change of a control
    (every chapter). Made by :func:`live_view`, which documents the arguments.

    Attributes
    ----------
    controls : dict of str to ipywidgets.Widget
        The controls, by the name of the render function's argument they set.
    image : ipywidgets.Image
        The picture: the PNG of the last figure.
    audio : ipywidgets.Audio
        The player: a mono 16-bit WAV of the last audio (hidden while there is none).
    caption : ipywidgets.HTML
        HTML text above the picture (hidden while empty).
    renders : int
        How often the render function has been called.
    """

    def __init__(self, render: Callable[..., Any], controls: Mapping[str, ipywidgets.Widget], *,
                 sr: int, columns: int, dpi: float, normalize: bool) -> None:
        super().__init__()
        if not controls:
            raise ValueError("live_view needs at least one control")
        for name, control in controls.items():
            if not isinstance(control, ipywidgets.ValueWidget):
                raise ValueError(f"control {name!r} is a {type(control).__name__}, "
                                 "not an ipywidgets widget with a value")
        if columns < 1 or sr <= 0:
            raise ValueError(f"need columns >= 1 and sr > 0, got {columns} and {sr}")
        self.render_function = render
        self.controls = dict(controls)
        self.sr, self.dpi, self.normalize = sr, dpi, normalize
        self.renders = 0
        self._audio_source: np.ndarray | None = None
        self.caption = ipywidgets.HTML(layout=ipywidgets.Layout(display="none"))
        self.image = ipywidgets.Image(format="png", layout=ipywidgets.Layout(max_width="100%"))
        self.audio = ipywidgets.Audio(format="wav", autoplay=False, loop=False,
                                      layout=ipywidgets.Layout(display="none"))
        widgets = list(self.controls.values())
        rows = [ipywidgets.HBox(widgets[i:i + columns]) for i in range(0, len(widgets), columns)]
        self.children = [*rows, self.caption, self.image, self.audio]
        self.refresh()
        for control in widgets:
            control.observe(self.refresh, names="value")

    def values(self) -> dict[str, Any]:
        """The controls' current values, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def refresh(self, change: Any = None) -> None:
        """Call the render function with the controls' values and show what it returns."""
        result = self.render_function(**self.values())
        self.renders += 1
        figure, audio, caption = _view_parts(result)
        if figure is not None:
            self.image.value = figure_png(figure, self.dpi)
        self.caption.value = caption or ""
        self.caption.layout.display = None if caption else "none"
        if audio is None:
            self._audio_source = None
            self.audio.layout.display = "none"
        elif audio is not self._audio_source:  # the same array again: nothing to re-encode
            samples = _check_audio(audio, self.sr).astype(np.float64)
            peak = float(np.max(np.abs(samples)))
            if self.normalize and peak > 0:
                samples = samples / peak
            self.audio.value = _wav_bytes(samples, self.sr)
            self._audio_source = audio
            self.audio.layout.display = None


def _view_parts(result: Any) -> tuple[Any, np.ndarray | None, str | None]:
    """``(figure, audio, caption)`` from what a live view's render function returned."""
    parts = tuple(result) if isinstance(result, tuple) else (result,)
    if not 1 <= len(parts) <= 3:
        raise ValueError("a live view's render function returns a figure, (figure, audio) or "
                         f"(figure, audio, caption), not a tuple of {len(parts)}")
    figure, audio, caption = parts + (None,) * (3 - len(parts))
    if figure is not None and not hasattr(figure, "savefig"):
        raise ValueError(f"the render function returned a {type(figure).__name__} where a "
                         "matplotlib figure (or None) belongs")
    return figure, audio, caption


def live_view(render: Callable[..., Any], controls: Mapping[str, ipywidgets.Widget], *,
              sr: int = SAMPLE_RATE, columns: int = 3, dpi: float = 80,
              normalize: bool = True) -> LiveView:
    """An explorer: controls, and a figure and a sound redrawn whenever one of them changes
    (every chapter).

    ``render`` is called once now and again on every change of a control's value, with every
    control's value as a keyword argument (``render(**{name: control.value})``). It returns a
    matplotlib figure, ``(figure, audio)`` or ``(figure, audio, caption)``:

    * the figure is drawn to PNG (at ``dpi``, cropped to its content) into the view's
      ``Image`` and closed, so that nothing else shows it; None keeps the previous picture;
    * the audio, ``(n_samples,)`` float in [-1, 1] at ``sr`` Hz, goes into the view's ``Audio``
      player as a 16-bit WAV (peak-normalised if ``normalize``); None hides the player. When
      the same array object comes back, it is not encoded again;
    * the caption, an HTML string, is shown above the picture; None or "" hides it.

    The view does not use ``ipywidgets.interact``, ``plt.show()`` or ``IPython.display.Audio``,
    whose outputs stall notebook execution under nbclient (jupyter/nbclient#312); on the book's
    static pages it shows the state it was saved in.

    Parameters
    ----------
    render : callable
        ``render(**values) -> figure | (figure, audio) | (figure, audio, caption)``.
    controls : mapping of str to ipywidgets.Widget
        Widgets with a ``value`` (sliders, dropdowns, check boxes, ...), by the name of the
        ``render`` argument each one sets; shown in this order.
    sr : int
        Sample rate of the audio in Hz.
    columns : int
        Controls per row.
    dpi : float
        Resolution of the picture, pixels per inch of the figure's size.
    normalize : bool
        Scale the audio to a peak of 1 (as ``IPython.display.Audio`` does).

    Returns
    -------
    LiveView
        An ``ipywidgets.VBox``: display it (or make it the last expression of a cell).
    """
    return LiveView(render, controls, sr=sr, columns=columns, dpi=dpi, normalize=normalize)


def follow_tracks(result: FollowResult, strip: Strip, *, true_color: str = "#2ca02c",
                  predicted_color: str = "#d62728") -> list[CursorTrack]:
    """Cursors of the true and the followed position of a score-following run, for
    :func:`audio_sheet_player` (chapter 5).

    Parameters
    ----------
    result : sheetlab.following.FollowResult
        What :func:`sheetlab.following.follow` did.
    strip : sheetlab.engrave.Strip
        The piece's unrolled score with its page mapping, e.g.
        ``unroll(engrave(score, condition.engrave))`` for the piece's score and condition.
    true_color, predicted_color : str
        CSS colours of the two cursors.

    Returns
    -------
    list of CursorTrack
        ``[true, predicted]``: the true cursor has one entry per onset time, the predicted
        cursor one per frame (clamped to the strip).
    """
    if strip.image.shape[1] != result.strip_width_px:
        raise ValueError(f"the strip is {strip.image.shape[1]} px wide, but {result.piece_id!r} "
                         f"was followed in a strip of {result.strip_width_px} px: another "
                         f"engraving?")
    frames = np.arange(len(result.frame_x))
    predicted_x = np.clip(result.frame_x, 0, strip.image.shape[1])
    return [strip_track(strip, result.onset_s, result.true_x, label="true", color=true_color),
            strip_track(strip, frame_to_time(frames, result.fps), predicted_x,
                        label="predicted", color=predicted_color)]



def table(rows: list[Mapping[str, Any]], caption: str = "", percent: tuple[str, ...] = (),
          digits: int = 1, percent_digits: int = 1) -> HTML:
    """A list of rows as an HTML table for a notebook (every chapter).

    Parameters
    ----------
    rows : list of mapping
        One mapping per row, all with the same keys: the column names.
    caption : str
        Shown above the table.
    percent : tuple of str
        Columns holding shares in [0, 1], shown as percentages.
    digits : int
        Decimals of floats.
    percent_digits : int
        Decimals of percentages.

    Returns
    -------
    IPython.display.HTML
        Display it, or make it the last expression of a cell. None shows as a dash, booleans
        as "yes" or nothing, numbers right-aligned with thousands separators.
    """
    if not rows:
        raise ValueError("table needs at least one row")

    def cell(key: str, value: Any) -> str:
        if value is None:
            return "<td>–</td>"
        if isinstance(value, (bool, np.bool_)):
            return f"<td>{'yes' if value else ''}</td>"
        if key in percent:
            return f'<td style="text-align:right">{100 * value:.{percent_digits}f} %</td>'
        if isinstance(value, (float, np.floating)):
            return f'<td style="text-align:right">{value:,.{digits}f}</td>'
        if isinstance(value, (int, np.integer)):
            return f'<td style="text-align:right">{value:,}</td>'
        return f"<td>{html.escape(str(value))}</td>"

    head = "".join(f"<th>{html.escape(str(key))}</th>" for key in rows[0])
    body = "".join("<tr>" + "".join(cell(k, v) for k, v in row.items()) + "</tr>"
                   for row in rows)
    return HTML(f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr>"
                f"</thead><tbody>{body}</tbody></table>")
