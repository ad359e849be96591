"""Crash safety and resuming: completed episodes survive, leftovers are ignored and overwritten."""

import json

import numpy as np
import pytest

import wow_gym.data.dataset_writer as dataset_writer
from wow_gym.data import DatasetError, DatasetReader, DatasetWriter
from wow_gym.data.fakes import random_rollout

DATA_2 = "data/chunk-000/file-002.parquet"
VIDEO_2 = "videos/observation.images.agentview/chunk-000/file-002.mp4"
META_2 = "meta/episodes/chunk-000/file-002.parquet"


def _crash_before_commit(monkeypatch, writer, rollout):
    """Write rollout with a crash just before its metadata file, the commit point."""
    real_write = dataset_writer.atomic_write_parquet

    def crash_on_metadata(path, table):
        if "episodes" in path.parts:
            raise KeyboardInterrupt("killed")
        real_write(path, table)

    monkeypatch.setattr(dataset_writer, "atomic_write_parquet", crash_on_metadata)
    with pytest.raises(KeyboardInterrupt):
        writer.write(rollout)
    monkeypatch.undo()


def _write(root, count, **kwargs):
    writer = DatasetWriter(root, **kwargs)
    for seed in range(count):
        writer.write(random_rollout(seed=seed, steps=4))
    return writer


def test_reopening_resumes_after_the_last_episode(tmp_path):
    _write(tmp_path, 2)
    writer = DatasetWriter(tmp_path)
    assert writer.completed_episodes == {0, 1}
    assert writer.write(random_rollout(seed=9, steps=3)) == 2
    reader = DatasetReader(tmp_path)
    assert [e.dataset_from_index for e in reader.episodes] == [0, 5, 10]
    assert reader.info["total_episodes"] == 3 and reader.info["total_frames"] == 14


def test_orphan_files_without_metadata_are_invisible_and_overwritten(tmp_path, monkeypatch):
    writer = _write(tmp_path, 2)
    _crash_before_commit(monkeypatch, writer, random_rollout(seed=7, steps=6))
    assert (tmp_path / DATA_2).is_file() and (tmp_path / VIDEO_2).is_file()
    assert not (tmp_path / META_2).exists()
    assert len(DatasetReader(tmp_path)) == 2

    replacement = random_rollout(seed=8, steps=3)
    assert writer.write(replacement) == 2
    back = DatasetReader(tmp_path)[2]
    assert back.num_steps == 3 and np.array_equal(back.action, replacement.action)


def test_reopening_deletes_files_of_uncommitted_episodes(tmp_path):
    _write(tmp_path, 3)
    (tmp_path / META_2).unlink()
    writer = DatasetWriter(tmp_path)
    assert writer.completed_episodes == {0, 1}
    assert not (tmp_path / DATA_2).exists() and not (tmp_path / VIDEO_2).exists()
    assert (tmp_path / "data/chunk-000/file-001.parquet").is_file()
    assert writer.write(random_rollout(seed=8, steps=3)) == 2


def test_half_written_temp_files_do_not_break_reading_and_are_cleaned(tmp_path):
    _write(tmp_path, 1)
    data_tmp = tmp_path / "data/chunk-000/.file-001.parquet.4242.tmp"
    data_tmp.write_bytes(b"PAR1 half a parquet file")
    meta_tmp = tmp_path / "meta/episodes/chunk-000/.file-001.parquet.4242.tmp"
    meta_tmp.write_bytes(b"PAR1")
    info_tmp = tmp_path / "meta/.info.json.4242.tmp"
    info_tmp.write_text('{"codebase_version": "v3.0", "fps": ')
    reader = DatasetReader(tmp_path)
    assert len(reader) == 1 and reader[0].num_steps == 4
    DatasetWriter(tmp_path)
    assert not data_tmp.exists() and not meta_tmp.exists() and not info_tmp.exists()


