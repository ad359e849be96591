"""Domain randomization: off by default, seeded, changes the scene, restores nominal values."""

import gymnasium as gym
import numpy as np

from wow_gym.envs.wrappers import DomainRandomizationConfig, RandomizeDomain


def test_domain_randomization_is_seeded_and_changes_frames():
    plain = gym.make("WoW/Lift-v0")
    nominal_pos = plain.unwrapped.model.cam_pos.copy()
    randomized = RandomizeDomain(gym.make("WoW/Lift-v0"))
    frame_plain = plain.reset(seed=0)[0]["pixels"]
    frame_a = randomized.reset(seed=1)[0]["pixels"]
    mass_a = randomized.unwrapped.model.body_mass.copy()
    frame_b = randomized.reset(seed=2)[0]["pixels"]
    frame_a_again = randomized.reset(seed=1)[0]["pixels"]
    assert np.array_equal(plain.unwrapped.model.cam_pos, nominal_pos), "plain envs are not randomized"
    assert not np.array_equal(frame_plain, frame_a) and not np.array_equal(frame_a, frame_b)
    assert np.array_equal(frame_a, frame_a_again)
    assert np.array_equal(mass_a, randomized.unwrapped.model.body_mass)
    plain.close(), randomized.close()


def test_disabled_parts_stay_nominal():
    env = RandomizeDomain(gym.make("WoW/Lift-v0", use_camera=False),
                          DomainRandomizationConfig(camera=False, lighting=False, colors=False, dynamics=True))
    model = env.unwrapped.model
    cam, light, rgba, mass = model.cam_pos.copy(), model.light_diffuse.copy(), model.geom_rgba.copy(), model.body_mass.copy()
    env.reset(seed=0)
    assert np.array_equal(model.cam_pos, cam) and np.array_equal(model.light_diffuse, light)
    assert np.array_equal(model.geom_rgba, rgba)
    assert not np.array_equal(model.body_mass, mass)
    env.close()
