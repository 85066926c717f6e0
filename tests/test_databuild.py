"""Building the cache for several corpus pieces: parallel, resumable, failures reported."""

import dataclasses

from sheetlab import cli
from sheetlab.corpus import pieces
from sheetlab.databuild import build, format_table, info


def test_build_resumes_reports_failures_and_info_counts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SHEETLAB_DATA", str(tmp_path))
    tunes = pieces("mono", "test", limit=3)
    broken = dataclasses.replace(tunes[0], id="essen/broken", source="essenFolksong/nothere#1")
    first = build(tunes[:2] + [broken], workers=2, progress=False)
    assert sorted(first.built) == sorted(p.id for p in tunes[:2])
    assert [piece_id for piece_id, _ in first.failed] == ["essen/broken"]
    assert "FAILED essen/broken" in first.summary()
    second = build(tunes, workers=1, progress=False)  # resumes: two cached, one new
    assert sorted(second.cached) == sorted(p.id for p in tunes[:2])
    assert second.built == [tunes[2].id] and not second.failed
    rows = info(tunes)
    assert rows[0]["split"] == "test" and rows[0]["pieces"] == 3 and rows[0]["missing"] == 0
    assert rows[-1]["split"] == "total" and rows[-1]["correspondences"] > 3 * 10
    assert rows[-1]["note_heads"] >= rows[-1]["correspondences"]
    assert "correspondences" in format_table(rows).splitlines()[0]
    assert cli.main(["data", "info", "--kind", "mono", "--split", "test", "--limit", "3"]) == 0
    assert "total" in capsys.readouterr().out
