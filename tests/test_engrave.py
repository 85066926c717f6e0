"""Engraving tests on tiny scores written here, engraved by the real verovio and cairosvg."""

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sheetlab.corpus import Score as CorpusScore
from sheetlab.engrave import EngraveError, EngraveSettings, engrave, unroll


def make_score(id: str, data: str, *, kind: str = "mono", source: str = "test.musicxml") -> CorpusScore:
    """A :class:`sheetlab.corpus.Score` of MusicXML written in this file."""
    return CorpusScore(id, data, "musicxml", kind, source)


def note(step, octave, divisions, kind, *, alter=0, dot=False, chord=False, grace=False,
         tie=None, staff=None, accidental=None):
    """One MusicXML ``<note>``."""
    alter_xml = f"<alter>{alter}</alter>" if alter else ""
    tie_xml = f'<tie type="{tie}"/>' if tie else ""
    tied_xml = f'<notations><tied type="{tie}"/></notations>' if tie else ""
    return ("<note>" + ("<grace/>" if grace else "") + ("<chord/>" if chord else "")
            + f"<pitch><step>{step}</step>{alter_xml}<octave>{octave}</octave></pitch>"
            + ("" if grace else f"<duration>{divisions}</duration>") + tie_xml
            + f"<type>{kind}</type>" + ("<dot/>" if dot else "")
            + (f"<accidental>{accidental}</accidental>" if accidental else "")
            + (f"<staff>{staff}</staff>" if staff else "") + tied_xml + "</note>")


def rest(divisions, kind, staff=None):
    """A MusicXML rest (verovio needs its ``<type>``: without one it reads a long rest)."""
    staff_xml = f"<staff>{staff}</staff>" if staff else ""
    return f"<note><rest/><duration>{divisions}</duration><type>{kind}</type>{staff_xml}</note>"


def musicxml(measures, *, staves=1, fifths=0, beats=4, divisions=2, tempo=120):
    """A one-part MusicXML score; ``measures`` is a list of lists of element strings."""
    clefs = ('<clef number="1"><sign>G</sign><line>2</line></clef>'
             '<clef number="2"><sign>F</sign><line>4</line></clef>' if staves == 2
             else "<clef><sign>G</sign><line>2</line></clef>")
    attributes = (f"<attributes><divisions>{divisions}</divisions><key><fifths>{fifths}</fifths>"
                  f"</key><time><beats>{beats}</beats><beat-type>4</beat-type></time>"
                  f"<staves>{staves}</staves>{clefs}</attributes><sound tempo=\"{tempo}\"/>")
    body = "".join(f'<measure number="{i + 1}">{attributes if i == 0 else ""}{"".join(m)}</measure>'
                   for i, m in enumerate(measures))
    return ('<?xml version="1.0" encoding="UTF-8"?><score-partwise version="3.1"><part-list>'
            '<score-part id="P1"><part-name>Music</part-name></score-part></part-list>'
            f'<part id="P1">{body}</part></score-partwise>')


# Key of G (MusicXML spells the F sharp out with <alter>), 4/4, quarter = 0.5 s.
MONO = musicxml([
    [note("C", 4, 2, "quarter"), note("F", 4, 2, "quarter", alter=1),
     note("D", 5, 0, "eighth", grace=True), note("B", 4, 2, "quarter"), rest(2, "quarter")],
    [note("E", 5, 4, "half"), note("G", 4, 4, "half", tie="start")],
    [note("G", 4, 2, "quarter", tie="stop"), note("C", 5, 2, "quarter"),
     note("E", 5, 2, "quarter", chord=True), note("B", 4, 4, "half")],
    [note("A", 4, 8, "whole")],
], fifths=1)
MONO_PITCHES = [60, 66, 74, 71, 76, 67, 72, 76, 71, 69]  # G4 tie continuation has no onset
MONO_OPEN = {(76, 2.0), (67, 3.0), (71, 5.0), (69, 6.0)}  # (pitch, onset_s) of half/whole notes

PIANO = musicxml([
    [note("D", 5, 1, "quarter", staff=1), note("F", 5, 1, "quarter", alter=1, staff=1),
     note("G", 5, 1, "quarter", staff=1), "<backup><duration>3</duration></backup>",
     note("G", 2, 3, "half", dot=True, staff=2), note("D", 3, 3, "half", dot=True, chord=True,
                                                       staff=2)],
    [note("B", 4, 3, "half", dot=True, staff=1), "<backup><duration>3</duration></backup>",
     rest(3, "half", staff=2)],
], staves=2, fifths=1, beats=3, divisions=1, tempo=90)


