# Two commands set everything up from a fresh clone: `make demo` and `make test`.
# Both create .venv and install the pinned dependencies on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl

.PHONY: install demo test test-slow bench lift-data world-model eval-world-model bench-imagine idm eval-idm critic eval-critic policy policy-compare clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/wow-gym demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --durations=15

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

bench: $(STAMP)
	$(VENV)/bin/wow-gym bench sim

# The shipped Lift world model, reproducible end to end: data (training seeds from 0, held-out seeds from
# 900000, never used in training), training, evaluation against the simulator, and the speed benchmark.
WG := $(VENV)/bin/wow-gym
NOISY := noise.action_std=0.15 noise.pause_prob=0.03 noise.target_jitter=0.02 noise.failure_prob=0.25
# $(call ship,<training out>,<name>): a finished run's checkpoint becomes world_models/checkpoints/<name>.
ship = mkdir -p world_models/checkpoints/$(2) && \
	cp $(1)/checkpoint/model.safetensors $(1)/checkpoint/config.json world_models/checkpoints/$(2)/
lift-data: $(STAMP)
	$(WG) collect task=lift policy=expert episodes=12 seed=900000 root=data/lift/heldout-expert
	$(WG) collect task=lift policy=expert episodes=12 seed=910000 $(NOISY) root=data/lift/heldout-noisy
	$(WG) collect task=lift policy=walk episodes=12 seed=920000 root=data/lift/heldout-walk
	$(WG) collect task=lift policy=random episodes=8 seed=930000 root=data/lift/heldout-random
	$(WG) collect task=lift policy=expert episodes=50 seed=940000 root=data/lift/heldout-replay-expert
	$(WG) collect task=lift policy=expert episodes=80 seed=0 root=data/lift/train-expert
	$(WG) collect task=lift policy=expert episodes=80 seed=10000 $(NOISY) root=data/lift/train-noisy
	$(WG) collect task=lift policy=walk episodes=50 seed=20000 root=data/lift/train-walk

# Trains into outputs/world-models/lift (rerun to resume), then ships its checkpoint as the default.
world-model: lift-data
	$(WG) train-world-model task=lift
	$(call ship,outputs/world-models/lift,lift)

eval-world-model: lift-data
	$(WG) eval-world-model task=lift

bench-imagine: $(STAMP)
	$(WG) bench imagine task=lift

# FM-IDM: trains every ablation variant into outputs/idm/lift (rerun to resume), ships FM-IDM as the default.
idm: lift-data
	$(WG) train-idm task=lift
	$(call ship,outputs/idm/lift,lift-idm)

eval-idm: lift-data
	$(WG) eval-idm task=lift

# SOPHIA's critic: trains into outputs/critic/lift (rerun to resume), ships it as the default reward.
critic: lift-data
	$(WG) train-critic task=lift
	$(call ship,outputs/critic/lift,lift-critic)

eval-critic: lift-data
	$(WG) eval-critic task=lift

# The shipped Lift policy: behaviour cloning from pixels on the expert and noisy-expert data (about 15 min),
# evaluated on 20 held-out sim seeds, shipped as policies/checkpoints/lift-policy.
policy: lift-data
	$(WG) train-policy out=outputs/policies/lift-bc total_timesteps=0 eval.episodes=20
	$(PY) -m wow_gym.policies.shipped outputs/policies/lift-bc/bc.zip lift

# BC + PPO in imagination against the same recipe in the simulator, 15 min of RL each from the same warm
# start, both judged in the sim twin on 20 held-out seeds (curves.png, summary.json in each run folder).
RL_RUN := init=outputs/policies/lift-bc/bc.zip total_timesteps=1000000 max_minutes=15 eval.every_steps=8192 \
	eval.episodes=20 threads=1
policy-compare: policy
	$(WG) train-policy env=WoW/Lift-Imagined-v0 out=outputs/policies/lift-rl-imagined $(RL_RUN)
	$(WG) train-policy env=WoW/Lift-v0 out=outputs/policies/lift-rl-sim $(RL_RUN)

# Policies in imagination and in the simulator from the same start states; add yours with
# `make evaluate-policies ARGS="+run=outputs/<train command>/<timestamp>"` (or +sb3=model.zip).
.PHONY: evaluate-policies
evaluate-policies: $(STAMP)
	$(WG) evaluate task=lift $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info
