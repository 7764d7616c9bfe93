from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "agilab"
CONFORMANCE = ROOT / "lab_steps" / "conformance"


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.toml")) if CORPUS.is_dir() else []


needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(),
    reason=f"AGILAB corpus folder {CORPUS} is absent (it lives in ../shared beside the repo)",
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own, empty check-result cache (never the user's)."""
    monkeypatch.setenv("AGILAB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    # runs write their history record in Parquet before returning, not from a detached process
    # that could outlive the test (tests/test_history.py checks the detached path itself)
    monkeypatch.setenv("AGILAB_HISTORY_SYNC", "1")


class DaskProcesses:
    """A real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 (one single-threaded
    process each, under a nanny that restarts a worker that dies)."""

    def __init__(
        self, folder: Path, wrappers: tuple[list[str], ...] = ([], []), tls: list[str] | None = None
    ) -> None:
        """One worker per entry of ``wrappers``: a command prefix its process starts under. ``tls``:
        the ``--tls-ca-file … --tls-cert … --tls-key …`` options of every process (the scheduler then
        speaks ``tls://``)."""
        self.security = None
        import json
        import sys
        import time

        self.procs: list[subprocess.Popen[bytes]] = []
        info = folder / "scheduler.json"
        logs = folder / "logs"
        logs.mkdir(parents=True)
        python = [sys.executable, "-m"]
        self._start(
            [
                *python,
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(info),
                *(["--protocol", "tls", *tls] if tls else []),
            ],
            logs / "scheduler.log",
        )
        if tls:
            from distributed.security import Security

            ca, cert, key = (
                tls[tls.index(flag) + 1] for flag in ("--tls-ca-file", "--tls-cert", "--tls-key")
            )
            self.security = Security(
                tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True
            )
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not info.exists():
            self.close()
            raise RuntimeError(f"dask scheduler did not start: {(logs / 'scheduler.log').read_text()}")
        self.address: str = json.loads(info.read_text())["address"]
        for n, wrapper in enumerate(wrappers):
            self._start(
                [
                    *wrapper,
                    *python,
                    "distributed.cli.dask_worker",
                    self.address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--nworkers",
                    "1",
                    "--no-dashboard",
                    "--name",
                    f"w{n}",
                    *(tls or []),
                ],
                logs / f"worker{n}.log",
            )
        self.wait_for_workers(len(wrappers))

    def _start(self, argv: list[str], log: Path) -> None:
        import subprocess

        with log.open("wb") as fh:
            self.procs.append(subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT))

    def wait_for_workers(self, n: int) -> None:
        from distributed import Client

        with Client(self.address, timeout="30s", security=self.security) as client:
            client.wait_for_workers(n, timeout=90)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except Exception:
                proc.kill()


@pytest.fixture(scope="session")
def dask_processes(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    cluster = DaskProcesses(tmp_path_factory.mktemp("dask"))
    yield cluster
    cluster.close()


# the contract suite runs on each: local, a joblib pool, a LocalCluster started for the stage, and a
# real `dask scheduler` with two `dask worker` processes (gpu: tests/test_gpu.py, and the examples)
BACKENDS = ["local", "pool", "dask-local", "dask-external"]


@pytest.fixture(params=BACKENDS)
def on(request: pytest.FixtureRequest) -> dict[str, object]:
    """The run_contract options of one backend."""
    return backend_options(request, request.param)


def backend_options(request: pytest.FixtureRequest, name: str) -> dict[str, object]:
    if name == "dask-external":
        return {"backend": "dask", "scheduler": request.getfixturevalue("dask_processes").address}
    if name == "gpu":
        from agilab_dsl.stages.backends.gpu import missing

        lacking = missing()
        if lacking is not None:
            pytest.skip(f"no GPU here: {lacking}")
    return {"backend": "dask" if name == "dask-local" else name}


def interruptible_cli(*args: str) -> list[str]:
    """argv running ``agilab-run *args`` with Ctrl-C's default behaviour restored first: a shell
    that starts jobs in the background (``cmd &``, nohup) has them ignore SIGINT, and Python then
    never raises KeyboardInterrupt — tests that interrupt a child must not depend on how pytest
    itself was started. (Not preexec_fn: unsafe once this process has threads.)"""
    import sys

    code = (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_module('agilab_dsl', run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-c", code, *args]


def private_mounts() -> str | None:
    """Why a process cannot be given its own mount namespace here (``unshare -m``), or None."""
    if shutil.which("unshare") is None:
        return "no `unshare` command"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"`unshare -m` is not permitted here ({probe.stderr.decode().strip()})"
    return None
