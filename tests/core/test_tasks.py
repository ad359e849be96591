"""The task records: every task complete, the Lift record equal to what the shipped models were trained
with, the environment_state slices true to the simulator, and a task added from outside registering."""

import dataclasses

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from wow_gym.envs.experts.catalog import EXPERTS
from wow_gym.envs.robosuite_env import RobosuiteEnv
from wow_gym.registry import imagined_env_ids, register_envs, sim_env_ids
from wow_gym.tasks import (
    TASKS,
    CriticStage,
    Task,
    register_task,
    stages_by_distance,
    task_info,
    unregister_task,
)
from wow_gym.tasks.base import finger_gap, grasped
from wow_gym.world_models.critic.model import LearnedCritic
from wow_gym.world_models.video.config import WorldModelConfig


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_has_what_the_generic_modules_read(name):
    task = TASKS[name]
    assert task.instruction and task.object_name and task.robosuite_env and task.camera
    assert task.steps and all(step.strip() for step in task.steps)
    assert task.max_episode_steps > 0 and 0 < task.near < 0.1
    for where in (task.object_position, task.gripper_offset):
        assert where.stop - where.start == 3, "positions are (x, y, z)"
    assert len(task.critic_stages) >= 3 and task.stage_index("grasped") >= 1  # read by the corruptions
    keys = {stage.failure for stage in task.critic_stages[:-1]} | {"closed_early", "implausible"}
    assert keys == set(task.failure_hints), "one refiner hint per failure the critic can name"
    assert "{distance" in task.critic_stages[0].text and task.success_text
    assert task.distractors and task.instruction not in task.distractors
    assert task.env_id in sim_env_ids() and task.imagined_env_id in imagined_env_ids()
    assert name in EXPERTS, "every task has its scripted expert"
    assert task_info(name.lower()) is task


def test_lift_is_what_the_shipped_models_were_trained_with():
    lift = task_info("lift")
    assert (lift.name, lift.robosuite_env, lift.instruction, lift.camera, lift.max_episode_steps) == (
        "Lift", "Lift", "lift the red cube", "agentview", 100)
    assert lift.steps == ("move the open gripper above the red cube", "lower the gripper around the cube",
                          "close the gripper on the cube", "lift the cube up off the table")
    assert lift.success_height == 0.84 and lift.near == 0.03
    assert [s.name for s in lift.critic_stages] == ["approach", "at_object", "grasped", "lifted"]
    assert [s.failure for s in lift.critic_stages] == ["no_reach", "no_grasp", "no_lift", ""]
    assert list(lift.failure_hints) == ["no_reach", "closed_early", "no_grasp", "no_lift", "implausible"]
    assert lift.distractors == ("push the cube off the table", "wave the arm in the air", "open the drawer",
                                "pour the water")
    state = np.arange(10.0)[None]  # cube_pos (3), cube_quat (4), gripper_to_cube_pos (3)
    assert np.array_equal(state[:, lift.object_position], state[:, :3])
    assert np.array_equal(state[:, lift.gripper_offset], state[:, -3:])
    critic = LearnedCritic.load(task="lift")  # loads only if the stage head has one output per stage
    assert critic.config.task == lift.name and critic.net.stages == len(lift.critic_stages)
    assert WorldModelConfig().instruction == lift.instruction


@pytest.mark.parametrize("name", list(TASKS))
def test_environment_state_slices_match_the_simulator(name):
    task = TASKS[name]
    env = RobosuiteEnv(name, use_camera=False)
    try:
        observation, _ = env.reset(seed=3)
    finally:
        env.close()
    state, eef = observation["environment_state"], observation["agent_pos"][:3]
    # the gripper offset is the object relative to the gripper: as long as object minus gripper
    assert np.linalg.norm(state[task.gripper_offset]) == pytest.approx(
        np.linalg.norm(state[task.object_position] - eef), abs=1e-4)
    assert 0.5 < state[task.object_position][2] < 1.5, "the object stands in the scene, not at the origin"


def test_lift_stage_labels_follow_the_approach():
    lift = task_info("lift")
    offsets = np.array([[0.2, 0, 0], [0.02, 0, 0], [0.0, 0, 0]])
    state = np.concatenate([np.zeros((3, 7)), offsets], axis=1)
    reach = 1 - np.tanh(10 * np.linalg.norm(offsets, axis=1))
    reward = np.array([reach[0], reach[1], reach[2] + 0.25]) / 2.25  # the last frame also grasps
    stages = lift.stage_labels(state, reward, np.array([False, False, False]))
    assert stages.tolist() == [0, 1, 2]
    assert lift.stage_labels(state, reward, np.array([False, False, True]))[-1] == 3


