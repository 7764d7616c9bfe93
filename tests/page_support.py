"""What the live page's tests share: a small lab with a slow step, and an ``agilab-run`` process
serving the page (its URL read from stderr)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

LAB = '''[__meta__]
schema = "agilab.lab_stages.v1"
version = 1

[[lab]]
id = "slow"
C = """
import time
from pathlib import Path
time.sleep(0.6)
Path("mid.txt").write_text(Path("input.txt").read_text().upper())
print("slow read", len(Path("input.txt").read_text()), "characters")
"""
consumes = ["input.txt"]
produces = ["mid.txt"]

[[lab]]
id = "measure"
function = "steps.py:measure"
consumes = ["mid.txt"]
produces = ["out.json"]

[[lab]]
id = "side"
C = "print('side step')"
'''

STEPS = """import json
from pathlib import Path


def measure():
    text = Path("mid.txt").read_text()
    Path("out.json").write_text(json.dumps({"chars": len(text)}))
    return {"chars": len(text), "words": len(text.split())}
"""


def write_lab(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lab_stages.toml").write_text(LAB)
    (folder / "steps.py").write_text(STEPS)
    (folder / "input.txt").write_text("hello live page\n")
    return folder / "lab_stages.toml"


class Served:
    """``agilab-run ARGS`` in a subprocess; its stderr collected line by line."""

    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        # PYTHONFAULTHANDLER: a process that does not stop when told is made to say where it is
        # (every thread's stack, on SIGABRT) before it is killed: see :meth:`stop`
        # interruptible_cli: stopped with SIGINT, it must not inherit an ignored SIGINT (a suite run
        # in the background has it ignored; a `--watch --serve` then never stopped)
        from conftest import interruptible_cli

        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "PYTHONFAULTHANDLER": "1"}
        self.proc = subprocess.Popen(
            interruptible_cli(*args),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=env,
        )
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None and not self.thread.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never said; stderr:\n" + "\n".join(self.lines))

    @property
    def url(self) -> str:
        return self.wait_for("live page at").rsplit(" ", 1)[1]

    def stop(self) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:  # its threads' stacks go to the lines, then it ends
                self.proc.send_signal(signal.SIGABRT)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.thread.join(timeout=5)
        return self.proc.returncode
