"""Hostile artifacts and output paths (issue #10): nothing outside an artifact is read, replaced or leaked.

Writes: only regular files and artifact folders are replaced, temporary names are exclusive, SIGTERM cleans up
as Ctrl-C does, and what killed processes left is removed. Reads: every file goes through the artifact's
accessor (listed, plain name, regular, no link, recorded size and sha256, caps), npz members are checked before
they are read, and the JSON documents are checked against their schemas. Edits below keep the manifest's
sizes and checksums in step (``relist``), so that the checksums cannot be what catches them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_support import (
    assert_one_line_error,
    console_script,
    dead_pid,
    edit_manifest,
    listing,
    minimal_manifest,
    relist,
    run_cli,
    save_tiny,
)

from neurodeploy import compile_model, load_artifact
from neurodeploy.artifact import MANIFEST, write_artifact
from neurodeploy.errors import ArtifactError, DataError, LimitError
from neurodeploy.ir.serialize import read_npz, write_npz


@pytest.fixture
def art(tmp_path) -> Path:
    out = tmp_path / "art"
    compile_model(save_tiny(tmp_path / "models"), "reference", out)
    return out


@pytest.fixture
def x_file(tmp_path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((2, 1, 28, 28), np.float32))
    return path


def make_node(path: Path, kind: str) -> None:
    """A FIFO, a socket, a character device (/dev/null's numbers; root only), or a symbolic link at ``path``."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        here = os.getcwd()
        os.chdir(path.parent)  # a socket's path is short (108 bytes)
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.bind(path.name)
        finally:
            os.chdir(here)
    elif kind == "char-device":
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    elif kind == "symlink":
        target = path.parent / "link-target"
        target.write_bytes(b"the link's target")
        path.symlink_to(target)
    else:
        raise ValueError(kind)


def identity(path: Path) -> tuple[int, int, int]:
    info = os.lstat(path)
    return info.st_ino, info.st_mode, info.st_rdev


def run_cli_subprocess(*args, timeout: float = 60):
    """The console script, for cases that would hang or kill the test process on a regression."""
    proc = subprocess.run(
        [console_script(), *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )
    return proc


# --- writes: what may be replaced ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "socket", "char-device", "symlink"])
def test_compile_never_replaces_a_node_or_a_link(tmp_path, capsys, kind):
    model = save_tiny(tmp_path / "models")
    out = tmp_path / "out"
    make_node(out, kind)
    before = identity(out)
    result = run_cli(capsys, "compile", model, "-t", "reference", "-o", out)
    assert_one_line_error(result, str(out))
    assert identity(out) == before
    assert not [n for n in listing(tmp_path) if n.startswith(".")]


@pytest.mark.parametrize("kind", ["fifo", "char-device", "symlink-to-artifact"])
def test_write_artifact_refuses_what_it_must_not_replace(tmp_path, kind):
    out = tmp_path / "out"
    if kind == "symlink-to-artifact":  # a link to a real artifact: neither the link nor the artifact is replaced
        write_artifact(tmp_path / "real", lambda folder: minimal_manifest())
        out.symlink_to(tmp_path / "real")
    else:
        make_node(out, kind)
    before = identity(out)
    with pytest.raises(ArtifactError, match=str(out)):
        write_artifact(out, lambda folder: minimal_manifest())
    assert identity(out) == before


@pytest.mark.parametrize("kind", ["fifo", "char-device", "symlink", "socket"])
def test_emulate_output_is_never_a_node_or_a_link(tmp_path, art, x_file, capsys, kind):
    out = tmp_path / "y.npz"
    make_node(out, kind)
    before = identity(out)
    result = run_cli(capsys, "emulate", art, "--input", x_file, "--output", out, "--steps", "2")
    assert_one_line_error(result, str(out), "not a regular file")
    assert identity(out) == before
    if kind == "symlink":
        assert (tmp_path / "link-target").read_bytes() == b"the link's target"
    assert not [n for n in listing(tmp_path) if n.startswith(".y.npz")]


def test_emulate_output_replaces_a_regular_file_and_leaves_no_temporary(tmp_path, art, x_file, capsys):
    out = tmp_path / "y.npz"
    out.write_bytes(b"old results")
    result = run_cli(capsys, "emulate", art, "--input", x_file, "--output", out, "--steps", "2")
    assert result.code == 0, result.err
    with np.load(out) as y:
        assert y["outputs"].shape == (2, 3)
    assert not [n for n in listing(tmp_path) if n.startswith(".y.npz")]


@pytest.fixture
def eval_data(tmp_path) -> Path:
    path = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.random((4, 1, 28, 28), dtype=np.float32), y=np.arange(4) % 3)
    return path


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_evaluate_outputs_are_never_a_node_or_a_link(tmp_path, eval_data, capsys, option):
    if option == "--plot":
        pytest.importorskip("matplotlib")
    model = save_tiny(tmp_path / "models")
    out = tmp_path / "result"
    make_node(out, "fifo")
    before = identity(out)
    args = ("evaluate", model, "--data", eval_data, "--steps", "1", "--workers", "1", "-q")
    result = run_cli(capsys, *args, option, out)
    assert_one_line_error(result, str(out), "not a regular file")
    assert identity(out) == before


def test_write_file_atomic_removes_its_temporary_file_when_interrupted(tmp_path):
    from neurodeploy.fileio import write_file_atomic

    out = tmp_path / "y.bin"
    out.write_bytes(b"before")

    def writer(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_file_atomic(out, writer)
    assert out.read_bytes() == b"before"
    assert listing(tmp_path) == ["y.bin"]
    with pytest.raises(DataError, match="cannot write"):
        write_file_atomic(tmp_path / "missing" / "y.bin", b"data")
    assert listing(tmp_path) == ["y.bin"]
    write_file_atomic(out, b"after")
    assert out.read_bytes() == b"after"
    assert listing(tmp_path) == ["y.bin"]


# --- writes: leftovers of killed processes ---------------------------------------------------------------------


def test_leftovers_of_dead_processes_are_removed_by_the_next_compile(tmp_path, monkeypatch):
    model = save_tiny(tmp_path / "models")
    dead = dead_pid()
    stale = [tmp_path / f".art.tmp-{dead}-0123abcd", tmp_path / f".art.old-{dead}-89abcdef"]
    for folder in stale:
        folder.mkdir()
        (folder / "snn.npz").write_bytes(b"half written")
    alive = [
        tmp_path / f".art.tmp-{os.getpid()}-00000000",  # this process's
        tmp_path / f".art.tmp-{os.getppid()}-11111111",  # a live process's
        tmp_path / f".other.tmp-{dead}-22222222",  # another destination's
        tmp_path / f".art.tmp-{dead}-notours0",  # not our pattern
    ]
    for folder in alive:
        folder.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    link = tmp_path / f".art.tmp-{dead}-33333333"  # our pattern, but a link: never followed or removed
    link.symlink_to(target)
    plain = tmp_path / f".art.old-{dead}-44444444"  # our pattern, but a file
    plain.write_text("mine")

    compile_model(model, "reference", tmp_path / "art")
    assert not any(folder.exists() for folder in stale)
    assert all(folder.is_dir() for folder in alive)
    assert link.is_symlink()
    assert (target / "keep.txt").read_text() == "mine"
    assert plain.read_text() == "mine"


def test_a_leftover_that_cannot_be_removed_is_reported(tmp_path, monkeypatch, caplog):
    model = save_tiny(tmp_path / "models")
    stale = tmp_path / f".art.tmp-{dead_pid()}-0123abcd"
    stale.mkdir()
    real = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        if Path(path) == stale:
            raise PermissionError(13, "Permission denied")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    compile_model(model, "reference", tmp_path / "art")
    assert stale.is_dir()
    assert any(str(stale) in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_leftover_output_files_of_dead_processes_are_removed(tmp_path, art, x_file, capsys):
    stale = tmp_path / f".y.npz.tmp-{dead_pid()}-0123abcd"
    stale.write_bytes(b"half written")
    result = run_cli(capsys, "emulate", art, "--input", x_file, "--output", tmp_path / "y.npz", "--steps", "2")
    assert result.code == 0, result.err
    assert not stale.exists()


SLOW_COMPILE = """
import sys, time
from neurodeploy.backends.reference import ReferenceBackend
from neurodeploy.cli import main

def emit(self, model, folder):
    (folder / "partial.bin").write_bytes(b"half written")
    print("ready", flush=True)
    time.sleep(120)

ReferenceBackend.emit = emit
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("previous", [False, True], ids=["new", "over-an-artifact"])
def test_sigterm_during_a_compile_cleans_up_as_ctrl_c_does(tmp_path, previous):
    model = save_tiny(tmp_path / "models")
    out = tmp_path / "art"
    if previous:
        compile_model(model, "reference", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()} if previous else None
    command = [sys.executable, "-c", SLOW_COMPILE, "compile", str(model), "-t", "reference", "-o", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert any(name.startswith(".art.tmp-") for name in listing(tmp_path))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err
    assert "Traceback" not in err
    assert listing(tmp_path) == (["art", "models"] if previous else ["models"])
    if previous:
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_main_restores_the_previous_sigterm_handler(capsys):
    before = signal.getsignal(signal.SIGTERM)
    assert run_cli(capsys, "targets").code == 0
    assert signal.getsignal(signal.SIGTERM) is before


# --- reads: names, links, nodes --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../outside.bin", "/etc/passwd", "/proc/self/status", "sub/snn.npz", ".hidden"])
def test_manifest_names_must_be_plain(tmp_path, art, x_file, capsys, name):
    (tmp_path / "outside.bin").write_bytes(b"not the artifact's")
    source = art / name if not name.startswith("/") else Path(name)
    data = source.read_bytes() if source.is_file() and not name.startswith("/proc") else b""

    def add(manifest):
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    edit_manifest(art, add)
    result = run_cli(capsys, "emulate", art, "--input", x_file, "--steps", "2")
    assert_one_line_error(result, "manifest.json", "plain file name")


def test_the_manifest_cannot_list_itself(art):
    relist(art, MANIFEST)
    with pytest.raises(ArtifactError, match=r"manifest\.json.*(plain file name|itself)"):
        load_artifact(art)


def test_a_symbolic_link_inside_the_artifact_is_not_followed(tmp_path, art, x_file, capsys):
    outside = tmp_path / "outside.npz"
    shutil.move(art / "snn.npz", outside)
    (art / "snn.npz").symlink_to(outside)  # same bytes: the checksum matches
    result = run_cli(capsys, "emulate", art, "--input", x_file, "--steps", "2")
    assert_one_line_error(result, "snn.npz", "symbolic link")
    with pytest.raises(ArtifactError, match="symbolic link"):
        load_artifact(art, verify=False).path("snn.npz")


def test_a_symbolic_link_as_manifest_is_not_followed(tmp_path, art, x_file, capsys):
    shutil.move(art / MANIFEST, tmp_path / "elsewhere.json")
    (art / MANIFEST).symlink_to(tmp_path / "elsewhere.json")
    result = run_cli(capsys, "emulate", art, "--input", x_file, "--steps", "2")
    assert_one_line_error(result, "manifest.json", "symbolic link")


@pytest.mark.parametrize("name", ["snn.npz", MANIFEST])
def test_a_fifo_in_the_artifact_is_refused_without_waiting(art, x_file, name):
    (art / name).unlink()
    os.mkfifo(art / name)  # opening it for reading would wait for a writer forever
    proc = run_cli_subprocess("emulate", art, "--input", x_file, "--steps", "2", timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert name in proc.stderr
    assert "FIFO" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_device_in_the_artifact_is_refused(art, x_file, capsys):
    (art / "report.json").unlink()
    make_node(art / "report.json", "char-device")
    result = run_cli(capsys, "emulate", art, "--input", x_file, "--steps", "2")
    assert_one_line_error(result, "report.json", "character device")


@pytest.mark.parametrize("name", ["snn.json", "snn.npz"])
def test_a_file_the_manifest_does_not_list_is_never_read(tmp_path, art, x_file, capsys, name):
    edit_manifest(art, lambda manifest: manifest["files"].pop(name))
    result = run_cli(capsys, "emulate", art, "--input", x_file, "--steps", "2")
    assert_one_line_error(result, name, "no file")


def test_the_manifest_must_be_format_2(art):
    edit_manifest(art, lambda manifest: manifest["neurodeploy"].update(artifact_format=1))
    with pytest.raises(ArtifactError, match=r"format 1.*compile again"):
        load_artifact(art)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda m: m["files"]["snn.npz"].update(bytes="12"), r"files\['snn.npz'\].bytes: expected an integer >= 0"),
        (lambda m: m["files"]["snn.npz"].update(bytes=-1), r"files\['snn.npz'\].bytes: expected an integer >= 0"),
        (lambda m: m["files"].update({"snn.npz": "ab" * 32}), r"files\['snn.npz'\]: expected an object"),
        (lambda m: m["files"]["snn.npz"].update(sha256="xyz"), r"files\['snn.npz'\].sha256: expected a sha256"),
        (lambda m: m["target"].update(name=7), r"target.name: expected a string"),
        (lambda m: m["inputs"][0].update(range=[0, "1"]), r"inputs\[0\].range\[1\]: expected a finite number"),
        (lambda m: m["inputs"][0].pop("shape"), r"inputs\[0\].shape: missing"),
    ],
    ids=["bytes-string", "bytes-negative", "entry-string", "sha256", "target-name", "range", "shape-missing"],
)
def test_the_manifest_is_checked_against_its_schema(art, change, fragment):
    edit_manifest(art, change)
    with pytest.raises(ArtifactError, match=r"manifest\.json: " + fragment):
        load_artifact(art)


def test_json_documents_are_capped(art, monkeypatch):
    monkeypatch.setenv("NEURODEPLOY_MAX_JSON_BYTES", "100")
    with pytest.raises(LimitError, match=r"manifest\.json.*NEURODEPLOY_MAX_JSON_BYTES"):
        load_artifact(art)
    monkeypatch.setenv("NEURODEPLOY_MAX_JSON_BYTES", str((art / MANIFEST).stat().st_size))
    artifact = load_artifact(art)
    with pytest.raises(LimitError, match=r"snn\.json.*NEURODEPLOY_MAX_JSON_BYTES"):
        artifact.read_graph("snn")


# --- reads: npz ------------------------------------------------------------------------------------------------


def stored_npz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=True)
    return buf.getvalue()


def declare_size(npz: bytes, size: int) -> bytes:
    """``npz`` with its first member's uncompressed size in the zip directory replaced by ``size``."""
    data = bytearray(npz)
    at = data.index(b"PK\x01\x02")
    data[at + 24 : at + 28] = size.to_bytes(4, "little")
    return bytes(data)


def install(art: Path, name: str, data: bytes) -> None:
    (art / name).write_bytes(data)
    relist(art, name)


def test_an_npz_member_declaring_a_huge_size_is_refused_before_it_is_read(art, x_file, capsys, monkeypatch):
    monkeypatch.setenv("NEURODEPLOY_MAX_FILE_BYTES", "10000000")
    install(art, "snn.npz", declare_size((art / "snn.npz").read_bytes(), 0xFFFF0000))
    result = run_cli(capsys, "emulate", art, "--input", x_file, "--steps", "2")
    assert_one_line_error(result, "snn.npz", "4,294,901,760", "NEURODEPLOY_MAX_FILE_BYTES")


def test_a_compressed_npz_bomb_is_refused_before_it_is_expanded(tmp_path, art, x_file, capsys):
    """30 MB of zeros in a 30 kB file, under every limit: refused because artifacts store arrays uncompressed,
    so no member can hold more than the file's recorded size."""
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, **{"0/weight": np.zeros(30_000_000, np.uint8)})
    assert bomb.stat().st_size < 100_000
    install(art, "snn.npz", bomb.read_bytes())
    result = run_cli(capsys, "emulate", art, "--input", x_file, "--steps", "2")
    assert_one_line_error(result, "snn.npz", "member '0/weight.npy' is compressed")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_weights_in_an_artifact_graph_are_refused(art, x_file, capsys, value):
    """compile never writes NaN or Inf; an edited npz (re-hashed into the manifest) holding one is refused when
    the graph is read, naming the op and the array, instead of running to meaningless outputs."""
    arrays = read_npz(art / "snn.npz")
    key = next(k for k in sorted(arrays) if arrays[k].dtype.kind == "f")
    arrays[key] = arrays[key].copy()
    arrays[key].flat[0] = value
    buf = io.BytesIO()
    write_npz(buf, arrays)
    install(art, "snn.npz", buf.getvalue())
    result = run_cli(capsys, "emulate", art, "--input", x_file, "--steps", "2")
    assert_one_line_error(result, "snn.json: ops[", f"(array {key!r}) holds 1 NaN or infinite values")


def test_npz_members_together_are_capped(monkeypatch):
    monkeypatch.setenv("NEURODEPLOY_MAX_FILE_BYTES", "1000")
    data = stored_npz({"a.npy": npy(np.zeros(100, np.float32)), "b.npy": npy(np.zeros(100, np.float32))})
    with pytest.raises(LimitError, match="members together"):
        read_npz(data, "two.npz")


@pytest.mark.parametrize(
    ("members", "fragment"),
    [
        ({"0/weight.npy": npy(np.array([1, "a", None], dtype=object))}, "Python objects"),
        ({"evil.txt": b"hello"}, "not a .npy array"),
        ({"a.npy": npy(np.zeros(1000, np.float32))[:200]}, "needs 4,000 bytes"),
        ({"a.npy": b"\x93NUMPY\x01\x00" + b"\x10\x00" + b"{'descr': 'junk'" + b" " * 100}, "bad .npy header"),
        ({"a.npy": npy(np.zeros(3, np.dtype("V0")))}, "0 bytes"),
    ],
    ids=["object", "not-npy", "short-data", "bad-header", "void"],
)
def test_npz_members_are_parsed_safely(members, fragment):
    with pytest.raises(ArtifactError, match=fragment):
        read_npz(stored_npz(members), "bad.npz")


def test_an_object_array_in_an_artifact_npz_names_the_file(art, x_file, capsys):
    install(art, "snn.npz", stored_npz({"0/weight.npy": npy(np.array([1, "a"], dtype=object))}))
    result = run_cli(capsys, "emulate", art, "--input", x_file, "--steps", "2")
    assert_one_line_error(result, "snn.npz", "Python objects")


def test_read_npz_of_a_path_refuses_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "x.npz")
    with pytest.raises(DataError, match="FIFO"):
        read_npz(tmp_path / "x.npz", error=DataError)


def test_read_npz_round_trips_what_numpy_writes(tmp_path):
    arrays = {"x": np.arange(12, dtype=np.float32).reshape(3, 4), "y": np.arange(3), "f": np.asfortranarray(np.eye(3))}
    np.savez(tmp_path / "a.npz", **arrays)
    loaded = read_npz(tmp_path / "a.npz")
    assert loaded.keys() == arrays.keys()
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded[key], value)
        assert loaded[key].dtype == value.dtype
        assert loaded[key].flags.writeable