def test_stale_info_totals_after_a_crash_do_not_hide_episodes(tmp_path):
    _write(tmp_path, 2)
    info_path = tmp_path / "meta/info.json"
    info = json.loads(info_path.read_text())
    info.update(total_episodes=1, total_frames=5)  # as if the crash hit between metadata and info.json
    info_path.write_text(json.dumps(info))
    assert len(DatasetReader(tmp_path)) == 2
    DatasetWriter(tmp_path).write(random_rollout(seed=3, steps=4))
    assert json.loads(info_path.read_text())["total_episodes"] == 3


def test_explicit_indices_and_refusing_to_overwrite_a_completed_episode(tmp_path):
    writer = DatasetWriter(tmp_path)
    assert writer.write(random_rollout(seed=0, steps=2), episode_index=3) == 3
    assert writer.write(random_rollout(seed=1, steps=2), episode_index=1) == 1
    with pytest.raises(ValueError, match="already complete"):
        writer.write(random_rollout(seed=2, steps=2), episode_index=3)
    reader = DatasetReader(tmp_path)
    assert [e.episode_index for e in reader.episodes] == [1, 3]
    assert reader[0].seed == 1 and writer.write(random_rollout(seed=4, steps=2)) == 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fps": 10}, "20 fps.*fps=20"),
        ({"camera": "frontview"}, "camera="),
        ({"robot_type": "ur5"}, "robot_type"),
    ],
)
def test_resuming_with_other_settings_is_refused(tmp_path, kwargs, match):
    _write(tmp_path, 1)
    with pytest.raises(DatasetError, match=match):
        DatasetWriter(tmp_path, **kwargs)


def test_rollouts_of_another_shape_are_refused_before_anything_is_written(tmp_path):
    writer = _write(tmp_path, 1)
    with pytest.raises(DatasetError, match=r"observation.images.agentview.*\[32, 48, 3\]"):
        writer.write(random_rollout(seed=1, steps=3, image_size=(16, 16)))
    wrong_state = random_rollout(seed=2, steps=3)
    wrong_state.agent_pos = wrong_state.agent_pos[:, :7].copy()
    with pytest.raises(DatasetError, match=r"observation.state is float32 \[7\].*\[9\]"):
        writer.write(wrong_state)
    assert writer.completed_episodes == {0}
    assert not (tmp_path / "data/chunk-000/file-001.parquet").exists()


def test_a_new_optional_field_is_added_and_older_episodes_read_without_it(tmp_path):
    writer = DatasetWriter(tmp_path)
    writer.write(random_rollout(seed=0, steps=3, full=False))
    writer.write(random_rollout(seed=1, steps=3))
    reader = DatasetReader(tmp_path)
    assert "sim_state" in reader.info["features"]
    assert reader[0].sim_state is None and reader[0].reward_terms == {}
    assert reader[1].sim_state.shape == (4, 250) and set(reader[1].reward_terms) == {"reach", "sim"}


def test_a_crash_before_the_commit_point_leaves_earlier_episodes_readable(tmp_path, monkeypatch):
    _write(tmp_path, 1)
    _crash_before_commit(monkeypatch, DatasetWriter(tmp_path), random_rollout(seed=5, steps=6))
    assert (tmp_path / "data/chunk-000/file-001.parquet").is_file()
    reader = DatasetReader(tmp_path)
    assert len(reader) == 1 and reader[0].seed == 0
    assert DatasetWriter(tmp_path).write(random_rollout(seed=6, steps=2)) == 1
    assert DatasetReader(tmp_path)[1].seed == 6


def test_a_crash_during_the_first_episode_leaves_an_empty_readable_dataset(tmp_path, monkeypatch):
    def crash(path, table):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(dataset_writer, "atomic_write_parquet", crash)
    with pytest.raises(KeyboardInterrupt):
        DatasetWriter(tmp_path).write(random_rollout(seed=0, steps=3))
    monkeypatch.undo()
    assert len(DatasetReader(tmp_path)) == 0
    assert DatasetWriter(tmp_path).write(random_rollout(seed=1, steps=3)) == 0
    assert DatasetReader(tmp_path)[0].seed == 1