def long_piano(n_measures=48):
    """A grand-staff piece long enough for several pages at a short page height."""
    steps = "CDEFGAB"
    measures = []
    for i in range(n_measures):
        upper = [note(steps[(i + j) % 7], 5, 1, "quarter", staff=1) for j in range(4)]
        lower = [note(steps[i % 7], 3, 2, "half", staff=2), note("G", 2, 2, "half", staff=2)]
        measures.append(upper + ["<backup><duration>4</duration></backup>"] + lower)
    return musicxml(measures, staves=2, divisions=1)


SHORT_PAGES = EngraveSettings(page_height=1200)


@pytest.fixture(scope="module")
def mono():
    return engrave(make_score("mono", MONO, source="mono.musicxml"))


@pytest.fixture(scope="module")
def piano():
    return engrave(make_score("piano", PIANO, kind="piano", source="piano.musicxml"))


@pytest.fixture(scope="module")
def pages():
    return engrave(make_score("long", long_piano(), kind="piano", source="long.musicxml"), SHORT_PAGES)


def pixel(engraving, notes, dx=0.0, dy=0.0):
    """Gray value of the page pixel under each head centre, shifted by (dx, dy) px."""
    return np.array([engraving.pages[p][int(y + dy), int(x + dx)]
                     for p, x, y in zip(notes["page"], notes["x"], notes["y"])])


def is_open(notes):
    keys = zip(notes["pitch"], notes["onset_s"])
    return np.array([(p, round(t, 3)) in MONO_OPEN for p, t in keys])


def test_mono_notes_pitches_onsets_ties_grace(mono):
    notes = mono.notes
    assert list(notes["pitch"]) == MONO_PITCHES
    assert np.all(np.diff(notes["onset_s"]) >= 0)
    by_pitch_onset = {(n["pitch"], round(n["onset_s"], 3)): n for n in notes}
    assert by_pitch_onset[(60, 0.0)]["onset_q"] == 0.0
    assert by_pitch_onset[(66, 0.5)]["duration_s"] == pytest.approx(0.5)
    tied = by_pitch_onset[(67, 3.0)]
    assert tied["duration_s"] == pytest.approx(1.5)  # the tie chain sounds for a half + a quarter
    assert tied["onset_q"] == 6.0
    grace = notes[notes["grace"]]
    assert list(grace["pitch"]) == [74]
    principal = notes[(notes["pitch"] == 71) & (notes["onset_s"] < 2)][0]
    assert 0.5 < grace["onset_s"][0] < principal["onset_s"] < 1.5  # takes time from the B
    chord = notes[notes["onset_s"] == 4.5]
    assert sorted(chord["pitch"]) == [72, 76] and np.all(chord["x"] == chord["x"][0])
    assert set(notes["staff"]) == {1} and set(notes["system"]) == {0} and set(notes["page"]) == {0}
    assert len(set(notes["id"])) == len(notes)


def test_page_raster_format(mono):
    settings = mono.settings
    page = mono.pages[0]
    assert page.dtype == np.uint8 and page.ndim == 2
    px_per_unit = settings.page_staff_space_px / (2 * settings.unit)
    assert page.shape == (round(settings.page_height * px_per_unit),
                          round(settings.page_width * px_per_unit))
    assert page.shape == (1550, 1200) and page.max() == 255 and page.min() < 50


def test_filled_head_centres_lie_on_dark_pixels(mono, piano, pages):
    for engraving, open_heads in ((mono, is_open(mono.notes)),
                                  (piano, piano.notes["duration_s"] >= 1.5),
                                  (pages, pages.notes["duration_s"] >= 1.0)):
        filled = engraving.notes[~open_heads]
        assert len(filled) > 0
        for dx, dy in ((0, 0), (-2, 0), (2, 0), (0, -2), (0, 2)):  # heads are ~12 x 10 px
            assert np.all(pixel(engraving, filled, dx, dy) < 100), (engraving.score_id, dx, dy)


