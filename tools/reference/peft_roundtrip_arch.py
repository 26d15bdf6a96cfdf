#!/usr/bin/env python3
"""PEFT round trip for the other architectures: loads the adapters gym wrote
(testdata/model-ref/gym-adapter-<name>/, written by the Rust test
`peft_loads_gym_adapters_of_the_other_architectures` with GYM_WRITE_REF=1) with peft onto
testdata/<name>, and for tiny-qwen3-next also the merged model gym exported
(testdata/model-ref/gym-merged-tiny-qwen3-next/) with transformers, and writes the logits for
the reference token ids to testdata/model-ref/gym-roundtrip-<name>.safetensors.

    GYM_WRITE_REF=1 cargo test --lib peft_loads_gym_adapters
    /work/venvs/arch/bin/python tools/reference/peft_roundtrip_arch.py

Committed outputs were made with torch 2.15.0, transformers 5.25.0, peft 0.21.2 (CPU).
"""
import os

import torch
import peft
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TD = os.path.join(ROOT, "testdata")
REF = os.path.join(TD, "model-ref")
NAMES = ["tiny-qwen2", "tiny-llama", "tiny-mistral", "tiny-mixtral", "tiny-qwen3-next"]


def logits(model, r):
    with torch.no_grad():
        return model(input_ids=r["ids"], attention_mask=r["keep"], position_ids=r["positions"]).logits.float()


def main():
    for name in NAMES:
        r = load_file(os.path.join(REF, name + ".safetensors"))
        base = AutoModelForCausalLM.from_pretrained(os.path.join(TD, name), dtype=torch.float32).eval()
        pm = peft.PeftModel.from_pretrained(base, os.path.join(REF, "gym-adapter-" + name)).eval()
        out = {"logits_adapter": logits(pm, r).contiguous()}
        merged_dir = os.path.join(REF, "gym-merged-" + name)
        if os.path.isdir(merged_dir):
            merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
            out["logits_merged"] = logits(merged, r).contiguous()
        save_file(out, os.path.join(REF, "gym-roundtrip-" + name + ".safetensors"),
                  metadata={"peft": peft.__version__})
        print(name, "max |adapter - base|", (out["logits_adapter"] - r["logits"]).abs().max().item())


if __name__ == "__main__":
    main()
