"""Wall time of `vidgen generate` with the shipped demo model and default settings (16 frames at 64×64),
start-up included: the whole command in a fresh process, timed from outside, several times; and, in another
fresh process each time, where the time goes (imports, loading the models, generating + writing the mp4).

    python benchmarks/generate_speed.py        # writes benchmarks/results/generate_speed.{json,md}

Run it with nothing else running: two torch processes on 2 cores slow each other several-fold.

    python benchmarks/generate_speed.py --against="--first-frame-candidates 1"
    # also times the command with these flags added, interleaved with the default one: the ratio of the medians
    python benchmarks/generate_speed.py --against-env /tmp/venv-readme
    # also times the default command in another Python environment (its bin/vidgen), e.g. one made by the
    # README's two install commands alone, interleaved
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
PROMPT = "a small red circle moving right quickly on a black background"
PHASES = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
from vidgen import VideoPipeline
t1 = time.perf_counter()
pipe = VideoPipeline.from_pretrained()
t2 = time.perf_counter()
pipe(sys.argv[1], output=sys.argv[2], generator=torch.Generator().manual_seed(0))
t3 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "load": t2 - t1, "generate": t3 - t2}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--against", help="vidgen generate flags to time too, interleaved with the defaults (e.g. "
                        "--against=\"--first-frame-candidates 1\", with '='): reports both medians and their ratio")
    parser.add_argument("--against-env", help="a Python environment folder whose bin/vidgen to time the command "
                        "with too (with --against's flags if given), interleaved with this one's")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    walls, phases, against = [], [], []

    def wall(command: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "video.mp4")
        for _ in range(args.repeats):  # interleaved: whole command, [the other flags,] then the phases
            walls.append(wall(["vidgen", "generate", PROMPT, "--out", out]))
            if args.against or args.against_env:
                other = str(Path(args.against_env) / "bin" / "vidgen") if args.against_env else "vidgen"
                against.append(wall([other, "generate", PROMPT, "--out", out, *shlex.split(args.against or "")]))
            done = subprocess.run([sys.executable, "-c", PHASES, PROMPT, out], check=True, env=env,
                                  capture_output=True, text=True)
            phases.append(json.loads(done.stdout.strip().splitlines()[-1]))
    result = {
        "command": f'vidgen generate "{PROMPT}" --out video.mp4',
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"{platform.python_version()}",
        "wall_seconds": walls, "median_wall_seconds": statistics.median(walls),
        "phases_median": {k: statistics.median(p[k] for p in phases) for k in phases[0]},
    }
    if against:
        result["against"] = {"flags": args.against, "env": args.against_env, "wall_seconds": against,
                             "median_wall_seconds": statistics.median(against),
                             "ratio_of_medians": result["median_wall_seconds"] / statistics.median(against)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "generate_speed.json").write_text(json.dumps(result, indent=2))
    ph = result["phases_median"]
    md = (f"`{result['command']}` on {result['machine']}: median **{result['median_wall_seconds']:.1f} s** wall "
          f"over {args.repeats} runs ({', '.join(f'{w:.1f}' for w in walls)} s), start-up included. "
          f"Where it goes (medians, fresh process each): imports {ph['imports']:.1f} s, loading the models "
          f"{ph['load']:.1f} s, generating 16 frames and writing the mp4 {ph['generate']:.1f} s.\n"
          + (f"The same{f' with `{args.against}`' if args.against else ''}"
             f"{f' in {args.against_env}' if args.against_env else ''}, interleaved: median "
             f"{statistics.median(against):.1f} s ({', '.join(f'{w:.1f}' for w in against)} s); the command above "
             "takes "
             f"**{result['against']['ratio_of_medians']:.2f}×** its time.\n" if against else "")
          + "Reproduce: `python benchmarks/generate_speed.py --repeats "
          f"{args.repeats}{f' --against={shlex.quote(args.against)}' if args.against else ''}"
          f"{f' --against-env {args.against_env}' if args.against_env else ''}`.\n")
    (RESULTS / "generate_speed.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
