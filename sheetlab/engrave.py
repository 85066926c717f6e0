"""Engraving scores with verovio: pages, note heads, systems and the unrolled score (chapter 2).

verovio lays a score out on pages and writes one SVG per page. Everything this module reports
is read from verovio itself, so the ground truth is exact:

* **note heads**: the bounding box verovio writes for every ``g.note`` (option
  ``svgBoundingBoxes``); a note's own box is its head, without stem, flag, dots or accidental;
* **systems and staves**: the staff-line paths of every ``g.system`` / ``g.staff``;
* **onsets and durations**: ``renderToTimemap()``, which matches verovio's MIDI output
  (``getTimesForElement`` returns wrong times in verovio 6.4.1);
* **pitch**: ``getMIDIValuesForElement``; **staff, grace notes, ties**: verovio's own MEI.

The pages are rasterised with cairosvg. Musical decisions, made once for the whole book:

* **repeats are not expanded** (verovio's ``expandNever``): every note head has exactly one
  onset and the score is played once from start to end, as it is printed;
* **tied notes**: a tie continuation starts no new sound, so it is not a note here; the first
  note of a tie chain lasts until the chain ends (as in verovio's MIDI);
* **grace notes** are kept (they are heads that sound) and flagged; verovio gives them time
  taken from the note they ornament, which then starts a little late;
* rests have no head and are not notes; the heads of a chord share one onset;
* tempo marks (``g.tempo``) and any text in the music font are hidden on the rasters: cairosvg
  cannot load verovio's embedded font and would draw them as boxes. The footer is off.

Coordinates are continuous pixel coordinates: pixel ``(r, c)`` of an image covers
``c <= x < c + 1`` and ``r <= y < r + 1``, so ``image[int(y), int(x)]`` holds the point
``(x, y)``. Page rasters have ``page_staff_space_px`` pixels per staff space (10 by default:
a 1200 × 1550 px page); the unrolled strips have ``strip_staff_space_px`` (4 by default).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the corpus module provides the input type; engrave only reads its fields
    import verovio

    from sheetlab.corpus import Score

_SVG = "{http://www.w3.org/2000/svg}"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
_ID_SEED = 1  # verovio's xmlIdSeed: the same score always gets the same element ids
_MUSIC_FONT = "Leipzig"  # verovio's default SMuFL font, which cairosvg cannot draw as text
_BREAKS = ("auto", "none", "encoded", "line", "smart")
_LINE = re.compile(r"M\s*(-?[\d.]+)[ ,]+(-?[\d.]+)\s*L\s*(-?[\d.]+)[ ,]+(-?[\d.]+)\s*$")
_TRANSLATE = re.compile(r"^\s*translate\(\s*(-?[\d.]+)[ ,]+(-?[\d.]+)\s*\)\s*$")

ET.register_namespace("", "http://www.w3.org/2000/svg")
ET.register_namespace("xlink", "http://www.w3.org/1999/xlink")


class EngraveError(ValueError):
    """verovio cannot engrave a score; the message names the score's source and the cause."""


