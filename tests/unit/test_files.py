"""File helpers: writes replace files instead of changing them in place (DVC hardlinks)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlops_template.files import atomic_path, read_json, remove, write_bytes, write_json, write_text


def test_write_does_not_change_a_hardlinked_copy(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "ab12"
    cache.parent.mkdir()
    cache.write_text("cached version\n")
    output = tmp_path / "models" / "model.onnx"
    output.parent.mkdir()
    os.link(cache, output)  # what `dvc checkout` does with cache.type hardlink
    write_bytes(output, b"new model")
    assert output.read_bytes() == b"new model"
    assert cache.read_text() == "cached version\n"
    assert output.stat().st_ino != cache.stat().st_ino


def test_json_and_text_round_trip_with_parents_created(tmp_path: Path) -> None:
    write_json(tmp_path / "a" / "b.json", {"z": 1, "a": [1.5, None]})
    assert read_json(tmp_path / "a" / "b.json") == {"a": [1.5, None], "z": 1}
    assert (tmp_path / "a" / "b.json").read_text().startswith('{\n  "a"')  # sorted, indented
    write_text(tmp_path / "c" / "d.md", "# hi\n")
    assert (tmp_path / "c" / "d.md").read_text() == "# hi\n"
    assert oct((tmp_path / "c" / "d.md").stat().st_mode & 0o777) == "0o644"


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "data.parquet"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half written")
        raise RuntimeError("writer crashed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.parquet"]


def test_remove_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "f.json").write_text("{}")
    (tmp_path / "g.txt").write_text("x")
    remove(tmp_path / "d", tmp_path / "g.txt", tmp_path / "absent")
    assert list(tmp_path.iterdir()) == []