# --- reads: graph documents ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d["ops"][0].update(op_type="Teleport"), "unknown op type 'Teleport'"),
        (lambda d: d["ops"][0]["attributes"].update(stride="2"), "attribute 'stride': expected a list of 2"),
        (lambda d: d["ops"][0]["attributes"].update(stride=[1]), "attribute 'stride': expected a list of 2"),
        (lambda d: d["ops"][0]["attributes"].update(warp=1), "has no attribute 'warp'"),
        (lambda d: d["ops"][0]["attributes"].pop("weight"), "attribute 'weight' is missing"),
        (lambda d: d["ops"][0]["attributes"].update(weight={"array": "nope"}), "'nope'.*missing from the npz"),
        (lambda d: d["ops"][0].update(inputs="input"), r"ops\[0\].inputs: expected a list"),
        (lambda d: d["ops"][1].update(inputs=["nowhere"]), "'nowhere'"),
        (lambda d: d.update(outputs=[]), "outputs: expected a list of at least 1"),
        (
            lambda d: d["inputs"]["input"].update(shape=[1, 0, 28]),
            r"inputs\['input'\].shape\[1\]: expected an integer >= 1",
        ),
    ],
    ids=[
        "op-type",
        "stride-string",
        "stride-short",
        "unknown-attribute",
        "missing-attribute",
        "missing-array",
        "inputs-string",
        "undefined-input",
        "no-outputs",
        "zero-dimension",
    ],
)
def test_graph_documents_are_checked_and_name_the_file(art, change, fragment):
    doc = json.loads((art / "snn.json").read_text())
    change(doc)
    install(art, "snn.json", json.dumps(doc).encode())
    with pytest.raises(ArtifactError, match=r"snn\.json.*" + fragment):
        load_artifact(art).read_graph("snn")
