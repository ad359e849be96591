# Two commands set everything up from a fresh clone: `make demo` and `make test`.
# Both create .venv and install the pinned dependencies on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl

.PHONY: install demo test test-slow bench wowbench lift-data lift-bc-data tasks-data policy-tasks policy-stack-imagined idm-tasks critic-tasks eval-tasks tune-idm-tasks world-model-stack stack-unseen-data eval-world-model-stack evaluate-stack evaluate-stack-heads evaluate-stack-imagined-bc evaluate-lift-tasks evaluate-pooled evaluate-pooled-switches bench-imagine-switches bench-imagine-task evaluate-door replay-check-door replay-check-stack replay-check-stack-paired replay-check-pickplacecan evaluate-pickplacecan world-model-tasks world-model-door-own tasks-unseen-data eval-world-model-door eval-world-model-pickplacecan eval-world-model-tasks eval-arm-layer-stack eval-arm-layer-door eval-arm-layer-pickplacecan eval-arm-layer-tasks bench-imagine-tasks idm-pose-lift world-model world-model-pose512 world-model-dagger eval-world-model eval-one-step eval-open-loop-all tune-data tune-deadband tune-object-layer bench-imagine ray-check idm eval-idm tune-idm-imagined critic eval-critic critic-near-miss policy policy-compare policy-compare-keep policy-compare-30 policy-compare-30-arm policy-compare-30-absorbing policy-compare-30-asymmetric policy-compare-30-switches policy-sil-10 lift-bc-starts policy-short-10 world-model-contact replay-check evaluate-lift evaluate-shipped evaluate-lift-30 evaluate-lift-30-arm evaluate-lift-30-absorbing evaluate-lift-30-switches lift-bc-gap policy-dr evaluate-unseen deploy-check clean browser

install: $(STAMP) browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,ray,wow]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/wow-gym demo

test: $(STAMP) browser
	$(PY) -m pytest -n 2 --durations=15

# The browser test (tests/core/test_html_report.py) opens a report in headless Chromium: Debian's chromium
# package, installed here when missing (as root, or through passwordless sudo). WOW_GYM_CHROMIUM=/path/to/chrome
# uses another Chromium or Chrome.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	[ -n "$$WOW_GYM_CHROMIUM" ] || \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "make: the browser test needs Chromium: install Chromium or Chrome, then set WOW_GYM_CHROMIUM" >&2; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	elif sudo -n true 2>/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "make: the browser test needs Chromium and this user cannot install it;" \
			"run 'sudo apt-get install chromium' (or set WOW_GYM_CHROMIUM=/path/to/chrome)" >&2; \
	fi

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

bench: $(STAMP)
	$(VENV)/bin/wow-gym bench sim

# The shipped Lift world model, reproducible end to end: data (training seeds from 0, held-out seeds from
# 900000, never used in training), training, evaluation against the simulator, and the speed benchmark.
WG := $(VENV)/bin/wow-gym
NOISY := noise.action_std=0.15 noise.pause_prob=0.03 noise.target_jitter=0.02 noise.failure_prob=0.25
# Kinds of action sequence absent from training (held out only): the expert with much heavier noise and
# failures, a shaky expert (twice the training noise, more pauses) and a pausing one (1.5x the noise, five
# times the pauses, each longer), which lifts more often.
HEAVY := noise.action_std=0.4 noise.pause_prob=0.06 noise.target_jitter=0.04 noise.failure_prob=0.4
SHAKY := noise.action_std=0.3 noise.pause_prob=0.1 noise.target_jitter=0.03
PAUSING := noise.action_std=0.22 noise.pause_prob=0.15 noise.pause_steps=8
# Hard negatives for the critic (train-critic's defaults; the world model does not train on them): the noisy
# expert failing on purpose every episode, and the noisy expert handing over to a random walk at step 15-70.
FAILING := noise.action_std=0.15 noise.pause_prob=0.03 noise.target_jitter=0.02 noise.failure_prob=1.0
# Near misses (world-model-pose512 and critic-near-miss train on them; no shipped model does): the noisy expert
# closing just above the cube or beside it in every episode, then lifting as if it held it, as the BC policy fails.
NEAR_MISSES := $(FAILING) 'noise.failure_kinds=[near_miss]'
# $(call ship,<training out>,<name>): a finished run's checkpoint becomes world_models/checkpoints/<name>.
ship = mkdir -p world_models/checkpoints/$(2) && \
	cp $(1)/checkpoint/model.safetensors $(1)/checkpoint/config.json world_models/checkpoints/$(2)/
# lift-data ends with the shipped BC policy's own episodes on held-out seeds, clean and with action noise: an
# action kind no world model trains on, and the one imagination must get right for RL in it to pay off in physics.
lift-data: $(STAMP)
	$(WG) collect task=lift policy=expert episodes=12 seed=900000 root=data/lift/heldout-expert
	$(WG) collect task=lift policy=expert episodes=12 seed=910000 $(NOISY) root=data/lift/heldout-noisy
	$(WG) collect task=lift policy=walk episodes=12 seed=920000 root=data/lift/heldout-walk
	$(WG) collect task=lift policy=random episodes=8 seed=930000 root=data/lift/heldout-random
	$(WG) collect task=lift policy=expert episodes=50 seed=940000 root=data/lift/heldout-replay-expert
	$(WG) collect task=lift policy=expert episodes=20 seed=950000 $(HEAVY) root=data/lift/heldout-heavy-noise
	$(WG) collect task=lift policy=expert episodes=20 seed=960000 $(SHAKY) root=data/lift/heldout-shaky
	$(WG) collect task=lift policy=expert episodes=20 seed=970000 $(PAUSING) root=data/lift/heldout-pausing
	$(WG) collect task=lift policy=expert episodes=80 seed=0 root=data/lift/train-expert
	$(WG) collect task=lift policy=expert episodes=80 seed=10000 $(NOISY) root=data/lift/train-noisy
	$(WG) collect task=lift policy=walk episodes=50 seed=20000 root=data/lift/train-walk
	$(WG) collect task=lift policy=expert episodes=60 seed=30000 $(FAILING) root=data/lift/train-failures
	$(WG) collect task=lift policy=expert-walk episodes=60 seed=40000 $(NOISY) root=data/lift/train-expert-walk
	$(WG) collect task=lift policy=expert episodes=60 seed=45000 $(NEAR_MISSES) root=data/lift/train-near-miss
	$(WG) collect task=lift policy=shipped episodes=24 seed=980000 root=data/lift/heldout-bc
	$(WG) collect task=lift policy=shipped episodes=24 seed=985000 noise.action_std=0.2 root=data/lift/heldout-bc-noisy

# On-policy data for the world model's dynamics (as in DAgger): the shipped BC policy's own episodes in the
# simulator, clean and with action noise (training seeds 50000-70039). Its failures (fingers landing on the cube,
# closing beside it) are what imagination must reproduce for training in it to pay off in physics.
lift-bc-data: $(STAMP)
	$(WG) collect task=lift policy=shipped episodes=40 seed=50000 root=data/lift/train-bc
	$(WG) collect task=lift policy=shipped episodes=40 seed=60000 noise.action_std=0.15 root=data/lift/train-bc-noisy15
	$(WG) collect task=lift policy=shipped episodes=40 seed=70000 noise.action_std=0.3 root=data/lift/train-bc-noisy30

# Trains into outputs/world-models/lift (rerun to resume), then ships its checkpoint as the default: the base
# model, 2,000 further DiT steps weighted to moving cells, then the object state (object dynamics with its
# moving gate, the pixel probe) added, the pose dynamics retrained on 24-step rollouts, and the one-step sampler
# distilled from the DiT in three runs of 1,500 + 1,000 + 1,000 steps (imagining at sampling_steps=1 uses it).
NO_OBJECTS := object_dynamics=false pixel_probe=false object_map=false
world-model: lift-data
	$(WG) train-world-model task=lift $(NO_OBJECTS)
	$(WG) train-world-model task=lift init=outputs/world-models/lift/checkpoint motion_weight=2.0 dit.steps=2000 \
		dit.lr=2.0e-4 $(NO_OBJECTS) out=outputs/world-models/lift-motion
	$(WG) train-world-model task=lift init=outputs/world-models/lift-motion/checkpoint "stages=[objects,probe]" \
		out=outputs/world-models/lift-objects
	$(WG) train-world-model task=lift init=outputs/world-models/lift-objects/checkpoint "stages=[pose]" \
		pose_unroll=24 pose.batch_size=128 out=outputs/world-models/lift-pose24
	$(WG) train-world-model task=lift init=outputs/world-models/lift-pose24/checkpoint "stages=[distill]" \
		out=outputs/world-models/lift-distill
	$(WG) train-world-model task=lift init=outputs/world-models/lift-distill/checkpoint "stages=[distill]" \
		distill.steps=1000 distill.lr=1.0e-4 out=outputs/world-models/lift-distill2
	$(WG) train-world-model task=lift init=outputs/world-models/lift-distill2/checkpoint "stages=[distill]" \
		distill.steps=1000 distill.lr=1.0e-4 out=outputs/world-models/lift-distill3
	$(call ship,outputs/world-models/lift-distill3,lift)

