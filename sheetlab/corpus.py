"""The piece catalogue: music21's bundled corpus as verovio-ready scores (chapter 2).

Nothing is downloaded: every piece comes from the corpus that ships with ``music21``, and a
user's own file goes through :func:`load_score`. Counts below are for music21 10.5.

**mono** (one staff): the Essen folk songs, ``essenFolksong/*.abc`` (8,514 tunes in 31 files;
7,284 kept). The tunes are listed by reading the ABC text, without parsing any music. A tune is
left out when it is in one of music21's test files (``test*.abc``, copies of tunes of the other
files), has no fixed meter (``M: none``, ``M: FREI...``), has no note, has more than one voice
or chords (``V:``, ``&``, ``[``), or repeats the notes of a tune listed before it (8,198 are
left), and when its bars do not fit its meter (914 tunes that end phrases inside a bar at a
line break, for which music21 writes a time-signature change in every such bar: found by
parsing, listed in ``corpus_index.json``). Every kept tune parses in music21 and loads in
verovio (checked for all of them). A tune is read as ABC 2.1, so an accidental lasts to the
bar line, and is kept whole (at most 106 measures, median 13).

**piano** (grand staff, played as piano): 422 pieces, listed in ``corpus_index.json`` beside
this module with their measures, notes and seconds, in three groups:

* ``chorale``: 364 four-part chorales of Bach (``bach/bwv*.mxl``, ``.xml``): soprano and alto
  as two voices of the treble staff, tenor and bass as two voices of the bass staff;
* ``quartet``: 48 string-quartet movements of Mozart (K. 80, 155, 156, 458), Haydn (op. 1
  no. 1, op. 74 no. 1), Beethoven (op. 18, 59, 74, 132, 133; where a file holds a whole
  quartet, its opening) and Robert Schumann (op. 41 no. 1): violins 1 and 2 in the treble
  staff, viola and cello in the bass staff, one voice per instrument (more where an instrument
  has several), treble and bass clef throughout;
* ``piano``: the 10 real piano pieces, with their own voices and clefs: Mozart's Sonata K. 545,
  1st movement (exposition; the book's running demo), Bach's Prelude BWV 846, Chopin's Mazurka
  op. 6 no. 2, Clara Schumann's Polonaises op. 1 nos. 1-4 and the piano part of her Trio op. 17
  (3rd movement), the piano part of Robert Schumann's *Dichterliebe* no. 2 and Joplin's
  *Maple Leaf Rag*.

Left out, with the reason in the index: 44 chorale files that are not four parts (cantata
settings with instruments), one chorale with an overfull last bar and three quartet movements
with approximate tuplets, which music21 cannot write as MusicXML.

Every piano piece is rebuilt as a two-staff score: notes, rests, chords, ties, beams,
articulations, key and time signatures and tempo marks are kept; lyrics, slurs, dynamics,
text and repeat signs are dropped (the score is played once, as printed). A piece is cut to its
first :data:`MAX_MEASURES` measures (most quartet movements; chorales have 8 to 57 measures).
The measures after the cut can be had as more pieces of the same split, each the next
:data:`MAX_MEASURES` measures of its source (:func:`continuations`): 30 training quartet
movements and 3 training piano pieces have 144 of them (3.8 hours of music, against 4.6 hours
in all 340 training pieces; music21 cannot write two of them).

**Tempo.** Tempo marks are kept; a mark without a number gets its playback tempo, else the
number music21 knows for its text (*Allegro* = 132, ...), else :data:`DEFAULT_QPM`, and a score
without a mark at its start gets quarter = :data:`DEFAULT_QPM`, so that verovio's timemap is in
sensible seconds.

**Splits** are by piece and fixed: a piece's *draw* is the SHA-256 of its id read as a number
in [0, 1); draw < 0.8 is ``train``, < 0.9 ``valid``, the rest ``test``. K. 545 (:data:`DEMO_ID`)
is always ``test``. Lists are in a fixed order: the demo first, then by draw.

**Subsets.** ``"all"`` is the whole catalogue. ``"default"`` is sized for a CPU: for mono the
first 400 / 50 / 50 tunes of train / valid / test; for piano the first 16 / 3 / 3 chorales and
12 / 3 / 3 quartet movements of train / valid / test (there are only 2 valid ones) and all real
piano pieces: 49 pieces, an hour of music (the whole piano catalogue: five and a half hours).

**Composer split** (the talk: "train / validate: Mozart | test: all composers"): train and
validate on every piece by one composer except the demo, test on the demo and on the other
composers' pieces of a subset (:func:`composer_split`).

**Scores** are MusicXML text (:class:`Score`) written by music21 and normalised (no encoding
date; music21's random part and instrument ids numbered in order), so the same piece gives
byte-identical ``data`` in every run and process.

``corpus_index.json`` is made by ``python -m sheetlab.corpus`` (:func:`build_index`), which
parses every candidate (about five minutes), checks that verovio engraves each piano piece and
writes the file; rerun it after upgrading music21.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import music21
import verovio
from music21 import clef, converter, corpus, duration, instrument, key, layout, metadata
from music21 import meter, stream, tempo

from sheetlab.cache import write_atomically
from sheetlab.settings import data_dir

KINDS = ("mono", "piano")
"""The kinds of piece: one staff, or a grand staff (treble + bass)."""

SPLITS = ("train", "valid", "test")
"""The splits of the catalogue, by piece."""

SUBSETS = ("default", "all")
"""``default`` is sized for a CPU, ``all`` is the whole catalogue."""

DEMO_ID = "mozart/k545-1"
"""Mozart's Piano Sonata K. 545, 1st movement: the book's running demo, in every test split."""

MAX_MEASURES = 64
"""Piano pieces are cut to their first this many measures."""

MIN_CONTINUATION = 8
"""The fewest measures a continuation of a long piano piece has (:func:`continuations`)."""

DEFAULT_QPM = 100
"""Quarter notes per minute for a score (or a tempo mark) without a number."""

INDEX_PATH = Path(__file__).with_name("corpus_index.json")
"""The piano catalogue, made by ``python -m sheetlab.corpus``."""

_TRAIN, _VALID = 0.8, 0.9  # split boundaries of the draw
_DEFAULT_MONO = {"train": 400, "valid": 50, "test": 50}
_DEFAULT_PIANO = {"chorale": {"train": 16, "valid": 3, "test": 3},
                  "quartet": {"train": 12, "valid": 3, "test": 3}}  # other groups: all pieces
_CORPUS = Path(music21.__file__).parent / "corpus"
_ESSEN = "essenFolksong"
_ABC_PREAMBLE = "%abc-2.1\n%%propagate-accidentals octave\n"  # accidentals last to the bar line
_C1_CONTROLS = re.compile("[\x80-\x9f]")  # stray bytes in some Essen titles
_FORMATS = {".xml": "musicxml", ".musicxml": "musicxml", ".mxl": "musicxml", ".mei": "mei",
            ".krn": "humdrum", ".abc": "abc"}
_MEI = "{http://www.music-encoding.org/ns/mei}"

# Real piano pieces: (id, composer, title, corpus path, source parts of each staff).
_PIANO_PIECES = (
    (DEMO_ID, "Mozart", "Piano Sonata in C major K. 545, 1st movement (exposition)",
     "mozart/k545/movement1_exposition.mxl", ((0,), (1,))),
    ("bach/bwv846", "Bach", "Prelude in C major BWV 846", "bach/bwv846.mxl", ((0,), (1,))),
    ("chopin/mazurka06-2", "Chopin", "Mazurka op. 6 no. 2", "chopin/mazurka06-2.krn",
     ((0,), (1,))),
    *((f"schumann_clara/polonaise_op1n{n}", "Clara Schumann", f"Polonaise op. 1 no. {n}",
       f"schumann_clara/polonaise_op1n{n}.mxl", ((0,), (1,))) for n in range(1, 5)),
    ("schumann_clara/op17-3", "Clara Schumann", "Piano Trio op. 17, 3rd movement (piano part)",
     "schumann_clara/opus17/movement3.xml", ((2,), (3,))),
    ("schumann_robert/op48no2", "Robert Schumann", "Dichterliebe op. 48 no. 2 (piano part)",
     "schumann_robert/opus48no2.mxl", ((1,), (2,))),
    ("joplin/maple_leaf_rag", "Joplin", "Maple Leaf Rag", "joplin/maple_leaf_rag.mxl",
     ((0,), (1,))),
)

# String quartets: (corpus folder, composer, opus as in the corpus, the work as printed).
# An opus is a folder of movement files or, where there is no folder, one file.
_QUARTETS = (
    ("mozart", "Mozart", "k80", "String Quartet K. 80"),
    ("mozart", "Mozart", "k155", "String Quartet K. 155"),
    ("mozart", "Mozart", "k156", "String Quartet K. 156"),
    ("mozart", "Mozart", "k458", "String Quartet K. 458"),
    ("haydn", "Haydn", "opus1no1", "String Quartet op. 1 no. 1"),
    ("haydn", "Haydn", "opus74no1", "String Quartet op. 74 no. 1"),
    ("beethoven", "Beethoven", "opus18no1", "String Quartet op. 18 no. 1"),
    ("beethoven", "Beethoven", "opus18no3", "String Quartet op. 18 no. 3"),
    ("beethoven", "Beethoven", "opus18no4", "String Quartet op. 18 no. 4"),
    ("beethoven", "Beethoven", "opus18no5", "String Quartet op. 18 no. 5"),
    ("beethoven", "Beethoven", "opus59no1", "String Quartet op. 59 no. 1"),
    ("beethoven", "Beethoven", "opus59no2", "String Quartet op. 59 no. 2"),
    ("beethoven", "Beethoven", "opus59no3", "String Quartet op. 59 no. 3"),
    ("beethoven", "Beethoven", "opus74", "String Quartet op. 74"),
    ("beethoven", "Beethoven", "opus132", "String Quartet op. 132"),
    ("beethoven", "Beethoven", "opus133", "Grosse Fuge op. 133"),
    ("schumann_robert", "Robert Schumann", "opus41no1", "String Quartet op. 41 no. 1"),
)
_SATB = ((0, 1), (2, 3))  # chorales and quartets: upper two parts treble, lower two bass
_SHORTEST_REST = 1 / 64  # quarters: shorter rests (encoding debris) cannot be written


class ScoreError(ValueError):
    """A score cannot be used; the message names the file and the cause (chapter 2)."""


@dataclass(frozen=True)
class Score:
    """A score as verovio loads it (chapter 2).

    Attributes
    ----------
    id : str
        Stable, filesystem-safe id, e.g. ``"essen/altdeu10-16"``, ``"bach/bwv66.6"``,
        ``"mozart/k545-1"``; ``"user/<stem>-<hash>"`` for a user's file.
    data : str
        The score text: MusicXML (uncompressed), MEI, Humdrum or ABC.
    format : str
        ``"musicxml"``, ``"mei"``, ``"humdrum"`` or ``"abc"``.
    kind : str
        ``"mono"`` (one staff) or ``"piano"`` (grand staff: treble + bass).
    source : str
        Where it came from (file path or music21 corpus path), for error messages.
    title, composer : str
        As known, else empty.
    """

    id: str
    data: str
    format: str
    kind: str
    source: str
    title: str = ""
    composer: str = ""

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of ``format`` and ``data``: the score's part of a cache key (chapter 2)."""
        return hashlib.sha256(f"{self.format}\n{self.data}".encode()).hexdigest()


