#!/usr/bin/env python3
"""Writes random mid-size model folders of the other architectures gym runs, for bench/model.sh:
hidden 1024, 8 layers, 16 attention heads (4 KV) of 64, vocabulary 32000, untied head, stored in
bf16, with what each architecture adds (Qwen2: q/k/v biases; Llama 3: llama3 rope scaling;
Mistral: a 128-token sliding window; Mixtral: 8 experts of 1024, top 2). Dense MLPs are 2816
wide. 150-300 M parameters each.

    /work/venvs/arch/bin/python bench/make_arch_mid.py ARCH DIR     (ARCH: qwen2 llama mistral mixtral)
"""
import os
import sys

import torch
import transformers as tf

COMMON = dict(
    vocab_size=32000, hidden_size=1024, num_hidden_layers=8, num_attention_heads=16,
    num_key_value_heads=4, max_position_embeddings=4096, rms_norm_eps=1e-6,
    tie_word_embeddings=False, bos_token_id=0, eos_token_id=0, pad_token_id=0,
)


def config(arch):
    if arch == "qwen2":
        return tf.Qwen2Config(intermediate_size=2816, **COMMON), tf.Qwen2ForCausalLM
    if arch == "llama":
        rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 1024}
        return tf.LlamaConfig(intermediate_size=2816, rope_parameters=rope, **COMMON), tf.LlamaForCausalLM
    if arch == "mistral":
        return tf.MistralConfig(intermediate_size=2816, sliding_window=128, **COMMON), tf.MistralForCausalLM
    if arch == "mixtral":
        return (tf.MixtralConfig(intermediate_size=1024, num_local_experts=8, num_experts_per_tok=2, **COMMON),
                tf.MixtralForCausalLM)
    raise SystemExit(f"unknown architecture {arch}")


def main():
    arch, out = sys.argv[1], sys.argv[2]
    cfg, cls = config(arch)
    torch.manual_seed(0)
    m = cls(cfg).to(torch.bfloat16)
    os.makedirs(out, exist_ok=True)
    m.save_pretrained(out, safe_serialization=True)
    print(sum(p.numel() for p in m.parameters()), "parameters in", out)


if __name__ == "__main__":
    main()
