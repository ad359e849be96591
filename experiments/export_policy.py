"""wow-gym export-policy: a stable-baselines3 policy to ONNX (policy.onnx) with its spec (policy.json).

Loads the SB3 zip (PPO, A2C, SAC or TD3, read from the zip unless `algo` says), exports the deterministic
actor over {pixels, agent_pos}, then checks parity: the ONNX graph under onnxruntime against SB3's
predict(deterministic=True) on observations from the real simulator. Exits non-zero when the largest
difference exceeds `tolerance`. Writes policy.onnx, policy.json, parity.json, the resolved config and the git
commit into `out`, the folder `wow-gym deploy policy=<out>` reads.
"""

from __future__ import annotations

import json
import sys

from wow_gym.experiments.config_loading import start_run


def main(argv: list[str]) -> int:
    started = start_run("export_policy", argv, __doc__, "export-policy")
    if started is None:
        return 0
    values, out = started
    if values["checkpoint"] is None:
        raise SystemExit("wow-gym export-policy: pass checkpoint=<a stable-baselines3 zip> (model.save)")
    import gymnasium as gym
    import torch

    import wow_gym  # noqa: F401  (registers the env ids)
    from wow_gym.policies.export import check_parity, export_policy, load_sb3
    from wow_gym.provenance import atomic_write_text
    from wow_gym.registry import task_info

    if values["threads"]:
        torch.set_num_threads(values["threads"])
    try:
        model = load_sb3(values["checkpoint"], values["algo"])
        onnx_path = export_policy(model, out, task=values["task"], instruction=values["instruction"],
                                  checkpoint=values["checkpoint"])
    except (FileNotFoundError, TypeError, ValueError) as error:
        raise SystemExit(f"wow-gym export-policy: {error}") from None
    env = gym.make(task_info(values["task"]).env_id)
    observation, _ = env.reset(seed=values["seed"])
    observations = [observation]
    env.action_space.seed(values["seed"])
    for _ in range(values["parity_observations"] - 1):
        observation, *_ = env.step(env.action_space.sample())
        observations.append(observation)
    env.close()
    difference = check_parity(model, onnx_path, observations)
    parity = {"max_abs_difference": difference, "observations": len(observations),
              "tolerance": values["tolerance"]}
    atomic_write_text(out / "parity.json", json.dumps(parity, indent=2) + "\n")
    print(f"parity: max |onnx - sb3| = {difference:.3g} over {len(observations)} simulator observations "
          f"(tolerance {values['tolerance']:g})")
    print(f"exported {type(model).__name__} to {onnx_path} (spec: {onnx_path.with_name('policy.json')})")
    if difference > values["tolerance"]:
        print(f"wow-gym export-policy: parity {difference:.3g} exceeds tolerance {values['tolerance']:g}; "
              f"the ONNX graph does not reproduce the policy", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