# The one-step sampler against two steps of the DiT it was distilled from, open loop on all eight held-out sets
# (the four of eval-world-model, 50 more expert episodes and the three action kinds absent from training: heavy
# noise, shaky, pausing; 616 starts), with and without the deadband (the 2-step runs are the DiT the shipped model
# had before the distillation); then the difference of their action gains (true vs shuffled actions), paired
# start by start, with its interval, over all starts and per held-out set.
HELDOUT_OPEN_LOOP := data/lift/heldout-expert,data/lift/heldout-noisy,data/lift/heldout-walk,data/lift/heldout-random
HELDOUT_EXTRA := data/lift/heldout-replay-expert,data/lift/heldout-heavy-noise,data/lift/heldout-shaky,data/lift/heldout-pausing
ONE_STEP_EVAL := plan_horizon=0 "interaction_datasets=[]" "steps_sweep=[]" examples=0 "datasets=[$(HELDOUT_OPEN_LOOP),$(HELDOUT_EXTRA)]"
eval-one-step: lift-data
	for steps in 1 2; do for band in 24 0; do \
		$(WG) eval-world-model task=lift sampling_steps=$$steps residual_deadband=$$band $(ONE_STEP_EVAL) \
			out=outputs/eval-world-model/one-step/steps$$steps-band$$band || exit 1; done; done
	for band in 24 0; do $(PY) -c "from wow_gym.world_models.video.evaluation import compare_action_gain as c; \
		run = 'outputs/eval-world-model/one-step/steps{}-band$$band'.format; \
		print('deadband $$band: action gain at h=8, 1 step minus 2 steps, start by start (95 % CI)'); \
		kinds = [None, 'expert', 'noisy', 'walk', 'random', 'replay-expert', 'heavy-noise', 'shaky', 'pausing']; \
		[print(f'  {k or \"all\"}: {m:+.2f} dB ({lo:+.2f} to {hi:+.2f})') for k in kinds for m, lo, hi in [c(run(1), run(2), 8, k)]]"; \
	done

# The shipped model's open loop on all eight held-out sets (kinds of action absent from training included), with
# and without the deadband: PSNR against copy-last and the action gain per set.
eval-open-loop-all: lift-data
	for band in 24 0; do \
		$(WG) eval-world-model task=lift residual_deadband=$$band $(ONE_STEP_EVAL) \
			out=outputs/eval-world-model/all-sets/band$$band || exit 1; done

# The shipped model with its pose dynamics twice as wide (pose_width=512), trained afresh for 6,000 steps of
# 8-step rollouts on the world model's data plus the failing, expert-then-walk and near-miss episodes; then
# eval-world-model on it. Not shipped (see README): closer to the simulated arm on the tuning episodes, fewer
# lifts seen on the held-out ones.
POSE_DATA := 'datasets=[{root: data/lift/train-expert}, {root: data/lift/train-noisy}, \
	{root: data/lift/train-walk, instruction: move the arm around}, {root: data/lift/train-failures}, \
	{root: data/lift/train-expert-walk}, {root: data/lift/train-near-miss}]'
world-model-pose512: lift-data
	$(WG) train-world-model task=lift init=world_models/checkpoints/lift "stages=[pose]" pose_width=512 \
		pose.steps=6000 $(POSE_DATA) out=outputs/world-models/lift-pose512
	$(WG) eval-world-model task=lift checkpoint=outputs/world-models/lift-pose512/checkpoint \
		out=outputs/eval-world-model/pose512

# The same model with pose dynamics that reads the object state (pose_objects: fingers stop on the cube between
# them and close fully on nothing), trained afresh on 8- then 24-step rollouts; not shipped (see README).
world-model-contact: world-model
	$(WG) train-world-model task=lift init=outputs/world-models/lift-objects/checkpoint "stages=[pose]" \
		pose_objects=true out=outputs/world-models/lift-posobj8
	$(WG) train-world-model task=lift init=outputs/world-models/lift-posobj8/checkpoint "stages=[pose]" \
		pose_objects=true pose_unroll=24 pose.batch_size=128 out=outputs/world-models/lift-posobj24
	$(WG) eval-world-model task=lift checkpoint=outputs/world-models/lift-posobj24/checkpoint \
		out=outputs/eval-world-model/posobj24-band24

# The same contact-aware pose dynamics trained with the BC policy's own episodes added (lift-bc-data, as in
# DAgger), from the shipped model, and the object dynamics trained further on them; then the paired evaluation
# of evaluate-lift-30 (10 policies) and eval-world-model on it. Not shipped (see README).
WITH_BC := 'datasets=[{root:data/lift/train-expert},{root:data/lift/train-noisy},{root:data/lift/train-walk,instruction:"move the arm around"},{root:data/lift/train-bc},{root:data/lift/train-bc-noisy15},{root:data/lift/train-bc-noisy30}]'
world-model-dagger: lift-data lift-bc-data policy-compare-30
	$(WG) train-world-model task=lift init=world_models/checkpoints/lift "stages=[pose]" pose_objects=true \
		$(WITH_BC) out=outputs/world-models/lift-dagger8
	$(WG) train-world-model task=lift init=outputs/world-models/lift-dagger8/checkpoint "stages=[pose]" \
		pose_objects=true pose_unroll=24 pose.batch_size=128 $(WITH_BC) out=outputs/world-models/lift-dagger24
	$(WG) train-world-model task=lift init=outputs/world-models/lift-dagger24/checkpoint "stages=[objects]" \
		$(WITH_BC) out=outputs/world-models/lift-dagger
	$(WG) evaluate task=lift n_episodes=16 seed=960000 'policies=$(call PAIR_SET,rl30)' \
		world_model=outputs/world-models/lift-dagger/checkpoint out=outputs/evaluate/lift-30-dagger
	$(WG) eval-world-model task=lift checkpoint=outputs/world-models/lift-dagger/checkpoint \
		out=outputs/eval-world-model/dagger

eval-world-model: lift-data
	$(WG) eval-world-model task=lift

# How the shipped model's residual_deadband (24) was picked: open-loop figures per band on tuning episodes
# (seeds 800000+: neither training nor held-out data), one eval-world-model run per band.
TUNE := data/lift/tune-expert,data/lift/tune-noisy,data/lift/tune-walk,data/lift/tune-random
tune-data: $(STAMP)
	$(WG) collect task=lift policy=expert episodes=8 seed=800000 root=data/lift/tune-expert
	$(WG) collect task=lift policy=expert episodes=8 seed=810000 $(NOISY) root=data/lift/tune-noisy
	$(WG) collect task=lift policy=walk episodes=8 seed=820000 root=data/lift/tune-walk
	$(WG) collect task=lift policy=random episodes=6 seed=830000 root=data/lift/tune-random

tune-deadband: tune-data
	for band in 0 8 12 16 24 32; do \
		$(WG) eval-world-model task=lift "datasets=[$(TUNE)]" residual_deadband=$$band plan_horizon=0 \
			"steps_sweep=[]" examples=0 out=outputs/eval-world-model/tune-deadband-$$band || exit 1; \
	done

# How the shipped model's object layer was chosen, on the same tuning episodes: off, on (objects drawn where
# lifted or dropped), and on with pushes along the table drawn too; open loop and whole-episode interaction.
tune-object-layer: tune-data
	for mode in off on pushes; do \
		case $$mode in off) layer="object_layer=false";; on) layer="object_layer=true object_layer_pushes=false";; \
			pushes) layer="object_layer=true object_layer_pushes=true";; esac; \
		$(WG) eval-world-model task=lift "datasets=[$(TUNE)]" "interaction_datasets=[$(TUNE)]" $$layer plan_horizon=0 \
			"steps_sweep=[]" examples=0 out=outputs/eval-world-model/tune-layer-$$mode || exit 1; \
	done

# The full table (batch 1/8/32/128 x 1/2/4 steps, eager), then the issue-18 row: batch 32 at 1 step with the
# DiTs torch.compiled against one simulator process, alternated 5 times in one run (medians).
bench-imagine: $(STAMP)
	$(WG) bench imagine task=lift
	$(WG) bench imagine task=lift compile=true "batch_sizes=[32]" "sampling_steps=[1]" steps=50 repeats=5 sim_num_envs=1

# WoWBench-style leaderboard of every world-model backend against MuJoCo, on the default budget (README
# "World-model backends"); outputs/wowbench/leaderboard.md, results.json, report.html.
wowbench: $(STAMP)
	$(WG) wowbench task=lift out=outputs/wowbench

