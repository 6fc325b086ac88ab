"""The README's Tools walkthrough runs as written.

The ```` ```console ```` blocks of README.md are one walkthrough: their ``$ `` lines, pasted in order at the
repository root, build a small dataset in ``synth/`` and runs under ``runs/``. The fast tests check its structure
(every subcommand exists and parses, every path a command reads is tracked or made by an earlier command); the slow
one runs every command with bash in a fresh copy of the tracked files and wants exit status 0 from each.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from av_seld.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

# Options and positionals of av-seld subcommands that name something the command reads, or writes.
INPUT_DESTS = {"dataset_root", "reference_dir", "prediction_dir", "checkpoints", "checkpoint", "audio", "video",
               "pred", "ref", "run_dir", "config", "rooms", "trajectories", "clips", "interferers", "weights",
               "visual_init", "background", "crops"}
OUTPUT_DESTS = {"out_root", "out_dir", "out", "json"}
PATH_SUFFIXES = (".csv", ".wav", ".mp4", ".pt", ".ts", ".yaml", ".json", ".png", ".npz", ".sofa")


def console_commands(text: str | None = None) -> list[str]:
    """The ``$ `` command lines of the README's ```` ```console ```` blocks, in order."""
    text = README.read_text(encoding="utf-8") if text is None else text
    commands = []
    for block in re.findall(r"^```console\n(.*?)^```", text, flags=re.S | re.M):
        commands += [line[2:] for line in block.splitlines() if line.startswith("$ ")]
    return commands


def tracked_files() -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name]


def _looks_like_path(value: str) -> bool:
    return "/" in value or value.endswith(PATH_SUFFIXES)


def _override_paths(overrides: list[str]) -> tuple[list[str], dict[str, str]]:
    """Paths read by ``key=value`` overrides (roots and any value that looks like a path) and the plain settings."""
    inputs, settings = [], {}
    for item in overrides:
        key, _, value = item.partition("=")
        settings[key] = value
        values = [v.strip() for v in value.strip("[]").split(",")] if value.startswith("[") else [value]
        if key.split(".")[-1] in ("out_dir", "name"):
            continue
        for v in values:
            if v and (key.split(".")[-1] == "roots" or _looks_like_path(v)):
                inputs.append(v)
    return inputs, settings


def reads_and_writes(command: str) -> tuple[list[str], list[str]]:
    """What one walkthrough command reads and what it creates (paths relative to the repository root)."""
    argv = shlex.split(command, comments=True)
    if argv[0] != "av-seld":
        return [a for a in argv[1:] if not a.startswith("-") and _looks_like_path(a)], []
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"the CLI does not accept: {command}")
    values = vars(args)
    reads, writes = [], []
    for dest, value in values.items():
        items = value if isinstance(value, list) else [value]
        items = [v for v in items if isinstance(v, str)]
        if dest in INPUT_DESTS:
            reads += [v for v in items if v != "builtin"]
        elif dest in OUTPUT_DESTS:
            writes += items
    if args.command == "synth-audio":   # reruns and new splits add to an existing root: it is output, not input
        reads = [r for r in reads if r != args.out_root]
    if args.command in ("train", "pretrain-visual"):
        more, settings = _override_paths(args.overrides)
        reads += more
        prefix = "train." if args.command == "train" else ""
        out_dir = settings.get(f"{prefix}out_dir", "runs")
        name = settings.get(f"{prefix}name", Path(args.config).stem)
        writes.append(f"{out_dir}/{name}")
    if args.command == "test" and args.out is None:
        writes.append(str(Path(args.checkpoints[0]).parent / "eval" / args.split))
    return reads, writes


def test_readme_has_a_walkthrough():
    commands = console_commands()
    assert len(commands) >= 20, commands
    assert commands[0].startswith("av-seld synth-audio synth "), "the walkthrough starts by making its dataset"


def test_readme_subcommands_exist():
    """Every ``av-seld NAME`` written in code (blocks, inline code, headings) is a subcommand of the parser."""
    parser = build_parser()
    choices = next(a.choices for a in parser._actions if getattr(a, "choices", None) and a.dest == "command")
    text = README.read_text(encoding="utf-8")
    code = re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M) + re.findall(r"`([^`\n]+)`", text)
    used = {m for chunk in code for m in re.findall(r"(?:^|[\s$])av-seld ([a-z][a-z0-9-]*)", chunk, flags=re.M)}
    assert used, "no av-seld commands found in the README"
    assert used <= set(choices), f"not subcommands of av-seld: {sorted(used - set(choices))}"


def test_readme_walkthrough_reads_only_what_it_made():
    """Each console command reads only tracked paths or paths that an earlier console command created."""
    tracked = tracked_files()
    tracked_set = set(tracked)
    tracked_dirs: set[str] = set()
    for name in tracked:
        parts = Path(name).parts
        tracked_dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    created: list[str] = []
    problems = []
    for command in console_commands():
        reads, writes = reads_and_writes(command)
        for path in reads:
            path = path.rstrip("/")
            ok = (path in tracked_set or path in tracked_dirs
                  or any(path == c or path.startswith(c + "/") for c in created))
            if not ok:
                problems.append(f"{path!r} in: {command}")
        created += [w.rstrip("/") for w in writes]
    assert not problems, "read before any earlier walkthrough command made it:\n" + "\n".join(problems)


def test_structure_check_catches_a_broken_chain(monkeypatch):
    """The heuristic itself: an input nothing made, or a made one used too early, is reported."""
    assert reads_and_writes("av-seld evaluate sim/metadata_dev sim/predictions/good")[0] == [
        "sim/metadata_dev", "sim/predictions/good"]
    reads, writes = reads_and_writes(
        "av-seld train configs/debug_tiny.yaml data.roots=[d] train.out_dir=runs train.init_from=runs/a/best.pt")
    assert reads == ["configs/debug_tiny.yaml", "d", "runs/a/best.pt"] and writes == ["runs/debug_tiny"]
    assert reads_and_writes("av-seld synth-audio synth --num-clips 1 --split x") == ([], ["synth"])
    broken = "```console\n$ av-seld index synth\n$ av-seld synth-audio synth --num-clips 1 --split x\n```\n"
    monkeypatch.setattr(sys.modules[__name__], "console_commands",
                        lambda text=None, _c=console_commands: _c(broken))
    with pytest.raises(AssertionError, match="'synth' in: av-seld index synth"):
        test_readme_walkthrough_reads_only_what_it_made()


@pytest.mark.slow
def test_readme_walkthrough_runs(tmp_path):
    """Every console command of the README, in order, in a fresh copy of the tracked files, exits with status 0."""
    copy = tmp_path / "repo"
    for name in tracked_files():
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, target)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(copy)
    env.setdefault("OMP_NUM_THREADS", "1")
    where = subprocess.run(["av-seld", "--version"], cwd=copy, env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    probe = subprocess.run([sys.executable, "-c", "import av_seld; print(av_seld.__file__)"], cwd=copy, env=env,
                           capture_output=True, text=True, check=True)
    assert Path(probe.stdout.strip()).is_relative_to(copy), probe.stdout
    for command in console_commands():
        done = subprocess.run(["bash", "-c", command], cwd=copy, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, (
            f"README command failed (exit {done.returncode}): {command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
