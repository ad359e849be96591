"""Behaviour cloning: an SB3 policy's actor trained on dataset (frame, agent_pos) -> action pairs.

The warm start before RL: the same SB3 policy object that PPO/SAC then fine-tunes, so nothing is converted.
Datasets are wow_gym LeRobot datasets (expert, noisy-expert, `imagined_verified` trajectories ...); frame t
pairs with action t. PPO/A2C policies are fitted by the Gaussian's negative log-likelihood (mean and
log-std), SAC/TD3 actors by the squared error of their deterministic action. Frames get DrQ's random shift
(pad 4, random crop: Kostrikov et al. 2020), which makes a small pixel dataset go much further.
With `aux_state_weight`, the actor's features also predict the simulator's object state through a linear head
that is dropped after cloning (an auxiliary loss, as in Pinto et al. 2018 and Lee et al. 2019): where the cube
is must be read from 64 px frames, and the actions alone teach it slowly.
With `imagined`, each episode is cloned twice: as the simulator recorded it, and as the task's world model
imagines it from its first frame under its recorded actions (imagined frames, poses and object state, the
recorded action labels). A policy that reads the cube precisely from simulator frames can be misled by the
DiT's: the auxiliary-loss policy succeeded in none of 16 imagined episodes where the simulator gave 62%, so
imagination could neither fine-tune nor rank it (README).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from tqdm.auto import tqdm

from wow_gym.data.flat import flatten_episodes, read_episodes
from wow_gym.rollout import ACTION_DIM, Rollout
from wow_gym.tasks import task_info

if TYPE_CHECKING:  # imported where used: loading BC data without imagining needs no world model
    from wow_gym.world_models.video.model import WorldModel

logger = logging.getLogger(__name__)
MIN_AGENT_POS_STD = 1e-2  # quaternion parts barely move in Lift; a tiny std would blow up unseen poses


@dataclass
class BCDataset:
    """Flat (pixels [N,H,W,3] uint8, agent_pos [N,D], action [N,7]) pairs and the episode each came from;
    `state` [N,S]: the simulator's environment_state at each frame, the auxiliary loss's (None: not read)."""

    pixels: np.ndarray
    agent_pos: np.ndarray
    action: np.ndarray
    episode: np.ndarray
    state: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.action.shape[0])

    def agent_pos_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of agent_pos (std floored at MIN_AGENT_POS_STD) for the feature extractor."""
        return self.agent_pos.mean(0), np.maximum(self.agent_pos.std(0), MIN_AGENT_POS_STD)


def load_bc_dataset(roots: Sequence[str | Path], successful_only: bool = True, max_episodes: int | None = None,
                    image_size: int | None = None, progress: bool = True, with_state: bool = False,
                    imagined_by: WorldModel | None = None) -> BCDataset:
    """Every (frame, agent_pos, action) of the episodes under `roots`; with successful_only, episodes that
    never succeed are left out (a noisy expert's failures would teach failing). with_state: each frame's
    environment_state too (the auxiliary loss's targets). imagined_by: a WorldModel; the same episodes as it
    imagines them follow the recorded pairs (imagined_pairs)."""
    keep = (lambda r: r.is_success is None or r.success) if successful_only else None
    episodes = read_episodes(roots, "policy", image_size, max_episodes=max_episodes, keep=keep, progress=progress)
    if not episodes:
        raise ValueError(f"no usable episodes in {[str(r) for r in roots]}"
                         + (" (none succeeds; pass successful_only=False)" if successful_only else ""))
    rollouts = [r for _, _, r in episodes]
    imagined = None if imagined_by is None else imagined_pairs(imagined_by, rollouts, with_state, progress)
    flat = flatten_episodes(rollouts)
    del episodes, rollouts  # the decoded episodes: flat holds their frames now
    steps = flat.steps
    state = None
    if with_state:
        if flat.environment_state is None:
            raise ValueError(f"bc.aux_state_weight needs environment_state in every episode of "
                             f"{[str(r) for r in roots]}; `wow-gym collect` records it")
        state = flat.environment_state[steps]
    data = BCDataset(flat.pixels[steps], flat.agent_pos[steps], flat.action[steps], flat.episode_of[steps],
                     state)
    if imagined is None:
        return data
    imagined.episode = imagined.episode + data.episode.max() + 1  # their own episodes, for validation splits
    return BCDataset(*(None if getattr(data, k) is None
                       else np.concatenate([getattr(data, k), getattr(imagined, k)])
                       for k in ("pixels", "agent_pos", "action", "episode", "state")))


