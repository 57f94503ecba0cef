"""tools/demo.py's argument checks: a bad value stops at parsing, naming the argument and its range."""

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = runpy.run_path(str(ROOT / "tools" / "demo.py"))  # the module's globals; main() is not run
BASE = ["--config-file", "c.yaml", "--video-input", "v.mp4", "--output", "out"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--text", "a dog", "--window", "-5"], "--window: must be an integer >= 0, got -5"),
        (["--text", "a dog", "--every", "0"], "--every: must be an integer >= 1, got 0"),
        (["--text", "a dog", "--fps", "0"], "--fps: must be a finite number > 0, got 0"),
        (["--text", "a dog", "--fps", "nan"], "--fps: must be a finite number > 0, got nan"),
        (
            ["--text", "a dog\n1\tforged line"],
            "--text: 'a dog\\n1\\tforged line' contains control characters",
        ),
        (["--text", "\x00\x00"], "--text: '\\x00\\x00' contains control characters"),
        (["--text", "   "], "--text: the expression is empty"),
    ],
)
def test_bad_arguments_stop_at_parsing(extra, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        DEMO["get_parser"]().parse_args(BASE + extra)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_good_arguments_are_kept():
    args = DEMO["get_parser"]().parse_args(
        BASE + ["--text", "  the red car ", "--text", "a dog", "--window", "0"]
    )
    assert args.text == ["the red car", "a dog"] and args.window == 0 and args.fps == 6.0 and args.every == 1
