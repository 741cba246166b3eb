"""ovss.class_names: class lists of any size and origin, the same rules at every entry point (predict's
--classes, a data.folders class file, a data.folders list)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from ovss.class_names import parse_class_names
from ovss.data import DatasetLayoutError, folder_spec
from ovss.inference import read_class_names


def _entry_points(tmp_path, names_text: str, names_list):
    """The outcome of each entry point on the same class list: predict's --classes (file), a
    data.folders class file, a data.folders list."""
    f = tmp_path / "classes.txt"
    f.write_bytes(names_text.encode("utf-8"))

    def folder(classes):
        return folder_spec("mine", SimpleNamespace(classes=classes, image_dir="i", label_dir="l", label_ext=".png",
                                                   ignore_index=255, image_ext=".jpg"), tmp_path).class_names  # fmt: skip

    calls = {
        "predict --classes FILE": lambda: read_class_names(str(f)),
        "data.folders classes file": lambda: folder("classes.txt"),
        "data.folders classes list": lambda: folder(names_list),
    }
    out = {}
    for name, call in calls.items():
        try:
            out[name] = call()
        except ValueError as exc:  # DatasetLayoutError is a FileNotFoundError, not a ValueError
            out[name] = ("refused", str(exc))
        except DatasetLayoutError as exc:
            out[name] = ("refused", str(exc))
    return out


def test_five_hundred_inline_names_are_names():
    spec = ",".join(
        f"class number {i}" for i in range(500)
    )  # 9 kB: too long for a file name, never tried as one
    names = read_class_names(spec)
    assert len(names) == 500 and names[0] == "class number 0" and names[-1] == "class number 499"
    long_one = "x" * 5000  # one name longer than any file name
    assert read_class_names(long_one) == [long_one]


def test_bom_blank_lines_and_whitespace_are_handled_alike(tmp_path):
    text = "\ufeff  sky \r\n\r\n\tgrass\t\n# comment\nroad\n\n"  # BOM, CRLF, blanks, tabs
    outcomes = _entry_points(tmp_path, text, ["\ufeffsky ", "  grass", "road"])
    assert all(v == ["sky", "grass", "road"] for v in outcomes.values()), outcomes
    (tmp_path / "c.json").write_bytes('\ufeff["sky", " grass "]'.encode())
    assert read_class_names(str(tmp_path / "c.json")) == ["sky", "grass"]
    assert read_class_names('["sky", "dog, puppy"]') == ["sky", "dog, puppy"]  # an inline JSON list


@pytest.mark.parametrize(
    ("text", "names", "words"),
    [
        ("cat\ndog\ncat\n", ["cat", "dog", "cat"], "repeated"),
        ("cat\nCat\n", ["cat", "Cat"], "same CLIP prompt"),
        ("dog\ndog, puppy\n", ["dog", "dog, puppy"], "first synonym"),
        ("cat\n  cat  \n", ["cat", " cat"], "repeated"),
        ("traffic light\ntraffic   light\n", ["traffic light", "traffic   light"], "same CLIP prompt"),
        ("caf\u00e9\ncafe\u0301\n", ["caf\u00e9", "cafe\u0301"], "same CLIP prompt"),
    ],
)
def test_duplicates_are_refused_alike_everywhere(tmp_path, text, names, words):
    outcomes = _entry_points(tmp_path, text, names)
    for where, got in outcomes.items():
        assert isinstance(got, tuple) and got[0] == "refused", where
        assert "distinct" in got[1] and words in got[1], (where, got[1])


def test_empty_odd_and_missing_lists_are_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match=r"entry 1 of 3 is empty"):
        read_class_names("a,,b")
    with pytest.raises(ValueError, match=r"entry 2 of 3 is empty.*trailing comma"):
        read_class_names("a,b,")
    with pytest.raises(ValueError, match="looks like a class file but no such file"):
        read_class_names("my_classes.txt")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_class_names('["a", "b"')
    with pytest.raises(ValueError, match="control character"):
        read_class_names('["a\\nb"]')
    with pytest.raises(ValueError, match=r"class name 1 is True .*quote it"):
        parse_class_names(["sky", True], "data.folders.mine.classes")
    with pytest.raises(ValueError, match="is a folder, not a class file"):
        read_class_names(str(tmp_path))
    with pytest.raises(ValueError, match="entry 0 of 1 is empty"):
        read_class_names("  ")
    (tmp_path / "empty.txt").write_text("\n# nothing\n\n")
    with pytest.raises(DatasetLayoutError, match="no class names"):
        read_class_names(str(tmp_path / "empty.txt"))
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetLayoutError, match="UTF-8"):
        read_class_names(str(tmp_path / "latin1.txt"))
    (tmp_path / "obj.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(DatasetLayoutError, match="list of strings"):
        read_class_names(str(tmp_path / "obj.json"))


def test_a_config_string_of_names_is_names(tmp_path):
    spec = folder_spec(
        "mine",
        SimpleNamespace(classes="sky, grass,road", image_dir="i", label_dir="l", label_ext=".png",
                        ignore_index=255, image_ext=".jpg"),
        tmp_path,
    )  # fmt: skip
    assert spec.class_names == ["sky", "grass", "road"] and spec.num_eval_classes == 3
