"""The piece catalogue, the reductions to verovio-ready scores and a user's own files."""

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
import verovio

from sheetlab import corpus
from sheetlab.corpus import DEMO_ID, Piece, ScoreError, composer_split, load_score, pieces

MEI = "{http://www.music-encoding.org/ns/mei}"
TINY_XML = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="4.0">
  <part-list>{parts}</part-list>
  {body}
</score-partwise>
"""
PART = '<score-part id="P{n}"><part-name>p{n}</part-name></score-part>'
MEASURE = """<part id="P{n}"><measure number="1">
  <attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type></time>
  <clef><sign>G</sign><line>2</line></clef></attributes>
  {notes}
</measure></part>"""
NOTE = "<note><pitch><step>C</step><octave>5</octave></pitch><duration>4</duration></note>"
REST = "<note><rest/><duration>4</duration></note>"


def tiny_musicxml(n_parts: int = 1, notes: str = NOTE) -> str:
    """A one-measure MusicXML score of ``n_parts`` one-staff parts."""
    return TINY_XML.format(parts="".join(PART.format(n=n) for n in range(1, n_parts + 1)),
                           body="".join(MEASURE.format(n=n, notes=notes)
                                        for n in range(1, n_parts + 1)))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def timemap(data: str) -> list[dict]:
    tk = verovio.toolkit()
    assert tk.loadData(data)
    return tk.renderToTimemap()


def staff_count(data: str) -> int:
    tk = verovio.toolkit()
    assert tk.loadData(data)
    score_def = next(ET.fromstring(tk.getMEI()).iter(f"{MEI}scoreDef"))
    return sum(1 for _ in score_def.iter(f"{MEI}staffDef"))


def piece(piece_id: str) -> Piece:
    return next(p for p in corpus.catalogue() if p.id == piece_id)


@pytest.fixture(scope="module")
def samples() -> dict[str, corpus.Score]:
    """One score of each kind of source, made once for the module."""
    mono = pieces("mono", "test", limit=2)
    chosen = {"mono0": mono[0], "mono1": mono[1], "chorale": piece("bach/bwv66.6"),
              "quartet": piece("mozart/k156-4"), "demo": piece(DEMO_ID)}
    return {name: corpus.score(p) for name, p in chosen.items()}


# --------------------------------------------------------------------------- catalogue


def test_catalogue_sizes_and_kinds():
    mono, piano = corpus.catalogue("mono"), corpus.catalogue("piano")
    assert len(mono) >= 2000
    assert corpus.catalogue() == mono + piano
    assert {p.kind for p in mono} == {"mono"} and {p.kind for p in piano} == {"piano"}
    ids = [p.id for p in mono + piano]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z_]+/[A-Za-z0-9_.-]+", i) and ".." not in i for i in ids)
    composers = {p.composer for p in piano}
    assert {"Bach", "Mozart", "Haydn", "Beethoven", "Chopin", "Clara Schumann",
            "Robert Schumann", "Joplin"} <= composers
    groups = {e["group"] for e in corpus._index()["pieces"]}
    assert groups == {"chorale", "quartet", "piano"}
    assert sum(p.id.startswith("bach/bwv") for p in piano) >= 300


def test_splits_are_disjoint_fixed_and_sized():
    for kind in corpus.KINDS:
        for subset in corpus.SUBSETS:
            by_split = {s: [p.id for p in pieces(kind, s, subset=subset)] for s in corpus.SPLITS}
            assert all(by_split.values())
            flat = [i for ids in by_split.values() for i in ids]
            assert len(flat) == len(set(flat))
            assert [p.id for p in pieces(kind, subset=subset)] == \
                   [p.id for p in corpus._catalogue(kind) if p.id in set(flat)]
            assert all(p.split == s for s in corpus.SPLITS
                       for p in pieces(kind, s, subset=subset))
    assert [len(pieces("mono", s)) for s in corpus.SPLITS] == [400, 50, 50]
    assert 40 <= len(pieces("piano")) <= 60
    assert pieces("piano", "train", limit=3) == pieces("piano", "train")[:3]
    # a piece's split is a fixed function of its id (pinned: changing it invalidates results)
    assert [piece(i).split for i in ("bach/bwv66.6", "essen/han1-7", "essen/erk10-11")] == \
           ["train", "valid", "test"]
    for kind in corpus.KINDS:
        shares = [sum(p.split == s for p in corpus.catalogue(kind)) / len(corpus.catalogue(kind))
                  for s in corpus.SPLITS]
        assert shares == pytest.approx([0.8, 0.1, 0.1], abs=0.02)


def test_demo_is_in_every_test_split():
    for subset in corpus.SUBSETS:
        assert pieces("piano", "test", limit=1, subset=subset)[0].id == DEMO_ID
        assert composer_split(subset=subset)["test"][0].id == DEMO_ID
    assert piece(DEMO_ID).split == "test"


def test_composer_split():
    split = composer_split("Mozart")
    assert set(split) == set(corpus.SPLITS)
    train, valid, test = (split[s] for s in corpus.SPLITS)
    assert train and valid and len(test) > 20
    assert all(p.composer == "Mozart" and p.id != DEMO_ID for p in train + valid)
    assert [p.id for p in test if p.composer == "Mozart"] == [DEMO_ID]
    ids = [p.id for p in train + valid + test]
    assert len(ids) == len(set(ids))
    assert all(p.split == s for s, ps in split.items() for p in ps)
    mozart = {p.id for p in corpus.catalogue("piano") if p.composer == "Mozart"}
    assert {p.id for p in train + valid} == mozart - {DEMO_ID}
    assert composer_split("mozart") == split
    assert len(composer_split(subset="all")["test"]) > len(test)
    with pytest.raises(ValueError, match="no piano pieces by 'Salieri'"):
        composer_split("Salieri")


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind must be one of mono, piano"):
        pieces("drums")
    with pytest.raises(ValueError, match="split must be one of"):
        pieces("mono", "validation")
    with pytest.raises(ValueError, match="subset must be one of"):
        pieces("mono", subset="tiny")
    with pytest.raises(ScoreError, match="not in the piano catalogue"):
        corpus.score(Piece("x/y", "", "", "piano", "train", "x.mxl"))


def test_index_matches_a_sample():
    saved = json.loads(corpus.INDEX_PATH.read_text(encoding="utf-8"))
    assert saved["music21"] == corpus.music21.__version__, "rerun python -m sheetlab.corpus"
    index = {e["id"]: e for e in corpus._index()["pieces"]}
    left_out = {e["id"]: e["reason"] for e in saved["left_out"]}
    candidates = {c["id"]: c for c in corpus._piano_candidates()}
    assert set(index) | set(left_out) == set(candidates) and not set(index) & set(left_out)
    assert len(left_out) < 60 and DEMO_ID in index
    for piece_id in (DEMO_ID, "bach/bwv66.6", "mozart/k156-4", "chopin/mazurka06-2"):
        assert corpus._index_entry(candidates[piece_id]) == index[piece_id]
    assert "not a four-part chorale (5 parts)" in left_out["bach/bwv1.6"]
    with pytest.raises(ScoreError, match="not a four-part chorale"):
        corpus._index_entry(candidates["bach/bwv1.6"])
    # folk songs: the irregular ones are left out, the others are regular
    tunes = {e["id"]: e["source"] for e in corpus._essen_entries()}
    irregular = saved["essen_irregular"]
    assert set(irregular) <= set(tunes) and 0 < len(irregular) < len(tunes) / 5
    assert not set(irregular) & {p.id for p in corpus.catalogue("mono")}
    assert all(corpus._irregular(tunes[i]) for i in irregular[::len(irregular) // 5])
    assert not any(corpus._irregular(p.source) for p in pieces("mono", "valid", limit=5))


# --------------------------------------------------------------------------- scores


def test_scores_engrave_in_verovio(samples):
    for name, built in samples.items():
        assert built.format == "musicxml" and built.data.startswith("<?xml")
        events = timemap(built.data)
        assert sum(len(e.get("on", ())) for e in events) > 10, name
        # K. 545: "Allegro" = 132; the chorale's own playback tempo; no tempo: the default
        expected = {"demo": 132, "chorale": 96}.get(name, corpus.DEFAULT_QPM)
        assert events[0]["tempo"] == expected, name
        assert staff_count(built.data) == (1 if built.kind == "mono" else 2), name
    demo = samples["demo"]
    assert (demo.id, demo.kind, demo.source) == (DEMO_ID, "piano",
                                                 "mozart/k545/movement1_exposition.mxl")
    assert "K. 545" in demo.title and demo.composer == "Mozart"
    assert "<lyric" not in samples["chorale"].data
    assert "encoding-date" not in demo.data


def test_long_pieces_are_cut():
    entry = next(e for e in corpus._index()["pieces"] if e["id"] == "beethoven/op132-1")
    assert entry["measures"] == corpus.MAX_MEASURES
    assert max(e["measures"] for e in corpus._index()["pieces"]) == corpus.MAX_MEASURES


def test_continuations_take_the_measures_after_the_cut():
    by_id = {p.id: p for p in corpus.catalogue("piano")}
    quartet = by_id["beethoven/op18no1-1"]  # 313 measures: 64 + four continuations + 57
    found = corpus.continuations([quartet, by_id["bach/bwv66.6"], by_id["mozart/k80-1"],
                                  by_id["mozart/k80-2"], *pieces("mono", limit=2)], 2)
    assert [(p.id, p.first_measure) for p in found] == [
        ("beethoven/op18no1-1-m65", 65), ("beethoven/op18no1-1-m129", 129),
        ("mozart/k80-2-m65", 65)]  # k80-1 has 67 measures: 3 left, fewer than 8
    assert found[2].title.endswith("movement 2, measures 65-84")
    assert all(p.split == "train" and p.kind == "piano" for p in found)
    assert [corpus.group(p) for p in (found[0], by_id["bach/bwv66.6"], by_id[DEMO_ID],
                                      pieces("mono", limit=1)[0])] == \
        ["quartet", "chorale", "piano", "folk song"]
    assert len(corpus.continuations([quartet], 10)) == 4  # m65 .. m257; m257-313 is the last
    assert corpus.continuations([quartet], 0) == []
    with pytest.raises(ValueError, match="0 or more, got -1"):
        corpus.continuations([quartet], -1)


def test_a_continuation_starts_with_what_is_in_force_there():
    """Measures 65-128 of the Grosse Fuge: its key and meter are set before measure 65, and
    the engraved continuation carries them in its first measure, with both clefs and a tempo
    mark of the source's (not the default)."""
    from music21 import corpus as m21corpus
    from music21 import key, meter, stream

    piece = corpus.continuations([p for p in corpus.catalogue("piano")
                                  if p.id == "beethoven/op133-1"], 1)[0]
    built = corpus.score(piece)
    source = m21corpus.parse(piece.source).parts[0]
    m65 = list(source.getElementsByClass(stream.Measure))[64]
    assert not m65.flatten().getElementsByClass((key.KeySignature, meter.TimeSignature))
    first = ET.fromstring(built.data.encode()).find("part/measure")
    assert first.get("number") == "65"
    assert int(first.findtext("attributes/key/fifths")) == \
        m65.getContextByClass(key.KeySignature).sharps
    assert first.findtext("attributes/time/beats") == \
        str(m65.getContextByClass(meter.TimeSignature).numerator)
    assert [c.findtext("sign") for c in first.findall("attributes/clef")] == ["G", "F"]
    events = timemap(built.data)
    assert events[0]["tempo"] != corpus.DEFAULT_QPM and built.id == "beethoven/op133-1-m65"
    assert sum(len(e.get("on", ())) for e in events) > 100


