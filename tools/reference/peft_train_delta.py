#!/usr/bin/env python3
"""PEFT loads what `gym train` publishes: the adapter unpacked from a training delta
(testdata/train-ref/toy-adapter/, made by

    gym train -o /tmp/toyref
    gym delta unpack /tmp/toyref/deltas/delta-000004.delta -o testdata/train-ref/toy-adapter

) is loaded with peft onto testdata/tiny-qwen3, and its logits on the model reference's token
ids are written to testdata/train-ref/toy-adapter-logits.safetensors. The Rust test
`peft_loads_the_adapter_of_a_training_delta` compares gym's logits with them.

    /work/venv-ref/bin/python tools/reference/peft_train_delta.py
"""
import os

import peft
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TD = os.path.join(ROOT, "testdata")


def main():
    r = load_file(os.path.join(TD, "model-ref", "tiny-qwen3.safetensors"))
    ids, keep, pos = r["ids"], r["keep"], r["positions"]
    base = AutoModelForCausalLM.from_pretrained(os.path.join(TD, "tiny-qwen3"), dtype=torch.float32).eval()
    pm = peft.PeftModel.from_pretrained(base, os.path.join(TD, "train-ref", "toy-adapter")).eval()
    n_lora = sum(1 for n, _ in pm.named_parameters() if "lora_" in n)
    with torch.no_grad():
        logits = pm(input_ids=ids, attention_mask=keep, position_ids=pos).logits.float()
        pm.disable_adapter_layers()
        plain = pm(input_ids=ids, attention_mask=keep, position_ids=pos).logits.float()
    assert n_lora == 28, n_lora  # 2 layers x 7 modules x (A, B)
    print("max |adapter - base| logits:", (logits - plain).abs().max().item())
    save_file({"logits": logits.contiguous()}, os.path.join(TD, "train-ref", "toy-adapter-logits.safetensors"),
              metadata={"peft": peft.__version__, "lora_parameters": str(n_lora)})


if __name__ == "__main__":
    main()