@dataclass(frozen=True)
class EngraveSettings:
    """Every setting that determines an engraving and its unrolled strip (chapter 2).

    Lengths in verovio's page units are tenths of a millimetre. The defaults give a page of
    216 × 279 mm (US Letter, close to A4) with 10 mm margins and verovio's standard staff
    (a staff space of 1.8 mm, a staff 7.2 mm high, as in printed piano music), rasterised at
    10 px per staff space: 1200 × 1550 px pages on which note heads are about 12 × 10 px.
    (verovio's own ``scale`` option only sizes its SVG output and stays at 100; the raster
    resolution is ``page_staff_space_px``.)

    Attributes
    ----------
    page_width, page_height : int
        Page size in verovio page units (tenths of a mm).
    page_margin : int
        Margin on all four sides, in verovio page units.
    unit : float
        verovio's MEI unit (half a staff space) in page units; smaller means smaller notation
        and more music per page.
    breaks : str
        verovio's line breaking: ``"auto"`` (fill systems and pages), ``"none"`` (one long
        system on one page, as wide as the music), ``"encoded"``, ``"line"`` or ``"smart"``
        (follow the breaks encoded in the score, in verovio's three ways).
    page_staff_space_px : float
        Resolution of the page rasters, in pixels per staff space.
    strip_staff_space_px : float
        Resolution of the unrolled strip (:func:`unroll`), in pixels per staff space. At 4 px a
        single staff with three staff spaces of room above and below is 40 px high, the
        height of the sheet input of the talk (40 × 390 px).
    mono_strip_height_ss : float
        Strip height for single-staff scores, in staff spaces: the staff (4) and 3 staff spaces
        above and below (heads on the second ledger line still fit: 99.8 % of the heads of 171
        Essen folk songs lie wholly inside).
    piano_strip_height_ss : float
        Strip height for scores of two or more staves, in staff spaces: a grand-staff system is
        14 to 17 staff spaces from its top line to its bottom line; 28 (112 px at 4 px) leave
        about 6 staff spaces above and below, which hold 99.8 % or more of the note heads of
        four piano pieces of music21's corpus (Joplin, Chopin, Clara Schumann, Mozart; 24 held
        97.7-100 %). Scores of more than two staves need a larger height (see :func:`unroll`).
    """

    page_width: int = 2160
    page_height: int = 2790
    page_margin: int = 100
    unit: float = 9.0
    breaks: str = "auto"
    page_staff_space_px: float = 10.0
    strip_staff_space_px: float = 4.0
    mono_strip_height_ss: float = 10.0
    piano_strip_height_ss: float = 28.0

    def __post_init__(self) -> None:
        if self.breaks not in _BREAKS:
            raise ValueError(f"breaks must be one of {_BREAKS}, got {self.breaks!r}")
        sizes = {k: v for k, v in self.as_dict().items() if k not in ("breaks", "page_margin")}
        bad = [k for k, v in sizes.items() if not v > 0]
        if bad or self.page_margin < 0:
            raise ValueError(f"engrave settings must be positive: {bad or ['page_margin']}")

    def as_dict(self) -> dict:
        """The settings as a plain dict (JSON-serialisable, for cache keys)."""
        return asdict(self)

    def verovio_options(self) -> dict:
        """The verovio toolkit options these settings stand for (chapter 2)."""
        margin = self.page_margin
        return {
            "xmlIdSeed": _ID_SEED, "svgBoundingBoxes": True, "expandNever": True,
            "footer": "none", "condense": "none", "scale": 100, "breaks": self.breaks,
            "pageWidth": self.page_width, "pageHeight": self.page_height, "unit": self.unit,
            "pageMarginLeft": margin, "pageMarginRight": margin,
            "pageMarginTop": margin, "pageMarginBottom": margin,
        }

    @property
    def px_per_svg_unit(self) -> float:
        """Page raster pixels per verovio SVG unit (a tenth of a page unit; a staff space is
        ``20 * unit`` SVG units)."""
        return self.page_staff_space_px / (20.0 * self.unit)


def note_dtype(id_chars: int) -> np.dtype:
    """The structured dtype of :attr:`Engraving.notes` (chapter 2).

    Fields: ``id`` (verovio's xml:id), ``page`` (0-based), ``x``, ``y`` (head centre, page px),
    ``w``, ``h`` (head box size, px), ``staff`` (1-based, top staff is 1), ``system`` (0-based,
    counted across pages), ``pitch`` (MIDI), ``onset_s``, ``duration_s`` (seconds at the score's
    tempo), ``onset_q`` (quarter notes from the start), ``grace`` (a grace note).

    Parameters
    ----------
    id_chars : int
        Width of the ``id`` field in characters.
    """
    return np.dtype([
        ("id", f"U{id_chars}"), ("page", "i4"), ("x", "f8"), ("y", "f8"), ("w", "f8"),
        ("h", "f8"), ("staff", "i4"), ("system", "i4"), ("pitch", "i4"), ("onset_s", "f8"),
        ("duration_s", "f8"), ("onset_q", "f8"), ("grace", "?"),
    ])


