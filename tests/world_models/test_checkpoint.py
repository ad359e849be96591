"""The one finder of shipped checkpoints: one naming rule for every kind, errors that list only that kind."""

import json

import pytest

from wow_gym.policies.shipped import shipped_policy
from wow_gym.world_models.checkpoint import (
    CONFIG_FILE,
    SHIPPED_KINDS,
    CheckpointError,
    shipped_checkpoint,
    shipped_path,
    shipped_tasks,
)


@pytest.mark.parametrize("kind", ["world-model", "idm", "critic"])
def test_every_kind_of_lift_model_is_shipped(kind):
    path = shipped_checkpoint("lift", kind)
    meta = json.loads((path / CONFIG_FILE).read_text())
    assert (path / "model.safetensors").is_file() and meta.get("config", meta)["task"] == "Lift"
    assert shipped_checkpoint("Lift", kind) == path  # task names are case-insensitive
    assert "Lift" in shipped_tasks(kind)


def test_the_shipped_checkpoints_stay_within_the_size_budget():
    """Every shipped model lives in git (each version stays in its history): all of them together stay
    under 60 MB."""
    from wow_gym.policies import shipped
    from wow_gym.world_models import checkpoint

    files = [f for root in (checkpoint.CHECKPOINT_ROOT, shipped.CHECKPOINT_ROOT) for f in root.rglob("*")
             if f.is_file()]
    assert any(f.name == "model.safetensors" for f in files)
    total = sum(f.stat().st_size for f in files)
    assert total < 60e6, f"shipped checkpoints weigh {total / 1e6:.1f} MB, over the 60 MB budget"


def test_the_shipped_policy_follows_the_same_rule():
    path = shipped_policy("lift")
    assert path.name == "lift-policy" and (path / CONFIG_FILE).is_file()


def test_a_missing_task_lists_only_what_is_shipped_of_that_kind(tmp_path):
    for name in ("lift", "lift-idm", "lift-critic", "door-critic"):
        (tmp_path / name).mkdir()
        (tmp_path / name / CONFIG_FILE).write_text("{}")

    with pytest.raises(CheckpointError) as raised:
        shipped_checkpoint("door", "world-model", tmp_path)
    assert "shipped world models: ['Lift']" in str(raised.value)
    assert "train-world-model task=door" in str(raised.value)
    with pytest.raises(CheckpointError) as raised:
        shipped_checkpoint("stack", "critic", tmp_path)
    assert "shipped critics: ['Lift', 'Door']" in str(raised.value)
    with pytest.raises(CheckpointError, match=r"FM-IDMs: \['Lift'\]"):
        shipped_checkpoint("door", "idm", tmp_path)
    assert shipped_tasks("world-model", tmp_path) == ["Lift"]
    assert shipped_checkpoint("door", "critic", tmp_path) == tmp_path / "door-critic"


def test_the_naming_rule_and_bad_kinds():
    assert {kind: shipped_path("Lift", kind).name for kind in SHIPPED_KINDS} == {
        "world-model": "lift", "idm": "lift-idm", "critic": "lift-critic", "policy": "lift-policy"}
    with pytest.raises(ValueError, match="unknown kind of shipped model 'vae'"):
        shipped_checkpoint("lift", "vae")
    with pytest.raises(ValueError, match="unknown task"):
        shipped_checkpoint("fly", "idm")