@dataclass(frozen=True)
class Piece:
    """An entry of the catalogue; :func:`score` makes its :class:`Score` (chapter 2).

    Attributes
    ----------
    id : str
        The id its :class:`Score` will have.
    composer, title : str
        ``"Traditional"`` for the folk songs.
    kind : str
        ``"mono"`` or ``"piano"``.
    split : str
        ``"train"``, ``"valid"`` or ``"test"``.
    source : str
        music21 corpus path; for a folk song ``"essenFolksong/<file>.abc#<X number>"``.
    first_measure : int
        The source's measure (counting from 1) the piece starts at: 1, later for a
        continuation (:func:`continuations`).
    """

    id: str
    composer: str
    title: str
    kind: str
    split: str
    source: str
    first_measure: int = 1


# --------------------------------------------------------------------------- catalogue


def catalogue(kind: str | None = None) -> list[Piece]:
    """Every piece of the catalogue, with its split (chapter 2).

    Parameters
    ----------
    kind : {"mono", "piano"} or None
        Only pieces of this kind; None for both.

    Returns
    -------
    list of Piece
        In the fixed order of the module docstring (per kind: the demo, then by draw).
    """
    kinds = KINDS if kind is None else (_check("kind", kind, KINDS),)
    return [p for k in kinds for p in _catalogue(k)]