def system_dtype(n_staves: int) -> np.dtype:
    """The structured dtype of :attr:`Engraving.systems` (chapter 2).

    Fields: ``page`` (0-based), ``x0``, ``y0``, ``x1``, ``y1`` (the box from the left end of
    the staff lines to their right end, from the top line of the first staff to the bottom line
    of the last, page px), ``band_y0``, ``band_y1`` (the rows of the page that belong to the
    system: from half-way to the system above to half-way to the system below, measured
    between the systems' contents, or to the page's edge; page px), ``staff_lines``
    (``(n_staves, 5)`` y of every staff line, page px, top to bottom), ``staff_space_px`` (mean
    distance between neighbouring lines).

    Parameters
    ----------
    n_staves : int
        Staves per system.
    """
    return np.dtype([
        ("page", "i4"), ("x0", "f8"), ("y0", "f8"), ("x1", "f8"), ("y1", "f8"),
        ("band_y0", "f8"), ("band_y1", "f8"), ("staff_lines", "f8", (n_staves, 5)),
        ("staff_space_px", "f8"),
    ])


@dataclass
class Engraving:
    """A score engraved by verovio: page rasters and the exact position of everything on them
    (chapter 2).

    Attributes
    ----------
    score_id : str
        The engraved score's id.
    settings : EngraveSettings
        The settings it was engraved with.
    pages : list of numpy.ndarray
        ``(H, W) uint8`` grayscale page rasters, 255 = white (1550 × 1200 with the defaults).
    notes : numpy.ndarray
        ``(n_notes,)`` structured array (:func:`note_dtype`), one row per sounding note head,
        sorted by onset, then staff, then pitch.
    systems : numpy.ndarray
        ``(n_systems,)`` structured array (:func:`system_dtype`), in reading order.
    """

    score_id: str
    settings: EngraveSettings
    pages: list[np.ndarray]
    notes: np.ndarray
    systems: np.ndarray


