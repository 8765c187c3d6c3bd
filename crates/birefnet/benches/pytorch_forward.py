"""Forward time of the PyTorch reference (BiRefNet's own code, random weights), the
baseline that `cpu_vs_pytorch.sh` (CPU) and `tests/gpu/gpu_check.sh` (CUDA) run beside nobg's
`forward_time` example.

    python pytorch_forward.py --repo BIREFNET_GIT_DIR [--threads 2] [--iters 3]
        [--device cpu|cuda] [--dtype f32|f16] [--batch 1] swin_v1_t:512

On CUDA, f16 is `.half()` on the model and the input (BiRefNet's own inference recipe), the
time is measured after `torch.cuda.synchronize()`, and `peak_gpu_mib` is
`torch.cuda.max_memory_allocated()`.

BIREFNET_GIT_DIR is a clone (bare or not) of https://github.com/ZhengPeng7/BiRefNet. Its HEAD
is exported into a temporary directory at run time; nothing of it is kept in this repository.
The only change made to the exported copy is the backbone choice in `config.py`.

Prints one JSON line per case, in the same shape as `forward_time`: median milliseconds per
pass after one untimed warm-up, the process CPU time per pass (all threads), and the
process's peak resident memory so far. Run one case per process for a per-case peak RSS.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

# Index of each backbone in config.py's `self.bb = [...][i]` list.
BACKBONES = {"swin_v1_l": 3, "swin_v1_t": 6}
DEFAULT_CHOICE = "        ][3]\n        self.freeze_bb"


def export_repo(git_dir: str, dest: str) -> None:
    archive = subprocess.run(
        ["git", "--git-dir", git_dir, "archive", "HEAD"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)


def choose_backbone(src_dir: str, backbone: str) -> None:
    path = os.path.join(src_dir, "config.py")
    with open(path) as f:
        text = f.read()
    if DEFAULT_CHOICE not in text:
        sys.exit("config.py no longer has the expected backbone list; update pytorch_forward.py")
    text = text.replace(DEFAULT_CHOICE, f"        ][{BACKBONES[backbone]}]\n        self.freeze_bb")
    with open(path, "w") as f:
        f.write(text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", required=True, help="git dir of ZhengPeng7/BiRefNet")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("cases", nargs="+", help="BACKBONE:SIZE, e.g. swin_v1_t:512")
    args = parser.parse_args()

    backbones = {case.split(":")[0] for case in args.cases}
    if len(backbones) != 1 or not backbones <= BACKBONES.keys():
        sys.exit(f"give cases of one backbone among {sorted(BACKBONES)}")
    backbone = backbones.pop()

    work = tempfile.mkdtemp(prefix="birefnet-ref-")
    export_repo(args.repo, work)
    choose_backbone(work, backbone)
    sys.path.insert(0, work)
    os.chdir(work)

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from models.birefnet import BiRefNet

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    model = BiRefNet(bb_pretrained=False).eval().to(device)
    dtype = torch.float16 if args.dtype == "f16" else torch.float32
    if dtype == torch.float16:
        model = model.half()
    for case in args.cases:
        size = int(case.split(":")[1])
        x = torch.randn(args.batch, 3, size, size).to(device=device, dtype=dtype)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

        def run() -> tuple[float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                y = model(x)
            y = y[-1] if isinstance(y, (list, tuple)) else y
            float(y.flatten()[0])
            if cuda:
                torch.cuda.synchronize()
            return (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3

        warmup_ms, _ = run()
        runs = [run() for _ in range(args.iters)]
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        line = {
            "impl": "pytorch",
            "torch": torch.__version__,
            "device": args.device,
            "dtype": args.dtype,
            "batch": args.batch,
            "simd": torch.backends.cpu.get_cpu_capability().lower(),
            "case": case,
            "threads": args.threads,
            "warmup_ms": round(warmup_ms, 1),
            "median_ms": round(statistics.median(r[0] for r in runs), 1),
            "cpu_ms": round(statistics.median(r[1] for r in runs), 1),
            "peak_rss_mib": peak_mib,
        }
        if cuda:
            line["gpu"] = torch.cuda.get_device_name(device)
            line["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) // (1 << 20)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
