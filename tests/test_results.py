"""Seq numbering across restarts, bounded capture storage, MQTT-sized JPEGs and the durable spool."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from edgeportrait.imageio import encode_jpeg
from edgeportrait.messages import ResultMessage
from edgeportrait.publish.spool import Spool, jpeg_for_mqtt
from edgeportrait.results import CaptureStore, SeqCounter


def test_seq_increases_by_one_and_survives_a_restart(tmp_path: Path) -> None:
    """seq goes 1, 2, 3 and a new counter on the same state dir continues at 4."""
    a = SeqCounter(tmp_path)
    assert [a.next(), a.next(), a.next()] == [1, 2, 3]
    b = SeqCounter(tmp_path)
    assert b.next() == 4


def test_seq_never_reuses_a_number_still_in_the_spool(tmp_path: Path) -> None:
    """bump_to(n) (the spool's highest seq) makes the next number n + 1 even if the counter file is older."""
    c = SeqCounter(tmp_path)
    c.bump_to(41)
    assert c.next() == 42


def test_damaged_seq_file_does_not_stop_the_counter(tmp_path: Path) -> None:
    """A garbage counter file is logged and numbering restarts instead of raising."""
    (tmp_path / "seq").write_text("not a number")
    assert SeqCounter(tmp_path).next() == 1


def _jpg(tmp: Path, name: str, size: int, mtime: float) -> Path:
    p = tmp / name
    p.write_bytes(b"\xff" * size)
    os.utime(p, (mtime, mtime))
    return p


def test_store_prunes_oldest_beyond_max_files(tmp_path: Path) -> None:
    """With max_files=3, writing a 4th portrait deletes the oldest one and keeps the newest."""
    store = CaptureStore(tmp_path, max_files=3, max_bytes=10**9)
    for i in range(3):
        _jpg(tmp_path, f"old{i}.jpg", 10, 1000 + i)
    newest = store.write("new.jpg", b"x" * 10)
    names = sorted(p.name for p in tmp_path.glob("*.jpg"))
    assert names == ["new.jpg", "old1.jpg", "old2.jpg"]
    assert newest.read_bytes() == b"x" * 10
    assert store.pruned == 1


def test_store_prunes_by_bytes_but_keeps_the_new_file(tmp_path: Path) -> None:
    """Over max_bytes the oldest go first; the file just written stays even if it alone is too big."""
    store = CaptureStore(tmp_path, max_files=100, max_bytes=100)
    _jpg(tmp_path, "a.jpg", 60, 1000)
    _jpg(tmp_path, "b.jpg", 30, 1001)
    store.write("c.jpg", b"y" * 150)
    assert sorted(p.name for p in tmp_path.glob("*.jpg")) == ["c.jpg"]
    (tmp_path / "notes.txt").write_text("not ours")
    store.prune()
    assert (tmp_path / "notes.txt").exists()


def test_store_knows_the_highest_seq_in_its_file_names(tmp_path: Path) -> None:
    """highest_seq() reads the numbers back from the portraits' names (a lost counter file restarts above them)."""
    store = CaptureStore(tmp_path, max_files=100, max_bytes=10**9)
    assert store.highest_seq() == 0
    store.write("20261122-000100-000007.jpg", b"x")
    store.write("20261122-000101-000012.jpg", b"x")
    store.write("not-numbered.jpg", b"x")
    assert store.highest_seq() == 12


def test_unfinished_captures_above_the_committed_seq_are_removed(tmp_path: Path) -> None:
    """Files numbered above the counter (a crash before their result was made) go; the rest stay."""
    store = CaptureStore(tmp_path, max_files=100, max_bytes=10**9)
    for n in (1, 2, 3, 4):
        store.write(f"20261122-000100-{n:06d}.jpg", b"x")
    assert store.remove_unfinished(2) == 2
    assert store.highest_seq() == 2 and len(list(tmp_path.glob("*.jpg"))) == 2


def test_counter_is_trusted_only_when_read_back_from_disk(tmp_path: Path) -> None:
    """A missing or damaged counter is not trusted (the daemon then numbers above the files instead)."""
    assert not SeqCounter(tmp_path).trusted
    SeqCounter(tmp_path).next()
    assert SeqCounter(tmp_path).trusted
    (tmp_path / "seq").write_text("garbage")
    assert not SeqCounter(tmp_path).trusted


def test_jpeg_for_mqtt_scales_down_only_when_too_large() -> None:
    """A JPEG over max_image_bytes is re-encoded smaller than the limit; one under it is passed through."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)  # noise: large JPEG
    full = encode_jpeg(img, 92)
    assert len(full) > 200_000
    small = jpeg_for_mqtt(img, full, 100_000, 92)
    assert len(small) <= 100_000
    decoded = cv2.imdecode(np.frombuffer(small, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[1] < 1280 and decoded.shape[0] < 720
    assert abs(decoded.shape[1] / decoded.shape[0] - 1280 / 720) < 0.05  # aspect kept
    assert jpeg_for_mqtt(img, full, len(full), 92) is full


def _result(seq: int) -> ResultMessage:
    return ResultMessage(
        id=f"c{seq}", seq=seq, ts="2026-11-29T00:00:00.000Z", trigger="mqtt", width=4, height=3,
        path=f"/x/{seq}.jpg", bytes=1, sha256="0" * 64, foreground_fraction=0.5, timings_ms={"total": 1.0},
        model="general", precision="fp32", precision_reason="test", device="CPU",
    )


def test_spool_returns_entries_in_seq_order_and_survives_reopen(tmp_path: Path) -> None:
    """Entries come out lowest seq first, with image and MQTT 5 correlation data, also after a restart."""
    sp = Spool(tmp_path, max_files=10, max_bytes=10**8)
    sp.put(7, _result(7), b"img7", "reply/here", b"\x01\x02")
    sp.put(5, _result(5), b"img5")
    again = Spool(tmp_path, max_files=10, max_bytes=10**8)
    first = again.oldest()
    assert first is not None and first.seq == 5 and first.image() == b"img5" and first.response_topic is None
    again.remove(5)
    second = again.oldest()
    assert second is not None and second.result == _result(7)
    assert second.response_topic == "reply/here" and second.correlation_data == b"\x01\x02"
    assert again.highest_seq() == 7


def test_spool_cleans_half_written_entries_on_start(tmp_path: Path) -> None:
    """An image without its JSON (power cut between the two writes) and temp files are removed at start."""
    (tmp_path / "000000000003.jpg").write_bytes(b"orphan")
    (tmp_path / ".000000000004.json.abc.tmp").write_bytes(b"{")
    sp = Spool(tmp_path, max_files=10, max_bytes=10**8)
    assert len(sp) == 0 and sp.oldest() is None
    assert list(tmp_path.iterdir()) == []


def test_spool_bound_drops_oldest_and_counts(tmp_path: Path) -> None:
    """Beyond spool max_files the oldest undelivered entries are dropped and counted, never a crash."""
    sp = Spool(tmp_path, max_files=2, max_bytes=10**8)
    for s in (1, 2, 3):
        sp.put(s, _result(s), b"x")
    assert sp.stats()["entries"] == 2 and sp.stats()["dropped"] == 1
    oldest = sp.oldest()
    assert oldest is not None and oldest.seq == 2


def test_spool_drops_damaged_entry_and_goes_on(tmp_path: Path) -> None:
    """A corrupt JSON entry is dropped (and counted); the next good one is returned."""
    sp = Spool(tmp_path, max_files=10, max_bytes=10**8)
    sp.put(2, _result(2), b"x")
    (tmp_path / "000000000001.json").write_text("{broken")
    e = sp.oldest()
    assert e is not None and e.seq == 2 and sp.dropped == 1
    assert hashlib.sha256(e.image()).hexdigest() == hashlib.sha256(b"x").hexdigest()
