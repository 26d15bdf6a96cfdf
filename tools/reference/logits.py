#!/usr/bin/env python3
"""Reference outputs of transformers + peft (f32, CPU) for the bundled tiny models.

For testdata/tiny-qwen3 and testdata/tiny-qwen3-moe it writes, under testdata/model-ref/:
  <name>.safetensors   ids (2, T) i64, keep (2, T) i64 (0 = left padding), positions (2, T) i64,
                       logits (2, T, V) f32 without an adapter, logits_lora with the fixed adapter
  <name>-greedy.json   greedy continuations (transformers generate, do_sample=False) of a
                       left-padded batch of prompts
and the fixed adapter itself as a PEFT folder testdata/<name>-lora/ (peft save_pretrained).

    /work/venv-ref/bin/python tools/reference/logits.py

Tests read only the committed outputs.
"""
import json
import os
import sys

import torch
import transformers
import peft
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TD = os.path.join(ROOT, "testdata")
OUT = os.path.join(TD, "model-ref")
TEXTS = ["Hello, world! 1+2=3", "The cat sat."]
PROMPTS = ["Hello", "The quick brown", "x"]
MAX_NEW = 12


def left_pad(tok, texts, pad=0):
    enc = [tok.encode(t).ids for t in texts]
    n = max(len(e) for e in enc)
    ids = [[pad] * (n - len(e)) + e for e in enc]
    keep = [[0] * (n - len(e)) + [1] * len(e) for e in enc]
    return torch.tensor(ids), torch.tensor(keep)


def positions(keep):
    return (keep.cumsum(-1) - 1).clamp(min=0)


def logits(model, ids, keep):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=keep, position_ids=positions(keep)).logits.float()


def fixed_adapter(model, targets):
    cfg = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets, init_lora_weights=False)
    pm = peft.get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in sorted(pm.named_parameters()):
            if "lora_" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return pm


def run(name, targets):
    d = os.path.join(TD, name)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    ids, keep = left_pad(tok, TEXTS)
    base = logits(model, ids, keep)

    # greedy generation of a left-padded batch
    pids, pkeep = left_pad(tok, PROMPTS)
    with torch.no_grad():
        gen = model.generate(input_ids=pids, attention_mask=pkeep, do_sample=False, max_new_tokens=MAX_NEW,
                             pad_token_id=0, eos_token_id=None)
    greedy = {
        "prompts": PROMPTS,
        "prompt_ids": pids.tolist(),
        "keep": pkeep.tolist(),
        "max_new_tokens": MAX_NEW,
        "eos_token_id": None,
        "completions": gen[:, pids.shape[1]:].tolist(),
    }

    pm = fixed_adapter(model, targets).eval()
    lora = logits(pm, ids, keep)
    pm.save_pretrained(os.path.join(TD, name + "-lora"))
    os.remove(os.path.join(TD, name + "-lora", "README.md"))
    cpath = os.path.join(TD, name + "-lora", "adapter_config.json")
    with open(cpath) as f:
        acfg = json.load(f)
    acfg["base_model_name_or_path"] = "testdata/" + name  # not this machine's absolute path
    with open(cpath, "w") as f:
        json.dump(acfg, f, indent=2, sort_keys=True)
        f.write("\n")

    os.makedirs(OUT, exist_ok=True)
    save_file({"ids": ids.contiguous(), "keep": keep.contiguous(), "positions": positions(keep).contiguous(),
               "logits": base.contiguous(), "logits_lora": lora.contiguous()},
              os.path.join(OUT, name + ".safetensors"),
              metadata={"transformers": transformers.__version__, "peft": peft.__version__,
                        "torch": torch.__version__})
    with open(os.path.join(OUT, name + "-greedy.json"), "w") as f:
        json.dump(greedy, f, indent=1)
        f.write("\n")
    print(name, "logits", tuple(base.shape), "max |lora - base|", (lora - base).abs().max().item(), file=sys.stderr)


def main():
    torch.manual_seed(0)
    run("tiny-qwen3", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    run("tiny-qwen3-moe", MOE_TARGETS)


# transformers >= 5 fuses the experts into 3-D parameters (not nn.Linear); PEFT 0.21 then
# adapts them as whole tensors ("mlp.experts.lora_A"), a layout gym does not read. The MoE
# reference adapts the attention projections only.
MOE_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]

if __name__ == "__main__":
    main()