# Paired evaluation of 4 policies x 16 held-out starts, serial and on a local 2-CPU Ray cluster: the same
# episodes, and each run's wall-clock (evaluate's own clock, in results.json). Then simulator work alone: 40
# random-walk episodes collected serially, on the Ray cluster and in 2 local processes (each line ends in its time).
RAY_EVAL := "policies=[{name:random,kind:random},{name:zero,kind:zero},{name:shipped,kind:shipped},{name:shipped-noisy,kind:shipped,noise_std:0.3}]" \
	task=lift n_episodes=16 seed=960000 max_steps=50 gifs=false progress=false
ray-check: $(STAMP)
	$(WG) evaluate $(RAY_EVAL) out=outputs/ray-check/serial
	$(WG) evaluate $(RAY_EVAL) ray.address=local ray.num_cpus=2 out=outputs/ray-check/ray
	$(PY) -c 'import json; a, b = (json.load(open(f"outputs/ray-check/{w}/results.json")) for w in ("serial", "ray")); \
		same = [x["episodes"] == y["episodes"] for x, y in zip(a["policies"], b["policies"])]; \
		print("episodes identical per policy:", same, "| seconds: serial", round(a["seconds"], 1), "ray", round(b["seconds"], 1), \
			"| cores the serial run kept busy:", round(a["cpu_seconds"] / a["seconds"], 2)); \
		raise SystemExit(0 if same and all(same) else 1)'
	rm -rf outputs/ray-check/collect && mkdir -p outputs/ray-check/collect
	for mode in serial ray processes; do \
		case $$mode in serial) how=workers=1;; ray) how="ray.address=local ray.num_cpus=2";; processes) how=workers=2;; esac; \
		$(WG) collect task=lift policy=walk episodes=40 seed=990000 max_steps=50 progress=false $$how \
			root=outputs/ray-check/collect/$$mode > outputs/ray-check/collect/$$mode.log || exit 1; \
		echo "collect, $$mode: $$(tail -1 outputs/ray-check/collect/$$mode.log)"; done

# FM-IDM: trains every ablation variant into outputs/idm/lift (rerun to resume), ships FM-IDM as the default.
idm: lift-data
	$(WG) train-idm task=lift
	$(call ship,outputs/idm/lift,lift-idm)

# The shipped Lift FM-IDM's pose head (what tracking a video needs: eval-idm's fm-idm-tracked), trained onto the
# shipped checkpoint without retraining its mask head or network (`make idm` trains one in the same run), on
# simulator frames and on the shipped world model's video of the same episodes (imagined_fraction).
idm-pose-lift: lift-data
	$(WG) train-idm task=lift 'variants=[fm-idm]' init=world_models/checkpoints/lift-idm out=outputs/idm/lift-pose
	$(call ship,outputs/idm/lift-pose,lift-idm)

eval-idm: lift-data
	$(WG) eval-idm task=lift

# How eval-idm's arm layer (world_model_options.arm_layer: the robot's arm drawn where the imagined pose state
# has it) was chosen: FM-IDM on imagined video of 20 expert episodes on tuning seeds (870000+), with and
# without it.
tune-idm-imagined: $(STAMP)
	$(WG) collect task=lift policy=expert episodes=20 seed=870000 root=data/lift/tune-imagine-expert
	for layer in true false; do \
		$(WG) eval-idm task=lift variants_dir=null "datasets=[data/lift/tune-imagine-expert]" \
			"headline_sources=[tune-imagine-expert]" "replay_datasets=[]" imagine_episodes=20 plans=false \
			imagine_dataset=data/lift/tune-imagine-expert world_model_options.arm_layer=$$layer \
			out=outputs/eval-idm/tune-imagined-layer-$$layer || exit 1; \
	done

# SOPHIA's critic: trains into outputs/critic/lift (rerun to resume), ships it as the default reward.
critic: lift-data
	$(WG) train-critic task=lift
	$(call ship,outputs/critic/lift,lift-critic)

eval-critic: lift-data
	$(WG) eval-critic task=lift

# A critic trained with near misses too (not shipped): the noisy expert closing just above the cube or beside it
# (a finger on it or past it) in every episode, then lifting as if it held it, the failure the BC policy makes.
# Compared with the shipped critic on held-out data (eval-critic) and on the BC policy's own episodes (tuning).
CRITIC_DATA := {root: data/lift/train-expert}, {root: data/lift/train-noisy}, \
	{root: data/lift/train-walk, instruction: move the arm around}, {root: data/lift/train-failures}, \
	{root: data/lift/train-expert-walk}
ON_BC := "datasets=[data/lift/train-bc,data/lift/train-bc-noisy15,data/lift/train-bc-noisy30,data/lift/tune-bc-noisy20]" \
	"unseen_datasets=[]" imagined=false refine_dataset=null corrupt_per_kind=4 real_clips=32
critic-near-miss: lift-data lift-bc-data
	$(WG) train-critic task=lift 'datasets=[$(CRITIC_DATA), {root: data/lift/train-near-miss}]' \
		out=outputs/critic/lift-nearmiss
	$(WG) eval-critic task=lift checkpoint=outputs/critic/lift-nearmiss/checkpoint out=outputs/eval-critic/nearmiss
	$(WG) collect task=lift policy=shipped episodes=24 seed=80000 noise.action_std=0.2 root=data/lift/tune-bc-noisy20
	$(WG) eval-critic task=lift checkpoint=null $(ON_BC) out=outputs/eval-critic/bc-shipped
	$(WG) eval-critic task=lift checkpoint=outputs/critic/lift-nearmiss/checkpoint $(ON_BC) out=outputs/eval-critic/bc-nearmiss

# The shipped Lift policy: behaviour cloning from pixels on the expert and noisy-expert data, each episode
# also as the shipped world model imagines it (bc.imagined, so that the policy works on the DiT's frames),
# with the auxiliary state loss (the actor's features also predict the cube's position and its offset from
# the gripper, through a head dropped after cloning), about 20 min on one thread; evaluated on 50 held-out
# sim seeds and shipped as policies/checkpoints/lift-policy. The recipe's three training seeds are in the
# README; the shipped one is seed 1. The plain BC policy shipped before 2026-12-05 (`make policy POLICY_BC=
# POLICY_EVAL=eval.episodes=20`) is in git: `git checkout f921a1e -- policies/checkpoints/lift-policy`.
POLICY_BC := bc.aux_state_weight=1.0 bc.aux_state_dims=object bc.val_fraction=0 bc.imagined=true \
	seed=1 threads=1
POLICY_EVAL := eval.episodes=50 eval.every_steps=0
policy: lift-data
	$(WG) train-policy out=outputs/policies/lift-bc total_timesteps=0 $(POLICY_EVAL) $(POLICY_BC)
	$(WG) ship-policy checkpoint=outputs/policies/lift-bc/bc.zip task=lift

# The other three tasks (Stack, Door, PickPlaceCan): each one's expert and noisy-expert demonstrations on the
# training seeds Lift's use (held-out seeds start at 900000), then a BC policy per task with the shipped Lift
# recipe's auxiliary state loss on the task's own object (trained before any world model imagined them, so no
# bc.imagined), judged on 50 held-out sim seeds and shipped as policies/checkpoints/<task>-policy.
OTHER_TASKS := stack door pickplacecan
# Lift's seeds and noise: the BC demonstrations, then the random walks FM-IDM and the critic also train on, and
# the held-out sets eval-idm and eval-critic read (50 expert episodes from 940000 for FM-IDM's replay figure),
# and a tuning split of 20 expert episodes from 960000 (FM-IDM's tracking gain is chosen on it:
# tune-idm-tasks).
tasks-data: $(STAMP)
	$(foreach t,$(OTHER_TASKS),\
		$(WG) collect task=$(t) policy=expert episodes=80 seed=0 root=data/$(t)/train-expert && \
		$(WG) collect task=$(t) policy=expert episodes=80 seed=10000 $(NOISY) root=data/$(t)/train-noisy && \
		$(WG) collect task=$(t) policy=walk episodes=50 seed=20000 root=data/$(t)/train-walk && \
		$(WG) collect task=$(t) policy=expert episodes=12 seed=900000 root=data/$(t)/heldout-expert && \
		$(WG) collect task=$(t) policy=expert episodes=12 seed=910000 $(NOISY) root=data/$(t)/heldout-noisy && \
		$(WG) collect task=$(t) policy=walk episodes=12 seed=920000 root=data/$(t)/heldout-walk && \
		$(WG) collect task=$(t) policy=expert episodes=50 seed=940000 root=data/$(t)/heldout-replay-expert && \
		$(WG) collect task=$(t) policy=expert episodes=20 seed=960000 root=data/$(t)/tune-replay-expert && ) true
