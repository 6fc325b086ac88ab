"""One size convention on the command line: WxH (width first, like ffmpeg), COLSxROWS for grids; the old forms
(precompute-visual's HxW and ROWSxCOLS, the benches' H W pair) still work, with a FutureWarning."""

from __future__ import annotations

import argparse
import warnings

import pytest

from av_seld.utils.sizes import Size, SizeAction, parse_grid, parse_size


def test_wxh_is_width_first():
    size = parse_size("640x320")
    assert size == (640, 320) and (size.width, size.height) == (640, 320) and size.hw == (320, 640)
    assert str(size) == "640x320" and parse_size("1920X960") == (1920, 960)
    assert parse_grid("10x5").hw == (5, 10)  # 10 columns, 5 rows


@pytest.mark.parametrize("text, checks, message", [
    ("640", {}, "WxH"), ("64x", {}, "WxH"), ("641x320.5", {}, "WxH"), ("0x0", {}, "positive"),
    ("640x640", {"equirectangular": True}, "twice as wide"), ("320x640", {"equirectangular": True}, "twice as wide"),
    ("140x70", {"multiple": 32}, "multiples of 32"), ("130x65", {"even": True}, "even"),
])
def test_bad_sizes_say_what_is_wrong(text, checks, message):
    with pytest.raises(ValueError, match=message):
        parse_size(text, option="--size", **checks)


def test_old_hxw_frame_and_rows_first_grid_are_read_with_a_warning():
    with pytest.warns(FutureWarning, match="--size 320x640 is the old HxW form.*--size 640x320"):
        assert parse_size("320x640", option="--size", equirectangular=True, legacy_hxw=True) == (640, 320)
    with pytest.warns(FutureWarning, match="--grid 5x10 is the old ROWSxCOLS form.*--grid 10x5"):
        assert parse_grid("5x10", option="--grid", legacy_rows_first=True) == (10, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new forms warn about nothing
        assert parse_size("640x320", equirectangular=True, legacy_hxw=True) == (640, 320)
        assert parse_grid("10x5", legacy_rows_first=True) == (10, 5)
        assert parse_grid("4x4", legacy_rows_first=True) == (4, 4)


def _parser():
    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--frame-size", action=SizeAction, legacy_pair=True, default=Size(256, 128),
                        checks=dict(multiple=32, equirectangular=True))
    parser.add_argument("--grid", action=SizeAction, grid=True, legacy_pair=True, default=Size(16, 8))
    return parser


def test_size_option_takes_wxh_and_the_old_pair_with_a_warning():
    args = _parser().parse_args([])
    assert args.frame_size.hw == (128, 256) and args.grid.hw == (8, 16)
    args = _parser().parse_args(["--frame-size", "128x64", "--grid", "8x4"])
    assert args.frame_size == (128, 64) and args.grid == (8, 4)
    with pytest.warns(FutureWarning, match="--frame-size 64 128 is the old H W form.*--frame-size 128x64"):
        assert _parser().parse_args(["--frame-size", "64", "128"]).frame_size == (128, 64)
    with pytest.warns(FutureWarning, match="--grid 4 8 is the old ROWS COLS form.*--grid 8x4"):
        assert _parser().parse_args(["--grid", "4", "8"]).grid == (8, 4)
    with pytest.raises(argparse.ArgumentError, match="multiples of 32"):
        _parser().parse_args(["--frame-size", "140x70"])


def test_every_command_spells_sizes_wxh():
    from av_seld.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = {}
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.dest in ("size", "frame_size", "grid") and action.metavar is not None:
                found[f"{name} {action.option_strings[0]}"] = action.metavar
    assert found["synth-video --size"] == found["visualize --size"] == found["precompute-visual --size"] == "WxH"
    assert found["precompute-visual --grid"] == "COLSxROWS"


def test_precompute_visual_reads_the_old_forms():
    from av_seld.cli import build_parser

    with pytest.warns(FutureWarning):
        args = build_parser().parse_args(["precompute-visual", "root", "--size", "320x640", "--grid", "5x10"])
    assert args.size.hw == (320, 640) and args.grid.hw == (5, 10)
    args = build_parser().parse_args(["precompute-visual", "root"])
    assert args.size.hw == (320, 640) and args.grid.hw == (5, 10)  # the defaults did not change
