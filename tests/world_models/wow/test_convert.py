"""`wow-gym convert-wow` on tiny checkpoints written in the released layouts.

The released key names below are written from the original modules, block by block, not derived from the
conversion under test: Cosmos-Predict2's MiniTrainDIT (cosmos_predict2/models/text2image_dit.py, saved by
imaginaire under net. / net_ema.) and Wan2.1's WanModel (wan/modules/model.py; DiffSynth's wan_video_dit.py
names its modules alike). Shapes follow the tiny configs; values are random.
"""

from __future__ import annotations

import importlib.util
import json
import math
from types import SimpleNamespace

import pytest
import torch
from diffusers import CosmosTransformer3DModel, WanImageToVideoPipeline, WanTransformer3DModel
from diffusers.models.transformers import transformer_cosmos
from safetensors.torch import load_file, save_file

from tests.world_models.wow.tiny_pipelines import WAN_I2V, save_tiny_wan_i2v
from wow_gym.cli import main as wow_gym_main
from wow_gym.world_models.wow.convert import (
    ARCHITECTURES,
    ConversionError,
    ConvertWoWConfig,
    check_against_model,
    convert_names,
    convert_wow,
    empty_model,
)

COSMOS = {"in_channels": 5, "out_channels": 4, "num_attention_heads": 2, "attention_head_dim": 12,
          "num_layers": 2, "mlp_ratio": 2.0, "text_embed_dim": 16, "adaln_lora_dim": 4, "max_size": (4, 32, 32),
          "patch_size": (1, 2, 2), "rope_scale": (1.0, 3.0, 3.0), "concat_padding_mask": True,
          "extra_pos_embed_type": None}
WAN = WAN_I2V  # the transformer of the tiny base pipeline
BF16 = torch.bfloat16
OVERLAY = "WoW_video_dit.pt"