def pieces(kind: str, split: str | None = None, limit: int | None = None, *,
           subset: str = "default") -> list[Piece]:
    """The pieces of one kind, split and subset, in the catalogue's fixed order (chapter 2).

    Parameters
    ----------
    kind : {"mono", "piano"}
    split : {"train", "valid", "test"} or None
        None for all three.
    limit : int or None
        At most this many (the first ones); None for all.
    subset : {"default", "all"}
        ``"default"`` is sized for a CPU (module docstring); ``"all"`` is the whole catalogue.

    Returns
    -------
    list of Piece
    """
    _check("kind", kind, KINDS)
    _check("subset", subset, SUBSETS)
    splits = SPLITS if split is None else (_check("split", split, SPLITS),)
    chosen = _catalogue(kind) if subset == "all" else _default_subset(kind)
    return [p for p in chosen if p.split in splits][:limit]


def composer_split(composer: str = "Mozart", *, valid_fraction: float = 0.2,
                   subset: str = "default") -> dict[str, list[Piece]]:
    """Train and validate on one composer, test on the others (chapter 2).

    As in the talk ("train / validate: Mozart | test: all composers"): every piano piece by
    ``composer`` except the demo (K. 545) is for training or validation; the test set is the
    demo and the pieces of ``subset`` by every other composer. Each piece's ``split`` field is
    set to the part of the split it is in.

    Parameters
    ----------
    composer : str
        A composer of the piano catalogue (case is ignored), e.g. ``"Mozart"``.
    valid_fraction : float
        Share of the composer's pieces (at least one) held out for validation, in [0, 1).
    subset : {"default", "all"}
        Where the other composers' test pieces are taken from.

    Returns
    -------
    dict
        ``{"train": [...], "valid": [...], "test": [...]}``.
    """
    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    by = composer.lower()
    own = [p for p in _catalogue("piano") if p.composer.lower() == by and p.id != DEMO_ID]
    if not own:
        composers = sorted({p.composer for p in _catalogue("piano")})
        raise ValueError(f"no piano pieces by {composer!r}; composers: {', '.join(composers)}")
    n_valid = max(1, round(valid_fraction * len(own)))
    demo = [p for p in _catalogue("piano") if p.id == DEMO_ID]
    others = [p for p in pieces("piano", subset=subset) if p.composer.lower() != by]
    parts = {"train": own[n_valid:], "valid": own[:n_valid],
             "test": demo + [p for p in others if p.id != DEMO_ID]}
    return {name: [replace(p, split=name) for p in ps] for name, ps in parts.items()}


def group(piece: Piece) -> str:
    """The group of a piece, as the module docstring lists them (chapter 2).

    Parameters
    ----------
    piece : Piece
        A catalogue piece or a continuation of one.

    Returns
    -------
    str
        ``"folk song"`` for a mono piece, else ``"chorale"``, ``"quartet"`` or ``"piano"``.
    """
    if piece.kind == "mono":
        return "folk song"
    return _piano_entries()[piece.source]["group"]