# Many placements for the pixel probe of the tasks whose object the world model carries (it reads the start
# state off a frame): 400 expert starts of 40 steps each, on seeds no other set uses (100000+). The 210
# training episodes give it too few: Stack's probe read the red cube 9 mm off on training frames, 14-25 mm
# on held-out ones.
PLACED_TASKS := stack pickplacecan
tasks-placements: $(STAMP)
	$(foreach t,$(PLACED_TASKS),$(WG) collect task=$(t) policy=expert episodes=400 max_steps=40 seed=100000 \
		root=data/$(t)/train-placements && ) true
TASK_BC := total_timesteps=0 eval.episodes=50 eval.every_steps=0 bc.aux_state_weight=1.0 \
	bc.aux_state_dims=object bc.val_fraction=0 threads=1
policy-tasks: tasks-data
	$(WG) train-policy env=WoW/Stack-v0 "bc.datasets=[data/stack/train-expert,data/stack/train-noisy]" \
		out=outputs/policies/stack-bc $(TASK_BC)
	$(WG) ship-policy checkpoint=outputs/policies/stack-bc/bc.zip task=stack
	$(WG) train-policy env=WoW/Door-v0 "bc.datasets=[data/door/train-expert,data/door/train-noisy]" \
		out=outputs/policies/door-bc $(TASK_BC)
	$(WG) ship-policy checkpoint=outputs/policies/door-bc/bc.zip task=door
	$(WG) train-policy env=WoW/PickPlaceCan-v0 \
		"bc.datasets=[data/pickplacecan/train-expert,data/pickplacecan/train-noisy]" \
		out=outputs/policies/pickplacecan-bc $(TASK_BC)
	$(WG) ship-policy checkpoint=outputs/policies/pickplacecan-bc/bc.zip task=pickplacecan
# Stack's BC policy with Lift's recipe: the same demonstrations also as the shared world model imagines them
# (bc.imagined), with the robot's arm drawn at the imagined pose (the paired run's arm layer), so that the
# policy that stacks on the simulator's frames also stacks on the imagined ones; judged on the same 50
# held-out sim seeds. Shipped only where evaluate-stack-imagined-bc and the sim figure say so.
IMAGINED_ARM := world_model_options.arm_layer=true world_model_options.arm_erase=true
policy-stack-imagined: tasks-data
	$(WG) train-policy env=WoW/Stack-v0 "bc.datasets=[data/stack/train-expert,data/stack/train-noisy]" \
		out=outputs/policies/stack-bc-imagined $(TASK_BC) bc.imagined=true $(IMAGINED_ARM)

# FM-IDM and SOPHIA's critic for Stack, Door and PickPlaceCan, one of each per task, shipped as <task>-idm and
# <task>-critic, trained before any world model imagined these tasks: FM-IDM on simulator video alone, the
# critic on real and corrupted clips (corruptions pose the task's own object: wow_gym/tasks, object_joint).
# eval-tasks: FM-IDM's replay success from ground-truth video against the oracle's (50 held-out expert
# episodes per task), and the critic's success verdicts on held-out episodes and its plausibility AUC.
TASK_IDM := 'variants=[fm-idm]' imagined_fraction=0 threads=1
TASK_CRITIC := world_model=none train.steps=1200 threads=1   # Lift's critic trains 3,000 steps
TASK_TRAIN = {root: data/$(1)/train-expert}, {root: data/$(1)/train-noisy}, \
	{root: data/$(1)/train-walk, instruction: "move the arm around"}
TASK_CRITIC_DATA = [$(call TASK_TRAIN,$(1))]
idm-tasks critic-tasks eval-tasks tune-idm-tasks: tasks-data
idm-tasks:
	$(foreach t,$(OTHER_TASKS),\
		$(WG) train-idm task=$(t) $(TASK_IDM) && \
		$(call ship,outputs/idm/$(t),$(t)-idm) && ) true
critic-tasks:
	$(foreach t,$(OTHER_TASKS),\
		$(WG) train-critic task=$(t) 'datasets=$(call TASK_CRITIC_DATA,$(t))' $(TASK_CRITIC) && \
		$(call ship,outputs/critic/$(t),$(t)-critic) && ) true
# FM-IDM's tracking gain (eval_idm.yaml track_gain) and its wait for each grasp (wait_for_grasp) on the
# tuning split, never on the held-out seeds: replay success per gain in
# outputs/eval-idm/tune-<task>-gain<g>/results.json (gain 0 is the open-loop replay), and at gain 1.0
# without the wait in tune-<task>-gain1.0-nowait.
TRACK_GAINS := 0.5 1.0 1.5
TUNE_IDM = $(WG) eval-idm task=$(1) variants_dir=null imagine_dataset=null plans=false \
	'datasets=[data/$(1)/tune-replay-expert]' 'headline_sources=[tune-replay-expert]' \
	'replay_datasets=[data/$(1)/tune-replay-expert]'
tune-idm-tasks:
	$(foreach t,$(OTHER_TASKS),\
		$(foreach g,$(TRACK_GAINS),\
			$(call TUNE_IDM,$(t)) track_gain=$(g) out=outputs/eval-idm/tune-$(t)-gain$(g) && )\
		$(call TUNE_IDM,$(t)) wait_for_grasp=false out=outputs/eval-idm/tune-$(t)-gain1.0-nowait && ) true
eval-tasks:
	$(foreach t,$(OTHER_TASKS),\
		$(WG) eval-idm task=$(t) variants_dir=null imagine_dataset=null plans=false \
			'datasets=[data/$(t)/heldout-expert,data/$(t)/heldout-noisy,data/$(t)/heldout-walk]' \
			out=outputs/eval-idm/$(t) && \
		$(WG) eval-critic task=$(t) imagined=false refine_dataset=null 'unseen_datasets=[]' \
			'datasets=[data/$(t)/heldout-expert,data/$(t)/heldout-noisy,data/$(t)/heldout-walk,$\
			data/$(t)/heldout-replay-expert]' out=outputs/eval-critic/$(t) && ) true

# The per-task Stack world model, the first of the other tasks in imagination, shipped until the shared model
# below replaced it (stop 47): a dit-mini DiT (width 128, the Lift model's other parts) on Stack's 80 expert,
# 80 noisy-expert and 50 random-walk training episodes, plain MSE (motion weighting from scratch stalled the
# DiT), no object state (the success head and the latent probe give the imagined env's success and
# environment_state). Kept to measure the shared model against:
# make eval-world-model-stack WM_CHECKPOINT=outputs/world-models/stack/checkpoint WM_TAG=-own.
world-model-stack: tasks-data
	$(WG) train-world-model task=stack preset=dit-mini object_dynamics=false pixel_probe=false \
		'datasets=$(call TASK_CRITIC_DATA,stack)' dit.steps=5000 threads=2 out=outputs/world-models/stack
# Held-out open loop (expert, noisy, walk) with and without the deadband, whole episodes imagined from their
# first frame (the 86 held-out episodes: successes seen by the success head and the critic), SOPHIA's critic
# on imagined clips against the simulator's verdict.
EVAL_WM_TASK = $(WG) eval-world-model task=$(1) 'datasets=[data/$(1)/heldout-expert,data/$(1)/heldout-noisy,$\
	data/$(1)/heldout-walk]'
HELDOUT_TASK = data/$(1)/heldout-expert,data/$(1)/heldout-noisy,data/$(1)/heldout-walk,data/$(1)/heldout-replay-expert
# A kind of action absent from the world model's training: the pausing expert of lift-data (seeds 975000+).
tasks-unseen-data: $(STAMP)
	$(foreach t,$(OTHER_TASKS),[ -d data/$(t)/heldout-pausing ] || \
		$(WG) collect task=$(t) policy=expert episodes=20 seed=975000 $(PAUSING) \
			root=data/$(t)/heldout-pausing && ) true
stack-unseen-data: tasks-unseen-data
# The shipped model of each task (Stack, Door, PickPlaceCan: the shared one, world_models/checkpoints/tasks),
# or another one: make eval-world-model-door WM_CHECKPOINT=outputs/world-models/door/checkpoint WM_TAG=-own.
# Figures in outputs/eval-world-model/<task><tag>*, outputs/eval-critic/<task><tag>-imagined.
WM_CHECKPOINT :=
WM_TAG :=
WM_ARG = $(if $(WM_CHECKPOINT),checkpoint=$(WM_CHECKPOINT))
EVAL_WM_ONE = $(WG) eval-world-model task=$(1) $(WM_ARG)
eval-world-model-stack eval-world-model-door eval-world-model-pickplacecan: eval-world-model-%: tasks-data \
		tasks-unseen-data
	$(call EVAL_WM_TASK,$*) $(WM_ARG) \
		'interaction_datasets=[$(call HELDOUT_TASK,$*)]' out=outputs/eval-world-model/$*$(WM_TAG)
	$(call EVAL_WM_ONE,$*) 'datasets=[data/$*/heldout-pausing]' \
		'interaction_datasets=[data/$*/heldout-pausing]' plan_horizon=0 \
		out=outputs/eval-world-model/$*$(WM_TAG)-pausing
	$(call EVAL_WM_ONE,$*) 'datasets=[data/$*/heldout-pausing]' residual_deadband=0 'interaction_datasets=[]' \
		plan_horizon=0 out=outputs/eval-world-model/$*$(WM_TAG)-pausing-band0
	$(call EVAL_WM_TASK,$*) $(WM_ARG) residual_deadband=0 \
		'interaction_datasets=[]' plan_horizon=0 out=outputs/eval-world-model/$*$(WM_TAG)-band0
	$(WG) eval-critic task=$* $(if $(WM_CHECKPOINT),world_model=$(WM_CHECKPOINT)) refine_dataset=null \
		'unseen_datasets=[]' 'datasets=[$(call HELDOUT_TASK,$*)]' out=outputs/eval-critic/$*$(WM_TAG)-imagined
