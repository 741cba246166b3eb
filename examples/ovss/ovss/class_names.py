"""Class lists given by a user: one parser for every entry point (``predict.py --classes``,
``data.folders.<name>.classes`` as a file or a list).

`parse_class_names` takes

- a **list** of names (a YAML list in the configuration);
- an **inline string**: names separated by commas (``"cat, dog,sky"``), or a JSON list
  (``'["cat", "dog, puppy"]'``); a string of any length is taken as names when it is not an existing
  file, and is never tried as a path beyond that check;
- a **file** (`read_class_file`): a JSON list, or one name per line, in label-id order.

The same rules hold for all of them: a UTF-8 byte-order mark is dropped; each name is stripped of
surrounding white space; in a file, blank lines and lines starting with ``#`` are skipped (ids count the
names, not the lines); an empty name (``"a,,b"``, ``["a", ""]``) is refused; names must be distinct, and
two names that give CLIP the same prompt are refused too: CLIP's tokenizer ignores case, and the model
prompts with the first synonym of a CAT-Seg name ``"a, b"`` (so ``"Dog"`` repeats ``"dog"``, and
``"dog, puppy"`` repeats ``"dog"``). A repeated class could never be predicted: the two scores are equal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["check_class_names", "parse_class_names", "read_class_file"]

_BOM = "\ufeff"


def _prompt_key(name: str) -> str:
    import unicodedata

    from .templates import first_synonym

    # what CLIP's tokenizer sees: Unicode-normalised, white space collapsed, lower case
    return " ".join(unicodedata.normalize("NFC", first_synonym(name)).split()).casefold()


def check_class_names(names: Sequence[object], where: str) -> list[str]:
    """``names`` stripped of surrounding white space (and a byte-order mark); refused unless every one is
    a non-empty string and no two give the same prompt (module docstring).

    Raises:
        ValueError: no names, a name that is not a string, an empty name, or repeated names (the message
            starts with ``where`` and names the offending entries).

    Example:
        >>> check_class_names([" cat", "dog "], "--classes")
        ['cat', 'dog']
    """
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise ValueError(f"{where}: expected a list of class names; got {type(names).__name__}")
    bad = [(i, n) for i, n in enumerate(names) if not isinstance(n, str)]
    if bad:
        i, n = bad[0]
        raise ValueError(
            f"{where}: class name {i} is {n!r} ({type(n).__name__}), not a string; quote it "
            "(in YAML, unquoted yes/no/on/off/numbers are not strings)"
        )
    out = [str(n).replace(_BOM, "").strip() for n in names]
    if not out:
        raise ValueError(f"{where}: no class names given; give at least one")
    empty = [i for i, n in enumerate(out) if not n]
    if empty:
        raise ValueError(
            f"{where}: class names must be non-empty; entry {empty[0]} of {len(out)} is empty "
            "(a doubled or trailing comma?)"
        )
    odd = [(i, n) for i, n in enumerate(out) if any(not ch.isprintable() for ch in n)]
    if odd:
        i, n = odd[0]
        raise ValueError(
            f"{where}: class name {i} ({n!r}) holds a line break, tab or other control character; "
            "give one name per line in a file, or separate inline names with commas"
        )
    seen: dict[str, int] = {}
    for i, n in enumerate(out):
        key = _prompt_key(n)
        if key in seen:
            j = seen[key]
            same = "repeated" if out[j] == n else f"gives the same CLIP prompt as {out[j]!r} (entry {j})"
            raise ValueError(
                f"{where}: class names must be distinct; {n!r} (entry {i}) {same}"
                + ("" if out[j] == n else ": CLIP ignores case and uses only a name's first synonym")
                + "; remove or rename one"
            )
        seen[key] = i
    return out


def read_class_file(path: str | Path) -> list[str]:
    """Class names from a file: a JSON list (``.json``, or any file whose text starts with ``[``), or one
    name per line (blank lines and ``#`` lines skipped), in label-id order; UTF-8, with or without a
    byte-order mark. A CAT-Seg synonym list ``"a, b"`` on one line stays one class.

    Raises:
        ovss.data.DatasetLayoutError: a missing or unreadable file, bad JSON, or names refused by
            `check_class_names` (the message names the file).
    """
    from .images import DatasetLayoutError

    path = Path(path)
    if not path.is_file():
        raise DatasetLayoutError(f"missing class file {path} (one class name per line, or a JSON list)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise DatasetLayoutError(
            f"class file {path} cannot be read as UTF-8 text ({exc}); save it as UTF-8"
        ) from None
    where = f"class file {path}"
    try:
        if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
            names = _json_names(text, where)
        else:
            names = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        return check_class_names(names, where)
    except ValueError as exc:
        raise DatasetLayoutError(str(exc)) from None


def _json_names(text: str, where: str) -> list[str]:
    try:
        names = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc}); give a JSON list of strings") from None
    if not isinstance(names, list):
        raise ValueError(f"{where}: a JSON class list must be a list of strings; got {type(names).__name__}")
    return names


def _is_file(spec: str) -> bool:
    try:
        return os.path.isfile(spec)
    except (OSError, ValueError):  # a name too long for a path, or holding a NUL byte: not a file
        return False


def _is_dir(spec: str) -> bool:
    try:
        return os.path.isdir(spec)
    except (OSError, ValueError):
        return False


def parse_class_names(
    spec: str | Sequence[str], where: str = "classes", *, root: str | Path | None = None
) -> list[str]:
    """Class names from a list, an inline string or a file (module docstring), checked by
    `check_class_names`.

    Args:
        spec: the list, the string ``"a,b,c"`` / ``'["a", "b"]'``, or a file path.
        where: how the caller calls the argument (starts every error message).
        root: a relative file path is taken under ``root`` (the configuration's data root); ``None``:
            under the working directory.

    Raises:
        ValueError: names refused by `check_class_names`, or a string that looks like a file path
            (ends in ``.txt``/``.json``, no comma) but names no file.
        ovss.data.DatasetLayoutError: an unreadable class file.

    Example:
        >>> parse_class_names("cat, dog ,sky")
        ['cat', 'dog', 'sky']
        >>> len(parse_class_names(",".join(f"class {i}" for i in range(500))))
        500
    """
    if not isinstance(spec, str):
        return check_class_names(spec, where)
    text = spec.replace(_BOM, "")
    path = os.path.join(str(root), text) if root is not None and not os.path.isabs(text) else text
    if _is_file(path):
        return read_class_file(path)
    if _is_dir(path):
        raise ValueError(
            f"{where}: {spec!r} is a folder, not a class file; give the file, or the names themselves"
        )
    stripped = text.strip()
    if stripped.startswith("["):
        return check_class_names(_json_names(stripped, where), where)
    if "," not in stripped and "\n" not in stripped and stripped.lower().endswith((".txt", ".json", ".csv")):
        raise ValueError(
            f"{where}: {spec!r} looks like a class file but no such file exists"
            + (f" (relative paths are taken under {root})" if root is not None else "")
            + '; give the file\'s path, or the names themselves ("cat,dog,sky")'
        )
    return check_class_names(stripped.split(","), where)
