"""A real `meshql serve` for the robustness suites: a private copy of the demo mesh with chosen
server settings, its output drained to a log file, and its memory and CPU watched from outside.

Nothing here talks to anything but loopback, and every wait is bounded.
"""

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import threading
import time
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "robustness-admin-token-0123456789"
# A safety net for the machine running the suites, far above any budget the suites set: a server
# that escapes its memory budget dies here (and the suite reports the death) instead of pushing
# the machine into swap.
ADDRESS_SPACE_LIMIT = int(os.environ.get("MESHQL_TEST_MAX_VM_GB", "20")) << 30


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def meshql_binary() -> str:
    exe = os.environ.get("MESHQL_BIN")
    if exe:
        return exe
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    return str(Path(target) / "release" / "meshql")


def demo_mesh(dest: Path, settings: dict | None = None) -> Path:
    """Copies the bundled demo mesh to `dest` with `settings` merged into its `server:` block."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in ("catalog", "sql"):
        shutil.copytree(REPO / part, dest / part, dirs_exist_ok=True)
    if settings:
        path = dest / "catalog" / "mesh.yaml"
        mesh = yaml.safe_load(path.read_text())
        mesh.setdefault("server", {}).update(settings)
        path.write_text(yaml.safe_dump(mesh, sort_keys=False))
    return dest


def run(args: list[str], mesh: Path, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """Runs one meshql command on `mesh` and returns its completed process."""
    return subprocess.run([meshql_binary(), "--mesh", str(mesh), *args], capture_output=True,
                          text=True, timeout=timeout, **kw)


class Server:
    """`meshql serve` on a free loopback port. Use as a context manager."""

    def __init__(self, mesh: Path, log: Path | None = None, extra_args=(), env=None):
        self.mesh = mesh
        self.log_path = log or mesh / "serve.log"
        self.extra_args = list(extra_args)
        self.env = dict(os.environ, MESHQL_ADMIN_TOKEN=ADMIN_TOKEN, **(env or {}))
        self.proc = None
        self.uri = None
        self.peak_rss = 0
        self._watching = False

    def start(self, timeout: float = 300) -> "Server":
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [meshql_binary(), "--mesh", str(self.mesh), "serve", "--addr", "127.0.0.1:0",
             *self.extra_args],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=_limit_address_space)
        found = threading.Event()

        def drain():
            # Reading every line keeps the server from blocking on a full pipe.
            for line in self.proc.stdout:
                self._log.write(line)
                self._log.flush()
                m = re.search(r"on (grpc://127\.0\.0\.1:\d+)", line)
                if m and not found.is_set():
                    self.uri = m.group(1)
                    found.set()
            found.set()

        threading.Thread(target=drain, daemon=True).start()
        if not found.wait(timeout) or self.uri is None:
            self.stop()
            raise RuntimeError(f"meshql serve did not start; see {self.log_path}:\n{self.log()[-4000:]}")
        self.ps = psutil.Process(self.proc.pid)
        self._watching = True
        threading.Thread(target=self._watch, daemon=True).start()
        return self

    def _watch(self):
        while self._watching and self.alive():
            try:
                self.peak_rss = max(self.peak_rss, self.ps.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def cpu_seconds(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def busy_cpu(self, window: float = 2.0) -> float:
        """Cores the server keeps busy over `window` seconds (1.0 = one core all the time)."""
        before = self.cpu_seconds()
        time.sleep(window)
        return (self.cpu_seconds() - before) / window

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return ""

    def stop(self):
        self._watching = False
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        if getattr(self, "_log", None):
            self._log.close()

    def kill(self):
        """SIGKILL: what a crash or the OOM killer does."""
        self._watching = False
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.stop()


def suite_arguments(doc: str, **options) -> argparse.Namespace:
    """The command line of a suite script: its `options` (name → default) and `--out`."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in options.items():
        ap.add_argument(f"--{name}", type=type(default) if default is not None else str, default=default)
    ap.add_argument("--out", type=Path, help="write the JSON report here")
    return ap.parse_args()


def finish(report: dict, out: Path | None) -> int:
    """Prints a suite's report (and writes it to `out`); the exit code says whether it passed."""
    text = json.dumps(report, indent=2, default=str)
    if out:
        out.write_text(text)
    print(text)
    return 0 if report["ok"] else 1


def connect(uri: str, user: str = "admin", password: str | None = None, timeout: float = 120):
    """An ADBC connection as a demo principal (each password is the user name), with a client-side
    time limit on every call so a stuck server cannot hang the suite."""
    import adbc_driver_flightsql.dbapi as flightsql

    kwargs = {
        "username": user,
        "password": password if password is not None else user,
        "adbc.flight.sql.rpc.timeout_seconds.fetch": str(timeout),
        "adbc.flight.sql.rpc.timeout_seconds.query": str(timeout),
        "adbc.flight.sql.rpc.timeout_seconds.update": str(timeout),
    }
    return flightsql.connect(uri, db_kwargs=kwargs, autocommit=True)


def status_of(error: Exception) -> str:
    """The gRPC code of a failed ADBC call (`InvalidArgument`, `ResourceExhausted`, ...). ADBC
    folds several gRPC codes into one of its own, but names the gRPC code at the end of the
    message: `... (ResourceExhausted; DoGet: endpoint 0: [])`."""
    text = str(error)
    m = re.search(r"\((\w+); [^()]*(\([^()]*\)[^()]*)*\)\s*$", text)
    if m:
        return m.group(1)
    code = getattr(error, "status_code", None)
    return code.name if code is not None else type(error).__name__
