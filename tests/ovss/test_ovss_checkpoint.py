"""OVSS checkpoint files under fault injection: truncation, flipped bytes, garbage, a writer killed mid-save,
missing paths, pickled code; the checksum, the weights-only loads, and the fallback to an intact file."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from ovss.checkpoint import CheckpointError

from ovss import checkpoint as ckpt

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ovss"


def _state(seed: int = 0, iteration: int = 7) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "model": {"w": torch.randn(64, 32, generator=g), "b": torch.randn(32, generator=g).bfloat16()},
        "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 1e-3, "name": "x"}]},
        "iteration": iteration,
        "rng": {"torch": torch.get_rng_state(), "numpy": ckpt.numpy_rng_state()},
        "history": [{"iteration": 1, "loss": 0.5}],
    }


def _write_run(tmp_path: Path, iterations=(2, 4)) -> Path:
    d = tmp_path / "run" / "checkpoints"
    for it in iterations:
        ckpt.save_atomic(_state(it, it), d / f"iter_{it:07d}.pth")
        ckpt.write_pointer(d, f"iter_{it:07d}.pth")
    return d


def test_round_trip_is_exact_and_weights_only(tmp_path):
    state = _state()
    path = ckpt.save_atomic(state, tmp_path / "c.pth")
    raw = torch.load(path, weights_only=True)  # plain types and tensors only: no pickled objects
    assert raw["format"] == ckpt.CHECKPOINT_FORMAT and len(raw["sha256"]) == 64
    back = ckpt.load_checkpoint(path)
    assert back["iteration"] == 7 and back["history"] == state["history"]
    assert torch.equal(back["model"]["w"], state["model"]["w"]) and back["model"]["b"].dtype == torch.bfloat16
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed


def test_digest_sees_every_byte_key_and_dtype():
    s = _state()
    d = ckpt.state_digest(s)
    assert d == ckpt.state_digest(_state()) and d == ckpt.state_digest({**s, "sha256": "ignored"})
    flipped = _state()
    flipped["model"]["w"].view(-1).view(torch.int32)[100] ^= 1  # one bit of one float
    assert ckpt.state_digest(flipped) != d
    retyped = _state()
    retyped["model"]["w"] = retyped["model"]["w"].double().float()  # same values, same dtype
    assert ckpt.state_digest(retyped) == d
    retyped["model"]["w"] = retyped["model"]["w"].double()
    assert ckpt.state_digest(retyped) != d
    assert ckpt.state_digest({**s, "iteration": 8}) != d


def test_numpy_rng_state_round_trips_through_plain_types():
    np.random.seed(5)  # noqa: NPY002
    np.random.normal()  # noqa: NPY002 (leaves a cached gaussian)
    state = ckpt.numpy_rng_state()
    expected = np.random.random(4)  # noqa: NPY002
    np.random.seed(99)  # noqa: NPY002
    ckpt.set_numpy_rng_state(state)
    np.testing.assert_array_equal(np.random.random(4), expected)  # noqa: NPY002


def _tensor_data_offset(path: Path) -> tuple[int, int]:
    """Byte offset and size of the largest tensor's raw data inside a torch.save zip."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    name_len = int.from_bytes(header[26:28], "little")
    extra_len = int.from_bytes(header[28:30], "little")
    return info.header_offset + 30 + name_len + extra_len, info.file_size


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage", "flip64", "not_a_checkpoint"])
def test_damaged_files_give_an_error_naming_the_file(tmp_path, damage):
    path = ckpt.save_atomic(_state(), tmp_path / "iter_0000007.pth")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(os.urandom(4096))
    elif damage == "flip64":  # 64 bytes inside the tensor data: the zip container itself stays valid
        offset, size = _tensor_data_offset(path)
        assert size >= 64 * 4
        buf = bytearray(data)
        for i in range(64):
            buf[offset + 4 * i] ^= 0xFF
        path.write_bytes(bytes(buf))
    else:
        torch.save({"model": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match=r"iter_0000007\.pth"):
        ckpt.load_checkpoint(path)


def test_consistent_rewrite_without_the_checksum_is_caught(tmp_path):
    """Tensor data changed and the file re-saved by torch (a valid zip): only the checksum can tell."""
    path = ckpt.save_atomic(_state(), tmp_path / "c.pth")
    raw = torch.load(path, weights_only=True)
    raw["model"]["w"][0, 0] += 1e-3
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=r"c\.pth is corrupt: its SHA-256"):
        ckpt.load_checkpoint(path)


def test_missing_path_and_format_mismatch(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.pth does not exist"):
        ckpt.load_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match=r"nope\.pth does not exist"):
        ckpt.load_model_weights(tmp_path / "nope.pth")
    weights = ckpt.save_atomic({"model": {"w": torch.ones(2)}}, tmp_path / "m.pth", fmt=ckpt.WEIGHTS_FORMAT)
    with pytest.raises(CheckpointError, match="expected 'ovss-checkpoint/1'"):
        ckpt.load_checkpoint(weights)
    assert torch.equal(ckpt.load_model_weights(weights)["w"], torch.ones(2))


