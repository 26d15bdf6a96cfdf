#!/usr/bin/env python3
"""Makes the bundled tiny models: testdata/tiny-qwen3/ (dense) and testdata/tiny-qwen3-moe/.

Random weights from a fixed seed, written by transformers itself (save_pretrained, f32
safetensors), with a character-level tokenizer.json built with the `tokenizers` library.
Run once from the repository root with the reference venv (see tools/reference/README.md):

    /work/venv-ref/bin/python tools/reference/make_tiny.py

The outputs are committed; tests never run this script.
"""
import json
import os
import string

import torch
from tokenizers import Tokenizer, decoders, models
from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB = 128  # model vocab (the tokenizer uses the first 3 + 96 ids)


def tokenizer() -> Tokenizer:
    """Character level: a BPE model without merges over printable ASCII and newline."""
    chars = ["\n"] + [c for c in string.printable if c not in "\t\n\r\x0b\x0c"]
    vocab = {tok: i for i, tok in enumerate(SPECIALS + chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None, fuse_unk=False))
    tok.add_special_tokens(SPECIALS)
    tok.decoder = decoders.Fuse()
    return tok


def write(model, cfg_extra: dict, out: str):
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer().save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                   "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512}, f, indent=2)
    # keep config.json readable and stable
    path = os.path.join(out, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg.update(cfg_extra)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def randomize(model, seed: int):
    """Normal(0, 0.2) everywhere (larger than HF's 0.02 init so the logits are not flat);
    norm weights 1 + small noise so they matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def main():
    common = dict(
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, max_position_embeddings=512, rms_norm_eps=1e-6,
        bos_token_id=0, eos_token_id=0, pad_token_id=0, attention_bias=False,
    )
    dense = Qwen3Config(intermediate_size=128, tie_word_embeddings=True, rope_theta=10000.0, **common)
    torch.manual_seed(0)
    m = Qwen3ForCausalLM(dense).to(torch.float32)
    randomize(m, 1)
    m.generation_config = GenerationConfig(bos_token_id=0, eos_token_id=0, pad_token_id=0)
    write(m, {}, os.path.join(ROOT, "testdata", "tiny-qwen3"))

    moe = Qwen3MoeConfig(
        intermediate_size=128, moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2,
        norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[1], tie_word_embeddings=False,
        rope_theta=1000000.0, **common,
    )
    torch.manual_seed(0)
    m = Qwen3MoeForCausalLM(moe).to(torch.float32)
    randomize(m, 2)
    m.generation_config = GenerationConfig(bos_token_id=0, eos_token_id=0, pad_token_id=0)
    write(m, {}, os.path.join(ROOT, "testdata", "tiny-qwen3-moe"))


if __name__ == "__main__":
    main()
