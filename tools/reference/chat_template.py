#!/usr/bin/env python3
"""Reference renderings of Qwen3's chat template (transformers apply_chat_template).

The template text is tools/reference/qwen3_chat_template.jinja: the `chat_template` of
Qwen/Qwen3-0.6B's tokenizer_config.json (the same in every Qwen3 dense and MoE model). It
writes testdata/train-ref/qwen3-chat.json: a list of cases, each
  {"messages": [...], "add_generation_prompt": bool, "enable_thinking": bool|null, "text": "..."}
where enable_thinking null means the argument was not passed (the template's default: on).
gym's `qwen3_chat` (src/core/train/data.rs) must reproduce every "text" exactly. Tool calls and
`reasoning_content` are out of gym's scope and not covered.

    /work/venv-ref/bin/python tools/reference/chat_template.py

Tests read only the committed output.
"""
import json
import os

import transformers
from transformers import PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "testdata", "train-ref", "qwen3-chat.json")

SYS = {"role": "system", "content": "You are a careful assistant."}
U1 = {"role": "user", "content": "What is 2+3?"}
A1 = {"role": "assistant", "content": "5"}
A1T = {"role": "assistant", "content": "<think>\n2 plus 3 is 5.\n</think>\n\nThe answer is 5."}
U2 = {"role": "user", "content": "And 4*4?\nShow the steps."}
TOOL = {"role": "tool", "content": "{\"result\": 16}"}
TOOL2 = {"role": "tool", "content": "ok"}

CONVERSATIONS = [
    [U1],
    [SYS, U1],
    [SYS, U1, A1],
    [SYS, U1, A1T],
    [U1, A1, U2],
    [U1, A1T, U2],
    [SYS, U1, A1T, U2, A1],
    [U1, {"role": "assistant", "content": "\n\nLeading newlines."}],
    [U1, {"role": "system", "content": "A second system message."}, A1],
    [U1, {"role": "assistant", "content": "<think>a</think>b<think>c</think>d"}],
    [{"role": "user", "content": ""}],
    [U2, TOOL, TOOL2, A1],
    [{"role": "user", "content": "<tool_response>\nx\n</tool_response>"}, A1],
    [{"role": "user", "content": "Ünïcødé ✓ \"quotes\" \\ back"}],
]


def main():
    tok = PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(ROOT, "testdata", "tiny-qwen3", "tokenizer.json")
    )
    with open(os.path.join(HERE, "qwen3_chat_template.jinja"), encoding="utf-8") as f:
        tok.chat_template = f.read().rstrip("\n")
    cases = []
    for messages in CONVERSATIONS:
        for agp in (False, True):
            for thinking in (None, True, False):
                kwargs = {} if thinking is None else {"enable_thinking": thinking}
                text = tok.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=agp, **kwargs
                )
                cases.append(
                    {
                        "messages": messages,
                        "add_generation_prompt": agp,
                        "enable_thinking": thinking,
                        "text": text,
                    }
                )
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(
            {"transformers": transformers.__version__, "cases": cases},
            f,
            ensure_ascii=False,
            indent=1,
        )
        f.write("\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
