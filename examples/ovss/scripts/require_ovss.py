"""Imported first by the scripts in this folder: they need the ovss example package installed.

Exits with the install command when ``import ovss`` fails, instead of a bare ``ModuleNotFoundError``.
"""

try:
    import ovss  # noqa: F401
except ModuleNotFoundError as exc:
    raise SystemExit(
        'the ovss example package is not installed: run `pip install -e ".[ovss]" -e examples/ovss` '
        "from the repository root"
    ) from exc