def _twin() -> Task:
    stages = (CriticStage("approach", "no_reach", "the gripper stays {distance:.0f} cm from the block"),
              CriticStage("at_object", "no_grasp", "the gripper reaches the block but does not close on it"),
              CriticStage("grasped", "no_raise", "the block is grasped but not raised"),
              CriticStage("raised", "", "the block is raised"))
    return Task(name="RaiseBlock", robosuite_env="Lift", instruction="raise the block", object_name="block",
                steps=("reach the block", "grasp it", "raise it"), object_position=slice(0, 3),
                gripper_offset=slice(7, 10), critic_stages=stages,
                stage_labels=stages_by_distance(slice(7, 10), 0.03, len(stages)),
                failure_hints={"no_reach": "reach the block", "closed_early": "keep the gripper open",
                               "no_grasp": "close the gripper", "no_raise": "raise the block",
                               "implausible": "move the block only by touching it"},
                distractors=("drop the block",), max_episode_steps=30)


def test_a_new_task_registers_and_its_env_runs():
    task = register_task(_twin())
    try:
        register_envs()
        assert task.env_id == "WoW/RaiseBlock-v0" and task.env_id in gym.registry
        assert task.imagined_env_id in imagined_env_ids()
        env = gym.make(task.env_id, use_camera=False)
        try:
            observation, _ = env.reset(seed=0)
            assert env.spec.max_episode_steps == 30 and env.unwrapped.instruction == "raise the block"
            assert observation["environment_state"][task.object_position].shape == (3,)
        finally:
            env.close()
        with pytest.raises(ValueError, match="already registered"):
            register_task(_twin())
    finally:
        unregister_task(task.name)
        for env_id in (task.env_id, task.imagined_env_id):
            gym.registry.pop(env_id, None)
    assert "RaiseBlock" not in TASKS and task.env_id not in gym.registry


def test_a_task_without_a_hint_for_a_failure_is_refused():
    stages = (CriticStage("approach", "no_reach", "{distance}"), CriticStage("done", "", "done"))
    with pytest.raises(ValueError, match="no_reach"):
        Task(name="X", robosuite_env="Lift", instruction="x", object_name="x", steps=("x",),
             object_position=slice(0, 3), gripper_offset=slice(7, 10), critic_stages=stages,
             stage_labels=stages_by_distance(slice(7, 10), 0.03, 2), failure_hints={}, distractors=())
    with pytest.raises(ValueError, match="rest_on needs the table's rest_height"):
        dataclasses.replace(_twin(), rest_on=TASKS["Stack"].rest_on)
    with pytest.raises(ValueError, match="scene_rest_height needs the still object's scene_pose"):
        dataclasses.replace(_twin(), scene_rest_height=0.825)
    with pytest.raises(ValueError, match="has no rest height"):
        _twin().rest_heights(np.zeros((1, 3)), np.zeros((1, 10)))
    stack = TASKS["Stack"]
    with pytest.raises(ValueError, match="scene_pose and scene_extents go together"):
        dataclasses.replace(stack, scene_extents=None)
    with pytest.raises(ValueError, match="scene_pose must take 7 entries"):
        dataclasses.replace(stack, scene_pose=slice(7, 10))


