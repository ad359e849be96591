"""A process's shard of a global batch: the shards partition the rows, and their masked means add up to the
global masked mean (what averaging the processes' gradients needs)."""

import pytest
import torch

from wow_gym.distributed import Shard, start, torchrun_shard


def test_shards_partition_the_global_batch_in_order():
    shards = [Shard(rank, 4) for rank in range(4)]
    rows = torch.arange(12)
    assert torch.equal(torch.cat([s.take(rows) for s in shards]), rows)
    assert [s.is_main for s in shards] == [True, False, False, False]
    assert shards[2].take(list("abcdefghijkl")) == list("ghi")
    batch = {"x": torch.arange(12).view(12, 1), "absent": None}
    assert shards[1].take_each(batch)["x"].view(-1).tolist() == [3, 4, 5] and shards[1].take_each(batch)["absent"] is None
    with pytest.raises(ValueError, match="batch_size 10 does not split over 4 processes; give a multiple of 4"):
        shards[0].check_batch(10, "stage dit")


def test_the_shards_masked_means_average_to_the_global_masked_mean():
    g = torch.Generator().manual_seed(0)
    values = torch.rand(8, 3, generator=g)
    mask = torch.rand(8, 3, generator=g) > 0.6
    mask[:4] = False  # the first shard selects nothing: a per-shard mean would be undefined there
    expected = values[mask].mean()
    parts = [Shard(rank, 2).masked_mean(Shard(rank, 2).take(values), mask) for rank in range(2)]
    torch.testing.assert_close(sum(parts) / 2, expected)
    torch.testing.assert_close(Shard().masked_mean(values, mask), expected)
    assert Shard().masked_mean(values, torch.zeros(8, 3)) == 0


def test_without_torchrun_there_is_one_process_on_the_resolved_device(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert torchrun_shard() == Shard(0, 1, 0)
    shard, device = start("cpu")
    assert shard == Shard() and device == torch.device("cpu") and not torch.distributed.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="must be integers"):
        torchrun_shard()