def imagined_pairs(wm: WorldModel, rollouts: Sequence[Rollout], with_state: bool = False, progress: bool = True
                   ) -> BCDataset:
    """The episodes as world model `wm` imagines them whole from their first frame under their recorded
    actions: imagined frame t (t >= 1) with its imagined agent_pos (and object state, with_state) paired with
    the recorded action t; episode i of `rollouts` is episode i here."""
    from wow_gym.world_models.video.imagination import Start, imagine

    steps = np.array([r.num_steps for r in rollouts])
    actions = np.zeros((len(rollouts), int(steps.max()), ACTION_DIM), np.float32)
    for i, r in enumerate(rollouts):
        actions[i, :r.num_steps] = r.action
    seen = imagine(wm, Start.from_episodes(list(rollouts), [0] * len(rollouts), 1), actions, steps,
                   torch.Generator(device=wm.device).manual_seed(0), progress=progress, desc="imagine for BC")
    keep = [(i, t) for i, r in enumerate(rollouts) for t in range(r.num_steps - 1)]  # frame t+1 <- action t+1
    rows, cols = (np.array(x) for x in zip(*keep))
    return BCDataset(seen.pixels[rows, cols], seen.agent_pos[rows, cols].astype(np.float32),
                     actions[rows, cols + 1], rows.astype(np.int64),
                     seen.environment_state[rows, cols].astype(np.float32) if with_state else None)


@dataclass
class BCConfig:
    """Behaviour-cloning warm start; epochs 0 skips it."""

    datasets: list[str] = field(default_factory=list)
    successful_only: bool = True
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    shift: int = 4  # pixels of DrQ random shift
    val_fraction: float = 0.1  # held-out episodes for the validation loss
    max_episodes: int | None = None  # per dataset; None: all
    # > 0: the actor's features also predict the standardised environment_state through a linear head
    # (dropped after cloning), this weight times its squared error added to the BC loss; PPO/A2C policies
    aux_state_weight: float = 0.0
    # which environment_state entries the head predicts (None: all; "object": the task's object position and
    # gripper-to-object offset, object_state_dims). Lift's are [0, 1, 2, 7, 8, 9]; its quaternion (3-6) is
    # ambiguous under the cube's symmetry
    aux_state_dims: list[int] | str | None = None
    # also clone every episode as the task's world model imagines it (imagined_pairs); PPO/SAC alike
    imagined: bool = False


def object_state_dims(task: str) -> list[int]:
    """The environment_state entries of `task` that say where its object is: its position and its offset from
    the gripper (the Task's object_position and gripper_offset), for bc.aux_state_dims=object."""
    info = task_info(task)
    return [*range(info.object_position.start, info.object_position.stop),
            *range(info.gripper_offset.start, info.gripper_offset.stop)]


def random_shift(pixels: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """DrQ augmentation of [B,C,H,W] frames: replicate-pad by `pad`, crop back at a random offset each."""
    if pad <= 0:
        return pixels
    batch, _, height, width = pixels.shape
    padded = F.pad(pixels, (pad, pad, pad, pad), mode="replicate")
    dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator)
    rows = (dy[:, None] + torch.arange(height))[:, :, None].expand(batch, height, width)
    cols = (dx[:, None] + torch.arange(width))[:, None, :].expand(batch, height, width)
    index = (rows * padded.shape[-1] + cols).reshape(batch, 1, -1).expand(-1, pixels.shape[1], -1)
    return padded.flatten(2).gather(2, index).reshape(pixels.shape)


