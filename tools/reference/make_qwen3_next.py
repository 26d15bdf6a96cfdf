#!/usr/bin/env python3
"""Tiny random Qwen3-Next checkpoint (`qwen3_next`) with transformers + peft reference outputs.

Writes, with the conventions of make_arch.py / logits.py (whose helpers it reuses):
  testdata/tiny-qwen3-next/                      the model (save_pretrained, f32) + tokenizer
  testdata/tiny-qwen3-next-lora/                 a fixed PEFT adapter
  testdata/model-ref/tiny-qwen3-next.safetensors ids, keep, positions, logits, logits_lora
  testdata/model-ref/tiny-qwen3-next-greedy.json greedy continuations of a left-padded batch

The model has two layers: layer 0 a gated DeltaNet (linear attention) with a dense MLP
(`mlp_only_layers`), layer 1 gated full attention with the sparse MoE and its shared expert;
partial rotary 0.5, 4 value heads over 2 key heads in the DeltaNet.

    /work/venvs/arch/bin/python tools/reference/make_qwen3_next.py

Committed outputs were made with torch 2.15.0, transformers 5.25.0, peft 0.21.2 (CPU).
"""
import os
import sys

import torch
from transformers import GenerationConfig, Qwen3NextConfig, Qwen3NextForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import logits  # noqa: E402
import make_tiny  # noqa: E402

# The attention and DeltaNet projections. peft 0.21 turns MLP names (gate_proj, up_proj,
# down_proj) into `target_parameters` on transformers 5's fused experts, a layout gym does not
# read, and then leaves the dense and shared-expert MLPs out; gym's own gradient test adapts those.
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "in_proj_qkvz", "in_proj_ba", "out_proj"]


def config():
    return Qwen3NextConfig(
        vocab_size=make_tiny.VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
        rms_norm_eps=1e-6, bos_token_id=0, eos_token_id=0, pad_token_id=0, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
        linear_conv_kernel_dim=4, linear_key_head_dim=8, linear_value_head_dim=8,
        linear_num_key_heads=2, linear_num_value_heads=4,
        num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16,
        shared_expert_intermediate_size=24, norm_topk_prob=True, decoder_sparse_step=1,
        mlp_only_layers=[0], full_attention_interval=2,
    )


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    name = "tiny-qwen3-next"
    torch.manual_seed(0)
    m = Qwen3NextForCausalLM(config()).to(torch.float32)
    make_tiny.randomize(m, 20)
    m.generation_config = GenerationConfig(bos_token_id=0, eos_token_id=0, pad_token_id=0)
    make_tiny.write(m, {}, os.path.join(root, "testdata", name))
    torch.manual_seed(0)
    logits.run(name, TARGETS)


if __name__ == "__main__":
    main()
