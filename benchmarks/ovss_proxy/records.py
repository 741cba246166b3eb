"""Cached records on disk: atomic writes and verified reads.

Every record the benchmark caches (a run's result, a CLIP's pretraining summary) is a JSON object
holding ``config_hash``, the hash of the settings it was made under. :func:`read_record` refuses a file
that is corrupt or truncated, is not an object, lacks a required field, or was written under other
settings, with a :class:`CacheError` naming the file and saying what to do; a record is never mixed
into a table it does not belong to, and a damaged file never surfaces as a bare ``KeyError`` or
``JSONDecodeError``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["CacheError", "read_record", "verified", "write_bytes_atomic", "write_json_atomic"]


class CacheError(RuntimeError):
    """A cached file that cannot be used: damaged, incomplete, or from other settings (names the file)."""


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place: a reader (or a run that
    is interrupted) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON, atomically (:func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, (json.dumps(payload, indent=1) + "\n").encode())


def verified(
    path: Path, data: object, key: str, fields: Sequence[str], *, what: str, redo: str, elsewhere: str
) -> dict[str, Any]:
    """``data`` read from ``path``, checked: an object (``what`` it should be) holding every field of
    ``fields`` and ``config_hash == key``; else a :class:`CacheError` naming the file, with ``redo`` (how to
    make it again) or, for other settings, ``elsewhere`` (how to keep both)."""
    if not isinstance(data, dict):
        raise CacheError(f"{path} holds a {type(data).__name__}, not {what}; {redo}")
    missing = [f for f in dict.fromkeys(("config_hash", *fields)) if f not in data]
    if missing:
        raise CacheError(f"{path} lacks the field(s) {missing}; {redo}")
    if data["config_hash"] != key:
        raise CacheError(
            f"{path} was written under other settings (config hash {data['config_hash']}, now {key}); "
            f"{elsewhere}"
        )
    return data


def read_record(path: Path, key: str, fields: Sequence[str]) -> dict[str, Any] | None:
    """The record at ``path`` (``None`` if there is no file), verified against ``key`` and ``fields``.

    Args:
        path: a JSON file written by :func:`write_json_atomic`.
        key: the hash of the current settings; the record's ``config_hash`` must equal it.
        fields: keys the record must hold (besides ``config_hash``).

    Raises:
        CacheError: the file is not valid JSON (corrupt or truncated), not an object, lacks a field, or
            holds another ``config_hash``.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CacheError(
            f"{path} is corrupt or truncated (not valid JSON: {exc}); delete it and rerun to redo that run"
        ) from None
    return verified(
        path,
        data,
        key,
        fields,
        what="a record",
        redo="delete it and rerun to redo that run",
        elsewhere="move it away or pass another --output so that results of different settings are never mixed",
    )
