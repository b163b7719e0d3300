"""What the benchmarks share: one-line errors for bad input, the machine line, one timed `vidgen eval` run."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

import vidgen.eval
from vidgen.cli import GENERATE_FLAGS
from vidgen.errors import VidgenError
from vidgen.eval.evaluate import Report, evaluate_folder, generate_folder


BAR = 2.0  # px RMS: issue 4's trajectory bar, which plots draw their results against


def cli(main) -> None:
    """Call a benchmark's `main`: bad input (a VidgenError) prints one line and exits with status 2."""
    try:
        main()
    except VidgenError as err:
        print(f"{Path(sys.argv[0]).name}: {err}", file=sys.stderr)
        sys.exit(2)


def pyplot():
    """matplotlib's pyplot on the Agg backend, or one clear line if the `bench` extra is not installed. A benchmark
    that measures for long calls it first too, so that a missing plotting library fails before the measurements."""
    try:
        import matplotlib
    except ImportError:
        raise VidgenError("matplotlib: not installed; expected it for the plots: pip install -e '.[bench]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


# generate_folder's keyword → its `vidgen eval` flag, where the two differ
EVAL_FLAGS = {"split": "prompts", "per_prompt": "videos_per_prompt",
              **{field: flag for flag, field in GENERATE_FLAGS.items()}}


def eval_command(model: str, adapter: str | None, folder: Path, **generate) -> str:
    """The `vidgen eval` command line that `generate_folder(model, adapter, folder, **generate)` and scoring
    amount to (flags in the order given)."""
    adapter = f" --adapter {adapter}" if adapter else ""
    rest = "".join(f" --{EVAL_FLAGS.get(k, k).replace('_', '-')} {v}" for k, v in generate.items())
    return f"vidgen eval --model {model}{adapter}{rest} --videos {folder}"


def digest(*folders: str | Path | None, skip: tuple[str, ...] = ()) -> str:
    """sha256 over the files (names and bytes, bytecode caches left out) of each folder given, but those under its
    subfolders named in `skip`: what a model or adapter folder holds, its weights and its generation_config.json,
    which the `vidgen eval` command line does not name; the code that generates (vidgen, its scorer skipped); or
    the scorer's code and weights."""
    h = hashlib.sha256()
    for folder in filter(None, folders):
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
                           and p.relative_to(folder).parts[0] not in skip):
            h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def generator_digest() -> str:
    """`digest` of vidgen's code but its scorer (vidgen/eval): a change to how videos are drawn makes them again."""
    return digest(Path(vidgen.__file__).parent, skip=("eval",))


def timed_eval(folder: Path, model: str, adapter: str | None, *, frechet: bool = True, reuse: bool = True,
               **generate) -> tuple[Report, float, str]:
    """`generate_folder` into `folder` (timed: seconds for the whole folder) and score it → (report, seconds, the
    `eval_command` it amounts to). With `reuse`, a folder that already holds eval.json from the same command on
    the same model and adapter files and the same vidgen code (its command.txt: the command, their `digest` and
    `generator_digest`) is read back instead, so an interrupted benchmark continues; its videos are scored again
    where the scorer has changed since (its scorer.txt: `digest` of vidgen/eval); one made otherwise is made
    again."""
    folder = Path(folder)
    line = eval_command(model, adapter, folder, **generate)
    record = f"{line}\n{digest(model, adapter)}\n{generator_digest()}\n"
    report_path, seconds_path, command_path = folder / "eval.json", folder / "seconds.json", folder / "command.txt"
    scorer_path, scorer = folder / "scorer.txt", digest(Path(vidgen.eval.__file__).parent)
    done = all(p.is_file() for p in (report_path, seconds_path, command_path))
    if reuse and done and command_path.read_text() == record:
        if not scorer_path.is_file() or scorer_path.read_text() != scorer:
            print(f"{folder}: scored again (the scorer has changed since)", flush=True)
            evaluate_folder(folder, frechet=frechet).write(report_path)
            scorer_path.write_text(scorer)
        return Report(**json.loads(report_path.read_text())), json.loads(seconds_path.read_text()), line
    if reuse and report_path.is_file():
        print(f"{folder}: made by another command or other model files than {line}: made again", flush=True)
    for path in (report_path, seconds_path, command_path, scorer_path):  # no record until it is done
        path.unlink(missing_ok=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    generate_folder(model, adapter, folder, **generate)
    seconds = time.perf_counter() - start
    report = evaluate_folder(folder, frechet=frechet)
    report.write(report_path)
    seconds_path.write_text(json.dumps(seconds))
    scorer_path.write_text(scorer)
    command_path.write_text(record)
    return report, seconds, line


def folder_benchmark(description: str, default_name: str, measure, show=str, plot=None) -> None:
    """The command line of a benchmark over scored video folders: `FOLDER… [--name NAME]`. `measure(folder)` gives
    each folder's results (printed as `show(results)`); all of them go to benchmarks/results/NAME.json with the
    command that made them. With `plot` (results by label, path → None), `--plot PNG` draws them too, each folder
    under its `--labels` entry (comma-separated; default: the folder's path)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--name", default=default_name)
    if plot is not None:
        parser.add_argument("--plot", type=Path, help="also draw the results to this PNG")
        parser.add_argument("--labels", type=lambda text: text.split(","), help="one label per folder")
    args = parser.parse_args()
    labels = getattr(args, "labels", None) or [str(f) for f in args.folders]
    if len(labels) != len(args.folders):
        raise VidgenError(f"labels: got {len(labels)} ({','.join(labels)}); expected one per folder "
                          f"({len(args.folders)})")
    if getattr(args, "plot", None) is not None:
        pyplot()  # before the measurements
    results = {}
    for folder in args.folders:
        results[str(folder)] = measure(folder)
        print(folder, show(results[str(folder)]))
    write_results(args.name, {"results": results})
    if getattr(args, "plot", None) is not None:
        plot(dict(zip(labels, results.values())), args.plot)
        print(f"plot: {args.plot}")


def write_results(name: str, payload: dict) -> Path:
    """Write benchmarks/results/NAME.json: the command that made it (this benchmark's command line), then
    `payload`."""
    out = Path(__file__).resolve().parent / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    command = " ".join([f"python benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    out.write_text(json.dumps({"command": command, **payload}, indent=2))
    return out
