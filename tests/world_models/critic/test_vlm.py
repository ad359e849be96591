"""The VLM critic and LLM refiner backends on tiny random models built here: parsing, end to end, errors."""

import numpy as np
import pytest
import torch

from wow_gym.sophia import SCORE_NAMES, Critique, TemplateRefiner
from wow_gym.tasks import task_info
from wow_gym.world_models.checkpoint import CheckpointError
from wow_gym.world_models.critic.vlm import (
    LLMRefiner,
    VLMCritic,
    clean_instruction,
    critique_from_answer,
    parse_rubric,
    subsample,
)

torch.set_num_threads(1)

WELL_FORMED = ("task_completion: 4/5\nphysical_plausibility: 5/5\nkinematic_smoothness: 3/5\n"
               "instruction_following: 2/5\nsuccess: no\nprogress: 0.6\n"
               "critique: the gripper closed before it reached the cube.")
EXPECTED = {"task_completion": 0.75, "physical_plausibility": 1.0, "kinematic_smoothness": 0.5,
            "instruction_following": 0.25}
CHAT_TEMPLATE = (
    "{% for m in messages %}<|user|>{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")


def byte_tokenizer(chat_template: str | None = CHAT_TEMPLATE):
    """A byte-level tokenizer with no merges: 256 tokens plus specials, and decoding gives back the text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    core = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", pad_token="<pad>")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>", "<|user|>", "<|assistant|>"]})
    tokenizer.chat_template = chat_template
    return tokenizer


def tiny_llama(vocab_size: int):
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       num_key_value_heads=2, vocab_size=vocab_size, max_position_embeddings=2048)


@pytest.fixture(scope="module")
def vlm_path(tmp_path_factory):
    """A tiny random LLaVA (CLIP vision tower + Llama), its processor and tokenizer, saved to disk."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    torch.manual_seed(0)
    tokenizer = byte_tokenizer()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    # One extra token per image: the CLS token the "default" feature strategy drops.
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=16,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=CHAT_TEMPLATE)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                              num_attention_heads=2, image_size=32, patch_size=16, projection_dim=32)
    config = LlavaConfig(vision_config=vision, text_config=tiny_llama(len(tokenizer)),
                         image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_layer=-1, vision_feature_select_strategy="default")
    path = tmp_path_factory.mktemp("tiny_llava")
    LlavaForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def critic(vlm_path):
    return VLMCritic(vlm_path, max_new_tokens=24)


def llm_checkpoint(path, chat_template: str | None):
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = byte_tokenizer(chat_template)
    LlamaForCausalLM(tiny_llama(len(tokenizer))).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def refiner(tmp_path_factory):
    return LLMRefiner(llm_checkpoint(tmp_path_factory.mktemp("tiny_llama"), CHAT_TEMPLATE), max_new_tokens=24)


def fake_generate(tokenizer, answer: str, seen: list[str]):
    """A generate that records the prompt it was given and answers `answer` after it."""
    def generate(input_ids, **kwargs):
        seen.append(tokenizer.decode(input_ids[0]))
        new = tokenizer(answer, return_tensors="pt", add_special_tokens=False)["input_ids"]
        return torch.cat([input_ids, new], dim=1)
    return generate


def clip(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)


def a_critique(failure: str = "closed_early") -> Critique:
    return Critique(scores=dict.fromkeys(SCORE_NAMES, 0.5), success=False, progress=0.3, reward=0.3,
                    text="the gripper closed too early", failure=failure)


# -- parsing -------------------------------------------------------------------------------------------------


def test_parse_rubric_reads_a_well_formed_answer():
    found = parse_rubric(WELL_FORMED)
    assert {name: found[name] for name in SCORE_NAMES} == pytest.approx(EXPECTED)
    assert found["success"] is False and found["progress"] == pytest.approx(0.6)
    assert found["critique"] == "the gripper closed before it reached the cube."
    critique = critique_from_answer(WELL_FORMED)
    assert critique.scores == pytest.approx(EXPECTED)
    assert critique.failure == "vlm" and critique.reward == pytest.approx(0.6)


def test_parse_rubric_tolerates_case_spacing_and_extra_text():
    answer = ("Sure! Here is my judgement.\n\n  **Task_Completion**:  4 / 5\nPhysical Plausibility: 5\n"
              "- kinematic-smoothness : 3/5 (a little jerky)\nINSTRUCTION_FOLLOWING:2/5\n"
              "Success: Yes.\nprogress: 85%\nCritique: nothing went wrong\nThanks!")
    found = parse_rubric(answer)
    assert {name: found[name] for name in SCORE_NAMES} == pytest.approx(EXPECTED)
    assert found["success"] is True and found["progress"] == pytest.approx(0.85)
    critique = critique_from_answer(answer)
    assert critique.success and critique.failure == "" and critique.reward == pytest.approx(1.85)
    assert critique.text == "nothing went wrong"


@pytest.mark.parametrize("answer", ["", "situations tails soto reporter",
                                    "task_completion: 9/5\nsuccess: maybe",
                                    WELL_FORMED.replace("progress: 0.6\n", ""),
                                    WELL_FORMED.replace("4/5", "4/10")])
def test_garbage_gives_an_unparsed_critique_with_zero_scores(answer):
    critique = critique_from_answer(answer)
    assert critique.failure == "unparsed" and not critique.success
    assert critique.progress == 0.0 and critique.reward == 0.0
    assert set(critique.scores.values()) == {0.0}
    assert critique.text == f"could not parse the VLM's answer: {answer[:200]}"


# -- VLMCritic -----------------------------------------------------------------------------------------------


