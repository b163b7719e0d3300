#!/bin/bash
# The CUDA path on a GPU machine: `vidgen generate --device cuda` against --device cpu (frames compared after),
# generation timed in one process (no start-up), and 600 steps of `vidgen train`'s demo recipe on CUDA (Accelerate
# picks the GPU) on 400 in-memory shapes videos, then a video from that adapter. Writes to $OUT (default ./out/cuda).
#
#   bash benchmarks/cuda_check.sh     # results of one run: benchmarks/results/cuda_check.md
#
# Where PyAV is missing (as on the machine of that run) vidgen still imports: the outputs here are GIFs. Where the
# project is not installed, wheels in .whl/ are installed to /tmp/site first (diffusers was carried that way).
OUT=${OUT:-out/cuda}; mkdir -p "$OUT"
[ -d .whl ] && { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1; }
export PYTHONPATH=/tmp/site:$PWD/src HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error PYTHONUNBUFFERED=1
V="python3 -m vidgen.cli"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc
python3 -c "import torch,diffusers,transformers,accelerate;print('torch',torch.__version__,'diffusers',diffusers.__version__,'transformers',transformers.__version__,'accelerate',accelerate.__version__,torch.cuda.get_device_name())"
P="a small red circle moving right quickly on a black background"
for d in cuda cuda cpu; do s=$(date +%s%N); $V generate "$P" --device $d --out $OUT/gen-$d.gif 2>&1 | tail -3; echo "generate --device $d: $(( ($(date +%s%N) - s) / 1000000 )) ms"; done
python3 - "$P" <<'PY' 2>&1 | tail -6
import sys, time, torch
from vidgen import VideoPipeline
for dev in ("cuda", "cpu"):
    pipe = VideoPipeline.from_pretrained(device=dev)
    ts = []
    for i in range(4):
        t = time.perf_counter(); pipe(sys.argv[1], output=f"/tmp/p-{dev}.gif", generator=torch.Generator().manual_seed(0))
        if dev == "cuda": torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    print(dev, "in-process generate+write s:", [round(x, 2) for x in ts])
PY
python3 - <<'PY' 2>&1 | tr '\r' '\n' | grep -v "^\s*$" | grep -E "it/s|s/it|written|rror|Trace|line|train s" | tail -8
import time
from vidgen.training import TrainConfig, train
from vidgen.data.shapes import ShapesDataset
cfg = TrainConfig(**{**TrainConfig.PRESETS["demo"], "model": "models/shapes-base", "data": "in-memory", "out": "/tmp/a",
                     "steps": 600, "checkpoint_every": 300, "log_every": 100})
t = time.perf_counter()
print("written", train(cfg, dataset=ShapesDataset(400, 16, 64, seed=7, split="train")))
print("train s", round(time.perf_counter() - t, 1))
PY
cp /tmp/a/log.jsonl $OUT/train-log.jsonl 2>/dev/null; tail -n 2 /tmp/a/log.jsonl
s=$(date +%s%N); $V generate "$P" --device cuda --adapter /tmp/a/adapter --out $OUT/gen-trained600.gif 2>&1 | tail -2; echo "gen with gpu-trained adapter: $(( ($(date +%s%N) - s) / 1000000 )) ms"
python3 - "$OUT" <<'PY'
import sys, numpy as np
from PIL import Image, ImageSequence
load = lambda p: np.stack([np.asarray(f.convert("RGB"), dtype=float) for f in ImageSequence.Iterator(Image.open(p))])
a, b = load(f"{sys.argv[1]}/gen-cuda.gif"), load(f"{sys.argv[1]}/gen-cpu.gif")
print("cuda vs cpu frames, mean |difference| per frame (0-255):", np.abs(a - b).mean(axis=(1, 2, 3)).round(2).tolist())
PY
