"""soc.utils.paths: names from data files become paths only when they are single, safe components."""

import os

import pytest

from soc.utils.paths import safe_join, unsafe_name_reason


@pytest.mark.parametrize(
    "name, reason",
    [
        ("../x", "path separator"),
        ("..", "is '..'"),
        (".", "is '.'"),
        ("/etc/passwd", "path separator"),
        ("a\\b", "path separator"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("", "is empty"),
        (3, "not a string"),
    ],
)
def test_unsafe_names(name, reason):
    assert reason in unsafe_name_reason(name)


@pytest.mark.parametrize("name", ["0a1b2c3d", "00005", "exp 1", "video.name", "..x", "ü"])
def test_safe_names(name, tmp_path):
    assert unsafe_name_reason(name) is None
    assert safe_join(str(tmp_path), name, "00000.png") == os.path.join(str(tmp_path), name, "00000.png")


def test_safe_join_refuses_escapes(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    with pytest.raises(ValueError, match=r"the name '\.\./evil' contains a path separator"):
        safe_join(str(root), "../evil", "a.png")
    with pytest.raises(ValueError, match="the name '/abs' contains a path separator"):
        safe_join(str(root), "/abs")
    (root / "link").symlink_to(tmp_path)  # a link inside the root that points outside it
    with pytest.raises(ValueError, match="resolves outside"):
        safe_join(str(root), "link", "a.png")
