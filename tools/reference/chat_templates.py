#!/usr/bin/env python3
"""Reference renderings of real chat templates with transformers' apply_chat_template.

Inputs: testdata/chat-templates/*.jinja (the `chat_template` strings of Qwen3, Qwen2.5,
Llama 3.1 and Mistral v0.3; provenance in testdata/chat-templates/README.md). Output:
testdata/chat-templates/reference.json, a list of cases

  {"template": "qwen3", "messages": [...], "tools": [...]|null, "add_generation_prompt": bool,
   "kwargs": {...}, "text": "..."}            # or "error": "..." when the template raises

gym's chat-template engine (src/core/chat.rs) must reproduce every "text" byte for byte and
fail where transformers fails. Run once; tests read only the committed output:

    /work/venvs/tmpl/bin/python tools/reference/chat_templates.py
"""
import json
import os

import jinja2
import transformers
from transformers import PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
DIR = os.path.join(ROOT, "testdata", "chat-templates")

# name -> (file, special tokens the tokenizer carries)
TEMPLATES = {
    "qwen3": ("qwen3.jinja", {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    "qwen2.5": ("qwen2.5.jinja", {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    "llama3.1": ("llama3.1.jinja", {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
    "mistral-v0.3": ("mistral-v0.3.jinja", {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}),
}

SYS = {"role": "system", "content": "You are a careful assistant."}
U1 = {"role": "user", "content": "What is 2+3?"}
A1 = {"role": "assistant", "content": "5"}
A1T = {"role": "assistant", "content": "<think>\n2 plus 3 is 5.\n</think>\n\nThe answer is 5."}
U2 = {"role": "user", "content": "And 4*4?\nShow the steps."}
UW = {"role": "user", "content": "  Weather in Zürich, in °C? \"now\" \\ please  \n"}
UNI = {"role": "user", "content": "Ünïcødé ✓ 漢字 🙂 <b>&amp;</b> 'single' \"double\" \\ back\ttab"}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city — «quoted» <tags> & ampersands.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7, "default": 1},
                "threshold": {"type": "number", "default": 0.5},
                "tiny": {"type": "number", "default": 1e-07},
                "huge": {"type": "number", "default": 1e16},
                "flag": {"type": "boolean", "default": False},
                "none": {"default": None},
            },
            "required": ["city"],
        },
    },
}
CALC = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Adds two numbers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
}
CALL = {
    "role": "assistant",
    "tool_calls": [
        {
            "id": "call0A1b2",
            "type": "function",
            "function": {
                "name": "get_weather",
                "arguments": {"city": "Zürich", "unit": "celsius", "days": 2, "threshold": 2.5, "flag": True},
            },
        }
    ],
}
CALL_STR = {
    "role": "assistant",
    "content": "Let me check.",
    "tool_calls": [
        {"id": "call0A1b2", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 1, \"b\": 2}"}}
    ],
}
TWO_CALLS = {
    "role": "assistant",
    "content": "",
    "tool_calls": [
        {"id": "call0A1b2", "type": "function", "function": {"name": "add", "arguments": {"a": 1, "b": 2}}},
        {"id": "call9Z8y7", "type": "function", "function": {"name": "add", "arguments": {"a": 3.25, "b": -4}}},
    ],
}
RESULT = {"role": "tool", "tool_call_id": "call0A1b2", "name": "get_weather", "content": "{\"temp\": 21.5}"}
RESULT2 = {"role": "tool", "tool_call_id": "call9Z8y7", "name": "add", "content": "-0.75"}
FINAL = {"role": "assistant", "content": "It is 21.5 °C in Zürich."}

# (conversation, tools, which templates) -- None means every template
CONVERSATIONS = [
    ([U1], None, None),
    ([SYS, U1], None, None),
    ([SYS, U1, A1], None, None),
    ([U1, A1, U2], None, None),
    ([SYS, U1, A1T, U2, A1], None, None),
    ([UNI], None, None),
    ([UW], None, None),
    ([{"role": "user", "content": ""}], None, None),
    ([SYS, UW], [WEATHER], None),
    ([UW], [WEATHER, CALC], None),
    ([SYS, UW, CALL, RESULT, FINAL], [WEATHER], None),
    ([UW, CALL_STR, RESULT], [CALC], ["qwen3", "qwen2.5"]),
    ([U1, TWO_CALLS, RESULT, RESULT2], [CALC], None),
    # roles that do not alternate: Mistral raises, the others render
    ([U1, U2], None, None),
    ([SYS], None, None),
    ([U1, {"role": "system", "content": "A second system message."}, A1], None, None),
    ([U1, {"role": "assistant", "content": "\n\nLeading newlines."}], None, None),
    ([U1, {"role": "assistant", "content": "<think>a</think>b<think>c</think>d"}], None, ["qwen3", "qwen2.5"]),
    ([U2, {"role": "tool", "content": "{\"result\": 16}"}, {"role": "tool", "content": "ok"}, A1], None, ["qwen3", "qwen2.5"]),
    ([{"role": "user", "content": "<tool_response>\nx\n</tool_response>"}, A1], None, ["qwen3", "qwen2.5"]),
]


def render(tok, messages, tools, agp, kwargs):
    try:
        return {"text": tok.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=agp, **kwargs
        )}
    except jinja2.exceptions.TemplateError as e:
        return {"error": str(e)}


def main():
    tok = PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(ROOT, "testdata", "tiny-qwen3", "tokenizer.json")
    )
    cases = []
    for name, (file, special) in TEMPLATES.items():
        with open(os.path.join(DIR, file), encoding="utf-8") as f:
            tok.chat_template = f.read()
        tok.bos_token = None
        for k, v in special.items():
            setattr(tok, k, v)
        kw_variants = [{}]
        if name == "qwen3":
            kw_variants = [{}, {"enable_thinking": True}, {"enable_thinking": False}]
        for messages, tools, only in CONVERSATIONS:
            if only is not None and name not in only:
                continue
            for agp in (False, True):
                for kwargs in kw_variants:
                    case = {"template": name, "messages": messages, "tools": tools,
                            "add_generation_prompt": agp, "kwargs": kwargs}
                    case.update(render(tok, messages, tools, agp, kwargs))
                    cases.append(case)
    out = os.path.join(DIR, "reference.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"transformers": transformers.__version__, "jinja2": jinja2.__version__,
                   "special_tokens": {k: v[1] for k, v in TEMPLATES.items()}, "cases": cases},
                  f, ensure_ascii=False, indent=1)
        f.write("\n")
    errors = sum("error" in c for c in cases)
    print(f"wrote {len(cases)} cases ({errors} errors) to {out}")


if __name__ == "__main__":
    main()
