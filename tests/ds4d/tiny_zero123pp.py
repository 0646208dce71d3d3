"""A tiny random-initialised Zero123++ folder: the same classes and layout as
``sudo-ai/zero123plus-v1.1``, small enough to sample on a CPU in about a second."""

from __future__ import annotations

import json
from pathlib import Path

import torch

TEXT_LEN = 8  # tokens of the (empty) prompt; v1.1 has 77
DIM = 16  # text hidden size = vision projection = UNet cross-attention dim (1024 in v1.1)


def make_tiny_zero123pp(folder: Path, seed: int = 0) -> Path:
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    torch.manual_seed(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=DIM,
        attention_head_dim=2, norm_num_groups=4).save_pretrained(folder / "unet")
    AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4, sample_size=32).save_pretrained(folder / "vae")
    CLIPTextModel(CLIPTextConfig(
        vocab_size=8, hidden_size=DIM, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=TEXT_LEN, projection_dim=DIM,
        bos_token_id=0, eos_token_id=1, pad_token_id=1)).save_pretrained(folder / "text_encoder")
    CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=DIM, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        image_size=28, patch_size=14, projection_dim=DIM)).save_pretrained(
        folder / "vision_encoder")
    tok = folder / "tokenizer_src"
    tok.mkdir(exist_ok=True)
    (tok / "vocab.json").write_text(json.dumps(
        {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "b</w>": 3, "a": 4, "b": 5}))
    (tok / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(tok / "vocab.json"), str(tok / "merges.txt"),
                  model_max_length=TEXT_LEN).save_pretrained(folder / "tokenizer")
    EulerAncestralDiscreteScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
        beta_schedule="scaled_linear", prediction_type="v_prediction").save_pretrained(
        folder / "scheduler")
    for name, size, mean, std in (
            ("feature_extractor_clip", 28, (0.4815, 0.4578, 0.4082), (0.2686, 0.2613, 0.2758)),
            ("feature_extractor_vae", 32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))):
        (folder / name).mkdir(exist_ok=True)
        (folder / name / "preprocessor_config.json").write_text(json.dumps(
            {"crop_size": {"height": size, "width": size}, "size": {"shortest_edge": size},
             "image_mean": list(mean), "image_std": list(std)}))
    ramp = torch.linspace(0.1, 1.0, TEXT_LEN).tolist()
    (folder / "model_index.json").write_text(json.dumps(
        {"_class_name": "Zero123PlusPipeline", "ramping_coefficients": ramp}))
    return folder