@dataclass
class Strip:
    """The unrolled score: every system cut from the pages and joined left to right (chapter 2).

    Attributes
    ----------
    image : numpy.ndarray
        ``(H, W) uint8`` grayscale strip, 255 = white.
    note_x, note_y : numpy.ndarray
        ``(n_notes,) float64`` head centres in strip px, in the order of ``Engraving.notes``.
    system_x : numpy.ndarray
        ``(n_systems + 1,) int64`` strip x where each system starts, and the strip's width.
    staff_space_px : float
        Pixels per staff space on the strip.
    scale : float
        Strip pixels per page pixel.
    systems : numpy.ndarray
        The engraving's systems (:func:`system_dtype`), for mapping back to the pages.
    """

    image: np.ndarray
    note_x: np.ndarray
    note_y: np.ndarray
    system_x: np.ndarray
    staff_space_px: float
    scale: float
    systems: np.ndarray

    def to_page(self, x) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Map strip x back to the pages (chapter 2), for drawing a cursor on a page.

        Parameters
        ----------
        x : float or array_like
            Strip x in px, any shape. A system owns the x from its start up to the next
            system's start; x before the strip belongs to the first system, x after it to the
            last (both mapped linearly beyond the system's ends).

        Returns
        -------
        page, page_x, y0, y1 : numpy.ndarray
            Arrays of the shape of ``x`` (numpy scalars for a scalar ``x``): the page (0-based,
            int), the page x (px), and the vertical extent of the system on that page (top
            staff line to bottom staff line, px).
        """
        x = np.asarray(x, dtype=float)
        k = np.clip(np.searchsorted(self.system_x, x, side="right") - 1, 0, len(self.systems) - 1)
        s = self.systems[k]
        return s["page"], s["x0"] + (x - self.system_x[k]) / self.scale, s["y0"], s["y1"]


def engrave(score: Score, settings: EngraveSettings = EngraveSettings()) -> Engraving:
    """Engrave a score with verovio: page rasters, note heads with onsets, systems (chapter 2).

    The same score and settings always give byte-identical pages and identical arrays.

    Parameters
    ----------
    score : sheetlab.corpus.Score
        The score; its ``data`` is MusicXML, MEI, Humdrum or ABC text (verovio detects which).
    settings : EngraveSettings
        Page layout and raster resolution.

    Returns
    -------
    Engraving
        Pages, notes and systems.

    Raises
    ------
    EngraveError
        verovio cannot load the score, or it has no note head with an onset.
    """
    tk = _load(score, settings)
    timemap = tk.renderToTimemap()  # before getMIDIValuesForElement, which needs it
    pages, heads, systems = [], [], []
    for page in range(tk.getPageCount()):
        root = ET.fromstring(tk.renderToSVG(page + 1))
        page_heads, page_systems = _read_page(root, page, len(systems), settings.px_per_svg_unit)
        heads += page_heads
        systems += page_systems
        pages.append(_rasterise(root, settings.px_per_svg_unit))
    notes = _note_table(heads, timemap, ET.fromstring(tk.getMEI()), tk, score.source)
    if len(notes) == 0:
        raise EngraveError(f"{score.source}: verovio engraved no note head with an onset "
                           f"(an empty score?)")
    return Engraving(score.id, settings, pages, notes, _system_table(systems, score.source))


def page_to_strip_x(page_x, system, system_x0, system_start_x, scale: float) -> np.ndarray:
    """Where a point of a page lands on the unrolled score (chapter 2).

    :func:`unroll` scales every system by ``scale`` and places its left end (the left end of
    its staff lines, page x ``system_x0[k]``) at strip x ``system_start_x[k]``, so a point at
    page x on system ``k`` lands at
    ``system_start_x[k] + (page_x - system_x0[k]) * scale``. :meth:`Strip.to_page` inverts it.

    Parameters
    ----------
    page_x : float or array_like
        Page x in px, any shape.
    system : int or array_like of int
        The (0-based) system of each point, of the shape of ``page_x``.
    system_x0 : (n_systems,) array_like
        Page x in px where each system's staff lines begin.
    system_start_x : (n_systems,) or (n_systems + 1,) array_like
        Strip x in px where each system begins (:attr:`Strip.system_x`).
    scale : float
        Strip pixels per page pixel.

    Returns
    -------
    numpy.ndarray
        ``float64`` strip x in px, of the shape of ``page_x`` (0-d for scalars).
    """
    system = np.asarray(system)
    if not np.issubdtype(system.dtype, np.integer):
        raise ValueError(f"system must hold integer system indices, got dtype {system.dtype}")
    system_x0 = np.asarray(system_x0, dtype=np.float64)
    system_start_x = np.asarray(system_start_x, dtype=np.float64)
    page_x = np.asarray(page_x, dtype=np.float64)
    return system_start_x[system] + (page_x - system_x0[system]) * scale


def unroll(engraving: Engraving, staff_space_px: float | None = None,
           height_px: int | None = None) -> Strip:
    """Unroll the score: cut every system from its page and join them left to right (chapter 2).

    Every system is scaled by the same factor (from the page's to the strip's staff space) and
    centred vertically on its middle: the middle staff line of a single staff, the middle between
    the top and the bottom line of a grand staff. So the strip has one fixed height and the
    staves of consecutive systems line up (up to the small differences in the distance between
    the staves of a grand staff). Only the system's own band of the page is copied (so no
    piece of a neighbouring system shows), and whatever lies outside the strip's height is cut
    off. Pixels are area averages of the page raster.

    Parameters
    ----------
    engraving : Engraving
        The engraved score.
    staff_space_px : float, optional
        Strip pixels per staff space; default ``engraving.settings.strip_staff_space_px``.
    height_px : int, optional
        Strip height in px; default the settings' ``mono_strip_height_ss`` (one staff per
        system) or ``piano_strip_height_ss`` (two or more) staff spaces.

    Returns
    -------
    Strip
        The strip and the position of every note head on it.
    """
    settings = engraving.settings
    if staff_space_px is None:
        staff_space_px = settings.strip_staff_space_px
    scale = staff_space_px / settings.page_staff_space_px
    systems = engraving.systems
    if height_px is None:
        one_staff = systems.dtype["staff_lines"].shape[0] == 1
        height_ss = settings.mono_strip_height_ss if one_staff else settings.piano_strip_height_ss
        height_px = round(height_ss * staff_space_px)
    widths = np.maximum(1, np.rint((systems["x1"] - systems["x0"]) * scale)).astype(np.int64)
    system_x = np.concatenate([[0], np.cumsum(widths)])
    middle = (systems["y0"] + systems["y1"]) / 2
    top = middle - height_px / (2 * scale)
    pieces = []
    for k, s in enumerate(systems):
        ink = 255.0 - engraving.pages[s["page"]]
        ink[: round(s["band_y0"])] = 0
        ink[round(s["band_y1"]):] = 0
        ink = _area_resample(ink, top[k], 1 / scale, height_px, axis=0)
        pieces.append(_area_resample(ink, s["x0"], 1 / scale, int(widths[k]), axis=1))
    image = np.clip(np.rint(255.0 - np.concatenate(pieces, axis=1)), 0, 255).astype(np.uint8)
    k = engraving.notes["system"]
    note_x = page_to_strip_x(engraving.notes["x"], k, systems["x0"], system_x, scale)
    note_y = (engraving.notes["y"] - top[k]) * scale
    return Strip(image, note_x, note_y, system_x, staff_space_px, scale, systems)


def _load(score: Score, settings: EngraveSettings) -> verovio.toolkit:
    """A verovio toolkit with the score loaded, or :class:`EngraveError`."""
    import verovio

    verovio.enableLog(verovio.LOG_ERROR)  # layout warnings (beams, ...) are not the reader's concern
    tk = verovio.toolkit()
    tk.setOptions(settings.verovio_options())
    if not score.data.strip() or not tk.loadData(score.data):
        raise EngraveError(f"{score.source}: verovio cannot load the score (is it MusicXML, MEI, "
                           f"Humdrum or ABC?)")
    if tk.getPageCount() < 1:
        raise EngraveError(f"{score.source}: verovio loaded the score but engraved no page")
    return tk


def _read_page(root: ET.Element, page: int, first_system: int,
               px: float) -> tuple[list[tuple], list[dict]]:
    """Note heads and systems of one verovio SVG page.

    Returns
    -------
    heads : list of tuple
        ``(id, page, x, y, w, h, system)`` per ``g.note`` with a bounding box (page px).
    systems : list of dict
        Per system: ``page``; ``staves``, a list (in SVG order) of dicts with the staff
        lines' ``ys`` and their horizontal extent ``x0``, ``x1``; ``content``, the top and bottom
        of everything verovio counts to the staves (heads, stems, beams, ledger lines); and
        ``band``, the rows of the page that belong to the system (page px).
    """
    heads: list[tuple] = []
    systems: list[dict] = []

    def visit(el: ET.Element, dx: float, dy: float) -> None:
        classes = el.get("class", "").split()
        if "bounding-box" in classes:
            return
        shift = _TRANSLATE.match(el.get("transform", "")) if el.tag == _SVG + "g" else None
        if shift:
            dx, dy = dx + float(shift[1]), dy + float(shift[2])
        if "system" in classes:
            systems.append({"page": page, "staves": [], "content": [math.inf, -math.inf]})
        elif "measure" in classes:
            staves = [c for c in el if "staff" in c.get("class", "").split()]
            for k, staff in enumerate(staves):
                _add_staff_lines(systems[-1]["staves"], k, staff, dx, dy, px)
                box = _own_box(staff)
                if box is not None:
                    content = systems[-1]["content"]
                    content[0] = min(content[0], (box[1] + dy) * px)
                    content[1] = max(content[1], (box[1] + box[3] + dy) * px)
        elif "note" in classes:
            box = _own_box(el)
            if box is not None:
                x, y, w, h = box
                heads.append((el.get("id"), page, (x + dx + w / 2) * px, (y + dy + h / 2) * px,
                              w * px, h * px, first_system + len(systems) - 1))
        for child in el:
            visit(child, dx, dy)

    visit(root, 0.0, 0.0)
    height = float(root.find(_SVG + "svg").get("viewBox").split()[3]) * px
    cuts = [(a["content"][1] + b["content"][0]) / 2 for a, b in zip(systems, systems[1:])]
    for system, y0, y1 in zip(systems, [0.0] + cuts, cuts + [height]):
        system["band"] = (y0, y1)
    return heads, systems


def _add_staff_lines(staves: list[dict], k: int, staff: ET.Element, dx: float, dy: float,
                     px: float) -> None:
    """Record the staff lines of staff ``k`` of one measure (the lines are ``path`` children)."""
    lines = [_LINE.match(p.get("d", "")) for p in staff if p.tag == _SVG + "path"]
    lines = [(float(m[1]), float(m[3]), float(m[2])) for m in lines if m and m[2] == m[4]]
    if not lines:
        return
    x0 = (min(x for x, _, _ in lines) + dx) * px
    x1 = (max(x for _, x, _ in lines) + dx) * px
    if k == len(staves):
        staves.append({"ys": sorted((y + dy) * px for _, _, y in lines), "x0": x0, "x1": x1})
    else:
        staves[k]["x0"], staves[k]["x1"] = min(staves[k]["x0"], x0), max(staves[k]["x1"], x1)


def _own_box(el: ET.Element) -> tuple[float, float, float, float] | None:
    """``(x, y, w, h)`` of the bounding box verovio wrote for this element itself, if any."""
    for child in el:
        if "bounding-box" in child.get("class", "").split():
            rect = child.find(_SVG + "rect")
            if rect is None:
                return None
            return tuple(float(rect.get(a)) for a in ("x", "y", "width", "height"))
    return None


def _system_table(systems: list[dict], source: str) -> np.ndarray:
    """The systems as a structured array (:func:`system_dtype`)."""
    counts = {len(s["staves"]) for s in systems}
    if len(counts) != 1 or 0 in counts:
        raise EngraveError(f"{source}: systems have different numbers of staves {sorted(counts)}")
    if any(len(st["ys"]) != 5 for s in systems for st in s["staves"]):
        raise EngraveError(f"{source}: only five-line staves are supported")
    table = np.zeros(len(systems), dtype=system_dtype(counts.pop()))
    for row, s in zip(table, systems):
        lines = np.array([st["ys"] for st in s["staves"]])
        row["page"] = s["page"]
        row["x0"] = min(st["x0"] for st in s["staves"])
        row["x1"] = max(st["x1"] for st in s["staves"])
        row["y0"], row["y1"] = lines[0, 0], lines[-1, -1]
        row["band_y0"], row["band_y1"] = s["band"]
        row["staff_lines"] = lines
        row["staff_space_px"] = np.diff(lines, axis=1).mean()
    return table


def _note_table(heads: list[tuple], timemap: list[dict], mei: ET.Element, tk: verovio.toolkit,
                source: str) -> np.ndarray:
    """Join the heads drawn in the SVG with their onsets, pitches, staves and ties.

    A head is a note when verovio's timemap gives it an onset and it does not continue a tie.
    """
    on, off = {}, {}
    for event in timemap:
        for i in event.get("on", ()):
            on[i] = (event["tstamp"] / 1000.0, float(event["qstamp"]))
        for i in event.get("off", ()):
            off[i] = event["tstamp"] / 1000.0
    staff_of, grace, chords, ties = _mei_notes(mei)
    pitch = {i: tk.getMIDIValuesForElement(i).get("pitch") for i in on if i in staff_of}
    tie_next, continues = _tie_chains(ties, chords, pitch)
    rows = []
    for i, page, x, y, w, h, system in heads:
        if i not in on or i in continues:
            continue
        if pitch.get(i) is None:
            raise EngraveError(f"{source}: verovio gives no MIDI pitch for note {i} (unpitched?)")
        end = i  # the last note of the tie chain; ties only ever lead forward in time
        while end in tie_next and on.get(tie_next[end], (-1.0,))[0] > on[end][0]:
            end = tie_next[end]
        onset_s, onset_q = on[i]
        rows.append((i, page, x, y, w, h, staff_of[i], system, pitch[i], onset_s,
                     off.get(end, off[i]) - onset_s, onset_q, i in grace))
    table = np.array(rows, dtype=note_dtype(max([len(r[0]) for r in rows], default=1)))
    return table[np.lexsort((table["id"], table["x"], table["pitch"], table["staff"],
                             table["onset_s"]))]


def _mei_notes(mei: ET.Element) -> tuple[dict[str, int], set[str], dict[str, list[str]],
                                         list[tuple[str, str]]]:
    """Staff, grace flag, chord membership and ties from verovio's MEI.

    Returns
    -------
    staff_of : dict
        Note id -> 1-based staff (the note's own ``@staff`` for cross-staff notes).
    grace : set
        Ids of grace notes (``@grace`` on the note or its chord).
    chords : dict
        Chord id -> ids of its notes.
    ties : list of tuple
        ``(startid, endid)`` of every ``tie``.
    """
    staff_of: dict[str, int] = {}
    grace: set[str] = set()
    chords: dict[str, list[str]] = {}
    ties: list[tuple[str, str]] = []

    def visit(el: ET.Element, staff: int, chord: ET.Element | None) -> None:
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "staff":
            staff = int(el.get("n", staff))
        elif tag == "chord":
            chord = el
            chords[el.get(_XML_ID)] = []
        elif tag == "note":
            i = el.get(_XML_ID)
            staff_of[i] = int(el.get("staff", str(staff)).split()[0])
            if el.get("grace") or (chord is not None and chord.get("grace")):
                grace.add(i)
            if chord is not None:
                chords[chord.get(_XML_ID)].append(i)
        elif tag == "tie":
            ties.append((el.get("startid", "").lstrip("#"), el.get("endid", "").lstrip("#")))
        for child in el:
            visit(child, staff, chord)

    visit(mei, 0, None)
    return staff_of, grace, chords, ties


def _tie_chains(ties: list[tuple[str, str]], chords: dict[str, list[str]],
                pitch: dict[str, int | None]) -> tuple[dict[str, str], set[str]]:
    """Follow ties note by note; a tie between chords links the notes of equal pitch.

    Returns
    -------
    tie_next : dict
        Note id -> id of the note its tie continues into.
    continues : set
        Ids of notes that continue a tie (they start no new sound).
    """
    tie_next: dict[str, str] = {}
    continues: set[str] = set()
    for start, end in ties:
        starts, ends = chords.get(start, [start]), chords.get(end, [end])
        continues.update(ends)
        for s in starts:
            same = [e for e in ends if len(ends) == 1 or pitch.get(e) == pitch.get(s)]
            if same and same[0] != s:
                tie_next[s] = same[0]
    return tie_next, continues


def _rasterise(root: ET.Element, px: float) -> np.ndarray:
    """Rasterise a verovio SVG page with cairosvg at ``px`` pixels per SVG unit.

    Returns
    -------
    numpy.ndarray
        ``(H, W) uint8`` grayscale page, 255 = white.
    """
    from cairosvg.parser import Tree
    from cairosvg.surface import PNGSurface

    inner = root.find(_SVG + "svg")
    _, _, width, height = (float(v) for v in inner.get("viewBox").split())
    inner.set("width", repr(width * px))
    inner.set("height", repr(height * px))
    root.set("width", str(math.ceil(width * px - 1e-6)))
    root.set("height", str(math.ceil(height * px - 1e-6)))
    glyphs = {glyph.get("id"): list(glyph) for defs in root.iter(_SVG + "defs") for glyph in defs}
    css = "".join(style.text or "" for style in root.iter(_SVG + "style"))
    styled = set(re.findall(r"g\.([\w-]+)", css))  # classes that CSS rules name
    root[:] = _drawable(root, glyphs, styled)
    surface = PNGSurface(Tree(bytestring=ET.tostring(root)), None, 96, background_color="white")
    image = surface.cairo
    image.flush()
    h, w, stride = image.get_height(), image.get_width(), image.get_stride()
    bgra = np.frombuffer(image.get_data(), np.uint8).reshape(h, stride)[:, : 4 * w]
    bgra = bgra.reshape(h, w, 4).astype(np.uint32)
    gray = (bgra[..., 2] * 299 + bgra[..., 1] * 587 + bgra[..., 0] * 114 + 500) // 1000
    return gray.astype(np.uint8)


def _drawable(parent: ET.Element, glyphs: dict[str, list[ET.Element]],
              styled: set[str]) -> list[ET.Element]:
    """The children of ``parent`` as cairosvg should draw them: about twice as fast as
    verovio's SVG as it is, and without boxes for glyphs cairosvg cannot draw.

    Bounding boxes, tempo marks and text in the music font (which cairosvg cannot draw) are
    removed; glyph references (``use``) become copies of the glyph's paths; groups that only
    structure the document (no attributes but ``id`` and a ``class`` that no CSS rule names)
    are replaced by their children.
    """
    out = []
    for child in parent:
        classes = set(child.get("class", "").split())
        if (child.tag == _SVG + "defs" or classes & {"bounding-box", "tempo"}
                or child.get("font-family") == _MUSIC_FONT):
            continue
        if child.tag == _SVG + "use":
            shift = child.get("transform", "")
            for part in glyphs[child.get(_XLINK_HREF, "").lstrip("#")]:
                transform = f"{shift} {part.get('transform', '')}"
                out.append(ET.Element(part.tag, {**part.attrib, "transform": transform}))
        elif (child.tag == _SVG + "g" and set(child.keys()) <= {"id", "class"}
              and not classes & styled):
            out += _drawable(child, glyphs, styled)
        else:
            child[:] = _drawable(child, glyphs, styled)
            out.append(child)
    return out


def _area_resample(ink: np.ndarray, start: float, step: float, n_out: int, axis: int) -> np.ndarray:
    """Resample one axis by area averaging: output pixel ``j`` averages the source interval
    ``[start + j * step, start + (j + 1) * step)``; outside the image counts as 0.

    Parameters
    ----------
    ink : numpy.ndarray
        ``(rows, cols) float`` image (ink = 255 - gray, so that blank is 0).
    start, step : float
        Source coordinate of the first output pixel's edge, and source px per output px.
    n_out : int
        Output length along ``axis``.
    axis : int
        0 (rows) or 1 (columns).

    Returns
    -------
    numpy.ndarray
        ``ink`` with ``n_out`` rows (axis 0) or columns (axis 1).
    """
    edges = start + step * np.arange(n_out + 1)
    first = np.floor(edges[:-1]).astype(np.int64)
    n_src = ink.shape[axis]
    shape = (-1, 1) if axis == 0 else (1, -1)
    out = np.zeros((n_out, ink.shape[1]) if axis == 0 else (ink.shape[0], n_out))
    for tap in range(math.ceil(step) + 1):
        index = first + tap
        weight = np.minimum(edges[1:], index + 1) - np.maximum(edges[:-1], index)
        weight = np.where((index >= 0) & (index < n_src), weight.clip(0) / step, 0.0)
        out += np.take(ink, index.clip(0, n_src - 1), axis=axis) * weight.reshape(shape)
    return out