def test_stack_success_reward_and_derived_offsets_on_state_match_the_simulator():
    """Stack's success test, shaped reward and derived offsets on state, against robosuite's own on poses set
    in MuJoCo: the red cube resting on the green one (success), beside it on the table, held above it and
    held up off to the side (no success)."""
    task = TASKS["Stack"]
    env = RobosuiteEnv("Stack", use_camera=False)
    try:
        env.reset(seed=4)
        start, cube = env.get_sim_state(), env.object_qpos_index()
        green = env.robosuite.sim.data.body_xpos[env.robosuite.cubeB_body_id].copy()
        verdicts = []
        for place, offset in (("on", (0.0, 0.0, 0.0449)), ("beside", (0.08, 0.0, -0.005)),
                              ("above", (0.0, 0.0, 0.12)), ("aside", (0.15, -0.1, 0.1))):
            sim_state = start.copy()
            sim_state[cube[:3]] = green + np.asarray(offset)
            env._restore(sim_state)
            observation = env._refresh()  # robosuite's relative observables read its cache of the last pass
            state = np.asarray(observation["object-state"], np.float32)[None]
            agent_pos = env._observation(observation)["agent_pos"][None]
            simulated = bool(env.robosuite._check_success())
            success = task.state_success(state, agent_pos)
            verdicts.append((place, simulated, bool(success[0])))
            terms = task.state_reward(state, agent_pos, success)
            reward = sum(float(v[0]) for v in terms.values())
            assert reward == pytest.approx(env.robosuite.reward(None), abs=1e-5), place
            derived = state.copy()
            derived[:, 14:17] = derived[:, 20:23] = 0.0
            np.testing.assert_allclose(task.derive_state(derived, agent_pos), state, atol=1e-5)
            if place == "on":  # resting on the green cube's top
                rest = task.rest_heights(state[:, task.object_position], state)
                assert rest[0] == pytest.approx(state[0, task.object_position.stop - 1], abs=2e-3), place
    finally:
        env.close()
    assert verdicts == [("on", True, True), ("beside", False, False), ("above", False, False),
                        ("aside", False, False)]


def test_pickplacecan_success_reward_and_derived_offsets_on_state_match_the_simulator(rng):
    """PickPlaceCan's success test, shaped reward and can-in-the-gripper's-frame entries on state, against
    robosuite's on states set in MuJoCo (the gripper turned by random actions): the can in its bin, in the bin
    with the gripper at it, beside the bin, and up in the air above the bin."""
    task = TASKS["PickPlaceCan"]
    env = RobosuiteEnv("PickPlaceCan", use_camera=False)
    try:
        env.reset(seed=4)
        for _ in range(5):
            env.step(rng.uniform(-1, 1, 7).astype(np.float32))
        start, can = env.get_sim_state(), env.object_qpos_index()
        # robosuite parks the three other objects at z = 10 m, whence they fall to the floor by about step 30;
        # until then its lifting stage counts them as lifted (shaped_reward leaves that out): land them
        for other in env.robosuite.objects[:3]:
            joint = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_JOINT, other.joints[0])
            start[env.qpos_slice.start + env.model.jnt_qposadr[joint] + 2] = 0.05
        verdicts = []
        places = {"in the bin": (0.2, 0.40, 0.86), "beside the bin": (0.2, 0.0, 0.86),
                  "above the bin": (0.2, 0.35, 1.0)}
        for place in ("in the bin", "held in the bin", "beside the bin", "above the bin"):
            sim_state = start.copy()
            if place == "held in the bin":
                eef = env.robosuite.sim.data.site_xpos[env.robosuite.robots[0].eef_site_id["right"]]
                sim_state[can[:3]] = eef + np.array([0.0, 0.0, -0.02])
            else:
                sim_state[can[:3]] = places[place]
            env._restore(sim_state)
            observation = env._refresh()  # robosuite's relative observables read its cache of the last pass
            simulated = bool(env.robosuite._check_success())
            state = np.asarray(observation["object-state"], np.float32)[None]
            agent_pos = env._observation(observation)["agent_pos"][None]
            success = task.state_success(state, agent_pos)
            verdicts.append((place, simulated, bool(success[0])))
            terms = task.state_reward(state, agent_pos, success)
            reward = sum(float(v[0]) for v in terms.values())
            assert reward == pytest.approx(env.robosuite.reward(None), abs=1e-5), place
            derived = state.copy()
            derived[:, :7] = 0.0
            derived = task.derive_state(derived, agent_pos)
            np.testing.assert_allclose(derived[:, :3], state[:, :3], atol=1e-5)
            sign = np.sign((derived[:, 3:7] * state[:, 3:7]).sum())  # q and -q: one rotation
            np.testing.assert_allclose(sign * derived[:, 3:7], state[:, 3:7], atol=1e-5)
            if place == "in the bin":  # standing on the bin's floor, as it starts in the other bin
                rest = task.rest_heights(state[:, task.object_position], state)
                assert rest[0] == pytest.approx(state[0, task.object_position.stop - 1], abs=2e-3)
    finally:
        env.close()
    assert verdicts == [("in the bin", True, True), ("held in the bin", False, False),
                        ("beside the bin", False, False), ("above the bin", False, False)]


