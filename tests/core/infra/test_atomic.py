"""Atomic writes: the old file or the new one, never a torn one, and readable as open() would
have made it (mkstemp's 0600 hid results from colleagues on a shared filesystem)."""
from __future__ import annotations

import os
import stat

import pytest

from core.infra.atomic import atomic_write, save_torch, umask, write_json, write_text


@pytest.fixture
def mask_022():
    before = os.umask(0o022)
    yield
    os.umask(before)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_follow_the_umask(tmp_path, mask_022):
    assert umask() == 0o022
    written = [write_text(tmp_path / "a" / "x.txt", "x"), write_json(tmp_path / "b.json", {}),
               save_torch(tmp_path / "c.pt", {"w": 1})]
    assert [_mode(p) for p in written] == [0o644] * 3
    assert _mode(tmp_path / "a") == 0o755
    os.umask(0o077)
    assert _mode(write_text(tmp_path / "private.txt", "x")) == 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = write_text(tmp_path / "r.json", "old")

    def dies(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, dies)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.json"]
