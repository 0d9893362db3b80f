"""A map build killed mid-write (SIGKILL, a real subprocess) leaves the previous map intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from liploc_ros.errors import MapError
from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapdb.synthetic import synthetic_map

# The writer stops inside the temporary file through fileformat._write_hook, the documented
# test seam, so the kill lands mid-write every time instead of by luck of timing.
WRITER = textwrap.dedent(
    """
    import sys, time
    from liploc_ros.mapdb import fileformat
    from liploc_ros.mapdb.synthetic import synthetic_map

    def stop_mid_write(written):
        print("MID-WRITE", written, flush=True)
        time.sleep(120)

    db = synthetic_map(20000, 64, seed=99)
    fileformat._write_hook = stop_mid_write
    db.save(sys.argv[1], index="flat")
    print("FINISHED", flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killed_writer_leaves_the_previous_map_intact(tmp_path):
    path = tmp_path / "town.lmap"
    old = synthetic_map(500, 64, seed=1)
    old.save(path)
    before = path.read_bytes()

    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("MID-WRITE"), f"writer did not start: {line!r} {proc.stderr.read()}"
        assert int(line.split()[1]) > 0
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # The map is byte for byte the old one, loads and verifies.
    assert path.read_bytes() == before
    again = MapDatabase.load(path, verify=True)
    assert len(again) == 500
    assert np.array_equal(again.embeddings, old.embeddings)

    # The killed writer's temporary file is hidden, and it is not mistaken for a map.
    leftovers = [p for p in tmp_path.iterdir() if p != path]
    assert len(leftovers) == 1
    temp = leftovers[0]
    assert temp.name.startswith(".town.lmap.")
    assert temp.name.endswith(".tmp")
    assert temp.stat().st_size > 1_000_000  # it really was killed with data written
    with pytest.raises(MapError, match="incomplete map file"):
        MapDatabase.load(temp)