eval-world-model-tasks: eval-world-model-stack eval-world-model-door eval-world-model-pickplacecan
# The held-out open loop with the robot's arm drawn at the imagined pose (arm_layer.py) and the start frame's
# arm erased where the arm has left (ARM_ERASE=false keeps the DiT's ghost of it): with and without the
# deadband, and on the pausing episodes. A render per frame: Door's first line took 21 min beside another.
ARM_ERASE := true
ARM_OUT = outputs/eval-world-model/$(1)$(WM_TAG)-arm$(if $(filter true,$(ARM_ERASE)),erase,layer)
ARM_ARGS = $(WM_ARG) arm_layer=true arm_erase=$(ARM_ERASE) 'interaction_datasets=[]' plan_horizon=0
eval-arm-layer-stack eval-arm-layer-door eval-arm-layer-pickplacecan: eval-arm-layer-%: tasks-data \
		tasks-unseen-data
	$(call EVAL_WM_TASK,$*) $(ARM_ARGS) out=$(call ARM_OUT,$*)
	$(call EVAL_WM_TASK,$*) $(ARM_ARGS) residual_deadband=0 out=$(call ARM_OUT,$*)-band0
	$(call EVAL_WM_ONE,$*) 'datasets=[data/$*/heldout-pausing]' $(ARM_ARGS) out=$(call ARM_OUT,$*)-pausing
eval-arm-layer-tasks: eval-arm-layer-stack eval-arm-layer-door eval-arm-layer-pickplacecan
# Imagined steps/s at batch 32 against each task's sim (64 px camera), one task at a time on a quiet machine.
bench-imagine-tasks: $(STAMP)
	$(foreach t,$(OTHER_TASKS),\
		$(WG) bench imagine task=$(t) 'batch_sizes=[32]' 'sampling_steps=[2]' steps=50 repeats=3 sim_num_envs=1 \
			out=outputs/bench-imagine/$(t) && ) true
# One world model shared by Stack, Door and PickPlaceCan (world_models/video/shared.py): autoencoder, DiT
# (dit-mini) and pose dynamics trained on the three tasks' expert, noisy-expert and walk episodes (each step
# one task's batch, drawn by frames), each task's own camera, statistics and heads (48 wide; 9.0 MB in all
# with the objects below).
# Then, on that model, Stack's red cube, PickPlaceCan's can (both drawn by the object layer) and Door's
# handle, door, hinge and handle angles carried as state with object dynamics of their own (Task.object_pose),
# and each task's pixel probe (the start state off a frame), trained on more placements of the two objects
# (tasks-placements); the DiT and the rest stay as trained.
SHARED_DATA = [$(call TASK_TRAIN,stack), $(call TASK_TRAIN,door), $(call TASK_TRAIN,pickplacecan)]
PLACED_DATA = [$(call TASK_TRAIN,stack), $(call TASK_TRAIN,door), $(call TASK_TRAIN,pickplacecan), \
	{root: data/stack/train-placements}, {root: data/pickplacecan/train-placements}]
SHARED_ARGS = 'tasks=[stack,door,pickplacecan]' task=stack preset=dit-mini head_width=48 threads=2
world-model-tasks: tasks-data tasks-placements
	$(WG) train-world-model $(SHARED_ARGS) 'datasets=$(SHARED_DATA)' object_dynamics=false pixel_probe=false \
		dit.steps=5000 out=outputs/world-models/tasks
	$(WG) train-world-model $(SHARED_ARGS) 'datasets=$(SHARED_DATA)' object_dynamics=true pixel_probe=true \
		init=outputs/world-models/tasks/checkpoint 'stages=[objects,probe]' out=outputs/world-models/tasks-objects
	$(WG) train-world-model $(SHARED_ARGS) 'datasets=$(PLACED_DATA)' object_dynamics=true pixel_probe=true \
		init=outputs/world-models/tasks-objects/checkpoint 'stages=[probe]' out=outputs/world-models/tasks-placed
	$(call ship,outputs/world-models/tasks-placed,tasks)
# A per-task Door model on Stack's recipe, measured against the shared model, not shipped (with Lift's and
# the shared one it would pass the 60 MB budget): held-out open loop with and without the deadband, and whole
# held-out episodes (the door opened: success head and critic): eval-world-model-door with WM_CHECKPOINT.
world-model-door-own: tasks-data
	$(WG) train-world-model task=door preset=dit-mini object_dynamics=false pixel_probe=false \
		'datasets=$(call TASK_CRITIC_DATA,door)' dit.steps=5000 threads=2 out=outputs/world-models/door
# Paired agreement on Stack: 10 policies (random, still, the shipped Stack BC policy with 0 to 1.0 action
# noise), 16 held-out starts each (seeds 970000+, which no Stack dataset uses), 150 steps; the imagined env's
# reward and success are robosuite's on the carried state (imagined_reward=auto; before 2026-12-07, and on a
# model that carries no object state, SOPHIA's Stack critic reading the imagined frames).
# WM_CHECKPOINT, WM_TAG (above): another world model than the shipped one, e.g. Stack's own
# (make evaluate-stack WM_CHECKPOINT=outputs/world-models/stack/checkpoint WM_TAG=-own).
# ARM=1: the robot's arm drawn at the imagined pose ($(IMAGINED_ARM)); SCENE=1: Stack's green cube drawn
# again where the start's scene has it (world_model_options.scene_layer=true); KNOWN=1: imagined starts
# take the simulator state's objects, not the probe's reading (world_model_options.known_state=true);
# PHYS=1: the robot's own arm stepped in MuJoCo and the finger rule ($(ARM_OPTIONS)); CARRY=1: a held
# object moves by the gripper's translation (world_model_options.carry_rule=true); TURN=1 (with PHYS=1): the
# finger rule grips a turned cube only on its faces' band (world_model_options.grip_turn=true); JOINTS=1
# (with PHYS=1; Door): a gripped lever turns and the door swings by the door's joints
# (world_model_options.joint_rule=true); name the run with WM_TAG (make evaluate-stack ARM=1
# WM_TAG=-armlayer-support).
WM_EVALUATE = $(if $(WM_CHECKPOINT),world_model=$(WM_CHECKPOINT)) $(if $(ARM),$(IMAGINED_ARM)) \
	$(if $(SCENE),world_model_options.scene_layer=true) $(if $(KNOWN),world_model_options.known_state=true) \
	$(if $(PHYS),$(ARM_OPTIONS)) $(if $(CARRY),world_model_options.carry_rule=true) \
	$(if $(TURN),world_model_options.grip_turn=true) $(if $(JOINTS),world_model_options.joint_rule=true)
# The 10 policies around one BC policy ($(1): its kind, and path; commas as $(comma)).
TASK_POLICIES_OF = {name: random, kind: random}, {name: zero, kind: zero}, {name: bc, $(1)}, \
	{name: bc-noise-0.1, $(1), noise_std: 0.1}, {name: bc-noise-0.15, $(1), noise_std: 0.15}, \
	{name: bc-noise-0.2, $(1), noise_std: 0.2}, {name: bc-noise-0.3, $(1), noise_std: 0.3}, \
	{name: bc-noise-0.45, $(1), noise_std: 0.45}, {name: bc-noise-0.6, $(1), noise_std: 0.6}, \
	{name: bc-noise-1.0, $(1), noise_std: 1.0}
TASK_POLICIES := $(call TASK_POLICIES_OF,kind: shipped)
evaluate-stack: $(STAMP)
	$(WG) evaluate task=stack n_episodes=16 seed=970000 max_steps=150 'policies=[$(TASK_POLICIES)]' \
		$(WM_EVALUATE) out=outputs/evaluate/stack$(WM_TAG)
# The same 10 policies around the Stack BC policy cloned also on imagined frames (make policy-stack-imagined),
# with the arm drawn as it was cloned; the shipped policy's run to set beside it:
# make evaluate-stack ARM=1 WM_TAG=-armlayer-support.
evaluate-stack-imagined-bc: $(STAMP)
	$(WG) evaluate task=stack n_episodes=16 seed=970000 max_steps=150 \
		'policies=[$(call TASK_POLICIES_OF,kind: sb3$(comma) path: outputs/policies/stack-bc-imagined/bc.zip)]' \
		$(IMAGINED_ARM) out=outputs/evaluate/stack-bc-imagined