def test_vlm_critic_end_to_end_on_a_random_model(critic):
    critique = critic.critique(clip(), "lift the red cube")
    assert isinstance(critique, Critique) and set(critique.scores) == set(SCORE_NAMES)
    assert critic.last_answer and critique.failure == "unparsed"  # a random model answers garbage
    assert critique.text.startswith("could not parse the VLM's answer: ")
    assert critique.text.endswith(critic.last_answer[:200]) and set(critique.scores.values()) == {0.0}


def test_vlm_critic_carries_a_well_formed_answer_and_asks_the_rubric(critic, monkeypatch):
    seen: list[str] = []
    tokenizer = critic.processor.tokenizer
    monkeypatch.setattr(critic.model, "generate", fake_generate(tokenizer, WELL_FORMED, seen))
    critique = critic.critique(clip(1), "lift the red cube")
    assert critic.last_answer == WELL_FORMED
    assert critique.scores == pytest.approx(EXPECTED) and critique.progress == pytest.approx(0.6)
    assert not critique.success and critique.failure == "vlm"
    assert critique.text == "the gripper closed before it reached the cube."
    (prompt,) = seen
    assert "lift the red cube" in prompt and "4 frames" in prompt
    assert prompt.count("<image>") == 4 * 4  # 4 frames, each 2 x 2 patches of 16 pixels
    for line in ("task_completion: N/5", "physical_plausibility: N/5", "kinematic_smoothness: N/5",
                 "instruction_following: N/5", "success: yes|no", "progress: X", "critique: <one sentence"):
        assert line in prompt


def test_subsample_spreads_over_the_clip():
    frames = np.arange(8)[:, None, None, None] * np.ones((8, 2, 2, 3), np.uint8)
    assert [int(f[0, 0, 0]) for f in subsample(frames, 4)] == [0, 2, 5, 7]
    assert [int(f[0, 0, 0]) for f in subsample(frames[:3], 4)] == [0, 1, 2]


@pytest.mark.parametrize("frames", [np.zeros((8, 64, 64), np.uint8), np.zeros((8, 64, 64, 4), np.uint8),
                                    np.zeros((8, 64, 64, 3), np.float32)])
def test_vlm_critic_rejects_bad_frames(critic, frames):
    with pytest.raises(ValueError, match=r"uint8 \(T, H, W, 3\)"):
        critic.critique(frames, "lift the red cube")


def test_missing_checkpoints_say_where_and_how_to_get_one(tmp_path):
    missing = tmp_path / "no_model_here"
    with pytest.raises(CheckpointError, match=r"no_model_here.*huggingface-cli download Qwen/Qwen2\.5-VL-3B"):
        VLMCritic(missing)
    with pytest.raises(CheckpointError, match=r"no_model_here.*huggingface-cli download Qwen/Qwen2\.5-0\.5B"):
        LLMRefiner(missing)


# -- LLMRefiner ----------------------------------------------------------------------------------------------


def test_llm_refiner_end_to_end_on_a_random_model(refiner):
    refined = refiner.refine("lift the cube", a_critique(), "lift")
    assert isinstance(refined, str) and refined.strip() and refined != "lift the cube"
    assert refiner.last_answer
    template = TemplateRefiner().refine("lift the cube", a_critique(), "lift")
    assert (refined == template) == refiner.last_fallback


def test_llm_refiner_cleans_a_well_formed_answer_and_prompts_with_the_steps(refiner, monkeypatch):
    seen: list[str] = []
    answer = '\n  Instruction: "grasp the cube firmly"\nsomething else'
    monkeypatch.setattr(refiner.model, "generate", fake_generate(refiner.tokenizer, answer, seen))
    assert refiner.refine("lift the cube", a_critique(), "lift") == "grasp the cube firmly"
    assert refiner.last_fallback is False and refiner.last_answer == answer
    (prompt,) = seen
    assert prompt.startswith("<|user|>") and prompt.endswith("<|assistant|>")  # through the chat template
    assert "lift the cube" in prompt and "the gripper closed too early" in prompt
    assert all(step in prompt for step in task_info("lift").steps)


@pytest.mark.parametrize("answer", ["", "\n \n", "Lift the cube.", "x" * 301, "\ufffd\ufffdg\ufffd:o 7"])
def test_llm_refiner_falls_back_to_the_template(refiner, monkeypatch, answer):
    monkeypatch.setattr(refiner.model, "generate", fake_generate(refiner.tokenizer, answer, []))
    refined = refiner.refine("lift the cube", a_critique(), "lift")
    assert refiner.last_fallback is True
    assert refined == TemplateRefiner().refine("lift the cube", a_critique(), "lift")


def test_llm_refiner_without_a_chat_template_uses_a_plain_prompt(tmp_path, monkeypatch):
    plain = LLMRefiner(llm_checkpoint(tmp_path, chat_template=None), max_new_tokens=8)
    seen: list[str] = []
    monkeypatch.setattr(plain.model, "generate", fake_generate(plain.tokenizer, "grasp the cube", seen))
    assert plain.refine("lift the cube", a_critique(), "lift") == "grasp the cube"
    assert seen[0].endswith("Improved instruction:") and "<|user|>" not in seen[0]


def test_llm_refiner_rejects_an_unknown_task(refiner):
    with pytest.raises(ValueError, match="unknown task 'juggle'"):
        refiner.refine("lift the cube", a_critique(), "juggle")


@pytest.mark.parametrize("answer, expected", [("- **New instruction:** `open the door`", "open the door"),
                                              ("“pull the handle”\n", "pull the handle"), ("  \n", "")])
def test_clean_instruction(answer, expected):
    assert clean_instruction(answer) == expected
