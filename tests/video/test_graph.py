"""The talking head as a graph file: it validates, declares its latency and writes a playable file."""

from pathlib import Path

import av

from apipeline.cli.main import main

GRAPH = Path(__file__).resolve().parents[2] / "examples" / "graphs" / "talking_head.yaml"


def test_graph_file_runs_to_an_mp4(tmp_path, speech_with_pause, capsys):
    assert main(["graph", "check", str(GRAPH)]) == 0
    assert "algorithmic latency 40.0 ms" in capsys.readouterr().out
    out = tmp_path / "head.mp4"
    assert main(["run", str(GRAPH), "-i", str(speech_with_pause[0]), "-o", str(out), "--no-progress"]) == 0
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert abs(float(v.duration * v.time_base) - float(a.duration * a.time_base)) <= 0.04
        assert sum(1 for _ in c.decode(video=0)) == 125
