"""How a Rollout maps onto the rows of a LeRobot data parquet file, and back.

A Rollout has T actions and T+1 observations; its episode is written as T+1 rows. Row t holds
observation t and the action taken from it with its outcome (`next.reward`, `next.terminated` ...). The
final row has no action: its per-step values are padding (zeros, False, "") and `action_is_pad` is True.

Optional Rollout fields become nullable columns: an episode without the field stores nulls, and a field a
dataset has not seen yet is added to its features. `reward.<name>` holds the named reward term `name`
(by convention `reward.sim` is the simulator's reward of an imagined rollout replayed in MuJoCo) and
`reward.critic` holds the SOPHIA critic's reward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wow_gym.data.layout import DatasetError
from wow_gym.rollout import Rollout

STATE_NAMES = [
    "eef_pos_x",
    "eef_pos_y",
    "eef_pos_z",
    "eef_quat_x",
    "eef_quat_y",
    "eef_quat_z",
    "eef_quat_w",
    "gripper_qpos_left",
    "gripper_qpos_right",
]
ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
REWARD_PREFIX = "reward."
CRITIC_KEY = "reward.critic"


@dataclass(frozen=True)
class Column:
    """A Rollout field stored as a parquet column: per frame (T+1 values) or per step (T values + a pad)."""

    key: str
    attr: str
    dtype: str
    per_step: bool
    required: bool


FIELD_COLUMNS = (
    Column("observation.state", "agent_pos", "float32", per_step=False, required=True),
    Column("observation.environment_state", "environment_state", "float32", per_step=False, required=False),
    Column("sim_state", "sim_state", "float64", per_step=False, required=False),
    Column("action", "action", "float32", per_step=True, required=True),
    Column("action.idm", "idm_action", "float32", per_step=True, required=False),
    Column("next.reward", "reward", "float32", per_step=True, required=True),
    Column("next.terminated", "terminated", "bool", per_step=True, required=True),
    Column("next.truncated", "truncated", "bool", per_step=True, required=True),
    Column("next.success", "is_success", "bool", per_step=True, required=False),
    Column(CRITIC_KEY, "critic_reward", "float32", per_step=True, required=False),
    Column("subtask", "subtask", "string", per_step=True, required=False),
)
# Columns derived from the Rollout; written for LeRobot, not read back into fields.
DERIVED_FEATURES = {
    "action_is_pad": {"dtype": "bool", "shape": [1], "names": None},
    "next.done": {"dtype": "bool", "shape": [1], "names": None},
    "source": {"dtype": "string", "shape": [1], "names": None},
    "pair_id": {"dtype": "string", "shape": [1], "names": None},
    "seed": {"dtype": "int64", "shape": [1], "names": None},
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
REQUIRED_KEYS = frozenset({c.key for c in FIELD_COLUMNS if c.required} | set(DERIVED_FEATURES))


def rollout_values(rollout: Rollout) -> dict[str, tuple[Column, Any]]:
    """The present per-frame and per-step values of a rollout, by column key."""
    values: dict[str, tuple[Column, Any]] = {}
    for column in FIELD_COLUMNS:
        value = getattr(rollout, column.attr)
        if value is not None:
            values[column.key] = (column, value)
    for name, term in rollout.reward_terms.items():
        if not name or name == "critic":
            raise ValueError(
                f"reward term name {name!r} is reserved or empty; 'critic' is stored from "
                "Rollout.critic_reward as reward.critic"
            )
        values[REWARD_PREFIX + name] = (Column(REWARD_PREFIX + name, "", "float32", True, False), term)
    return values


def rollout_features(rollout: Rollout) -> dict[str, dict[str, Any]]:
    """The LeRobot feature entries (dtype, shape, names) of a rollout's columns, videos excluded."""
    features = {}
    for key, (column, value) in rollout_values(rollout).items():
        shape = [1] if column.dtype == "string" or np.ndim(value) == 1 else list(np.shape(value)[1:])
        if len(shape) != 1:
            raise ValueError(f"Rollout column {key} must be [T] or [T, D], got shape {np.shape(value)}")
        features[key] = {"dtype": column.dtype, "shape": shape, "names": _names(key, shape[0])}
    return {**features, **DERIVED_FEATURES}


def arrow_type(feature: dict[str, Any]) -> pa.DataType:
    """The parquet column type of a LeRobot feature entry."""
    # Vectors are variable-size lists: pyarrow cannot read back null entries of fixed-size lists.
    scalar = pa.string() if feature["dtype"] == "string" else pa.from_numpy_dtype(np.dtype(feature["dtype"]))
    return scalar if feature["shape"] == [1] else pa.list_(scalar)


