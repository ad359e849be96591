"""wow-gym ship-policy: a policy trained by `wow-gym train-policy` (an SB3 zip) as a shipped policy.

Writes model.safetensors and config.json (no pickles) into `out`, by default
policies/checkpoints/<task>-policy: the task's default policy, which the demo and `load_policy` read. The
policy must use ImageProprioExtractor, as every train-policy run does.
"""

from __future__ import annotations

import sys

from omegaconf import OmegaConf

from wow_gym.experiments.config_loading import load_config


def main(argv: list[str]) -> int:
    cfg = load_config("ship_policy", argv, __doc__)
    if cfg is None:
        return 0
    values = OmegaConf.to_container(cfg, resolve=True)
    if values["checkpoint"] is None:
        raise SystemExit("wow-gym ship-policy: pass checkpoint=<an SB3 zip written by wow-gym train-policy>")
    from wow_gym.policies.export import load_sb3
    from wow_gym.policies.shipped import CHECKPOINT_ROOT, save_policy
    from wow_gym.world_models.checkpoint import shipped_path

    out = values["out"] or shipped_path(values["task"], "policy", CHECKPOINT_ROOT)
    try:
        folder = save_policy(load_sb3(values["checkpoint"]), out, values["task"],
                             notes={"source": str(values["checkpoint"])})
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"wow-gym ship-policy: {error}") from None
    print(f"shipped {values['checkpoint']} as {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
