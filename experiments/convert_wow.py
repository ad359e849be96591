"""wow-gym convert-wow: the released WoW weights into a diffusers folder, once, offline.

  wow-gym convert-wow model=dit-2b checkpoint=WoW-1-DiT-2B/WoW-1-DiT-2B.pt \\
      base=Cosmos-Predict2-2B-Video2World out=models/wow-dit-2b
  wow-gym convert-wow model=wan-14b checkpoint=WoW-1-Wan-14B \\
      base=Wan2.1-I2V-14B-720P-Diffusers out=models/wow-wan-14b

dit-2b: WoW-1-DiT-2B, a Cosmos-Predict2-2B Video2World DiT fine-tune (one imaginaire .pt, net./net_ema.
keys). wan-14b: WoW-1-Wan-14B, a Wan2.1-I2V-14B DiT: the Wan2.1 DiT shards, then WoW_video_dit.pt, whose
tensors replace the shards'. Files merge in the order given; a folder stands for its *.safetensors shards
followed by the WoW_video_dit.pt it holds, if any (checkpoint=[<shards folder>,<path>/WoW_video_dit.pt]
when they lie apart).

base is the base model's diffusers pipeline folder, fetched once beforehand
(nvidia/Cosmos-Predict2-2B-Video2World or Wan-AI/Wan2.1-I2V-14B-720P-Diffusers): its transformer/config.json
shapes the model, and its other components (model_index.json, vae/, text_encoder/, tokenizer/, scheduler/,
...) are copied (link=true: symlinked) beside the converted transformer, so `out` loads as a whole pipeline
with from_pretrained(out, local_files_only=True). Without base, config=<transformer config.json> is needed
and `out` holds the transformer alone.

Every converted name and shape is checked against the diffusers model before any weight is read; a mismatch
stops with the missing, unexpected and mismatched names. The folder is built in <out>.partial and renamed when
complete; <out>/conversion.json records the source files (sha256), the verification counts and the versions.
Nothing is downloaded.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from wow_gym.experiments.config_loading import load_config, to_dataclass


def main(argv: list[str]) -> int:
    cfg = load_config("convert_wow", argv, __doc__)
    if cfg is None:
        return 0
    from wow_gym.world_models.wow.convert import ConversionError, ConvertWoWConfig, convert_wow

    values = OmegaConf.to_container(cfg, resolve=True)
    try:
        converted = convert_wow(to_dataclass(ConvertWoWConfig, values), record=values)
    except ConversionError as error:
        raise SystemExit(f"wow-gym convert-wow: {error}") from None
    check = converted.record["verification"]
    print(f"{converted.record['class']}: {check['keys_converted']} tensors, {check['parameters']:,} "
          f"parameters, {check['missing']} missing, {check['unexpected']} unexpected, "
          f"{check['shape_mismatches']} shape mismatches")
    print(f"diffusers folder: {converted.path}")
    return 0