def test_a_change_inside_the_first_measure_is_not_put_at_its_start():
    """A continuation whose first measure changes clef and key in its middle starts with the
    clef and key in force before that measure; the changes stay in the middle."""
    from music21 import clef, key, meter, note, stream

    music = stream.Score()
    for first_clef in (clef.TrebleClef(), clef.BassClef()):
        part = stream.Part()
        for number in (1, 2, 3):
            measure = stream.Measure(number=number)
            if number == 1:
                measure.append([first_clef, key.KeySignature(2), meter.TimeSignature("4/4")])
            measure.append([note.Note("C4", quarterLength=2), note.Note("D4", quarterLength=2)])
            part.append(measure)
        music.insert(0, part)
    changed = music.parts[1].getElementsByClass(stream.Measure)[1]
    changed.insert(2.0, clef.TrebleClef())
    changed.insert(2.0, key.KeySignature(-3))
    reduced = corpus._grand_staff(music, ((0,), (1,)), fixed_clefs=False, first=1,
                                  max_measures=None, name="two measures")
    start = reduced.parts[1].getElementsByClass(stream.Measure).first()
    clefs = {e.offset: type(e).__name__ for e in start.getElementsByClass(clef.Clef)}
    keys = {e.offset: e.sharps for e in start.getElementsByClass(key.KeySignature)}
    assert clefs == {0.0: "BassClef", 2.0: "TrebleClef"}
    assert keys == {0.0: 2, 2.0: -3}
    treble_start = reduced.parts[0].getElementsByClass(stream.Measure).first()
    assert [type(e).__name__ for e in treble_start.getElementsByClass(clef.Clef)] == ["TrebleClef"]


