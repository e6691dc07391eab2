"""A download killed with SIGKILL leaves pooch's temporary file in the cache folder (nothing of the process runs
to remove it). The next download removes such files once they are old enough to belong to no live download,
and nothing else: a cached file stays byte for byte, a young temporary (another process downloading) stays.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vae import data

REPO = Path(__file__).resolve().parent.parent
SLOW_FILE = "train-images-idx3-ubyte.gz"  # fetched first, slowly, so the kills land in the middle of it
CACHED_FILE = "train-labels-idx1-ubyte.gz"  # already in the cache before the first run
CHUNK, PAUSE_S = 4096, 0.01
CHILD = """
import json, sys
from vae import data
data.CHECKSUMS["mnist"] = json.loads(sys.argv[3])
data.download_idx_files("mnist", sys.argv[1], mirrors=[sys.argv[2]])
"""


class SlowMirror:
    """An HTTP server on 127.0.0.1 serving `files` by name; SLOW_FILE comes in small chunks with pauses."""

    def __init__(self, files: dict[str, bytes]) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = files.get(self.path.rsplit("/", 1)[-1])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                slow = self.path.endswith(SLOW_FILE)
                try:
                    for start in range(0, len(body), CHUNK if slow else len(body)):
                        self.wfile.write(body[start : start + (CHUNK if slow else len(body))])
                        self.wfile.flush()
                        time.sleep(PAUSE_S if slow else 0)
                except (BrokenPipeError, ConnectionResetError):  # the downloader was killed
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def temporaries(folder: Path) -> set[Path]:
    """pooch's temporary files (tempfile's names: 'tmp' and 8 characters) in `folder`."""
    return {p for p in folder.glob("tmp*") if data.is_pooch_temporary(p.name)} if folder.is_dir() else set()


def wait_for(condition: Callable[[], object], child: subprocess.Popen, log: Path, timeout_s: float = 60.0):
    """Poll until `condition()` is truthy and return it; fail if the child exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := condition():
            return found
        if child.poll() is not None:
            pytest.fail(f"the download exited ({child.returncode}) before: {log.read_text()[-2000:]}")
        time.sleep(0.01)
    pytest.fail(f"nothing happened within {timeout_s} s")


def age(paths: set[Path], seconds: float) -> None:
    past = time.time() - seconds
    for path in paths:
        os.utime(path, (past, past))


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch):
    rng = random.Random(0)
    files = {name: rng.randbytes(256 * 1024 if name == SLOW_FILE else 512) for name in data.IDX_FILES.values()}
    server = SlowMirror(files)
    yield server, files
    server.close()


def child_env() -> dict[str, str]:
    proxies = {"http_proxy", "https_proxy", "all_proxy"}
    env = {key: value for key, value in os.environ.items() if key.lower() not in proxies}
    return env | {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def test_temporaries_of_killed_downloads_are_removed_and_the_cache_survives(mirror, tmp_path: Path) -> None:
    server, files = mirror
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / CACHED_FILE).write_bytes(files[CACHED_FILE])
    sums = json.dumps({name: hashlib.md5(body).hexdigest() for name, body in files.items()})
    command = [sys.executable, "-c", CHILD, str(tmp_path), server.url, sums]
    log = tmp_path / "child.log"
    rng = random.Random(1234)
    left_behind = 0
    for _ in range(5):
        earlier = temporaries(folder)  # left by the kill before, and made an hour old
        with log.open("wb") as out:
            child = subprocess.Popen(command, cwd=REPO, env=child_env(), stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda earlier=earlier: temporaries(folder) - earlier, child, log)
            assert not earlier & temporaries(folder), "the stale temporaries were not removed before downloading"
            time.sleep(rng.uniform(0.0, 0.3))  # a random point of the download (it takes about a second)
        finally:
            child.kill()
            child.wait(timeout=60)
        assert (folder / CACHED_FILE).read_bytes() == files[CACHED_FILE]
        left_behind += len(temporaries(folder))
        age(temporaries(folder), 2 * data.STALE_DOWNLOAD_AGE_S)
    assert left_behind > 0, "no kill landed during a download, so nothing was tested"

    finished = subprocess.run(command, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert temporaries(folder) == set()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files


def test_only_old_pooch_temporaries_are_removed(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    hour = data.STALE_DOWNLOAD_AGE_S
    old = {folder / "tmpab_c9xyz", folder / "tmp0123abcd"}
    kept = {
        folder / "tmpyoungone": 0,  # another process is downloading it right now
        folder / "train-images-idx3-ubyte.gz": 2 * hour,  # a cached file, however old
        folder / "tmp-notes.txt": 2 * hour,  # not tempfile's pattern
        folder / "tmpABCDEFGH": 2 * hour,  # tempfile's names are lower case
        folder / "tmpabcdefghi": 2 * hour,  # nine characters
    }
    for path in [*old, *kept]:
        path.write_bytes(b"partial")
    (folder / "tmpdirectry").mkdir()
    (folder / "tmplinkname").symlink_to(folder / "train-images-idx3-ubyte.gz")
    age(old | {folder / "tmpdirectry"}, 2 * hour)
    for path, seconds in kept.items():
        age({path}, seconds)
    os.utime(folder / "tmplinkname", (time.time() - 2 * hour,) * 2, follow_symlinks=False)

    assert set(data.remove_stale_downloads(folder)) == old
    remaining = {p.name for p in folder.iterdir()}
    assert remaining == {p.name for p in kept} | {"tmpdirectry", "tmplinkname"}
    assert data.remove_stale_downloads(tmp_path / "missing") == []
