#!/usr/bin/env python3
"""PyTorch side of bench/model.sh: transformers + peft LoRA forward+backward on the same shapes
as examples/bench-model.rs (f32 base, LoRA on every linear layer, mean token log-prob loss).

    /work/venv-ref/bin/python bench/model_torch.py SHAPE SEQ RANK ITERS THREADS

Prints one JSON line: tokens/s of forward+backward and peak RSS during the steps.
"""
import json
import os
import sys
import time

import torch
import peft
from transformers import AutoModelForCausalLM, Qwen3Config, Qwen3ForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def main():
    shape, seq, rank, iters, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    if shape == "tiny":
        model = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "testdata", "tiny-qwen3"), dtype=torch.float32)
    elif os.path.isdir(shape):
        # a model folder (bench/model.sh writes a random Qwen3-0.6B-shaped one); f32 base
        model = AutoModelForCausalLM.from_pretrained(shape, dtype=torch.float32)
    else:
        cfg = Qwen3Config(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                          num_attention_heads=16, num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-6,
                          rope_theta=1000000.0, tie_word_embeddings=True)
        model = Qwen3ForCausalLM(cfg).to(torch.float32)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    if os.environ.get("BENCH_TARGETS"):
        targets = os.environ["BENCH_TARGETS"].split(",")
    model = peft.get_peft_model(model, peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets))
    vocab = model.config.vocab_size
    ids = torch.tensor([[(i * 7919 + 13) % vocab for i in range(seq)]])

    def step():
        logits = model(input_ids=ids).logits[:, :-1].float()
        lp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        loss = -lp.mean()
        loss.backward()
        model.zero_grad(set_to_none=True)
        return loss.item()

    step()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    t = time.time()
    loss = 0.0
    for _ in range(iters):
        loss = step()
    dt = time.time() - t
    print(json.dumps({"impl": "pytorch", "shape": shape, "seq": seq, "rank": rank, "iters": iters, "threads": threads,
                      "loss": loss, "tokens_per_s": seq * iters / dt, "peak_rss_mib": peak_rss_mib(),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
