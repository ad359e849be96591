"""Missing or corrupt dataset files raise DatasetError naming the file and what to do."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wow_gym.data import DatasetError, DatasetReader, DatasetWriter, encode_video
from wow_gym.data.fakes import random_rollout

DATA = "data/chunk-000/file-001.parquet"
VIDEO = "videos/observation.images.agentview/chunk-000/file-001.mp4"
META = "meta/episodes/chunk-000/file-001.parquet"


@pytest.fixture
def root(tmp_path):
    writer = DatasetWriter(tmp_path)
    writer.write(random_rollout(seed=0, steps=4))
    writer.write(random_rollout(seed=1, steps=4))
    return tmp_path


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_missing_info_json_is_named(root):
    (root / "meta/info.json").unlink()
    with pytest.raises(DatasetError, match=r"meta/info.json is missing.*dataset root"):
        DatasetReader(root)
    with pytest.raises(DatasetError, match="no meta/info.json"):
        DatasetWriter(root)


def test_a_missing_root_is_named(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        DatasetReader(tmp_path / "nowhere")


def test_corrupt_info_json_and_wrong_version_are_named(root):
    info_path = root / "meta/info.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DatasetError, match=r"info.json has codebase_version 'v2.1'.*convert"):
        DatasetReader(root)
    info_path.write_text('{"fps": 2')
    with pytest.raises(DatasetError, match="info.json is not valid JSON"):
        DatasetReader(root)


def test_a_truncated_data_file_is_named(root):
    _truncate(root / DATA)
    reader = DatasetReader(root)
    assert reader[0].seed == 0
    with pytest.raises(DatasetError, match=rf"{DATA} of episode 1 cannot be read.*delete {META}"):
        reader[1]


def test_a_missing_video_is_named(root):
    (root / VIDEO).unlink()
    with pytest.raises(DatasetError, match=rf"video {VIDEO} of episode 1 is missing"):
        DatasetReader(root)[1]


def test_a_truncated_video_is_named(root):
    _truncate(root / VIDEO, keep=0.3)
    with pytest.raises(DatasetError, match=rf"video {VIDEO}.*(cannot be decoded|decodes to frames)"):
        DatasetReader(root)[1]


def test_a_video_with_the_wrong_frame_count_is_named(root):
    (root / VIDEO).write_bytes(encode_video(random_rollout(seed=1, steps=2).pixels, fps=20))
    with pytest.raises(
        DatasetError, match=rf"{VIDEO} decodes to frames \(3, 32, 48, 3\).*expects \(5, 32, 48, 3\)"
    ):
        DatasetReader(root)[1]


def test_a_data_file_with_the_wrong_row_count_is_named(root):
    table = pq.read_table(root / DATA)
    pq.write_table(table.slice(0, 3), root / DATA)
    with pytest.raises(DatasetError, match=rf"{DATA} has 3 rows.*says 5 frames"):
        DatasetReader(root)[1]


def test_wrong_columns_are_named(root):
    table = pq.read_table(root / DATA)
    pq.write_table(table.drop_columns(["action"]), root / DATA)
    with pytest.raises(DatasetError, match=rf"{DATA} has no column 'action'"):
        DatasetReader(root)[1]
    index = table.column_names.index("observation.state")
    pq.write_table(table.set_column(index, "observation.state", pa.array([1.0] * 5)), root / DATA)
    with pytest.raises(DatasetError, match=rf"{DATA} column 'observation.state' has type double"):
        DatasetReader(root)[1]


def test_vectors_of_the_wrong_length_are_named(root):
    table = pq.read_table(root / DATA)
    index = table.column_names.index("observation.state")
    short = pa.array([[0.0] * 8] * 5, pa.list_(pa.float32()))
    pq.write_table(table.set_column(index, "observation.state", short), root / DATA)
    with pytest.raises(
        DatasetError, match=rf"{DATA} column 'observation.state' holds vectors of 8..8 values"
    ):
        DatasetReader(root)[1]


def test_a_truncated_episode_metadata_file_is_named(root):
    _truncate(root / META)
    with pytest.raises(DatasetError, match=rf"episode metadata {META} cannot be read.*delete it"):
        DatasetReader(root)
    with pytest.raises(DatasetError, match=rf"{META}"):
        DatasetWriter(root)


def test_metadata_in_the_wrong_place_is_named(root):
    (root / META).rename(root / "meta/episodes/chunk-000/file-007.parquet")
    with pytest.raises(DatasetError, match="describes episode 1, which belongs in"):
        DatasetReader(root)


def test_metadata_without_info_json_is_refused_by_the_writer(root):
    (root / "meta/info.json").unlink()
    with pytest.raises(DatasetError, match="episode metadata but no meta/info.json"):
        DatasetWriter(root)
