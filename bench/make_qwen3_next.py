#!/usr/bin/env python3
"""Writes a random mid-size Qwen3-Next (`qwen3_next`) model folder for bench/model.sh:
hidden 1024, 8 layers (3 gated DeltaNet : 1 gated attention), 8 key / 16 value DeltaNet heads
of 128, attention 8 heads (2 KV) of 128 with partial rotary 0.25, MoE on every layer with
8 experts of 256 (top 2) and a shared expert of 512, vocabulary 32000, untied head. About 0.2 B
parameters, stored in bf16.

    /work/venvs/arch/bin/python bench/make_qwen3_next.py DIR
"""
import os
import sys

import torch
from transformers import Qwen3NextConfig, Qwen3NextForCausalLM


def main():
    out = sys.argv[1]
    cfg = Qwen3NextConfig(
        vocab_size=32000, hidden_size=1024, intermediate_size=2048, num_hidden_layers=8,
        num_attention_heads=8, num_key_value_heads=2, head_dim=128, max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25},
        linear_conv_kernel_dim=4, linear_key_head_dim=128, linear_value_head_dim=128,
        linear_num_key_heads=8, linear_num_value_heads=16, num_experts=8, num_experts_per_tok=2,
        moe_intermediate_size=256, shared_expert_intermediate_size=512, norm_topk_prob=True,
        decoder_sparse_step=1, mlp_only_layers=[], full_attention_interval=4, tie_word_embeddings=False,
        bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )
    torch.manual_seed(0)
    m = Qwen3NextForCausalLM(cfg).to(torch.bfloat16)
    os.makedirs(out, exist_ok=True)
    m.save_pretrained(out, safe_serialization=True)
    print(sum(p.numel() for p in m.parameters()), "parameters in", out)


if __name__ == "__main__":
    main()