def continuations(chosen: Sequence[Piece], limit: int) -> list[Piece]:
    """The measures after the cut of long piano pieces, as more pieces (chapter 11).

    A piano piece is cut to its first :data:`MAX_MEASURES` measures; most string-quartet
    movements go on for hundreds more. A continuation is the next :data:`MAX_MEASURES` (or
    fewer, at the end; at least :data:`MIN_CONTINUATION`) measures of the same source, engraved
    from its own first measure with the key, meter, clefs and tempo in force there. It keeps its
    piece's split, so continuations of training pieces are more training music that no
    validation or test piece shares.

    Parameters
    ----------
    chosen : sequence of Piece
        Catalogue pieces; folk songs and pieces that fit the cut have none.
    limit : int
        At most this many continuations of each piece (0 or more).

    Returns
    -------
    list of Piece
        Per piece in the given order, its continuations in the source's order; ids are the
        piece's with ``-m<first measure>`` appended, e.g. ``"beethoven/op18no1-1-m65"``.
    """
    if limit < 0:
        raise ValueError(f"the number of continuations must be 0 or more, got {limit}")
    entries = _piano_entries()
    found = []
    for piece in chosen:
        entry = entries.get(piece.source)  # folk songs have none
        total = entry["source_measures"] if entry else 0
        starts = range(piece.first_measure + MAX_MEASURES, total + 1, MAX_MEASURES)
        for start in starts[:limit]:
            end = min(start + MAX_MEASURES - 1, total)
            if end - start + 1 >= MIN_CONTINUATION:
                found.append(replace(piece, id=f"{piece.id}-m{start}", first_measure=start,
                                     title=f"{piece.title}, measures {start}-{end}"))
    return found


