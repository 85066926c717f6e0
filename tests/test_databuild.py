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
    import sheetlab.databuild

    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started for pieces that are all cached")

    monkeypatch.setattr(sheetlab.databuild, "ProcessPoolExecutor", no_pool)
    third = build(tunes, workers=2, progress=False)  # all cached: found without workers
    assert third.cached == [p.id for p in tunes] and not third.built and not third.failed
    rows = info(tunes)
    assert rows[0]["split"] == "test" and rows[0]["pieces"] == 3 and rows[0]["missing"] == 0
    assert rows[-1]["split"] == "total" and rows[-1]["correspondences"] > 3 * 10
    assert rows[-1]["note_heads"] >= rows[-1]["correspondences"]
    assert "correspondences" in format_table(rows).splitlines()[0]
    assert cli.main(["data", "info", "--kind", "mono", "--split", "test", "--limit", "3"]) == 0
    assert "total" in capsys.readouterr().out


def test_parallel_build_after_torch_and_fluidsynth_threads(tmp_path):
    """A process that has used torch and FluidSynth (a notebook kernel) can still build in
    parallel: forked workers would wait forever on locks held by those threads."""
    import os
    import subprocess
    import sys

    script = (
        "import torch\n"
        "from sheetlab.corpus import pieces\n"
        "from sheetlab.databuild import build\n"
        "from sheetlab.perform import Note, synthesize\n"
        "if __name__ == '__main__':\n"
        "    torch.randn(300, 300) @ torch.randn(300, 300)\n"
        "    synthesize([Note(60, 0.0, 0.2)])\n"
        "    report = build(pieces('mono', 'test', limit=2), workers=2, progress=False)\n"
        "    print(len(report.built), len(report.failed))\n"
    )
    path = tmp_path / "build_after_threads.py"
    path.write_text(script)
    env = {**os.environ, "SHEETLAB_DATA": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["2", "0"]