def cosmos_predict2_release(c: dict) -> dict[str, tuple[int, ...]]:
    """MiniTrainDIT's state dict (use_adaln_lora, rope3d, no extra per-block position embedding)."""
    d, hd = c["num_attention_heads"] * c["attention_head_dim"], c["attention_head_dim"]
    lora, pt, ps, dim_h = c["adaln_lora_dim"], c["patch_size"][0], c["patch_size"][1], hd // 6 * 2
    keys = {
        "x_embedder.proj.1.weight": (d, (c["in_channels"] + 1) * pt * ps * ps),  # +1: the padding mask
        "pos_embedder.seq": (max(c["max_size"][1] // ps, c["max_size"][0] // pt),),
        "pos_embedder.dim_spatial_range": (dim_h // 2,),
        "pos_embedder.dim_temporal_range": ((hd - 2 * dim_h) // 2,),
        "t_embedder.1.linear_1.weight": (d, d), "t_embedder.1.linear_2.weight": (3 * d, d),
        "t_embedding_norm.weight": (d,),
        "final_layer.linear.weight": (ps * ps * pt * c["out_channels"], d),
        "final_layer.adaln_modulation.1.weight": (lora, d),
        "final_layer.adaln_modulation.2.weight": (2 * d, lora),
        "accum_video_sample_counter": (), "accum_image_sample_counter": (), "accum_iteration": (),
        "accum_train_in_hours": (),
    }
    for b in (f"blocks.{i}." for i in range(c["num_layers"])):
        for attn, context in (("self_attn", d), ("cross_attn", c["text_embed_dim"])):
            keys |= {f"{b}{attn}.q_proj.weight": (d, d), f"{b}{attn}.k_proj.weight": (d, context),
                     f"{b}{attn}.v_proj.weight": (d, context), f"{b}{attn}.output_proj.weight": (d, d),
                     f"{b}{attn}.q_norm.weight": (hd,), f"{b}{attn}.k_norm.weight": (hd,)}
        hidden = int(d * c["mlp_ratio"])
        keys |= {f"{b}mlp.layer1.weight": (hidden, d), f"{b}mlp.layer2.weight": (d, hidden)}
        for part in ("self_attn", "cross_attn", "mlp"):
            keys |= {f"{b}adaln_modulation_{part}.1.weight": (lora, d),
                     f"{b}adaln_modulation_{part}.2.weight": (3 * d, lora)}
    return keys


def wan21_i2v_release(c: dict) -> dict[str, tuple[int, ...]]:
    """WanModel's state dict, model_type='i2v' (image cross-attention k_img/v_img, CLIP projection img_emb)."""
    d, clip = c["num_attention_heads"] * c["attention_head_dim"], c["image_dim"]

    def linear(name: str, out: int, inp: int) -> dict:
        return {f"{name}.weight": (out, inp), f"{name}.bias": (out,)}

    def norm(name: str, dim: int) -> dict:
        return {f"{name}.weight": (dim,), f"{name}.bias": (dim,)}

    keys = {"patch_embedding.weight": (d, c["in_channels"], *c["patch_size"]), "patch_embedding.bias": (d,),
            **linear("text_embedding.0", d, c["text_dim"]), **linear("text_embedding.2", d, d),
            **linear("time_embedding.0", d, c["freq_dim"]), **linear("time_embedding.2", d, d),
            **linear("time_projection.1", 6 * d, d),
            **linear("head.head", c["out_channels"] * math.prod(c["patch_size"]), d), "head.modulation": (1, 2, d),
            **norm("img_emb.proj.0", clip), **linear("img_emb.proj.1", clip, clip),
            **linear("img_emb.proj.3", d, clip), **norm("img_emb.proj.4", d)}
    for b in (f"blocks.{i}." for i in range(c["num_layers"])):
        for attn in ("self_attn", "cross_attn"):
            for proj in ("q", "k", "v", "o"):
                keys |= linear(f"{b}{attn}.{proj}", d, d)
            keys |= {f"{b}{attn}.norm_q.weight": (d,), f"{b}{attn}.norm_k.weight": (d,)}
        keys |= {**linear(f"{b}cross_attn.k_img", d, d), **linear(f"{b}cross_attn.v_img", d, d),
                 f"{b}cross_attn.norm_k_img.weight": (d,), **norm(f"{b}norm3", d),
                 **linear(f"{b}ffn.0", c["ffn_dim"], d), **linear(f"{b}ffn.2", d, c["ffn_dim"]),
                 f"{b}modulation": (1, 6, d)}
    return keys


def random_tensors(shapes: dict, prefix: str = "", seed: int = 0) -> dict[str, torch.Tensor]:
    """Random float tensors; imaginaire's training counters are int64 (accum_train_in_hours float)."""
    generator = torch.Generator().manual_seed(seed)

    def tensor(name: str, shape: tuple[int, ...]) -> torch.Tensor:
        if name.startswith("accum_") and not name.endswith("hours"):
            return torch.zeros(shape, dtype=torch.int64)
        return torch.randn(shape, generator=generator)

    return {prefix + k: tensor(k, s) for k, s in shapes.items()}


def write_config(path, cls, values):
    path.write_text(json.dumps({"_class_name": cls.__name__, **values}))
    return path


def resize_without_torchvision(monkeypatch):
    """diffusers' Cosmos forward resizes the padding mask with torchvision, which the project does not
    install; for a mask already at the latent's size that resize is the identity this stand-in computes."""
    def resize(mask, size, interpolation):
        return torch.nn.functional.interpolate(mask, size=size, mode="nearest")

    if importlib.util.find_spec("torchvision") is None:
        monkeypatch.setattr(transformer_cosmos, "transforms", SimpleNamespace(
            functional=SimpleNamespace(resize=resize), InterpolationMode=SimpleNamespace(NEAREST="nearest")),
            raising=False)


def saved_state_matching_the_model(folder, cls, config) -> dict[str, torch.Tensor]:
    """Every tensor of a saved transformer folder, after checking names and shapes equal a fresh model's."""
    saved = {}
    for shard in sorted(folder.glob("*.safetensors")):
        saved |= load_file(shard)
    expected = {k: tuple(v.shape) for k, v in cls.from_config(config).state_dict().items()}
    assert {k: tuple(v.shape) for k, v in saved.items()} == expected
    return saved


def assert_verified(verification: dict) -> None:
    assert (verification["missing"], verification["unexpected"], verification["shape_mismatches"]) == (0, 0, 0)


# The released models' own sizes: Cosmos-Predict2-2B-Video2World and Wan2.1-I2V-14B-720P's transformer configs
# (as diffusers' scripts/convert_{cosmos,wan}_to_diffusers.py state them).
FULL_SIZE = {
    "dit-2b": ({"in_channels": 17, "out_channels": 16, "num_attention_heads": 16, "attention_head_dim": 128,
                "num_layers": 28, "mlp_ratio": 4.0, "text_embed_dim": 1024, "adaln_lora_dim": 256,
                "max_size": (128, 240, 240), "patch_size": (1, 2, 2), "rope_scale": (1.0, 3.0, 3.0),
                "concat_padding_mask": True, "extra_pos_embed_type": None}, cosmos_predict2_release),
    "wan-14b": ({"image_dim": 1280, "added_kv_proj_dim": 5120, "attention_head_dim": 128, "cross_attn_norm": True,
                 "eps": 1e-06, "ffn_dim": 13824, "freq_dim": 256, "in_channels": 36, "num_attention_heads": 40,
                 "num_layers": 40, "out_channels": 16, "patch_size": [1, 2, 2], "qk_norm": "rms_norm_across_heads",
                 "text_dim": 4096}, wan21_i2v_release),
}


@pytest.mark.parametrize("model", FULL_SIZE)
def test_every_released_name_of_the_full_size_models_maps(model):
    """The released layouts at full size, names and shapes only (meta tensors: no memory)."""
    config, release = FULL_SIZE[model]
    shapes = release(config)
    mapping = convert_names(shapes, ARCHITECTURES[model])
    assert check_against_model(mapping, shapes, empty_model(ARCHITECTURES[model], config)) == {
        "missing": [], "unexpected": [], "shape_mismatches": []}


# ---------------------------------------------------------------- dit-2b (Cosmos-Predict2, imaginaire .pt)

@pytest.fixture(scope="module")
def cosmos_release(tmp_path_factory):
    """WoW-1-DiT-2B.pt as imaginaire saves it: {"model": {net.*, net_ema.*}, ...}, and a config.json."""
    root = tmp_path_factory.mktemp("cosmos")
    shapes = cosmos_predict2_release(COSMOS)
    plain, ema = random_tensors(shapes, "net.", seed=1), random_tensors(shapes, "net_ema.", seed=2)
    torch.save({"model": {**plain, **ema}, "trainer": {"iteration": 5}}, root / "WoW-1-DiT-2B.pt")
    return root, ema, write_config(root / "config.json", CosmosTransformer3DModel, COSMOS)


def test_dit_2b_converts_every_name_and_loads(cosmos_release, tmp_path, monkeypatch):
    root, ema, config = cosmos_release
    done = convert_wow(ConvertWoWConfig(model="dit-2b", checkpoint=str(root / "WoW-1-DiT-2B.pt"),
                                        config=str(config), out=str(tmp_path / "dit"), progress=False))
    check = done.record["verification"]
    assert_verified(check)
    assert check["dropped_by_diffusers"] == sorted(k for k in cosmos_predict2_release(COSMOS)
                                                   if k.startswith(("pos_embedder.", "accum_")))
    source = done.record["sources"][0]
    assert source["prefix"] == "net_ema." and source["ignored"] == len(ema)  # ema=true: net.* left out
    assert len(source["sha256"]) == 64 and not (tmp_path / "dit.partial").exists()

    saved = saved_state_matching_the_model(tmp_path / "dit" / "transformer", CosmosTransformer3DModel, COSMOS)
    assert check["parameters"] == sum(t.numel() for t in saved.values())
    for diffusers_name, released in [
            ("transformer_blocks.0.attn1.to_q.weight", "blocks.0.self_attn.q_proj.weight"),
            ("transformer_blocks.1.attn2.norm_k.weight", "blocks.1.cross_attn.k_norm.weight"),
            ("transformer_blocks.1.ff.net.2.weight", "blocks.1.mlp.layer2.weight"),
            ("transformer_blocks.0.norm3.linear_2.weight", "blocks.0.adaln_modulation_mlp.2.weight"),
            ("norm_out.linear_1.weight", "final_layer.adaln_modulation.1.weight"),
            ("patch_embed.proj.weight", "x_embedder.proj.1.weight")]:
        assert torch.equal(saved[diffusers_name], ema["net_ema." + released].to(BF16)), diffusers_name

    resize_without_torchvision(monkeypatch)
    model = CosmosTransformer3DModel.from_pretrained(tmp_path / "dit" / "transformer", local_files_only=True)
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 4, 1, 16, 16), timestep=torch.tensor([500]),
                           encoder_hidden_states=torch.randn(1, 12, 16), fps=16,
                           condition_mask=torch.zeros(1, 1, 1, 16, 16),
                           padding_mask=torch.zeros(1, 1, 16, 16)).sample
    assert out.shape == (1, 4, 1, 16, 16) and torch.isfinite(out).all()


def test_a_checkpoint_that_does_not_fit_lists_its_names(cosmos_release, tmp_path):
    _, ema, config = cosmos_release
    broken = {k: v for k, v in ema.items() if k != "net_ema.blocks.1.mlp.layer2.weight"}
    broken["net_ema.blocks.0.extra_gate.weight"] = torch.zeros(3)
    broken["net_ema.t_embedding_norm.weight"] = torch.zeros(7)
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(ConversionError) as error:
        convert_wow(ConvertWoWConfig(model="dit-2b", checkpoint=str(tmp_path / "broken.pt"), config=str(config),
                                     out=str(tmp_path / "out"), progress=False))
    message = str(error.value)
    assert "1 missing: [transformer_blocks.1.ff.net.2.weight]" in message
    assert "1 unexpected: [transformer_blocks.0.extra_gate.weight (from blocks.0.extra_gate.weight)]" in message
    assert "1 shape mismatches: [time_embed.norm.weight: checkpoint [7], model [24]]" in message
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_out_is_not_replaced_unless_asked(cosmos_release, tmp_path):
    root, _, config = cosmos_release
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    args = {"model": "dit-2b", "checkpoint": str(root / "WoW-1-DiT-2B.pt"), "config": str(config),
            "out": str(tmp_path / "out"), "progress": False, "sha256": False}
    with pytest.raises(ConversionError, match="exists; pass overwrite=true"):
        convert_wow(ConvertWoWConfig(**args))
    assert (tmp_path / "out" / "mine.txt").read_text() == "keep"
    convert_wow(ConvertWoWConfig(**args, overwrite=True))
    assert not (tmp_path / "out" / "mine.txt").exists() and (tmp_path / "out" / "transformer").is_dir()


# ---------------------------------------------------------------- wan-14b (Wan2.1 shards + WoW_video_dit.pt)

@pytest.fixture(scope="module")
def wan_release(tmp_path_factory):
    """WoW-1-Wan-14B/ as released: two Wan2.1 DiT shards and WoW_video_dit.pt, the fine-tune of every tensor
    but the patch and CLIP embeddings under a "dit." prefix; and the base pipeline folder."""
    root = tmp_path_factory.mktemp("wan")
    release = root / "WoW-1-Wan-14B"
    release.mkdir()
    base = random_tensors(wan21_i2v_release(WAN), seed=3)
    names = sorted(base)
    for i, half in enumerate((names[: len(names) // 2], names[len(names) // 2:])):
        save_file({k: base[k] for k in half}, release / f"diffusion_pytorch_model-0000{i + 1}-of-00002.safetensors")
    overlay = {k: v for k, v in random_tensors(wan21_i2v_release(WAN), "dit.", seed=4).items()
               if not k.startswith(("dit.patch_embedding", "dit.img_emb"))}
    torch.save(overlay, release / OVERLAY)
    return release, base, overlay, save_tiny_wan_i2v(root / "Wan2.1-I2V-14B-720P-Diffusers")


def test_wan_14b_from_the_cli_overlays_the_fine_tune_into_a_whole_pipeline(wan_release, tmp_path):
    release, base, overlay, pipeline = wan_release
    out = tmp_path / "wan"
    assert wow_gym_main(["convert-wow", "model=wan-14b", f"checkpoint={release}", f"base={pipeline}",
                         f"out={out}", "progress=false"]) == 0
    record = json.loads((out / "conversion.json").read_text())
    assert_verified(record["verification"])
    assert record["verification"]["keys_converted"] == len(base)
    assert [s["file"] for s in record["sources"]] == ["diffusion_pytorch_model-00001-of-00002.safetensors",
                                                      "diffusion_pytorch_model-00002-of-00002.safetensors", OVERLAY]
    assert record["sources"][2]["prefix"] == "dit." and record["sources"][2]["replaced"] == len(overlay)
    assert (out / "config.yaml").exists() and json.loads((out / "run.json").read_text())["commit"]

    saved = saved_state_matching_the_model(out / "transformer", WanTransformer3DModel, WAN)
    fine_tuned = [("blocks.0.attn1.to_q.weight", "blocks.0.self_attn.q.weight"),
                  ("blocks.1.attn2.add_k_proj.bias", "blocks.1.cross_attn.k_img.bias"),
                  ("blocks.1.ffn.net.0.proj.weight", "blocks.1.ffn.0.weight"),
                  ("condition_embedder.time_proj.weight", "time_projection.1.weight")]
    for diffusers_name, released in fine_tuned:
        assert torch.equal(saved[diffusers_name], overlay["dit." + released].to(BF16)), diffusers_name
    # modules diffusers keeps in float32 stay float32 (Wan's norm3 is diffusers' norm2)
    assert torch.equal(saved["blocks.0.norm2.weight"], overlay["dit.blocks.0.norm3.weight"])
    assert torch.equal(saved["scale_shift_table"], overlay["dit.head.modulation"])
    # tensors the fine-tune does not hold come from the base shards
    assert torch.equal(saved["patch_embedding.weight"], base["patch_embedding.weight"].to(BF16))
    assert torch.equal(saved["condition_embedder.image_embedder.ff.net.2.weight"],
                       base["img_emb.proj.3.weight"].to(BF16))

    for name in ("vae", "text_encoder", "tokenizer", "scheduler", "image_encoder", "image_processor"):
        assert (out / name).is_dir() and not (out / name).is_symlink(), name
    assert (out / "model_index.json").read_bytes() == (pipeline / "model_index.json").read_bytes()
    pipe = WanImageToVideoPipeline.from_pretrained(out, local_files_only=True)
    assert torch.equal(pipe.transformer.blocks[0].attn1.to_q.weight.detach().to(BF16),
                       saved["blocks.0.attn1.to_q.weight"])
    with torch.no_grad():
        sample = pipe.transformer.eval()(torch.randn(1, WAN["in_channels"], 1, 16, 16),
                                         timestep=torch.tensor([500]),
                                         encoder_hidden_states=torch.randn(1, 8, WAN["text_dim"]),
                                         encoder_hidden_states_image=torch.randn(1, 5, WAN["image_dim"])).sample
    assert sample.shape == (1, WAN["out_channels"], 1, 16, 16) and torch.isfinite(sample).all()


def test_base_components_can_be_symlinked(wan_release, tmp_path):
    release, _, _, pipeline = wan_release
    files = [str(p) for p in sorted(release.glob("*.safetensors"))] + [str(release / OVERLAY)]
    convert_wow(ConvertWoWConfig(model="wan-14b", checkpoint=files, base=str(pipeline), out=str(tmp_path / "wan"),
                                 link=True, sha256=False, progress=False))
    assert (tmp_path / "wan" / "vae").is_symlink()
    assert (tmp_path / "wan" / "vae").resolve() == (pipeline / "vae").resolve()
    assert not (tmp_path / "wan" / "transformer").is_symlink()


def test_the_fine_tune_must_come_last(wan_release, tmp_path):
    release, _, _, pipeline = wan_release
    with pytest.raises(ConversionError, match="must come last"):
        convert_wow(ConvertWoWConfig(model="wan-14b", checkpoint=[str(p) for p in sorted(release.iterdir())],
                                     base=str(pipeline), out=str(tmp_path / "wan"), progress=False))


@pytest.mark.parametrize(("args", "said"), [
    (["model=wan-1b", "checkpoint=x.pt", "config=c.json"], "unknown model 'wan-1b'; expected one of dit-2b, wan-14b"),
    (["model=dit-2b", "checkpoint=nowhere.pt", "config=c.json"], "checkpoint nowhere.pt not found"),
    (["model=dit-2b", "checkpoint=WoW-1-DiT-2B.pt"], "neither base nor config given"),
    (["model=wan-14b", "checkpoint=WoW-1-DiT-2B.pt", "config=config.json"], "configures a CosmosTransformer3DModel"),
    (["model=dit-2b", "checkpoint=WoW-1-DiT-2B.pt", "config=config.json", "base=."], "has no model_index.json"),
], ids=["unknown-model", "missing-checkpoint", "no-base-nor-config", "config-of-another-model", "base-not-a-pipeline"])
def test_cli_errors_speak_to_the_user(cosmos_release, monkeypatch, args, said):
    monkeypatch.chdir(cosmos_release[0])
    with pytest.raises(SystemExit) as error:
        wow_gym_main(["convert-wow", *args, "out=never"])
    assert str(error.value).startswith("wow-gym convert-wow: ") and said in str(error.value)
    assert not (cosmos_release[0] / "never").exists()