def _check(name: str, value: str, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``, else a ValueError that lists them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _draw(piece_id: str) -> float:
    """The piece's fixed pseudo-random number in [0, 1): SHA-256 of its id."""
    return int(hashlib.sha256(piece_id.encode()).hexdigest()[:15], 16) / 16**15


def _split(piece_id: str) -> str:
    """The piece's split: by its draw; the demo is always test."""
    u = _draw(piece_id)
    if piece_id == DEMO_ID or u >= _VALID:
        return "test"
    return "train" if u < _TRAIN else "valid"


def _order(entries: list[dict]) -> list[dict]:
    """Entries in the catalogue's fixed order: the demo first, then by draw."""
    return sorted(entries, key=lambda e: (e["id"] != DEMO_ID, _draw(e["id"]), e["id"]))


@functools.lru_cache(maxsize=None)
def _catalogue(kind: str) -> tuple[Piece, ...]:
    """All pieces of one kind, in order."""
    if kind == "mono":
        irregular = set(_index()["essen_irregular"])
        entries = [e for e in _essen_entries() if e["id"] not in irregular]
    else:
        entries = _index()["pieces"]
    return tuple(Piece(e["id"], e["composer"], e["title"], kind, _split(e["id"]), e["source"])
                 for e in _order(list(entries)))


@functools.lru_cache(maxsize=None)
def _default_subset(kind: str) -> tuple[Piece, ...]:
    """The CPU-sized subset of one kind (module docstring), in order."""
    if kind == "mono":
        groups, quotas = {}, {"mono": _DEFAULT_MONO}
    else:
        groups, quotas = {e["id"]: e["group"] for e in _index()["pieces"]}, _DEFAULT_PIANO
    taken: Counter[tuple[str, str]] = Counter()
    chosen = []
    for p in _catalogue(kind):
        group = groups.get(p.id, "mono")
        if group in quotas and taken[group, p.split] >= quotas[group][p.split]:
            continue
        taken[group, p.split] += 1
        chosen.append(p)
    return tuple(chosen)


# --------------------------------------------------------------------------- folk songs


@functools.lru_cache(maxsize=None)
def _essen_file(name: str) -> dict[int, str]:
    """The tunes of one Essen ABC file: X number -> tune text (from its ``X:`` line)."""
    text = _C1_CONTROLS.sub("", (_CORPUS / _ESSEN / name).read_text(encoding="utf-8"))
    blocks = (b.strip() for b in re.split(r"\n(?=X:)", text))
    return {int(b.split("\n", 1)[0][2:]): b for b in blocks if b.startswith("X:")}


def _abc_fields(tune: str) -> tuple[dict[str, str], str]:
    """The first value of each header field of an ABC tune, and its music lines."""
    fields: dict[str, str] = {}
    music = []
    for line in tune.splitlines():
        if re.match(r"[A-Za-z]:", line):
            fields.setdefault(line[0], line[2:].strip())
        elif line.strip() and not line.startswith("%"):
            music.append(line.strip())
    return fields, "\n".join(music)


def _usable(fields: dict[str, str], music: str) -> bool:
    """Whether a tune has a fixed meter, notes, one voice and no chords."""
    return (re.fullmatch(r"\d+/\d+", fields.get("M", "")) is not None
            and re.search(r"[A-Ga-g]", music) is not None
            and "V" not in fields and not re.search(r"[&\[]", music))


@functools.lru_cache(maxsize=None)
def _essen_entries() -> tuple[dict, ...]:
    """Entries of the usable, distinct Essen tunes, irregular ones included (module docstring)."""
    entries, seen = [], set()
    files = sorted(p.name for p in (_CORPUS / _ESSEN).glob("*.abc")
                   if not p.name.startswith("test"))
    for name in files:
        for number, tune in _essen_file(name).items():
            fields, music = _abc_fields(tune)
            if not _usable(fields, music) or music in seen:
                continue
            seen.add(music)
            stem = name.removesuffix(".abc")
            entries.append({"id": f"essen/{stem}-{number}", "composer": "Traditional",
                            "title": fields.get("T") or f"{stem} no. {number}",
                            "source": f"{_ESSEN}/{name}#{number}"})
    return tuple(entries)


# --------------------------------------------------------------------------- the index


@functools.lru_cache(maxsize=None)
def _index() -> dict:
    """``corpus_index.json``: the piano pieces, those left out, the irregular folk songs."""
    if not INDEX_PATH.is_file():
        raise FileNotFoundError(f"{INDEX_PATH}: the corpus index is missing from the installed "
                                f"package; reinstall sheetlab or run python -m sheetlab.corpus")
    return json.loads(INDEX_PATH.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=None)
def _piano_entries() -> dict[str, dict]:
    """The index's piano entries by their source (one entry per source)."""
    return {e["source"]: e for e in _index()["pieces"]}


def _piano_candidates() -> list[dict]:
    """Every candidate piano entry, before the chorales' four-part check (no facts yet)."""
    entries = [{"id": i, "composer": c, "title": t, "source": s, "group": "piano",
                "staves": [list(g) for g in st]} for i, c, t, s, st in _PIANO_PIECES]
    for folder, composer, opus, work in _QUARTETS:
        movements = sorted((_CORPUS / folder / opus).glob("movement*.mxl"))
        sources = [f"{folder}/{opus}/{m.name}" for m in movements] or [f"{folder}/{opus}.mxl"]
        for n, source in enumerate(sources, 1):
            title = f"{work}, movement {n}" if movements else f"{work} (opening)"
            short = opus.replace("opus", "op")
            entries.append({"id": f"{folder}/{short}-{n}", "composer": composer, "title": title,
                            "source": source, "group": "quartet",
                            "staves": [list(g) for g in _SATB]})
    piano_sources = {e["source"] for e in entries}
    for path in sorted((_CORPUS / "bach").glob("bwv*")):
        source = f"bach/{path.name}"
        if path.suffix in (".mxl", ".xml") and source not in piano_sources:
            bwv = path.stem.removeprefix("bwv")
            entries.append({"id": f"bach/{path.stem}", "composer": "Bach",
                            "title": f"Chorale BWV {bwv}", "source": source,
                            "group": "chorale", "staves": [list(g) for g in _SATB]})
    return entries


def _index_entry(candidate: dict) -> dict:
    """A candidate with its facts (measures, notes, seconds); ScoreError if it is unusable."""
    source = corpus.parse(candidate["source"])
    if candidate["group"] == "chorale" and len(source.parts) != 4:
        raise ScoreError(f"{candidate['source']}: not a four-part chorale "
                         f"({len(source.parts)} parts)")
    piece = Piece(candidate["id"], candidate["composer"], candidate["title"], "piano", "",
                  candidate["source"])
    reduced = _reduced(candidate, source)
    onsets, seconds = _verovio_check(_from_stream(piece, reduced))
    measures = len(reduced.parts[0].getElementsByClass(stream.Measure))
    return {**candidate, "measures": measures,
            "source_measures": len(source.parts[0].getElementsByClass(stream.Measure)),
            "notes": onsets, "seconds": round(seconds, 1)}


def build_index(path: str | Path = INDEX_PATH) -> list[dict]:
    """Parse every candidate piece, check it in verovio, write the index (chapter 2).

    This is what ``python -m sheetlab.corpus`` runs; it takes about five minutes. The index
    also lists the piano candidates left out, with the reason, and the irregular folk songs.

    Parameters
    ----------
    path : str or Path
        Where the JSON index is written.

    Returns
    -------
    list of dict
        The piano pieces: ``id``, ``composer``, ``title``, ``source``, ``group`` (``chorale``,
        ``quartet``, ``piano``), ``staves`` (source parts of the treble and bass staff),
        ``measures``, ``source_measures`` (before the cut), ``notes`` (note heads in
        verovio's timemap, tie continuations included) and ``seconds`` (at the score's tempo).
    """
    from tqdm import tqdm

    entries, left_out = [], []
    for candidate in tqdm(_piano_candidates(), desc="piano index"):
        try:
            entries.append(_index_entry(candidate))
        except ScoreError as error:
            left_out.append({"id": candidate["id"], "reason": str(error)})
    irregular = [e["id"] for e in tqdm(_essen_entries(), desc="folk songs")
                 if _irregular(e["source"])]
    index = {"music21": music21.__version__, "pieces": entries, "left_out": left_out,
             "essen_irregular": irregular}
    text = json.dumps(index, indent=1, ensure_ascii=False)
    Path(path).write_text(text + "\n", encoding="utf-8")
    return entries


# --------------------------------------------------------------------------- scores


def score(piece: Piece) -> Score:
    """The verovio-ready score of a catalogue piece (chapter 2).

    Folk songs are converted from ABC; piano pieces are reduced to a grand staff and cut to
    :data:`MAX_MEASURES` measures from the piece's ``first_measure`` (module docstring). The
    result is MusicXML, byte-identical in every run.

    Parameters
    ----------
    piece : Piece
        From :func:`catalogue`, :func:`pieces` or :func:`composer_split`.

    Returns
    -------
    Score
    """
    known = cached_score(piece)
    if known is not None:
        return known
    if piece.kind == "mono":
        result = _from_stream(piece, _folk_song(piece.source))
    else:
        entry = _piano_entries().get(piece.source)
        if entry is None:
            raise ScoreError(f"{piece.source}: {piece.id!r} is not in the piano catalogue")
        music = corpus.parse(entry["source"])
        result = _from_stream(piece, _reduced(entry, music, piece.first_measure))
    write_atomically(_score_cache_path(piece),
                     json.dumps(asdict(result), ensure_ascii=False).encode())
    return result


def cached_score(piece: Piece) -> Score | None:
    """The score of a catalogue piece if :func:`score` has converted it before, else None
    (chapter 2): a cheap look into the cache, without parsing any music."""
    cached = _score_cache_path(piece)
    if not cached.exists():
        return None
    return Score(**json.loads(cached.read_text(encoding="utf-8")))


@functools.lru_cache(maxsize=1)
def _code_version() -> str:
    """Hash of this module's source and music21's version: what a corpus score depends on."""
    blob = Path(__file__).read_bytes() + music21.__version__.encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _score_cache_path(piece: Piece) -> Path:
    """Where :func:`score` keeps a piece's converted score (music21 takes up to seconds)."""
    return data_dir() / "scores" / f"{piece.id.replace('/', '__')}-{_code_version()}.json"



def _reduced(entry: dict, music: stream.Score, first_measure: int = 1) -> stream.Score:
    """The grand staff of a piano entry from its parsed source, from its ``first_measure``
    (counting from 1) on (module docstring)."""
    return _grand_staff(music, entry["staves"], fixed_clefs=entry["group"] != "piano",
                        first=first_measure - 1, max_measures=MAX_MEASURES,
                        name=entry["source"])


def _folk_song(source: str) -> stream.Score:
    """An Essen tune parsed by music21, in measures, with the default tempo mark at its start."""
    name, number = source.removeprefix(f"{_ESSEN}/").split("#")
    tune = converter.parse(_ABC_PREAMBLE + _essen_file(name)[int(number)], format="abc")
    part = tune.parts[0]
    if not part.hasMeasures():  # a tune written without bar lines
        part.makeMeasures(inPlace=True)
    part.getElementsByClass(stream.Measure).first().insert(0, _default_tempo())
    return tune


def _irregular(source: str) -> bool:
    """Whether an Essen tune has bars that do not fit its meter.

    Some tunes end a phrase inside a bar at a line break; music21 then writes a time signature
    change for every such bar, which the catalogue leaves out.
    """
    return len(_folk_song(source).recurse().getElementsByClass(meter.TimeSignature)) > 1


def _from_stream(piece: Piece, music: stream.Score) -> Score:
    """A :class:`Score` of a music21 score, titled after the piece."""
    music.metadata = metadata.Metadata(title=piece.title, composer=piece.composer)
    return Score(piece.id, _musicxml(music, piece.source), "musicxml", piece.kind, piece.source,
                 piece.title, piece.composer)


def _musicxml(music: stream.Score, name: str) -> str:
    """music21's MusicXML of a score, normalised to be byte-identical in every run."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    try:
        text = GeneralObjectExporter(music).parse().decode("utf-8")
    except music21.exceptions21.Music21Exception as error:
        cause = re.sub(r",? id\(\)=\d+", "", str(error))  # memory addresses vary by run
        raise ScoreError(f"{name}: music21 cannot write it as MusicXML ({cause})") from None
    text = re.sub(r"\s*<encoding-date>[^<]*</encoding-date>", "", text)
    ids: dict[str, str] = {}  # music21's random part and instrument ids, numbered in order

    def renumber(match: re.Match) -> str:
        if match[0] not in ids:
            ids[match[0]] = f'"{match[1]}{sum(v[1] == match[1] for v in ids.values()) + 1}"'
        return ids[match[0]]

    return re.sub(r'"([IP])[0-9a-f]{32}"', renumber, text)


def _default_tempo() -> tempo.MetronomeMark:
    """Quarter = :data:`DEFAULT_QPM`."""
    return tempo.MetronomeMark(number=DEFAULT_QPM, referent=duration.Duration(1.0))


def _numbered(mark: tempo.MetronomeMark) -> tempo.MetronomeMark:
    """A copy of a tempo mark with a number: its own, the one for its text, or the default."""
    if mark.number is not None:
        return copy.deepcopy(mark)
    qpm = mark.getQuarterBPM()
    if qpm is None:
        return _default_tempo()
    return tempo.MetronomeMark(text=mark.text, number=round(qpm),
                               referent=duration.Duration(1.0))


def _grand_staff(music: stream.Score, staves: Sequence[Sequence[int]], *, fixed_clefs: bool,
                 first: int = 0, max_measures: int | None, name: str) -> stream.Score:
    """Two-staff piano score made of the measures of ``music``'s parts.

    Parameters
    ----------
    music : music21.stream.Score
        The source; its parts must have equal numbers of measures.
    staves : sequence of two sequences of int
        The source parts of the treble and of the bass staff; each part (or each voice of a
        part) becomes one voice of its staff.
    fixed_clefs : bool
        True: treble and bass clef throughout (ensembles); False: the source's clefs (piano).
    first : int
        Measures of the source skipped (0: from the start); the first one kept carries the
        key and time signature, clefs and tempo in force there.
    max_measures : int or None
        Cut after this many measures.
    name : str
        The source, for error messages.
    """
    whole = [list(p.getElementsByClass(stream.Measure)) for p in music.parts]
    end = None if max_measures is None else first + max_measures
    columns = [c[first:end] for c in whole]
    if len({len(c) for c in columns}) != 1 or not columns[0]:
        raise ScoreError(f"{name}: the parts do not have equal, non-zero numbers of measures "
                         f"({', '.join(str(len(c)) for c in columns)})")
    staffs = []
    for n, (members, staff_clef) in enumerate(zip(staves, (clef.TrebleClef, clef.BassClef)), 1):
        staff = stream.PartStaff(id=f"P1-Staff{n}")
        staff.insert(0, instrument.Piano())
        for i, tempo_from in enumerate(columns[0]):
            measure = _measure([columns[p][i] for p in members], copy_clefs=not fixed_clefs)
            if i == 0:
                _in_force(measure, whole[members[0]][:first],
                          staff_clef() if fixed_clefs else None)
            if n == 1:
                _copy_tempo(tempo_from, measure)
            staff.append(measure)
        staffs.append(staff)
    start = staffs[0].getElementsByClass(stream.Measure).first()
    if not any(m.offset == 0 for m in start.getElementsByClass(tempo.MetronomeMark)):
        mark = _last_in(whole[0][:first], tempo.MetronomeMark)
        start.insert(0, _numbered(mark) if mark is not None else _default_tempo())
    reduced = stream.Score()
    for staff in staffs:
        reduced.insert(0, staff)
    reduced.insert(0, layout.StaffGroup(staffs, name="Piano", symbol="brace"))
    return reduced


def _measure(sources: list[stream.Measure], *, copy_clefs: bool) -> stream.Measure:
    """One measure of a staff: a voice per voice of ``sources``, the first one's signatures."""
    measure = stream.Measure(number=sources[0].number)
    kept = (key.KeySignature, meter.TimeSignature) + ((clef.Clef,) if copy_clefs else ())
    for element in sources[0].flatten().getElementsByClass(kept):
        measure.insert(element.offset, copy.deepcopy(element))
    number = 0
    for source in sources:
        for layer in source.voices or [source]:
            number += 1
            voice = stream.Voice(id=str(number))
            for note in layer.notesAndRests:
                if note.isRest and note.duration.quarterLength < _SHORTEST_REST:
                    continue
                copied = copy.deepcopy(note)
                copied.lyrics = []
                voice.insert(note.offset, copied)
            measure.insert(0, voice)
    return measure


def _in_force(measure: stream.Measure, sources: list[stream.Measure],
              fixed_clef: clef.Clef | None) -> None:
    """Give a staff's first measure the signatures and clef in force at its start.

    A change in the middle of the measure stays where it is; what is in force at the start is
    the last one before the measure.

    Parameters
    ----------
    measure : music21.stream.Measure
        The staff's first measure, changed in place where it lacks a key signature, a time
        signature or a clef at its start.
    sources : list of music21.stream.Measure
        The source part's measures before the one ``measure`` was made of.
    fixed_clef : music21.clef.Clef or None
        The staff's clef throughout, or None for the source's clef in force.
    """
    kinds = (key.KeySignature, meter.TimeSignature) + (() if fixed_clef else (clef.Clef,))
    for kind in kinds:
        if any(e.offset == 0 for e in measure.getElementsByClass(kind)):
            continue
        found = _last_in(sources, kind)
        if found is not None:
            measure.insert(0, copy.deepcopy(found))
    if fixed_clef is not None:
        measure.insert(0, fixed_clef)


def _last_in(sources: list[stream.Measure], kind: type) -> music21.base.Music21Object | None:
    """The last element of class ``kind`` in the source measures (in order), or None."""
    for source in reversed(sources):
        found = list(source.flatten().getElementsByClass(kind))
        if found:
            return found[-1]
    return None


def _copy_tempo(source: stream.Measure, target: stream.Measure) -> None:
    """Copy the tempo marks of a source measure, each with a number (:func:`_numbered`)."""
    for mark in source.flatten().getElementsByClass(tempo.MetronomeMark):
        target.insert(mark.offset, _numbered(mark))


def _verovio_check(built: Score) -> tuple[int, float]:
    """Onsets and duration (s) of a score in verovio's timemap; ScoreError if it fails."""
    tk = verovio.toolkit()
    if not tk.loadData(built.data):
        raise ScoreError(f"{built.source}: verovio cannot load the score")
    timemap = tk.renderToTimemap()
    onsets = sum(len(event.get("on", ())) for event in timemap)
    if not onsets:
        raise ScoreError(f"{built.source}: verovio finds no notes in the score")
    return onsets, timemap[-1]["tstamp"] / 1000


# --------------------------------------------------------------------------- user files


def load_score(path: str | Path) -> Score:
    """A user's own score file, ready for verovio (chapter 2).

    The format is taken from the extension: ``.xml``/``.musicxml``/``.mxl`` (MusicXML; MXL is
    unzipped), ``.mei``, ``.krn`` (Humdrum), ``.abc``. A file with one staff is ``mono``, one
    with two is ``piano``; both are kept as they are (no tempo is added: verovio plays a
    score without tempo marks at quarter = 120). A file with more staves is reduced to a grand
    staff by music21 like the string quartets: the upper half of the staves (the larger half
    if odd) into the treble staff, the rest into the bass staff, each staff's voices kept,
    with a tempo mark added if there is none; the result is MusicXML.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    Score
        With id ``"user/<file stem>-<8 hex digits of its hash>"``.

    Raises
    ------
    ScoreError
        One message naming the file and the cause: a missing file, an unsupported extension,
        unreadable or malformed text (e.g. truncated MusicXML), a broken MXL archive, a file
        verovio cannot load, or a score without notes.
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ScoreError(f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; "
                         f"expected one of {', '.join(_FORMATS)}")
    if not path.is_file():
        raise ScoreError(f"{path}: no such file")
    data = _read_mxl(path) if path.suffix.lower() == ".mxl" else _read_text(path)
    if fmt in ("musicxml", "mei"):
        _check_xml(path, data, fmt)
    n_staves, title, composer = _inspect(path, data, fmt)
    if n_staves > 2:
        music = _parse_user_file(path)
        half = (len(music.parts) + 1) // 2
        staves = (range(half), range(half, len(music.parts)))
        reduced = _grand_staff(music, staves, fixed_clefs=True, max_measures=None,
                               name=str(path))
        data, fmt = _musicxml(reduced, str(path)), "musicxml"
    digest = hashlib.sha256(data.encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("._") or "score"
    return Score(f"user/{stem}-{digest}", data, fmt, "mono" if n_staves == 1 else "piano",
                 str(path), title or path.stem, composer)


def _read_text(path: Path) -> str:
    """The text of a score file."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ScoreError(f"{path}: cannot read the file ({error.strerror})") from None
    return _decode(path, raw)


def _decode(path: Path | str, raw: bytes) -> str:
    """Score text from UTF-8 or UTF-16 (with its byte-order mark) bytes.

    Leading blank lines are dropped (verovio's ABC reader needs that), and so is an encoding
    other than UTF-8 named in an XML declaration (the text is no longer in that encoding).
    """
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise ScoreError(f"{path}: not {encoding.removesuffix('-sig').upper()} text "
                         f"({error.reason} at byte {error.start})") from None
    text = re.sub(r"""^(<\?xml[^>]*?)\s+encoding=["'](?!utf-8["'])[^"']*["']""", r"\1",
                  text.lstrip(), flags=re.IGNORECASE)
    if not text:
        raise ScoreError(f"{path}: the file is empty")
    return text


def _read_mxl(path: Path) -> str:
    """The MusicXML text inside an MXL archive (the first root file its container names)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            roots = []
            if "META-INF/container.xml" in names:
                container = ET.fromstring(archive.read("META-INF/container.xml"))
                roots = [r.get("full-path") for r in container.iter() if r.tag == "rootfile"]
            roots += [n for n in names if n.endswith((".xml", ".musicxml"))
                      and not n.startswith("META-INF/")]
            if not roots:
                raise ScoreError(f"{path}: the MXL archive holds no MusicXML file")
            raw = archive.read(roots[0])
    except (zipfile.BadZipFile, KeyError, ET.ParseError) as error:
        raise ScoreError(f"{path}: not a readable MXL (zip) archive ({error})") from None
    return _decode(f"{path}:{roots[0]}", raw)


def _check_xml(path: Path, data: str, fmt: str) -> None:
    """ScoreError if ``data`` is not well-formed XML (truncated, malformed) or not MusicXML."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        line, column = error.position
        raise ScoreError(f"{path}: malformed XML at line {line}, column {column + 1} "
                         f"({str(error).split(':')[0]}); is the file truncated?") from None
    if fmt == "musicxml" and root.tag not in ("score-partwise", "score-timewise"):
        raise ScoreError(f"{path}: not MusicXML (the root element is <{root.tag}>, not "
                         f"<score-partwise> or <score-timewise>)")


def _inspect(path: Path, data: str, fmt: str) -> tuple[int, str, str]:
    """Staves, title and composer of a score as verovio reads it; ScoreError if unusable."""
    tk = verovio.toolkit()
    tk.setInputFrom(fmt)
    if not tk.loadData(data):
        raise ScoreError(f"{path}: verovio cannot load it as {fmt}")
    mei = ET.fromstring(tk.getMEI())
    if not any(True for _ in mei.iter(f"{_MEI}note")):
        raise ScoreError(f"{path}: the score contains no notes")
    score_def = next(mei.iter(f"{_MEI}scoreDef"))
    n_staves = sum(1 for _ in score_def.iter(f"{_MEI}staffDef"))
    head = mei.find(f"{_MEI}meiHead")
    titles = [] if head is None else [t.text.strip() for t in head.iter(f"{_MEI}title")
                                      if t.text and t.text.strip()]
    composers = [] if head is None else [
        "".join(p.itertext()).strip() for p in head.iter()
        if p.tag in (f"{_MEI}composer", f"{_MEI}persName") and p.get("role", "composer")
        == "composer" and "".join(p.itertext()).strip()]
    return n_staves, (titles or [""])[0], (composers or [""])[0]


def _parse_user_file(path: Path) -> stream.Score:
    """A user's file parsed by music21, at sounding pitch; ScoreError if music21 cannot."""
    try:
        music = converter.parse(path)
    except Exception as error:  # music21 raises many kinds; all mean "cannot read this file"
        raise ScoreError(f"{path}: music21 cannot read it to reduce its staves "
                         f"({type(error).__name__}: {error})") from None
    if not isinstance(music, stream.Score):
        raise ScoreError(f"{path}: music21 reads no single score from it")
    return music.toSoundingPitch()


if __name__ == "__main__":
    print(f"wrote {len(build_index())} piano pieces to {INDEX_PATH}")