# The same with the imagined env's reward and success from the Stack model's own heads (imagined_reward=heads:
# they read the imagined latents and arm pose; with Stack's own model the success head saw 43% of held-out
# stacks, the critic 6%).
evaluate-stack-heads: $(STAMP)
	$(WG) evaluate task=stack n_episodes=16 seed=970000 max_steps=150 'policies=[$(TASK_POLICIES)]' \
		imagined_reward=heads $(WM_EVALUATE) out=outputs/evaluate/stack$(WM_TAG)-heads
# The same 10 policies on Lift (the shipped Lift BC policy; seeds 960000+, Lift's held-out evaluation
# starts, 100 steps; imagined success from the model's object state), then the agreement pooled over every
# task with an imagined env: Pearson, Spearman and MMRV per task and over all points, one scatter coloured
# by task (outputs/agreement/tasks). The switches above apply (make evaluate-lift-tasks KNOWN=1 PHYS=1 CARRY=1
# WM_TAG=-switches: Lift's every switch).
evaluate-lift-tasks: $(STAMP)
	$(WG) evaluate task=lift n_episodes=16 seed=960000 'policies=[$(TASK_POLICIES)]' $(WM_EVALUATE) \
		out=outputs/evaluate/lift-tasks$(WM_TAG)
# Door and PickPlaceCan the same way on the shared model (150 and 200 steps: their experts succeed at about
# step 75 and 115), the imagined env's reward and success robosuite's on the carried state.
evaluate-door: $(STAMP)
	$(WG) evaluate task=door n_episodes=16 seed=970000 max_steps=150 'policies=[$(TASK_POLICIES)]' \
		$(WM_EVALUATE) out=outputs/evaluate/door$(WM_TAG)
# Why no policy opens the imagined door: the shipped Door BC policy acts in the imagined env from 16 held-out
# starts (seeds 960000+) for 150 steps, and the actions it chose are replayed in the simulator.
replay-check-door: $(STAMP)
	$(WG) replay-check task=door "policy={name: bc, kind: shipped}" max_steps=150 \
		"horizons=[1,8,16,32,64,100,150]" progress=false $(WM_EVALUATE) out=outputs/replay-check/door$(WM_TAG)
# The same on Stack for the shipped Stack BC policy and its 1.0-noise copy: which world steers the gripper
# away from the red cube, and which lifts it.
STACK_RC = max_steps=150 "horizons=[1,8,16,32,64,100,150]" progress=false $(WM_EVALUATE)
replay-check-stack: $(STAMP)
	$(WG) replay-check task=stack "policy={name: bc, kind: shipped}" $(STACK_RC) \
		out=outputs/replay-check/stack-bc$(WM_TAG)
	$(WG) replay-check task=stack "policy={name: bc-noise-1.0, kind: shipped, noise_std: 1.0}" $(STACK_RC) \
		out=outputs/replay-check/stack-bc-noise-1.0$(WM_TAG)
# The same on the paired run's 16 starts (seeds 970000+, those of evaluate-stack) for BC and its 0.1-noise
# copy: imagined stacks the replay rejects, and replayed stacks the imagination missed.
STACK_PAIRED_RC = $(STACK_RC) seed=970000
replay-check-stack-paired: $(STAMP)
	$(WG) replay-check task=stack "policy={name: bc, kind: shipped}" $(STACK_PAIRED_RC) \
		out=outputs/replay-check/stack-bc-970000$(WM_TAG)
	$(WG) replay-check task=stack "policy={name: bc-noise-0.1, kind: shipped, noise_std: 0.1}" $(STACK_PAIRED_RC) \
		out=outputs/replay-check/stack-bc-noise-0.1-970000$(WM_TAG)
# And on PickPlaceCan for its shipped BC policy, over its evaluation's 200 steps.
replay-check-pickplacecan: $(STAMP)
	$(WG) replay-check task=pickplacecan "policy={name: bc, kind: shipped}" max_steps=200 \
		"horizons=[1,8,16,32,64,100,150,200]" progress=false $(WM_EVALUATE) \
		out=outputs/replay-check/pickplacecan-bc$(WM_TAG)
evaluate-pickplacecan: $(STAMP)
	$(WG) evaluate task=pickplacecan n_episodes=16 seed=970000 max_steps=200 'policies=[$(TASK_POLICIES)]' \
		$(WM_EVALUATE) out=outputs/evaluate/pickplacecan$(WM_TAG)
EVALUATED_TASKS := lift-tasks stack door pickplacecan
comma := ,
space := $(subst ,, )
evaluate-pooled: $(foreach t,$(EVALUATED_TASKS),evaluate-$(t))
	$(WG) agreement 'runs=[$(subst $(space),$(comma),$(foreach t,$(EVALUATED_TASKS),outputs/evaluate/$(t)))]' \
		out=outputs/agreement/tasks
# The same pooled over each task's run with its every imagination switch, the runs of the README's per-task
# rows (outputs/agreement/tasks-switches). A run is made only where its folder has no results.json yet, so
# runs already made are reused (make -B evaluate-pooled-switches redoes all four: about 3 h on 2 cores, one
# evaluation at a time; two at once each run several times slower on 2 cores).
# Each task's every switch, as its README row measured it:
LIFT_SWITCHES := KNOWN=1 PHYS=1 CARRY=1
STACK_SWITCHES := ARM=1 KNOWN=1 PHYS=1 CARRY=1 SCENE=1 TURN=1
DOOR_SWITCHES := KNOWN=1 PHYS=1 JOINTS=1
PICKPLACECAN_SWITCHES := ARM=1 KNOWN=1 PHYS=1 CARRY=1
SWITCHED_RUNS := lift-tasks-switches stack-settle-scene-turn door-known-physics-joints-ajar pickplacecan-switches
outputs/evaluate/lift-tasks-switches/results.json:
	$(MAKE) evaluate-lift-tasks $(LIFT_SWITCHES) WM_TAG=-switches
outputs/evaluate/stack-settle-scene-turn/results.json:
	$(MAKE) evaluate-stack $(STACK_SWITCHES) WM_TAG=-settle-scene-turn
outputs/evaluate/door-known-physics-joints-ajar/results.json:
	$(MAKE) evaluate-door $(DOOR_SWITCHES) WM_TAG=-known-physics-joints-ajar
outputs/evaluate/pickplacecan-switches/results.json:
	$(MAKE) evaluate-pickplacecan $(PICKPLACECAN_SWITCHES) WM_TAG=-switches
evaluate-pooled-switches: $(foreach r,$(SWITCHED_RUNS),outputs/evaluate/$(r)/results.json)
	$(WG) agreement 'runs=[$(subst $(space),$(comma),$(foreach r,$(SWITCHED_RUNS),outputs/evaluate/$(r)))]' \
		out=outputs/agreement/tasks-switches
# Imagined steps/s with each task's every switch (those of the runs above: the arm stepped in MuJoCo and, on
# Stack and PickPlaceCan, drawn by a render per frame), batch 32, 2 sampling steps, against the task's
# simulator with a 64 px camera (outputs/bench-imagine/<task>-switches). BENCH_STEPS, BENCH_REPEATS: timed
# steps per row and alternating rounds.
BENCH_STEPS := 30
BENCH_REPEATS := 3
bench-imagine-switches: $(STAMP)
	$(foreach t,lift stack door pickplacecan,$(MAKE) bench-imagine-task TASK=$(t) \
		$($(shell echo $(t) | tr a-z A-Z)_SWITCHES) WM_TAG=-switches && ) true
bench-imagine-task: $(STAMP)
	$(WG) bench imagine task=$(TASK) 'batch_sizes=[32]' 'sampling_steps=[2]' steps=$(BENCH_STEPS) \
		repeats=$(BENCH_REPEATS) sim_num_envs=1 $(WM_EVALUATE) out=outputs/bench-imagine/$(TASK)$(WM_TAG)

# BC + PPO in imagination against the same recipe in the simulator, 15 min of RL each from the same warm
# start, both judged in the sim twin on 20 held-out seeds (curves.png, summary.json in each run folder).
RL_RUN := init=outputs/policies/lift-bc/bc.zip total_timesteps=1000000 max_minutes=15 eval.every_steps=8192 \
	eval.episodes=20 threads=1 autocast=false absorbing_success=false
policy-compare: policy
	$(WG) train-policy env=WoW/Lift-Imagined-v0 out=outputs/policies/lift-rl-imagined $(RL_RUN)
	$(WG) train-policy env=WoW/Lift-v0 out=outputs/policies/lift-rl-sim $(RL_RUN)

