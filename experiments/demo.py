"""wow-gym demo: the main job on the shipped defaults (what `make demo` runs).

At this stage of the project: collect a few scripted-expert episodes of each task into LeRobot v3.0
datasets, read them back, and write a contact sheet, an animated GIF per task and report.md.
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import OmegaConf

from wow_gym.contact_sheet import contact_sheet, save_gif
from wow_gym.data import DatasetReader
from wow_gym.envs.collection import CollectConfig, collect
from wow_gym.experiments.config_loading import load_config, run_dir
from wow_gym.provenance import atomic_write_text, git_commit, write_run_metadata


def main(argv: list[str]) -> int:
    cfg = load_config("demo", argv, __doc__)
    if cfg is None:
        return 0
    start = time.time()
    out = Path(cfg.out) if cfg.out else run_dir("demo")
    write_run_metadata(out, OmegaConf.to_container(cfg, resolve=True))
    rows, all_rollouts = [], []
    for task in cfg.tasks:
        result = collect(CollectConfig(task=task, episodes=cfg.episodes_per_task, policy="expert",
                                       root=str(out / "datasets" / task), seed=cfg.seed,
                                       workers=cfg.workers, image_size=cfg.image_size,
                                       max_steps=cfg.max_steps, progress=cfg.progress))
        reader = DatasetReader(result.root)
        rollouts = [reader[i] for i in range(len(reader))]
        all_rollouts += rollouts
        save_gif(rollouts, out / f"{task}.gif")
        successes = sum(r.success for r in rollouts)
        rows.append(f"| {rollouts[0].task} | \"{rollouts[0].instruction}\" | {len(rollouts)} | {successes} | "
                    f"{sum(r.num_steps for r in rollouts)} | ![{task}]({task}.gif) |")
    contact_sheet(all_rollouts).save(out / "contact_sheet.png")
    report = "\n".join([
        "# wow_gym demo", "",
        f"commit `{git_commit()['commit']}`, {time.time() - start:.0f} s on this machine", "",
        "| task | instruction | episodes | successes | steps | video |", "|---|---|---:|---:|---:|---|",
        *rows, "", "![contact sheet](contact_sheet.png)", "",
    ])
    atomic_write_text(out / "report.md", report)
    print(f"\ndemo finished in {time.time() - start:.0f} s; report: {out / 'report.md'}")
    return 0
