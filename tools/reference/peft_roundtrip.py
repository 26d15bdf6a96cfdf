#!/usr/bin/env python3
"""PEFT round trip: loads the adapter gym saved (testdata/model-ref/gym-adapter/, written by the
Rust test `peft_round_trip` with GYM_WRITE_REF=1) with peft onto testdata/tiny-qwen3, and the
merged model gym exported (testdata/model-ref/gym-merged/, same test) with transformers, and
writes both logits for the reference token ids to testdata/model-ref/gym-roundtrip.safetensors.

    GYM_WRITE_REF=1 cargo test --lib peft_round_trip
    /work/venv-ref/bin/python tools/reference/peft_roundtrip.py
"""
import os

import torch
import peft
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TD = os.path.join(ROOT, "testdata")
REF = os.path.join(TD, "model-ref")


def main():
    r = load_file(os.path.join(REF, "tiny-qwen3.safetensors"))
    ids, keep, pos = r["ids"], r["keep"], r["positions"]
    base = AutoModelForCausalLM.from_pretrained(os.path.join(TD, "tiny-qwen3"), dtype=torch.float32).eval()
    pm = peft.PeftModel.from_pretrained(base, os.path.join(REF, "gym-adapter")).eval()
    with torch.no_grad():
        adapter = pm(input_ids=ids, attention_mask=keep, position_ids=pos).logits.float()
    merged_model = AutoModelForCausalLM.from_pretrained(os.path.join(REF, "gym-merged"), dtype=torch.float32).eval()
    with torch.no_grad():
        merged = merged_model(input_ids=ids, attention_mask=keep, position_ids=pos).logits.float()
    save_file({"logits_adapter": adapter.contiguous(), "logits_merged": merged.contiguous()},
              os.path.join(REF, "gym-roundtrip.safetensors"), metadata={"peft": peft.__version__})
    print("max |adapter - merged|", (adapter - merged).abs().max().item())


if __name__ == "__main__":
    main()
