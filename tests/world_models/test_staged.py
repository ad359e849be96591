"""The staged trainer's loop: a non-finite loss stops training before the optimiser applies it."""

import pytest
import torch

from wow_gym.world_models.staged import RunSettings, StageConfig, StagedTrainer


class _OneStage(StagedTrainer):
    stages = ("fit",)


def test_nan_loss_raises_before_the_step_and_leaves_parameters_untouched(tmp_path):
    trainer = _OneStage(tmp_path, RunSettings(device="cpu", progress=False))
    model = torch.nn.Linear(3, 1)
    x = torch.ones(4, 3)
    seen: list[dict[str, torch.Tensor]] = []

    def loss_fn(batch_size, g):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        loss = model(x).pow(2).mean()
        return (loss * float("nan") if len(seen) == 3 else loss), {}

    with pytest.raises(FloatingPointError, match="at step 2"):
        trainer._loop("fit", {"model": model}, list(model.parameters()), StageConfig(steps=5, lr=0.1), loss_fn)
    assert not torch.equal(seen[0]["weight"], seen[2]["weight"])  # the finite steps did train
    for name, value in model.state_dict().items():
        assert torch.isfinite(value).all(), name
        assert torch.equal(value, seen[2][name]), name
