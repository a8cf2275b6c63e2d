"""Atomic folders: writers of the same folder never delete each other's work, a failed block leaves the old one."""
import pytest

from probekit.io import atomic_dir


def test_two_writers_of_one_cache_key_keep_the_first_finished(tmp_path):
    """A second writer starting while the first is still writing (two runs sharing a teacher-cache key): both
    complete, the first to finish wins, nothing temporary is left."""
    cache = tmp_path / "cache" / "key"
    with atomic_dir(cache, keep_existing=True) as slow:
        (slow / "part").write_text("slow")
        with atomic_dir(cache, keep_existing=True) as fast:
            (fast / "part").write_text("fast")
        assert (slow / "part").read_text() == "slow"  # the second writer left ours alone
    assert (cache / "part").read_text() == "fast"
    assert [p.name for p in cache.parent.iterdir()] == ["key"]


def test_replacing_writers_and_a_failed_block(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as outer:
        (outer / "w").write_text("outer")
        with atomic_dir(target) as inner:
            (inner / "w").write_text("inner")
    assert (target / "w").read_text() == "outer"  # without keep_existing the last to finish replaces
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "w").write_text("half")
            raise RuntimeError
    assert (target / "w").read_text() == "outer"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