def bc_batch(data: BCDataset, index: np.ndarray, shift: int, generator: torch.Generator, device: torch.device
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows `index` as (pixels [B,3,H,W] float 0..255, randomly shifted by up to `shift`, agent_pos, action)
    on `device`; 0..255 because SB3's preprocess_obs scales image spaces to [0, 1] itself."""
    pixels = random_shift(torch.as_tensor(data.pixels[index]).permute(0, 3, 1, 2).float(), shift, generator)
    return (pixels.to(device), torch.as_tensor(data.agent_pos[index], device=device),
            torch.as_tensor(data.action[index], device=device))


def bc_loss(model: BaseAlgorithm, pixels: torch.Tensor, agent_pos: torch.Tensor, action: torch.Tensor
            ) -> torch.Tensor:
    """The BC loss of a batch: Gaussian NLL for PPO/A2C, squared error of the deterministic action else."""
    policy = model.policy
    observation = {"pixels": pixels, "agent_pos": agent_pos}
    if isinstance(policy, ActorCriticPolicy):
        distribution = policy.get_distribution(observation)
        return -distribution.log_prob(action).mean() / ACTION_DIM
    return F.mse_loss(policy._predict(observation, deterministic=True), action)  # SAC/TD3: the tanh actor


def behaviour_clone(model: BaseAlgorithm, data: BCDataset, config: BCConfig, writer=None, seed: int = 0,
                    progress: bool = True) -> dict[str, float]:
    """Fit model.policy's actor to the dataset in place; returns the last train / validation losses and
    the validation action RMSE (deterministic action vs the dataset's)."""
    if model.observation_space["pixels"].shape[0] != 3:
        raise ValueError("the policy must read channel-first frames (build it on an SB3 VecEnv of HWC frames)")
    policy, device = model.policy, model.device
    generator = torch.Generator().manual_seed(seed)
    episodes = np.unique(data.episode)
    rng = np.random.default_rng(seed)
    val_episodes = rng.choice(episodes, size=int(round(config.val_fraction * len(episodes))), replace=False)
    is_val = np.isin(data.episode, val_episodes)
    train_index, val_index = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    parameters = list(policy.actor.parameters() if hasattr(policy, "actor") else
                      [p for name, p in policy.named_parameters() if not name.startswith("value_net")])
    auxiliary = StateHead(policy, data, config.aux_state_dims) if config.aux_state_weight > 0 else None
    if auxiliary is not None:
        parameters += list(auxiliary.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, len(train_index) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)

    def batch(index: np.ndarray, augment: bool) -> tuple[torch.Tensor, ...]:
        return bc_batch(data, index, config.shift if augment else 0, generator, device)

    result: dict[str, float] = {}
    policy.set_training_mode(True)
    bar = tqdm(total=config.epochs * steps_per_epoch, desc="behaviour cloning", unit="batch", disable=not progress)
    for epoch in range(config.epochs):
        order = rng.permutation(train_index)
        losses, aux_losses = [], []
        for step in range(steps_per_epoch):
            index = order[step * config.batch_size:(step + 1) * config.batch_size]
            pixels, agent_pos, action = batch(index, True)
            loss = bc_loss(model, pixels, agent_pos, action)
            if auxiliary is not None:
                aux = auxiliary.loss(pixels, agent_pos, index)
                aux_losses.append(aux.item())
                loss = loss + config.aux_state_weight * aux
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(optimizer.param_groups[0]["params"]), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.update()
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        result = {"bc/train_loss": float(np.mean(losses)), **evaluate_bc(model, data, val_index, batch)}
        if aux_losses:  # train_loss includes it; its own share, for TensorBoard
            result["bc/aux_state_loss"] = float(np.mean(aux_losses))
        if writer is not None:
            for name, value in result.items():
                writer.add_scalar(name, value, epoch + 1)
        logger.info("BC epoch %d: %s", epoch + 1, result)
    bar.close()
    policy.set_training_mode(False)
    return result


class StateHead:
    """The auxiliary loss's head: the actor's features -> the standardised environment_state (its mean and
    std over the dataset; a std below MIN_AGENT_POS_STD is raised to it). Hand-written: SB3 has no auxiliary
    losses."""

    def __init__(self, policy: torch.nn.Module, data: BCDataset, dims: Sequence[int] | None = None) -> None:
        if not isinstance(policy, ActorCriticPolicy):
            raise ValueError("bc.aux_state_weight is for PPO/A2C policies (their actor's feature extractor); "
                             f"got a {type(policy).__name__}: set bc.aux_state_weight=0")
        if data.state is None:
            raise ValueError("bc.aux_state_weight > 0 needs the dataset's environment_state "
                             "(load_bc_dataset(..., with_state=True))")
        width = data.state.shape[1]
        if isinstance(dims, str):
            raise ValueError(f"bc.aux_state_dims={dims!r} names the task's dims: resolve it with "
                             "object_state_dims(task) first (train-policy does)")
        self.dims = list(range(width)) if dims is None else [int(d) for d in dims]
        if not self.dims or any(not 0 <= d < width for d in self.dims):
            raise ValueError(f"bc.aux_state_dims must be indices into the {width} environment_state entries, "
                             f"got {dims}")
        self.policy, self.state = policy, data.state[:, self.dims]
        self.mean = self.state.mean(0)
        self.std = np.maximum(self.state.std(0), MIN_AGENT_POS_STD)
        self.linear = torch.nn.Linear(policy.features_dim, len(self.dims)).to(policy.device)

    def parameters(self) -> list[torch.nn.Parameter]:  # the head's own; the policy's are the optimizer's
        return list(self.linear.parameters())

    def loss(self, pixels: torch.Tensor, agent_pos: torch.Tensor, index: np.ndarray) -> torch.Tensor:
        policy = self.policy
        observation = preprocess_obs({"pixels": pixels, "agent_pos": agent_pos}, policy.observation_space,
                                     normalize_images=policy.normalize_images)
        features = policy.pi_features_extractor(observation)
        target = torch.as_tensor((self.state[index] - self.mean) / self.std, dtype=torch.float32,
                                 device=features.device)
        return F.mse_loss(self.linear(features), target)


@torch.no_grad()
def evaluate_bc(model: BaseAlgorithm, data: BCDataset, index: np.ndarray, batch, size: int = 256
                ) -> dict[str, float]:
    """Validation loss and action RMSE of the deterministic action on the rows `index`."""
    if len(index) == 0:
        return {}
    model.policy.set_training_mode(False)
    losses, squared = [], []
    for start in range(0, len(index), size):
        pixels, agent_pos, action = batch(index[start:start + size], False)
        losses.append(float(bc_loss(model, pixels, agent_pos, action)) * len(action))
        predicted = model.policy._predict({"pixels": pixels, "agent_pos": agent_pos}, deterministic=True)
        squared.append(((predicted.clamp(-1, 1) - action) ** 2).sum(0).cpu().numpy())
    model.policy.set_training_mode(True)
    return {"bc/val_loss": float(np.sum(losses) / len(index)),
            "bc/val_action_rmse": float(np.sqrt(np.sum(squared) / (len(index) * ACTION_DIM)))}