def test_score_data_is_identical_across_processes(samples):
    chosen = ("mono0", "chorale", "demo")
    ids = [samples[name].id for name in chosen]
    program = (
        "import sys; from sheetlab import corpus\n"
        "ps = {p.id: p for p in corpus.catalogue()}\n"
        "print(' '.join(corpus.score(ps[i]).sha256 for i in sys.argv[1:]))\n")
    out = subprocess.run([sys.executable, "-c", program, *ids], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [samples[name].sha256 for name in chosen]
    assert corpus.score(piece(ids[0])).data == samples["mono0"].data


# --------------------------------------------------------------------------- user files


def test_load_score_formats(tmp_path, samples):
    demo = samples["demo"]
    xml = load_score(write(tmp_path / "demo.musicxml", demo.data))
    assert (xml.kind, xml.format, xml.data) == ("piano", "musicxml", demo.data)
    assert xml.id.startswith("user/demo-") and xml.source == str(tmp_path / "demo.musicxml")
    assert xml.title == demo.title and xml.composer == "Mozart"

    mxl = tmp_path / "demo.mxl"
    with zipfile.ZipFile(mxl, "w") as archive:
        archive.writestr("META-INF/container.xml", '<container><rootfiles><rootfile '
                         'full-path="score.xml"/></rootfiles></container>')
        archive.writestr("score.xml", demo.data)
    assert load_score(mxl).data == demo.data

    mono = load_score(write(tmp_path / "tune.xml", tiny_musicxml()))
    assert (mono.kind, mono.format) == ("mono", "musicxml")
    utf16 = tmp_path / "my tune (v2).xml"  # as some editors write it
    utf16.write_bytes(tiny_musicxml().replace('encoding="UTF-8"', 'encoding="UTF-16"')
                      .encode("utf-16"))
    assert load_score(utf16).kind == "mono"
    assert re.fullmatch(r"user/my_tune_v2-[0-9a-f]{8}", load_score(utf16).id)
    assert load_score(write(tmp_path / "two.xml", tiny_musicxml(2))).kind == "piano"

    abc = load_score(write(tmp_path / "t.abc", "\n\nX:1\nT:Tiny\nM:4/4\nL:1/4\nK:C\nCDEF|\n"))
    assert (abc.kind, abc.format, abc.title) == ("mono", "abc", "Tiny")
    assert abc.data.startswith("X:1")
    humdrum = "**kern\n*clefG2\n*M4/4\n=1\n4c\n4d\n4e\n4f\n=\n*-\n"
    krn = load_score(write(tmp_path / "t.krn", humdrum))
    assert (krn.kind, krn.format) == ("mono", "humdrum")
    tk = verovio.toolkit()
    tk.loadData(tiny_musicxml())
    mei = load_score(write(tmp_path / "t.mei", tk.getMEI()))
    assert (mei.kind, mei.format) == ("mono", "mei")
    for user in (xml, mono, abc, krn, mei):
        assert sum(len(e.get("on", ())) for e in timemap(user.data)) > 0


def test_load_score_reduces_more_staves(tmp_path):
    source = corpus._CORPUS / "bach" / "bwv66.6.mxl"
    path = tmp_path / "chorale.mxl"
    path.write_bytes(source.read_bytes())
    reduced = load_score(path)
    assert (reduced.kind, reduced.format) == ("piano", "musicxml")
    assert staff_count(reduced.data) == 2
    assert sum(len(e.get("on", ())) for e in timemap(reduced.data)) == 165  # every note


def bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Bad files, each with a pattern its one error message must match."""
    good = tiny_musicxml()
    not_zip = tmp_path / "not_zip.mxl"
    not_zip.write_bytes(b"PK\x03\x04 this is no zip archive")
    empty_zip = tmp_path / "empty.mxl"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("readme.txt", "nothing here")
    latin1 = tmp_path / "latin1.abc"
    latin1.write_bytes("X:1\nT:M\xfcller\nK:C\nC|\n".encode("latin-1"))
    return {
        "missing": (tmp_path / "missing.xml", "no such file"),
        "extension": (write(tmp_path / "score.pdf", "%PDF"), "unsupported file type '.pdf'"),
        "no extension": (write(tmp_path / "score", good), r"unsupported file type '\(no ext"),
        "truncated": (write(tmp_path / "truncated.xml", good[: len(good) // 2]),
                      "malformed XML at line .*truncated"),
        "malformed": (write(tmp_path / "malformed.musicxml", "<score-partwise><part>"
                            "</score-partwise>"), "malformed XML at line 1"),
        "not musicxml": (write(tmp_path / "other.xml", "<html><body/></html>"),
                         "not MusicXML .*<html>"),
        "no notes": (write(tmp_path / "rests.xml", tiny_musicxml(notes=REST)),
                     "contains no notes"),
        "empty file": (write(tmp_path / "empty.krn", "\n\n"), "the file is empty"),
        "not zip": (not_zip, "not a readable MXL"),
        "zip without score": (empty_zip, "holds no MusicXML"),
        "not utf-8": (latin1, "not UTF-8 text"),
        "verovio cannot load": (write(tmp_path / "other.mei", "<foo/>"),
                                "verovio cannot load it as mei"),
        "empty abc": (write(tmp_path / "empty.abc", "X:1\nT:none\nK:C\n"), "contains no notes"),
    }


def test_load_score_bad_inputs(tmp_path):
    for name, (path, pattern) in bad_inputs(tmp_path).items():
        with pytest.raises(ScoreError) as caught:
            load_score(path)
        message = str(caught.value)
        assert message.startswith(str(path)), name
        assert re.search(pattern, message), (name, message)
        assert "\n" not in message, name


def test_load_score_is_at_package_level():
    import sheetlab

    assert sheetlab.load_score is load_score
    program = "import sys, sheetlab; print('music21' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