def frames_table(
    rollout: Rollout,
    features: dict[str, dict[str, Any]],
    episode_index: int,
    first_index: int,
    task_index: int,
    fps: int,
) -> pa.Table:
    """The T+1 rows of one episode with a column for every non-video feature of the dataset."""
    frames = rollout.num_steps + 1
    values = rollout_values(rollout)
    done = np.asarray(rollout.terminated, bool) | np.asarray(rollout.truncated, bool)
    derived = {
        "action_is_pad": np.arange(frames) == rollout.num_steps,
        "next.done": np.append(done, False),
        "source": [rollout.source] * frames,
        "pair_id": [rollout.pair_id] * frames,
        "seed": np.full(frames, rollout.seed, np.int64),
        "timestamp": (np.arange(frames) / fps).astype(np.float32),
        "frame_index": np.arange(frames, dtype=np.int64),
        "episode_index": np.full(frames, episode_index, np.int64),
        "index": first_index + np.arange(frames, dtype=np.int64),
        "task_index": np.full(frames, task_index, np.int64),
    }
    arrays = {}
    for key, feature in features.items():
        if feature["dtype"] == "video":
            continue
        if key in derived:
            arrays[key] = _to_arrow(derived[key], feature)
        elif key in values:
            column, value = values[key]
            arrays[key] = _to_arrow(_pad(value, feature) if column.per_step else value, feature)
        else:
            arrays[key] = pa.nulls(frames, arrow_type(feature))
    return pa.table(arrays)


def check_table(table: pa.Table, features: dict[str, dict[str, Any]], where: str) -> None:
    """Raise DatasetError naming the file when a column is missing or has the wrong type."""
    for key, feature in features.items():
        if feature["dtype"] == "video":
            continue
        if key not in table.column_names:
            if key in REQUIRED_KEYS:
                raise DatasetError(
                    f"{where} has no column {key!r} (it has {table.column_names}); the file was "
                    "not written by this dataset's writer: delete the episode and re-collect it"
                )
            continue
        expected, found = arrow_type(feature), table.schema.field(key).type
        if not _same_type(found, expected):
            raise DatasetError(
                f"{where} column {key!r} has type {found}, but meta/info.json declares {expected}; "
                "the file belongs to another dataset: delete the episode and re-collect it"
            )


def column_values(table: pa.Table, key: str, feature: dict[str, Any], where: str) -> Any:
    """A column as a numpy array ([rows] or [rows, D]) or list of str; None when absent or all null."""
    if key not in table.column_names:
        return None
    array = table.column(key).combine_chunks()
    if array.null_count == len(array):
        return None
    if array.null_count:
        raise DatasetError(
            f"{where} column {key!r} is null in {array.null_count} of {len(array)} rows; an episode "
            "stores a field on every row or on none: delete the episode and re-collect it"
        )
    if feature["dtype"] == "string":
        return array.to_pylist()
    if feature["shape"] == [1]:
        return array.to_numpy(zero_copy_only=False)
    size = int(feature["shape"][0])
    lengths = pc.list_value_length(array)
    if pc.min(lengths).as_py() != size or pc.max(lengths).as_py() != size:
        raise DatasetError(
            f"{where} column {key!r} holds vectors of {pc.min(lengths)}..{pc.max(lengths)} values, "
            f"but meta/info.json declares {size}; delete the episode and re-collect it"
        )
    return array.flatten().to_numpy(zero_copy_only=False).reshape(len(array), size)


def rollout_from_table(
    table: pa.Table,
    pixels: np.ndarray,
    features: dict[str, dict[str, Any]],
    provenance: dict[str, Any],
    where: str,
) -> Rollout:
    """Rebuild a Rollout from an episode's rows, its decoded frames and its provenance fields."""
    steps = table.num_rows - 1
    fields: dict[str, Any] = {}
    for column in FIELD_COLUMNS:
        feature = features.get(column.key)
        value = None if feature is None else column_values(table, column.key, feature, where)
        if value is None and column.required:
            raise DatasetError(
                f"{where} has no values for the required column {column.key!r}; delete the "
                "episode and re-collect it"
            )
        if value is not None:
            fields[column.attr] = value[:steps] if column.per_step else value
    terms = {}
    for key, feature in features.items():
        if key.startswith(REWARD_PREFIX) and key != CRITIC_KEY:
            value = column_values(table, key, feature, where)
            if value is not None:
                terms[key[len(REWARD_PREFIX) :]] = value[:steps]
    try:
        return Rollout(pixels=pixels, reward_terms=terms, **fields, **provenance)
    except ValueError as error:
        raise DatasetError(f"{where} does not form a valid Rollout: {error}") from None


def _pad(value: Any, feature: dict[str, Any]) -> Any:
    """Append the final row's padding to a per-step value."""
    if feature["dtype"] == "string":
        return [*value, ""]
    value = np.asarray(value, dtype=feature["dtype"])
    return np.concatenate([value, np.zeros((1, *value.shape[1:]), value.dtype)])


def _to_arrow(value: Any, feature: dict[str, Any]) -> pa.Array:
    if feature["dtype"] == "string":
        return pa.array([str(v) for v in value], pa.string())
    flat = np.ascontiguousarray(value, dtype=feature["dtype"]).reshape(-1)
    if feature["shape"] == [1]:
        return pa.array(flat)
    size = int(feature["shape"][0])
    offsets = pa.array(np.arange(0, flat.size + 1, size, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(flat))


def _same_type(found: pa.DataType, expected: pa.DataType) -> bool:
    """Type equality that ignores the name parquet gives list items ("element" vs "item")."""
    if pa.types.is_list(found) and pa.types.is_list(expected):
        return found.value_type == expected.value_type
    return found == expected


def _names(key: str, size: int) -> list[str] | None:
    if key == "observation.state" and size == len(STATE_NAMES):
        return list(STATE_NAMES)
    if key.startswith("action") and size == len(ACTION_NAMES):
        return list(ACTION_NAMES)
    return None