def test_door_success_reward_and_derived_offset_on_state_match_the_simulator():
    """Door's success test, shaped reward and derived door offset on state, against robosuite's own on hinge
    and handle angles set in MuJoCo: shut, the handle turned, ajar below the success angle and open."""
    task = TASKS["Door"]
    env = RobosuiteEnv("Door", use_camera=False)
    try:
        env.reset(seed=4)
        start, hinge = env.get_sim_state(), env.object_qpos_index()[0]
        handle = env.qpos_slice.start + env.robosuite.handle_qpos_addr
        verdicts = []
        for place, angles in (("shut", (0.0, 0.0)), ("turned", (0.0, 1.2)), ("ajar", (0.2, 1.2)),
                              ("open", (0.4, 0.3))):
            sim_state = start.copy()
            sim_state[[hinge, handle]] = angles
            env._restore(sim_state)
            observation = env._refresh()  # robosuite's relative observables read its cache of the last pass
            state = np.asarray(observation["object-state"], np.float32)[None]
            agent_pos = env._observation(observation)["agent_pos"][None]
            simulated = bool(env.robosuite._check_success())
            success = task.state_success(state, agent_pos)
            verdicts.append((place, simulated, bool(success[0])))
            terms = task.state_reward(state, agent_pos, success)
            reward = sum(float(v[0]) for v in terms.values())
            assert reward == pytest.approx(env.robosuite.reward(None), abs=1e-5)
            derived = state.copy()
            derived[:, 7:10] = 0.0
            np.testing.assert_allclose(task.derive_state(derived, agent_pos), state, atol=1e-5)
    finally:
        env.close()
    assert verdicts == [("shut", False, False), ("turned", False, False), ("ajar", False, False),
                        ("open", True, True)]


@pytest.mark.parametrize("name", list(TASKS))
def test_the_shaped_reward_and_support_on_state_follow_the_simulator_along_a_noisy_expert_episode(name):
    """Each task's state_reward on the simulator's own state, step by step along one noisy-expert episode
    (grasps, carries, releases; misses where the noise fails them), against robosuite's reward: equal to
    5e-3 on at least 90% of the steps. The remainder: the fingers' gap standing in for robosuite's contact
    test for a grasp, and its success against the task's state_success. And the support rule the world model
    holds a carried object to (Task.rest_heights, lean, grasp test), where the task has one: the simulator's
    object stands higher than its rest height + lean without the grasp test holding it, and does not fall in
    the next step, on at most 2% of the steps (an object tipped on an edge or against open fingers)."""
    from wow_gym.envs.experts.catalog import make_expert
    from wow_gym.envs.experts.scripted import ExpertNoiseConfig

    task = TASKS[name]
    env = RobosuiteEnv(name, use_camera=False)
    noise = ExpertNoiseConfig(action_std=0.15, pause_prob=0.03, target_jitter=0.02)
    expert = make_expert(name, noise, np.random.default_rng(0))
    try:
        observation, _ = env.reset(seed=5001)
        expert.reset(env)
        equal, success_seen = [], False
        states, poses = [observation["environment_state"]], [observation["agent_pos"]]
        for _ in range(task.max_episode_steps):
            action, _ = expert.act(observation)
            observation, reward, _, _, info = env.step(action)
            state, agent_pos = observation["environment_state"][None], observation["agent_pos"][None]
            success = (task.state_success(state, agent_pos) if task.state_success is not None
                       else state[:, task.object_position.stop - 1] > task.success_height)
            terms = task.state_reward(state, agent_pos, success)
            equal.append(abs(sum(float(v[0]) for v in terms.values()) - reward) < 5e-3)
            success_seen |= bool(info["is_success"])
            states.append(state[0])
            poses.append(agent_pos[0])
    finally:
        env.close()
    assert success_seen, f"the {name} expert episode should succeed; pick another seed"
    assert np.mean(equal) >= 0.9, f"{name}: the state reward equals the simulator's on {np.mean(equal):.1%}"
    if task.rest_height is None:
        return
    state, agent_pos = np.stack(states), np.stack(poses)
    position = state[:, task.object_position]
    reach = np.linalg.norm(position - agent_pos[:, :3], axis=1)
    held = grasped(reach, finger_gap(agent_pos), task.grasp_reach, task.grasp_gap)
    unsupported = (position[:-1, 2] > task.rest_heights(position, state)[:-1] + task.lean) & ~held[:-1]
    stays = position[1:, 2] > position[:-1, 2] - 0.005  # not falling
    assert (unsupported & stays).mean() <= 0.02, f"{name}: the rule would drop a supported object"
