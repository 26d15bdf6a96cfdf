#!/usr/bin/env python3
"""Tiny random checkpoints of the other architectures gym runs, with transformers + peft
reference outputs.

For each of qwen2 (q/k/v biases, YaRN rope, a sliding-window layer), llama (llama3 rope scaling,
untied head), mistral (sliding window on every layer) and mixtral (sparse MoE, w1/w2/w3 experts)
it writes
  testdata/tiny-<arch>/                      the model (save_pretrained, f32) + tokenizer
  testdata/tiny-<arch>-lora/                 a fixed PEFT adapter (peft save_pretrained)
  testdata/model-ref/tiny-<arch>.safetensors ids, keep, positions, logits, logits_lora
  testdata/model-ref/tiny-<arch>-greedy.json greedy continuations of a left-padded batch
with the same conventions as make_tiny.py and logits.py (whose helpers it reuses). The models
are smaller than tiny-qwen3 (hidden 32, 2 layers) to keep the repository light. The sliding
windows (4 tokens) are shorter than the reference sequences, so they change the outputs.

Run once from the repository root, with a venv outside the repository:

    python3 -m venv /work/venvs/arch
    /work/venvs/arch/bin/pip install torch transformers peft
    /work/venvs/arch/bin/python tools/reference/make_arch.py

Committed outputs were made with torch 2.15.0, transformers 5.25.0, peft 0.21.2,
tokenizers 0.23.3, safetensors 0.8.0 (CPU). Tests read only the committed outputs.
"""
import os
import sys

import torch
from transformers import (
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    MixtralConfig,
    MixtralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import logits  # noqa: E402
import make_tiny  # noqa: E402

DENSE_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# transformers 5 fuses Mixtral's experts into 3-D parameters, which peft does not adapt as
# modules: the reference adapter covers the attention projections (gym's own gradient test
# adapts the experts too).
MOE_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]

COMMON = dict(
    vocab_size=make_tiny.VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
    rms_norm_eps=1e-6, bos_token_id=0, eos_token_id=0, pad_token_id=0,
)


def models():
    """(name, model class, config) of each tiny model."""
    qwen2 = Qwen2Config(
        tie_word_embeddings=True, use_sliding_window=True, sliding_window=4, max_window_layers=1,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                         "original_max_position_embeddings": 64},
        **COMMON,
    )
    llama = LlamaConfig(
        tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64},
        **COMMON,
    )
    mistral = MistralConfig(tie_word_embeddings=False, sliding_window=4,
                            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, **COMMON)
    mixtral = MixtralConfig(tie_word_embeddings=False, sliding_window=None, num_local_experts=4,
                            num_experts_per_tok=2,
                            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, **COMMON)
    return [
        ("tiny-qwen2", Qwen2ForCausalLM, qwen2, DENSE_TARGETS),
        ("tiny-llama", LlamaForCausalLM, llama, DENSE_TARGETS),
        ("tiny-mistral", MistralForCausalLM, mistral, DENSE_TARGETS),
        ("tiny-mixtral", MixtralForCausalLM, mixtral, MOE_TARGETS),
    ]


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    for seed, (name, cls, cfg, targets) in enumerate(models(), start=10):
        torch.manual_seed(0)
        m = cls(cfg).to(torch.float32)
        make_tiny.randomize(m, seed)
        m.generation_config = GenerationConfig(bos_token_id=0, eos_token_id=0, pad_token_id=0)
        make_tiny.write(m, {}, os.path.join(root, "testdata", name))
        torch.manual_seed(0)
        logits.run(name, targets)


if __name__ == "__main__":
    main()