# The same comparison with RL that keeps to the demonstrations: the critic warms up alone for 4096 steps and
# 8 BC steps follow every PPO update; 10 min of RL each.
RL_RUN_KEEP := init=outputs/policies/lift-bc/bc.zip total_timesteps=1000000 max_minutes=10 eval.every_steps=8192 \
	eval.episodes=20 eval.parallel=4 value_warmup_steps=4096 bc_steps_per_update=8 threads=1 autocast=false \
	absorbing_success=false
policy-compare-keep: policy
	$(WG) train-policy env=WoW/Lift-Imagined-v0 out=outputs/policies/lift-rl-keep-imagined $(RL_RUN_KEEP)
	$(WG) train-policy env=WoW/Lift-v0 out=outputs/policies/lift-rl-keep-sim $(RL_RUN_KEEP)

# The interaction headline: the shipped BC policy fine-tuned for 30 min of RL only in imagination (the shaped
# reward on the imagined object state, reward_model=state) against the same recipe in the simulator, both
# runs side by side (one thread each), judged in the sim twin on 50 held-out seeds; compare-runs draws both
# curves in one plot (outputs/compare/lift-rl30/compare.png).
RL30_RECIPE := init=policies/checkpoints/lift-policy total_timesteps=1000000 max_minutes=30 eval.episodes=50 \
	value_warmup_steps=4096 bc_steps_per_update=8 threads=1 progress=false autocast=false
# the runs of policy-compare-30 and policy-compare-30-arm, measured before absorbing_success existed
RL30 := $(RL30_RECIPE) absorbing_success=false
policy-compare-30: $(STAMP)
	$(WG) train-policy env=WoW/Lift-Imagined-v0 reward_model=state eval.every_steps=16384 \
		out=outputs/policies/lift-rl30-imagined $(RL30) & imagined=$$!; \
	$(WG) train-policy env=WoW/Lift-v0 eval.every_steps=4096 out=outputs/policies/lift-rl30-sim $(RL30) & sim=$$!; \
	wait $$imagined && wait $$sim
	$(WG) compare-runs "runs=[outputs/policies/lift-rl30-imagined,outputs/policies/lift-rl30-sim]" \
		"names=[imagination,simulator]" out=outputs/compare/lift-rl30

# The same headline with the robot's own arm in imagination: the shipped checkpoint with its arm stepped in
# MuJoCo and the finger rule (world_model_options, no retraining), both runs side by side again.
ARM_OPTIONS := world_model_options.arm_physics=true world_model_options.finger_rule=true
policy-compare-30-arm: $(STAMP)
	$(WG) train-policy env=WoW/Lift-Imagined-v0 reward_model=state eval.every_steps=16384 $(ARM_OPTIONS) \
		out=outputs/policies/lift-rl30-arm-imagined $(RL30) & imagined=$$!; \
	$(WG) train-policy env=WoW/Lift-v0 eval.every_steps=4096 out=outputs/policies/lift-rl30-arm-sim $(RL30) & sim=$$!; \
	wait $$imagined && wait $$sim
	$(WG) compare-runs "runs=[outputs/policies/lift-rl30-arm-imagined,outputs/policies/lift-rl30-arm-sim]" \
		"names=[imagination + arm,simulator]" out=outputs/compare/lift-rl30-arm

# The headline with success as an absorbing state (absorbing_success, the default now) and PPO's steps 10x
# smaller (at lr 1e-4 a third of the samples hit the clip every update and the sim run fell to 12% within
# 20k steps): the RL30 recipe otherwise, the robot's own arm in imagination, side by side with the simulator
# run again (outputs/compare/lift-rl30-absorbing).
RL30_ABSORBING := $(RL30_RECIPE) ppo.learning_rate=1e-5
policy-compare-30-absorbing: $(STAMP)
	$(call POLICY_PAIR,rl30-absorbing,$(RL30_ABSORBING))
	$(call COMPARE_PAIR,rl30-absorbing)

# The same with an asymmetric critic (value_state: PPO's value function reads agent_pos and the object state,
# the simulator's or the one the world model imagines, instead of the frames; over the absorbing runs its
# explained variance from pixels stayed below 0.45), PPO at lr 3e-5 (outputs/compare/lift-rl30-asymmetric).
RL30_ASYMMETRIC := $(RL30_RECIPE) value_state=true ppo.learning_rate=3e-5
policy-compare-30-asymmetric: $(STAMP)
	$(call POLICY_PAIR,rl30-asymmetric,$(RL30_ASYMMETRIC))
	$(call COMPARE_PAIR,rl30-asymmetric)

# The headline in the imagination that agrees with physics on Lift's paired evaluation (success Pearson 0.989
# over 8 policies): the robot's own arm, known_state and the carry rule. The recipe is success-filtered
# self-imitation (32 BC steps on the run's own successful episodes after every PPO update at lr 1e-5), the
# feature extractor frozen so that imagined frames cannot retune it; side by side with the same recipe in the
# simulator (outputs/compare/lift-rl30-switches).
RL30_SWITCHES := $(filter-out bc_steps_per_update=%,$(RL30_RECIPE)) self_imitation_steps=32 \
	self_imitation_lr=3e-4 ppo.learning_rate=1e-5 freeze_features=true
SWITCH_OPTIONS := world_model_options.known_state=true world_model_options.carry_rule=true
# TURN=1 on the Lift evaluations below: the finger rule takes the cube's turn too (grip_turn), in runs named
# -turn; ARM=1 on lift-bc-gap: the robot's arm drawn at the imagined pose too ($(IMAGINED_ARM)), -arm
TURN_OPTIONS = $(if $(TURN),world_model_options.grip_turn=true)
TURN_TAG = $(if $(TURN),-turn)
BC_GAP_OPTIONS = $(ARM_OPTIONS) $(SWITCH_OPTIONS) $(TURN_OPTIONS) $(if $(ARM),$(IMAGINED_ARM))
BC_GAP_TAG = $(if $(ARM),-arm)$(TURN_TAG)
policy-compare-30-switches: $(STAMP)
	$(call POLICY_PAIR,rl30-switches,$(RL30_SWITCHES),$(SWITCH_OPTIONS))
	$(call COMPARE_PAIR,rl30-switches)

# $(call POLICY_PAIR,<pair>,<recipe>[,<imagination's other switches>]): the recipe from the shipped policy in
# imagination with the robot's own arm (outputs/policies/lift-<pair>-imagined) and in the simulator (-sim),
# side by side, one core each;
# $(call COMPARE_PAIR,<pair>): both runs' sim-twin curves in one plot (outputs/compare/lift-<pair>).
POLICY_PAIR = $(WG) train-policy env=WoW/Lift-Imagined-v0 reward_model=state eval.every_steps=16384 $(ARM_OPTIONS) \
		$(3) out=outputs/policies/lift-$(1)-imagined $(2) & imagined=$$!; \
	$(WG) train-policy env=WoW/Lift-v0 eval.every_steps=4096 out=outputs/policies/lift-$(1)-sim $(2) & sim=$$!; \
	wait $$imagined && wait $$sim
COMPARE_PAIR = $(WG) compare-runs "runs=[outputs/policies/lift-$(1)-imagined,outputs/policies/lift-$(1)-sim]" \
	"names=[imagination + arm,simulator]" out=outputs/compare/lift-$(1)

# Self-imitation in imagination, 10 min of RL from the shipped policy (PPO at lr 1e-5, 32 self-imitation and 4
# dataset BC steps after every update), judged in the sim twin on 50 held-out seeds before and after: on the
# shipped world model, on the contact-aware one (world-model-contact), and with the feature extractor frozen.
SIL10 := env=WoW/Lift-Imagined-v0 reward_model=state init=policies/checkpoints/lift-policy total_timesteps=1000000 \
	max_minutes=10 eval.episodes=50 eval.every_steps=1000000 value_warmup_steps=4096 bc_steps_per_update=4 \
	self_imitation_steps=32 self_imitation_lr=3e-4 ppo.learning_rate=1e-5 progress=false \
	autocast=false absorbing_success=false
policy-sil-10: world-model-contact
	$(WG) train-policy $(SIL10) threads=1 out=outputs/policies/sil-explore2
	$(WG) train-policy $(SIL10) threads=1 world_model=outputs/world-models/lift-posobj24/checkpoint \
		out=outputs/policies/sil-explore3
	$(WG) train-policy $(SIL10) threads=2 freeze_features=true out=outputs/policies/sil-explore4

# Short imagined episodes from the states the start policy really visits: the shipped policy's own episodes
# (training seeds, 60 steps, clean and with 0.1 action noise) as imagined starts, at steps 10-40, cut after 16
# imagined steps (value bootstrap), on the contact-aware world model; then the self-imitation recipe of
# policy-sil-10 for 10 min, judged in the sim twin on 50 held-out seeds before and after.
lift-bc-starts: $(STAMP)
	$(WG) collect task=lift policy=shipped episodes=40 seed=60000 max_steps=60 root=data/lift/train-bc
	$(WG) collect task=lift policy=shipped episodes=40 seed=61000 max_steps=60 noise.action_std=0.1 \
		root=data/lift/train-bc-noisy
