"""Data-parallel training against one process: the same train-world-model run on N torchrun processes and on
one process at the same global batch, their loss curves in one plot.

Both runs log every step to TensorBoard; the plot (curves.png) draws each stage's loss from both, and
curves.json holds the curves, the largest difference between them and each run's wall-clock time. The N-process
run goes first; its latent cache (the frames encoded once by the autoencoder) is copied to the one-process run,
which would compute the same file.

usage:
  python -m wow_gym.experiments.ddp_curve [--out DIR] [--nproc N] [--threads T] -- [train-world-model overrides]

example (200 DiT steps from the shipped checkpoint on the Lift data, 2 processes vs 1):
  python -m wow_gym.experiments.ddp_curve --out outputs/ddp-curve --nproc 2 -- \\
      init=world_models/checkpoints/lift "dit={steps: 200, batch_size: 32}"
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def train(out: Path, nproc: int, threads: int, overrides: list[str]) -> float:
    """Run train-world-model into `out` on `nproc` processes (torchrun when more than one); its wall-clock s.
    A run that finished before (a rerun of this script) is not run again."""
    timing = out / "wall_s.json"
    if timing.is_file() and (out / "checkpoint" / "model.safetensors").is_file():
        return json.loads(timing.read_text())["wall_s"]
    command = [sys.executable, "-m", "wow_gym.cli"] if nproc == 1 else [
        str(Path(sys.executable).with_name("torchrun")), "--standalone", f"--nproc_per_node={nproc}",
        "-m", "wow_gym.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.time()
    subprocess.run([*command, "train-world-model", *overrides, f"out={out}", "log_every=1", f"threads={threads}"],
                   env=env, check=True)
    seconds = time.time() - start
    timing.write_text(json.dumps({"wall_s": seconds, "nproc": nproc, "threads": threads}) + "\n")
    return seconds


def loss_curves(out: Path) -> dict[str, list[tuple[int, float]]]:
    """Every `<stage>/loss` TensorBoard series a run wrote: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves: dict[str, dict[int, float]] = {}
    for events in sorted((out / "tensorboard").glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            if tag.endswith("/loss"):
                curves.setdefault(tag, {}).update({s.step: s.value for s in accumulator.Scalars(tag)})
    return {tag: sorted(points.items()) for tag, points in curves.items()}


def compare(parallel: dict[str, list], single: dict[str, list]) -> dict[str, dict[str, float]]:
    """Per loss tag both runs logged: the largest absolute and relative difference at a common step."""
    result = {}
    for tag in sorted(set(parallel) & set(single)):
        a, b = dict(parallel[tag]), dict(single[tag])
        steps = sorted(set(a) & set(b))
        diffs = [abs(a[s] - b[s]) for s in steps]
        result[tag] = {"steps": len(steps), "max_abs_diff": max(diffs),
                       "max_rel_diff": max(d / max(abs(b[s]), 1e-12) for d, s in zip(diffs, steps)),
                       "final_loss_parallel": a[steps[-1]], "final_loss_single": b[steps[-1]]}
    if not result:
        raise RuntimeError("the runs logged no common <stage>/loss series; did both train a stage?")
    return result


def plot(parallel: dict[str, list], single: dict[str, list], nproc: int, path: Path) -> None:
    tags = sorted(set(parallel) & set(single))
    fig, axes = plt.subplots(1, len(tags), figsize=(6 * len(tags), 4), squeeze=False)
    for ax, tag in zip(axes[0], tags):
        for curve, label, style in ((single[tag], "1 process", "-"), (parallel[tag], f"{nproc} processes", "--")):
            ax.plot(*zip(*curve), style, label=label, linewidth=1.2)
        ax.set(title=f"{tag} (same global batch)", xlabel="step", ylabel="loss", yscale="log")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/ddp-curve"))
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per process, in both runs (more than the free cores slows a run badly)")
    parser.add_argument("overrides", nargs="*", help="train-world-model key=value overrides (after --)")
    args = parser.parse_args(argv)
    if args.nproc < 2:
        parser.error(f"--nproc must be >= 2 to compare with one process, got {args.nproc}")
    parallel_out, single_out = args.out / f"procs-{args.nproc}", args.out / "procs-1"
    seconds = {"parallel": train(parallel_out, args.nproc, args.threads, args.overrides)}
    cache = parallel_out / "stages" / "latents.pt"
    if cache.is_file() and not (single_out / "stages" / "latents.pt").is_file():
        (single_out / "stages").mkdir(parents=True, exist_ok=True)
        shutil.copy(cache, single_out / "stages" / "latents.pt")
    seconds["single"] = train(single_out, 1, args.threads, args.overrides)
    parallel, single = loss_curves(parallel_out), loss_curves(single_out)
    figures = compare(parallel, single)
    plot(parallel, single, args.nproc, args.out / "curves.png")
    (args.out / "curves.json").write_text(json.dumps({
        "nproc": args.nproc, "overrides": args.overrides, "wall_s": seconds, "figures": figures,
        "curves": {"parallel": parallel, "single": single}}, indent=1) + "\n")
    for tag, f in figures.items():
        print(f"{tag}: {f['steps']} steps, max |loss({args.nproc} procs) - loss(1 proc)| = {f['max_abs_diff']:.3g} "
              f"({f['max_rel_diff']:.2%} of the loss); final {f['final_loss_parallel']:.4g} vs {f['final_loss_single']:.4g}")
    print(f"wall-clock: {seconds['parallel']:.0f} s on {args.nproc} processes, {seconds['single']:.0f} s on one; "
          f"plot: {args.out / 'curves.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
