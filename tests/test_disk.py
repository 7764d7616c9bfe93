"""A read-only folder, a read-only lab and a full disk, made real: each scenario runs the runner in
a mount namespace of its own (``unshare -m``) with a read-only bind mount or a small tmpfs over the
lab. The error names the path, no traceback is printed, and the state of a step that could not
write is not advanced."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import private_mounts

RUN = f"{shlex.quote(sys.executable)} -m agilab_dsl"

pytestmark = pytest.mark.skipif(
    private_mounts() is not None, reason=f"needs a mount namespace of its own: {private_mounts()}"
)


def in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    """``script`` (sh) in a private mount namespace: its mounts vanish when it ends."""
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", "set -u\n" + script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def squeeze(text: str) -> str:
    """The runner's report with its id columns' padding taken out."""
    return re.sub(r"(?m)^([▶✓✗!=-]) (\S+) +", r"\1 \2 ", text)


def status(lab: Path) -> dict[str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "agilab_dsl", "status", str(lab), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {s["id"]: s["state"] for s in json.loads(proc.stdout)["steps"]}


READ_ONLY_OUTPUTS = """[[m]]
id = "a"
C = "open(outputs[0], 'w').write('a')"
produces = ["out/a.txt"]

[[m]]
id = "b"
C = "open(outputs[0], 'w').write('b')"
produces = ["ro/b.txt"]
deps = ["a"]

[[m]]
id = "c"
C = "open(outputs[0], 'w').write('c')"
produces = ["ro/sub/c.txt"]
deps = ["a"]
"""


def test_read_only_outputs_fail_their_steps_naming_the_path(tmp_path: Path) -> None:
    lab = tmp_path / "lab_steps.toml"
    lab.write_text(READ_ONLY_OUTPUTS, encoding="utf-8")
    ro = tmp_path / "ro"
    ro.mkdir()
    q = shlex.quote(str(ro))
    proc = in_namespace(f"mount --bind {q} {q} && mount -o remount,bind,ro {q} && {RUN} {lab} --keep-going")
    assert proc.returncode == 1, proc.stderr
    # b's own write failed (its error, from its log); c's folder could not be made by the runner
    assert "Read-only file system: 'ro/b.txt'" in proc.stderr
    assert f"✗ c failed: cannot create the folder {ro}/sub: Read-only file system" in squeeze(proc.stderr)
    assert 'File "<step b>", line 1' in proc.stderr and "agilab_dsl" not in proc.stderr  # b's frames only
    assert status(lab) == {"a": "fresh", "b": "never-ran", "c": "never-ran"}


def test_a_read_only_lab_folder_is_refused_naming_its_state_folder(tmp_path: Path) -> None:
    lab = tmp_path / "lab_steps.toml"
    lab.write_text(READ_ONLY_OUTPUTS, encoding="utf-8")
    q = shlex.quote(str(tmp_path))
    proc = in_namespace(f"mount --bind {q} {q} && mount -o remount,bind,ro {q} && {RUN} {lab}")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"agilab-run: error: {tmp_path}/.agilab: Read-only file system\n")
    assert "must be writable" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing ran


FULL_DISK = """[[m]]
id = "fill"
C = '''
import os
open(outputs[0], "w").write("filled")
if os.path.exists("FILL"):  # then fill the disk to its last byte
    with open("filler.bin", "wb", buffering=0) as fh:
        for size in (65536, 4096, 1):
            try:
                while True:
                    fh.write(b"x" * size)
            except OSError:
                pass
'''
produces = ["out/fill.txt"]

[[m]]
id = "after"
C = "open(outputs[0], 'w').write(open(inputs[0]).read())"
consumes = ["out/fill.txt"]
produces = ["out/after.txt"]
"""


def test_a_full_disk_leaves_the_step_it_could_not_record_to_run_again(tmp_path: Path) -> None:
    staged = tmp_path / "staged.toml"
    staged.write_text(FULL_DISK, encoding="utf-8")
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    lab = lab_dir / "lab_steps.toml"
    out = {n: tmp_path / f"{n}.txt" for n in ("first", "first_rc", "second", "second_rc", "status")}
    script = f"""
mount -t tmpfs -o size=1m tmpfs {lab_dir} && cp {staged} {lab} && touch {lab_dir}/FILL
{RUN} {lab} > /dev/null 2> {out["first"]}; echo $? > {out["first_rc"]}
rm {lab_dir}/filler.bin {lab_dir}/FILL
{RUN} {lab} > /dev/null 2> {out["second"]}; echo $? > {out["second_rc"]}
{RUN} status {lab} --json > {out["status"]}
"""
    proc = in_namespace(script)
    assert proc.returncode == 0, proc.stderr
    first = out["first"].read_text(encoding="utf-8")
    assert out["first_rc"].read_text().strip() == "1", first
    first = squeeze(first)
    assert "✗ fill failed: it ran, but its record could not be written (" in first
    assert "journal.jsonl: No space left on device); it will run again" in first
    assert "! after blocked" in first and "Traceback" not in first
    second = out["second"].read_text(encoding="utf-8")
    assert out["second_rc"].read_text().strip() == "0", second
    assert "✓ fill" in second and "✓ after" in second  # fill was never recorded: it runs again
    states = {s["id"]: s["state"] for s in json.loads(out["status"].read_text())["steps"]}
    assert states == {"fill": "fresh", "after": "fresh"}