SHORT := imagined_starts=[data/lift/train-bc,data/lift/train-bc-noisy] "imagined_start_steps=[10,40]" \
	imagined_horizon=16 world_model=outputs/world-models/lift-posobj24/checkpoint
policy-short-10: lift-bc-starts world-model-contact
	$(WG) train-policy $(SIL10) $(SHORT) threads=2 out=outputs/policies/short-sil

# Where imagination and physics part ways: each policy acts in imagination, its actions are replayed in MuJoCo
# (16 held-out starts, 100 steps): the shipped policy on the shipped and the contact-aware world model, and the
# self-imitation policies of policy-sil-10 on the world model each was trained in.
RC := max_steps=100 "horizons=[1,8,16,24,32,48,99]" progress=false
CONTACT := world_model=outputs/world-models/lift-posobj24/checkpoint
replay-check: policy-sil-10
	$(WG) replay-check "policy={name: bc, kind: shipped}" $(RC) out=outputs/replay-check/shipped
	$(WG) replay-check "policy={name: bc, kind: shipped}" $(CONTACT) $(RC) out=outputs/replay-check/contact
	$(WG) replay-check "policy={name: sil-shipped-wm, kind: sb3, path: outputs/policies/sil-explore2/final.zip}" \
		$(RC) out=outputs/replay-check/sil2
	$(WG) replay-check "policy={name: sil-contact-wm, kind: sb3, path: outputs/policies/sil-explore3/final.zip}" \
		$(CONTACT) $(RC) out=outputs/replay-check/sil3
	$(WG) replay-check "policy={name: sil-frozen, kind: sb3, path: outputs/policies/sil-explore4/final.zip}" \
		$(RC) out=outputs/replay-check/sil4

# Imagined-vs-simulated agreement over 10 Lift policies (random, still, the shipped BC policy with 0-1.0
# action noise, the RL runs of policy-compare), 16 held-out start states each.
POLICY_SET := [{name: random, kind: random}, {name: zero, kind: zero}, {name: bc, kind: shipped}, \
	{name: bc-noise-0.15, kind: shipped, noise_std: 0.15}, {name: bc-noise-0.3, kind: shipped, noise_std: 0.3}, \
	{name: bc-noise-0.6, kind: shipped, noise_std: 0.6}, {name: bc-noise-1.0, kind: shipped, noise_std: 1.0}, \
	{name: rl-imagined-8k, kind: sb3, path: outputs/policies/lift-rl-imagined/checkpoints/rl_8192_steps.zip}, \
	{name: rl-imagined, kind: sb3, path: outputs/policies/lift-rl-imagined/final.zip}, \
	{name: rl-sim, kind: sb3, path: outputs/policies/lift-rl-sim/final.zip}]
evaluate-lift: policy-compare
	$(WG) evaluate task=lift n_episodes=16 seed=960000 'policies=$(POLICY_SET)' out=outputs/evaluate/lift-policies

# The same agreement over the 8 policies that need no training run (random, still, the shipped BC policy with
# 0-1.0 action noise): a quicker check, about 16 min on 2 cores, on the shipped models alone.
SHIPPED_POLICIES := {name: random, kind: random}, {name: zero, kind: zero}, {name: bc, kind: shipped}, \
	{name: bc-noise-0.15, kind: shipped, noise_std: 0.15}, {name: bc-noise-0.3, kind: shipped, noise_std: 0.3}, \
	{name: bc-noise-0.45, kind: shipped, noise_std: 0.45}, {name: bc-noise-0.6, kind: shipped, noise_std: 0.6}, \
	{name: bc-noise-1.0, kind: shipped, noise_std: 1.0}
SHIPPED_SET := [$(SHIPPED_POLICIES)]
# WM_EVALUATE's switches (ARM=1, KNOWN=1, PHYS=1, CARRY=1, WM_CHECKPOINT) and WM_TAG as on
# evaluate-stack: make evaluate-shipped PHYS=1 KNOWN=1 CARRY=1 WM_TAG=-physics-known-carry.
evaluate-shipped: $(STAMP)
	$(WG) evaluate task=lift n_episodes=16 seed=960000 'policies=$(SHIPPED_SET)' $(WM_EVALUATE) \
		out=outputs/evaluate/lift-shipped$(WM_TAG)

# The 10-policy agreement over an RL pair: the 8 shipped policies and the final policies of the two runs
# outputs/policies/lift-<pair>-imagined and -sim; $(call EVALUATE_PAIR,<pair>,<options>,<out>).
PAIR_SET = [$(SHIPPED_POLICIES), \
	{name: $(1)-imagined, kind: sb3, path: outputs/policies/lift-$(1)-imagined/final.zip}, \
	{name: $(1)-sim, kind: sb3, path: outputs/policies/lift-$(1)-sim/final.zip}]
EVALUATE_PAIR = $(WG) evaluate task=lift n_episodes=16 seed=960000 'policies=$(call PAIR_SET,$(1))' $(2) \
	out=outputs/evaluate/$(3)

# The 8 policies and the two 30-minute RL runs of policy-compare-30, the imagined env's reward and success
# from the imagined object state (imagined_reward=auto picks it for the shipped model).
evaluate-lift-30: policy-compare-30
	$(call EVALUATE_PAIR,rl30,,lift-30)

# The same agreement with the robot's own arm in imagination (ARM_OPTIONS) over the runs of
# policy-compare-30-arm, and over those of policy-compare-30-absorbing.
evaluate-lift-30-arm: policy-compare-30-arm
	$(call EVALUATE_PAIR,rl30-arm,$(ARM_OPTIONS),lift-30-arm)
evaluate-lift-30-absorbing: policy-compare-30-absorbing
	$(call EVALUATE_PAIR,rl30-absorbing,$(ARM_OPTIONS),lift-30-absorbing)
# ... and with every switch of policy-compare-30-switches, over its two runs.
evaluate-lift-30-switches: policy-compare-30-switches
	$(call EVALUATE_PAIR,rl30-switches,$(ARM_OPTIONS) $(SWITCH_OPTIONS) $(TURN_OPTIONS),lift-30-switches$(TURN_TAG))
# Where imagination over-rates the shipped BC policy with every switch, on 50 held-out starts: the policy in
# imagination against the policy in the simulator, then its imagined actions replayed in MuJoCo.
lift-bc-gap: $(STAMP)
	$(WG) evaluate task=lift n_episodes=50 seed=960000 'policies=[{name: bc, kind: shipped}]' progress=false \
		$(BC_GAP_OPTIONS) out=outputs/evaluate/lift-bc50-switches$(BC_GAP_TAG)
	$(WG) replay-check task=lift "policy={name: bc, kind: shipped}" episodes=50 $(RC) $(BC_GAP_OPTIONS) \
		out=outputs/replay-check/lift-bc50-switches$(BC_GAP_TAG)

# Sim-to-real: `make policy-dr` trains the sim recipe under domain randomization. evaluate-unseen judges the BC
# and sim-RL policies in the simulator under randomizations never seen in training (wider light, colour,
# camera, friction, mass and damping ranges), on the first 8 start states of evaluate-lift.
policy-dr: policy
	$(WG) train-policy env=WoW/Lift-v0 randomize=true out=outputs/policies/lift-rl-sim-dr $(RL_RUN)
DR_SET := [{name: bc, kind: shipped}, {name: rl-sim, kind: sb3, path: outputs/policies/lift-rl-sim/final.zip}, \
	{name: rl-keep-sim, kind: sb3, path: outputs/policies/lift-rl-keep-sim/final.zip}]
evaluate-unseen: policy-compare policy-compare-keep
	$(WG) evaluate task=lift n_episodes=8 seed=960000 randomize=unseen 'policies=$(DR_SET)' gifs=false \
		out=outputs/evaluate/lift-randomize-unseen

# The BC policy exported to ONNX and run live on the sim arm by the deployment runner (shield on), beside
# the same SB3 policy run in-process from the same 20 held-out seeds.
deploy-check: policy
	$(WG) export-policy checkpoint=outputs/policies/lift-bc/bc.zip out=outputs/policies/lift-bc-onnx
	$(WG) deploy policy=outputs/policies/lift-bc-onnx arm=sim shadow=false episodes=20 seed=960000 \
		out=outputs/deploy/lift-bc-sim

# Policies in imagination and in the simulator from the same start states; add yours with
# `make evaluate-policies ARGS="+run=outputs/<train command>/<timestamp>"` (or +sb3=model.zip).
.PHONY: evaluate-policies
evaluate-policies: $(STAMP)
	$(WG) evaluate task=lift $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info