class _Payload:
    """Unpickling this would create a marker file: a stand-in for arbitrary code in a downloaded file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_carrying_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "extra": _Payload(marker)}, evil)
    with pytest.raises(CheckpointError, match=r"evil\.pth"):
        ckpt.load_checkpoint(evil)
    with pytest.raises(CheckpointError, match=r"evil\.pth"):
        ckpt.load_model_weights(evil)
    assert not marker.exists()
    with open(tmp_path / "evil2.pth", "wb") as f:  # a plain pickle, not even a torch zip
        pickle.dump(_Payload(marker), f, protocol=2)
    with pytest.raises(CheckpointError, match=r"evil2\.pth"):
        ckpt.load_model_weights(tmp_path / "evil2.pth")
    assert not marker.exists()


def test_bare_state_dicts_still_load_safely(tmp_path):
    torch.save({"w": torch.arange(3.0)}, tmp_path / "bare.pth")
    assert torch.equal(ckpt.load_model_weights(tmp_path / "bare.pth")["w"], torch.arange(3.0))
    torch.save({"model": {"w": torch.arange(3.0)}, "iteration": 3}, tmp_path / "wrapped.pth")
    assert torch.equal(ckpt.load_model_weights(tmp_path / "wrapped.pth")["w"], torch.arange(3.0))
    torch.save({"w": [1, 2]}, tmp_path / "nostate.pth")
    with pytest.raises(CheckpointError, match="no model state dict"):
        ckpt.load_model_weights(tmp_path / "nostate.pth")


def test_writer_killed_mid_save_leaves_the_old_file_and_a_stale_temp_that_is_removed(tmp_path):
    """A process SIGKILLed after writing its temporary file but before the rename."""
    d = _write_run(tmp_path, (2,))
    script = textwrap.dedent(
        f"""
        import os, signal, sys, torch
        sys.path.insert(0, {str(EXAMPLES)!r})
        from ovss import checkpoint as ckpt
        os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
        ckpt.save_atomic({{"model": {{"w": torch.ones(1000)}}, "iteration": 4}}, {str(d / "iter_0000002.pth")!r})
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    stale = [p for p in d.iterdir() if p.name.startswith(".iter_0000002.pth.tmp")]
    assert len(stale) == 1
    assert ckpt.load_checkpoint(d / "iter_0000002.pth")["iteration"] == 2  # the old file is intact
    assert ckpt.remove_stale_temp_files(d) == stale and not stale[0].exists()


def test_temp_file_of_a_live_writer_is_kept(tmp_path):
    live = tmp_path / f".iter_0000001.pth.tmp{os.getppid()}"  # our parent process is alive
    live.write_bytes(b"partial")
    assert ckpt.remove_stale_temp_files(tmp_path) == [] and live.exists()


def test_resume_search_follows_the_pointer(tmp_path):
    d = _write_run(tmp_path)
    path, state = ckpt.find_resume_checkpoint(tmp_path / "run")
    assert path == d / "iter_0000004.pth" and state["iteration"] == 4
    assert ckpt.find_resume_checkpoint(tmp_path / "empty") is None


@pytest.mark.parametrize("fault", ["pointer_to_missing", "newest_truncated", "newest_flipped"])
def test_resume_falls_back_to_the_newest_intact_checkpoint_with_a_warning(tmp_path, fault):
    d = _write_run(tmp_path)
    newest = d / "iter_0000004.pth"
    if fault == "pointer_to_missing":
        newest.unlink()
    elif fault == "newest_truncated":
        newest.write_bytes(newest.read_bytes()[:1000])
    else:
        offset, _ = _tensor_data_offset(newest)
        buf = bytearray(newest.read_bytes())
        buf[offset : offset + 64] = bytes(b ^ 0x5A for b in buf[offset : offset + 64])
        newest.write_bytes(bytes(buf))
    with pytest.warns(UserWarning, match=r"iter_0000004\.pth"):
        path, state = ckpt.find_resume_checkpoint(tmp_path / "run")
    assert path == d / "iter_0000002.pth" and state["iteration"] == 2


def test_resume_search_fails_when_no_checkpoint_is_intact(tmp_path):
    d = _write_run(tmp_path)
    for p in d.glob("iter_*.pth"):
        p.write_bytes(b"\0" * 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CheckpointError, match="no intact checkpoint") as info:
            ckpt.find_resume_checkpoint(tmp_path / "run")
    assert "iter_0000002.pth" in str(info.value) and "iter_0000004.pth" in str(info.value)
