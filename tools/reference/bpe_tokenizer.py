#!/usr/bin/env python3
"""A real byte-level BPE tokenizer for tests, and reference encodings of it.

Trains, with the `tokenizers` library, a tokenizer of the same design as Qwen2/Qwen3's
tokenizer.json: NFC normalizer; a Split pre-tokenizer with Qwen's regex (contractions, letter
runs with one leading non-letter, single digits, punctuation runs, newlines, spaces) followed by
ByteLevel(add_prefix_space=false, use_regex=false); a BPE model over the 256 byte symbols
(merges learned here, vocabulary 1024); the ByteLevel decoder; and added special tokens
<|endoftext|>, <|im_start|>, <|im_end|>, <think>, </think>. The training text is
testdata/math/sample.jsonl plus the multilingual lines below. Writes

  testdata/bpe/tokenizer.json   the tokenizer
  testdata/bpe/reference.json   {"tokenizers": version, "transformers": version, "cases":
                                 [{"text", "ids", "tokens", "decoded", "decoded_skip_special"}]}

with the ids from both tokenizers.Tokenizer.encode and transformers' PreTrainedTokenizerFast
(asserted equal here). gym's test (src/core/model/tests.rs) loads the file with the Rust
`tokenizers` crate and must reproduce ids, tokens and both decodings.

    /work/venvs/tmpl/bin/python tools/reference/bpe_tokenizer.py
"""
import json
import os

import tokenizers
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "testdata", "bpe")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
# Qwen2's pre-tokenizer pattern (tokenizer.json of Qwen/Qwen2.5-*, Qwen/Qwen3-*).
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")

EXTRA_TRAINING = [
    "The quick brown fox jumps over the lazy dog. It's 12:30, isn't it?",
    "Zürich, Genève and Bern — «guillemets», naïve café, façade, Ærøskøbing.",
    "Москва, Київ, Αθήνα, 東京, 北京, 서울, नई दिल्ली, القاهرة, ירושלים.",
    "def main():\n    print(\"hello, world\")\n\treturn 0\n",
    "Emoji: 🙂👍🏽🇨🇭 — math: ∑ x² ≤ ∞, π ≈ 3.14159, 1/2 + 1/3 = 5/6.",
]

CORPUS = [
    "Hello, world!",
    "What is 2+3? The answer is 5.",
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72",
    "  leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nand\n\n\nblank lines",
    "It's, they're, we've, I'm, you'll, he'd — CAN'T, Won'T",
    "Zürich Genève naïve café façade Ærøskøbing",
    "Москва Київ Αθήνα 東京 北京 서울 नई दिल्ली القاهرة ירושלים",
    "Emoji 🙂👍🏽🇨🇭 and combining: e\u0301 vs \u00e9 (NFC)",
    "Digits: 1234567890, 3.14159, -42, 1,000,000, 1e-07",
    "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n5<|im_end|>",
    "<|endoftext|><|endoftext|>no space<|im_end|>",
    "Unseen: ꙮ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u0000 \u200b zero-width \ufeff BOM",
    "",
    " ",
    "a",
    "\n",
]


def build():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        min_frequency=2,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = []
    with open(os.path.join(ROOT, "testdata", "math", "sample.jsonl"), encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            lines += [m["content"] for m in row["messages"]] + [row["answer"]]
    tok.train_from_iterator(lines + EXTRA_TRAINING * 3, trainer=trainer)
    return tok


def main():
    os.makedirs(OUT, exist_ok=True)
    tok = build()
    path = os.path.join(OUT, "tokenizer.json")
    tok.save(path)
    fast = PreTrainedTokenizerFast(tokenizer_file=path)
    tok = Tokenizer.from_file(path)
    cases = []
    for text in CORPUS:
        enc = tok.encode(text, add_special_tokens=False)
        ids = fast(text, add_special_tokens=False)["input_ids"]
        assert ids == enc.ids, (text, ids, enc.ids)
        decoded = tok.decode(enc.ids, skip_special_tokens=False)
        assert decoded == fast.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        cases.append({
            "text": text,
            "ids": enc.ids,
            "tokens": enc.tokens,
            "decoded": decoded,
            "decoded_skip_special": tok.decode(enc.ids, skip_special_tokens=True),
        })
    with open(os.path.join(OUT, "reference.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizers": tokenizers.__version__, "transformers": transformers.__version__,
                   "cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"vocab {tok.get_vocab_size()}, {len(cases)} cases, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