def test_open_heads_are_light_inside_and_dark_around(mono):
    heads = mono.notes[is_open(mono.notes)]
    assert len(heads) == 4
    for head in heads:
        page = mono.pages[head["page"]].astype(int)
        x, y, w, h = (int(round(head[k])) for k in ("x", "y", "w", "h"))
        box = page[y - h // 2: y + h // 2 + 1, x - w // 2: x + w // 2 + 1]
        assert box.min() < 60  # the outline
        # a ring half-way out from the centre crosses the outline
        ring = [page[int(y + 0.4 * h * np.sin(a)), int(x + 0.4 * w * np.cos(a))]
                for a in np.linspace(0, 2 * np.pi, 16, endpoint=False)]
        assert min(ring) < 100


def test_heads_lie_inside_their_system_and_staff(mono, piano, pages):
    for engraving in (mono, piano, pages):
        notes, systems = engraving.notes, engraving.systems
        s = systems[notes["system"]]
        assert np.all(notes["page"] == s["page"])
        assert np.all((notes["x"] > s["x0"]) & (notes["x"] < s["x1"]))
        lines = s["staff_lines"][np.arange(len(notes)), notes["staff"] - 1]
        space = s["staff_space_px"]
        # within 3 ledger lines of their own staff
        assert np.all(notes["y"] > lines[:, 0] - 3.5 * space)
        assert np.all(notes["y"] < lines[:, -1] + 3.5 * space)


def overlap(a0, a1, b0, b1):
    """Length of the intersection of the intervals [a0, a1) and [b0, b1)."""
    return max(0.0, min(a1, b1) - max(a0, b0))


def row_coverage(y, thickness, rows):
    """Fraction of each pixel row ``[r, r + 1)`` that a horizontal line at ``y`` covers."""
    return np.array([overlap(y - thickness / 2, y + thickness / 2, r, r + 1) for r in rows])


def test_staff_lines_fall_where_the_coordinates_say(pages):
    """Page and strip coordinates are exact to a small fraction of a pixel. On the page, the ink
    of every staff line row by row (median along the line) is the area the line covers; on the
    strip, each row holds the area average of the page rows it covers."""
    strip = unroll(pages)
    line_px = 13 * pages.settings.px_per_svg_unit  # verovio's staff lines are 13 SVG units thick
    step = 1 / strip.scale  # page rows per strip row
    for k, s in enumerate(pages.systems):
        page = pages.pages[s["page"]].astype(float)
        x0, x1 = int(s["x0"]) + 2, int(s["x1"]) - 2
        sx0, sx1 = strip.system_x[k] + 1, strip.system_x[k + 1] - 1
        top = (s["y0"] + s["y1"]) / 2 - strip.image.shape[0] / 2 * step  # page y of strip row 0
        for y in s["staff_lines"].ravel():
            rows = range(int(y) - 1, int(y) + 2)
            page_ink = np.array([(255 - np.median(page[r, x0:x1])) / 255 for r in rows])
            assert np.allclose(page_ink, row_coverage(y, line_px, rows), atol=0.02)
            j = int((y - top) / step)
            expected = [sum(ink * overlap(r, r + 1, top + i * step, top + (i + 1) * step)
                            for r, ink in zip(rows, page_ink)) / step for i in (j - 1, j, j + 1)]
            ink = [(255 - np.median(strip.image[i, sx0:sx1].astype(float))) / 255
                   for i in (j - 1, j, j + 1)]
            assert np.allclose(ink, expected, atol=0.02)


def test_systems_geometry(mono, piano):
    for engraving, n_staves in ((mono, 1), (piano, 2)):
        systems = engraving.systems
        assert systems["staff_lines"].shape == (len(systems), n_staves, 5)
        assert np.allclose(systems["staff_space_px"], engraving.settings.page_staff_space_px)
        spaces = np.diff(systems["staff_lines"], axis=2)
        assert np.allclose(spaces, engraving.settings.page_staff_space_px)
        assert np.all(systems["y0"] == systems["staff_lines"][:, 0, 0])
        assert np.all(systems["y1"] == systems["staff_lines"][:, -1, -1])
    assert list(piano.notes["staff"][piano.notes["onset_s"] == 0]) == [1, 2, 2]  # sorted by staff


def test_piano_pitches_and_chords(piano):
    notes = piano.notes
    assert sorted(notes["pitch"][notes["onset_s"] == 0]) == [43, 50, 74]
    assert notes["pitch"][notes["onset_q"] == 1][0] == 78
    assert notes["onset_s"][notes["pitch"] == 71][0] == pytest.approx(2.0)  # 3 quarters at 90 bpm


def test_multi_page_systems_are_ordered(pages):
    notes, systems = pages.notes, pages.systems
    assert len(pages.pages) >= 2 and len(set(notes["page"])) == len(pages.pages)
    assert len(notes) == 48 * 6
    assert np.all(np.diff(systems["page"]) >= 0)
    for page in range(len(pages.pages)):
        assert np.all(np.diff(systems["y0"][systems["page"] == page]) > 0)
    for k in range(len(systems) - 1):  # the music goes on from system to system
        onsets = notes["onset_s"]
        assert onsets[notes["system"] == k].max() < onsets[notes["system"] == k + 1].min()


def test_each_system_owns_a_band_of_its_page(pages):
    notes, systems = pages.notes, pages.systems
    assert np.all(systems["band_y0"] < systems["y0"]) and np.all(systems["y1"] < systems["band_y1"])
    for page in range(len(pages.pages)):
        on_page = systems[systems["page"] == page]
        assert on_page["band_y0"][0] == 0
        assert on_page["band_y1"][-1] == pytest.approx(pages.pages[page].shape[0], abs=1)
        assert np.array_equal(on_page["band_y1"][:-1], on_page["band_y0"][1:])
    band = systems[notes["system"]]
    assert np.all(notes["y"] - notes["h"] / 2 > band["band_y0"])
    assert np.all(notes["y"] + notes["h"] / 2 < band["band_y1"])
    strip = unroll(pages)
    step = 1 / strip.scale
    n_outside = 0
    for k, s in enumerate(systems):  # strip rows wholly outside the band are blank
        top = (s["y0"] + s["y1"]) / 2 - strip.image.shape[0] / 2 * step
        rows = np.arange(strip.image.shape[0])
        outside = (top + (rows + 1) * step <= s["band_y0"]) | (top + rows * step >= s["band_y1"])
        assert np.all(strip.image[outside, strip.system_x[k]:strip.system_x[k + 1]] == 255)
        n_outside += outside.sum()
    assert n_outside > 0


def test_strip_x_increases_with_onset_within_each_system(mono, piano, pages):
    for engraving in (mono, piano, pages):
        strip = unroll(engraving)
        notes = engraving.notes
        for k in range(len(engraving.systems)):
            here = notes["system"] == k
            onsets, x = notes["onset_s"][here], strip.note_x[here]
            groups = np.unique(onsets)
            left = np.array([x[onsets == t].min() for t in groups])
            right = np.array([x[onsets == t].max() for t in groups])
            assert np.all(left[1:] > right[:-1])
            assert np.all((x >= strip.system_x[k]) & (x < strip.system_x[k + 1]))


def test_strip_shape_and_heads(mono, piano, pages):
    for engraving, height in ((mono, 40), (piano, 112), (pages, 112)):
        strip = unroll(engraving)
        assert strip.image.dtype == np.uint8 and strip.image.shape[0] == height
        assert strip.image.shape[1] == strip.system_x[-1]
        assert len(strip.system_x) == len(engraving.systems) + 1
        assert np.all(np.diff(strip.system_x) > 0)
        assert np.all((strip.note_y > 0) & (strip.note_y < height))
    strip = unroll(pages)
    filled = pages.notes["duration_s"] < 1.0
    ink = strip.image[strip.note_y[filled].astype(int), strip.note_x[filled].astype(int)]
    assert np.all(ink < 128)
    bigger = unroll(pages, staff_space_px=6.0, height_px=150)
    assert bigger.image.shape[0] == 150
    assert bigger.system_x[-1] == pytest.approx(strip.system_x[-1] * 1.5, rel=0.01)


def test_to_page_inverts_the_strip(pages, mono):
    for engraving in (pages, mono):
        strip = unroll(engraving)
        notes = engraving.notes
        page, x, y0, y1 = strip.to_page(strip.note_x)
        assert np.array_equal(page, notes["page"])
        assert np.max(np.abs(x - notes["x"])) < 1.0
        space = engraving.settings.page_staff_space_px
        assert np.all((notes["y"] > y0 - 4 * space) & (notes["y"] < y1 + 4 * space))
    page, x, y0, y1 = strip.to_page(0.0)
    assert page.shape == () and page == 0 and x == pytest.approx(engraving.systems["x0"][0])


def test_single_system_without_breaks():
    engraving = engrave(make_score("long", long_piano(12), kind="piano"), EngraveSettings(breaks="none"))
    assert len(engraving.pages) == 1 and len(engraving.systems) == 1
    assert engraving.pages[0].shape[1] > engraving.pages[0].shape[0]


def test_engraving_is_deterministic(pages):
    again = engrave(make_score("long", long_piano(), kind="piano", source="long.musicxml"), SHORT_PAGES)
    assert [p.tobytes() for p in again.pages] == [p.tobytes() for p in pages.pages]
    assert again.notes.tobytes() == pages.notes.tobytes()
    assert again.systems.tobytes() == pages.systems.tobytes()
    assert unroll(again).image.tobytes() == unroll(pages).image.tobytes()


@pytest.mark.parametrize("data, cause", [
    ("this is not music", "cannot load"),
    ("", "cannot load"),
    (musicxml([['<note><rest measure="yes"/><duration>8</duration></note>']]), "no note head"),
])
def test_bad_scores_raise_naming_the_source(data, cause):
    with pytest.raises(EngraveError, match=cause) as error:
        engrave(make_score("bad", data, source="scores/bad.musicxml"))
    assert "scores/bad.musicxml" in str(error.value)
    assert isinstance(error.value, ValueError)


def test_settings():
    settings = EngraveSettings()
    assert json.loads(json.dumps(settings.as_dict())) == settings.as_dict()
    assert settings.px_per_svg_unit == pytest.approx(10 / 180)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.unit = 8.0
    with pytest.raises(ValueError, match="breaks"):
        EngraveSettings(breaks="sometimes")
    with pytest.raises(ValueError):
        EngraveSettings(strip_staff_space_px=0)
    assert EngraveSettings(unit=7.5).as_dict() != settings.as_dict()


def real_piece():
    """Mozart K. 545, 1st movement, exposition: a real piano score from music21's corpus, as a
    :class:`sheetlab.corpus.Score` where that module exists."""
    music21 = pytest.importorskip("music21")
    path = Path(music21.__file__).parent / "corpus" / "mozart" / "k545" / "movement1_exposition.mxl"
    with zipfile.ZipFile(path) as mxl:
        name = next(n for n in mxl.namelist() if n.endswith(".xml") and not n.startswith("META"))
        data = mxl.read(name).decode("utf-8")
    return CorpusScore(id="k545", data=data, format="musicxml", kind="piano", source=str(path))


def test_real_piano_piece():
    engraving = engrave(real_piece())
    notes = engraving.notes
    assert len(notes) > 150 and engraving.systems["staff_lines"].shape[1:] == (2, 5)
    assert set(notes["staff"]) == {1, 2}
    dark = pixel(engraving, notes) < 100
    assert dark.mean() > 0.98  # all but the few half and whole notes (open heads)
    strip = unroll(engraving)
    page, x, _, _ = strip.to_page(strip.note_x)
    assert np.array_equal(page, notes["page"]) and np.max(np.abs(x - notes["x"])) < 1.0
    inside = (strip.note_y > 2) & (strip.note_y < strip.image.shape[0] - 2)
    assert inside.all()


def test_page_to_strip_x_is_what_unroll_uses_and_to_page_inverts(pages):
    from sheetlab.engrave import page_to_strip_x

    strip = unroll(pages)
    notes, systems = pages.notes, pages.systems
    x = page_to_strip_x(notes["x"], notes["system"], systems["x0"], strip.system_x, strip.scale)
    assert np.array_equal(x, strip.note_x)
    page, page_x, _, _ = strip.to_page(x)
    np.testing.assert_allclose(page_x, notes["x"], atol=1e-9)
    assert np.array_equal(page, notes["page"])
    k = len(systems) - 1  # scalars give a 0-d array; the strip starts of a system's left end
    assert page_to_strip_x(systems["x0"][k], k, systems["x0"], strip.system_x, 0.4) == \
        strip.system_x[k]
    with pytest.raises(ValueError, match="integer system"):
        page_to_strip_x(notes["x"], notes["system"].astype(float), systems["x0"], strip.system_x,
                        strip.scale)
