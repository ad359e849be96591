"""Tiny random diffusers pipelines for the WoW tests, built in code (nothing downloaded).

Sizes follow diffusers' own pipeline tests. test_adapters plans with both pipelines; test_convert uses the Wan
one as the `base` folder a user fetches for WoW-1-Wan-14B, so its transformer config is WAN_I2V.
"""

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLWan,
    Cosmos2VideoToWorldPipeline,
    CosmosTransformer3DModel,
    FlowMatchEulerDiscreteScheduler,
    WanImageToVideoPipeline,
    WanTransformer3DModel,
)
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    PreTrainedTokenizerFast,
    T5Config,
    T5EncoderModel,
    UMT5Config,
    UMT5EncoderModel,
)

from wow_gym.world_models.wow.adapters import PassThroughSafetyChecker

WORDS = ["lift", "the", "red", "cube", "pick", "it", "up", "open", "door", "a", "robot", "arm"]
TEXT_DIM = 32  # the text encoders' width, which the transformers attend to
LATENT_CHANNELS = 16  # the Wan VAE's, shared by both pipelines
# The tiny Wan2.1 I2V transformer, with the image cross-attention (added_kv_proj_dim) the released 14B I2V has.
WAN_I2V = {"patch_size": (1, 2, 2), "num_attention_heads": 2, "attention_head_dim": 12,
           "in_channels": 2 * LATENT_CHANNELS + 4, "out_channels": LATENT_CHANNELS, "text_dim": TEXT_DIM,
           "freq_dim": 256, "ffn_dim": 32, "num_layers": 2, "cross_attn_norm": True,
           "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "image_dim": 4, "added_kv_proj_dim": 24,
           "rope_max_seq_len": 32}


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over WORDS, built in code (the real ones are T5/UMT5 SentencePiece)."""
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>")


def tiny_text_config(config_class: type) -> T5Config:
    """A two-layer T5Config or UMT5Config over tiny_tokenizer's vocabulary, TEXT_DIM wide."""
    return config_class(vocab_size=len(WORDS) + 3, d_model=TEXT_DIM, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                        relative_attention_num_buckets=8)


def tiny_vae() -> AutoencoderKLWan:
    """A random Wan VAE with LATENT_CHANNELS latent channels, 4x temporal downsampling as the real one."""
    torch.manual_seed(0)
    return AutoencoderKLWan(base_dim=3, z_dim=LATENT_CHANNELS, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True])


def save_tiny_cosmos2(folder: Path) -> Path:
    """A random Cosmos2 Video2World pipeline saved to folder, without its safety checker (the adapter supplies
    the user's choice when loading). No padding mask: the released model's needs torchvision, which the
    project does not install (test_adapters checks the adapter says so)."""
    torch.manual_seed(0)
    transformer = CosmosTransformer3DModel(
        in_channels=LATENT_CHANNELS + 1, out_channels=LATENT_CHANNELS, num_attention_heads=2, attention_head_dim=16,
        num_layers=2, mlp_ratio=2, text_embed_dim=TEXT_DIM, adaln_lora_dim=4, max_size=(8, 16, 16),
        patch_size=(1, 2, 2), rope_scale=(2.0, 1.0, 1.0), concat_padding_mask=False,
        extra_pos_embed_type="learnable")
    pipe = Cosmos2VideoToWorldPipeline(
        text_encoder=T5EncoderModel(tiny_text_config(T5Config)).eval(), tokenizer=tiny_tokenizer(),
        transformer=transformer, vae=tiny_vae(), scheduler=FlowMatchEulerDiscreteScheduler(use_karras_sigmas=True),
        safety_checker=PassThroughSafetyChecker())
    pipe.safety_checker = None
    pipe.save_pretrained(folder)
    return folder


def save_tiny_wan_i2v(folder: Path) -> Path:
    """A random Wan2.1 I2V pipeline (transformer WAN_I2V) with a CLIP image encoder, as the 14B I2V model has,
    saved to folder."""
    torch.manual_seed(0)
    transformer = WanTransformer3DModel(**WAN_I2V)
    encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=WAN_I2V["image_dim"], projection_dim=4,
                                               num_hidden_layers=2, num_attention_heads=2, image_size=32,
                                               intermediate_size=16, patch_size=4))
    pipe = WanImageToVideoPipeline(
        tokenizer=tiny_tokenizer(), text_encoder=UMT5EncoderModel(tiny_text_config(UMT5Config)).eval(),
        vae=tiny_vae(), scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0), transformer=transformer,
        image_encoder=encoder.eval(), image_processor=CLIPImageProcessor(crop_size=32, size=32))
    pipe.save_pretrained(folder)
    return folder
