"""Output files: checked before work, written beside and renamed, never destroying an input."""

import os

import pytest

from apipeline.errors import OutputPathError
from apipeline.outputs import AtomicOutput, check_output_path


def test_output_that_is_the_input_is_refused_also_through_links(tmp_path):
    src = tmp_path / "x.wav"
    src.write_bytes(b"data")
    with pytest.raises(OutputPathError, match="is the input"):
        check_output_path(src, inputs=[src])
    link = tmp_path / "link.wav"
    link.symlink_to(src)
    with pytest.raises(OutputPathError, match="is the input"):
        check_output_path(link, inputs=[src])
    hard = tmp_path / "hard.wav"
    os.link(src, hard)
    with pytest.raises(OutputPathError, match="is the input"):
        check_output_path(hard, inputs=[src])
    with pytest.raises(OutputPathError, match="is the input"):
        check_output_path(tmp_path / "sub" / ".." / "x.wav", inputs=[src])
    assert src.read_bytes() == b"data"


def test_missing_folder_is_not_created_and_unwritable_folders_are_refused(tmp_path):
    with pytest.raises(OutputPathError, match="does not exist"):
        check_output_path(tmp_path / "nope" / "x.wav")
    assert not (tmp_path / "nope").exists()
    with pytest.raises(OutputPathError, match="is a directory"):
        check_output_path(tmp_path)
    with pytest.raises(OutputPathError, match="not writable"):
        check_output_path("/proc/nope.wav")


def test_success_renames_into_place_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "o.txt"
    out.write_text("old")
    with AtomicOutput(out) as a:
        assert a.path.parent == tmp_path and a.path.suffix == ".txt" and a.path != out
        a.path.write_text("new")
        assert out.read_text() == "old"  # not replaced until the block ends
    assert a.outcome == "written" and out.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.txt"]


def test_failure_leaves_no_output_and_keeps_an_existing_file(tmp_path):
    out = tmp_path / "o.txt"
    with pytest.raises(RuntimeError), AtomicOutput(out) as a:
        a.path.write_text("half")
        raise RuntimeError("boom")
    assert a.outcome == "discarded" and not out.exists() and list(tmp_path.iterdir()) == []
    out.write_text("old")
    with pytest.raises(RuntimeError), AtomicOutput(out) as a:
        a.path.write_text("half")
        raise RuntimeError("boom")
    assert out.read_text() == "old" and list(tmp_path.iterdir()) == [out]


def test_interrupt_keeps_a_valid_partial_only_where_nothing_existed(tmp_path):
    out = tmp_path / "o.txt"
    with pytest.raises(KeyboardInterrupt), AtomicOutput(out) as a:
        a.path.write_text("partial")
        raise KeyboardInterrupt
    assert a.outcome == "kept_partial" and out.read_text() == "partial" and "kept" in a.message
    with pytest.raises(KeyboardInterrupt), AtomicOutput(out) as a:
        a.path.write_text("second")
        raise KeyboardInterrupt
    assert a.outcome == "discarded" and out.read_text() == "partial" and "left unchanged" in a.message


def test_interrupt_with_an_invalid_partial_keeps_nothing(tmp_path):
    out = tmp_path / "o.txt"

    def validate(path):
        raise ValueError("header not final")

    with pytest.raises(KeyboardInterrupt), AtomicOutput(out, validate=validate) as a:
        a.path.write_text("junk")
        raise KeyboardInterrupt
    assert a.outcome == "discarded" and not out.exists() and list(tmp_path.iterdir()) == []
