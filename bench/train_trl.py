#!/usr/bin/env python3
"""TRL side of bench/train.sh: GSPO fine-tuning with TRL GRPOTrainer + peft LoRA on the CPU.

    /work/venv-ref/bin/python bench/train_trl.py [--model DIR] [--data JSONL] [--steps N]
        [--threads N] [--nf4]

Settings (the same as gym's side of the benchmark):
  * each optimiser step trains on --prompts-per-step (2) prompts x --generations (8) completions
    (per_device_train_batch_size = 16, no gradient accumulation); rollouts are generated for
    --steps-per-generation (2) optimiser steps at a time (TRL's steps_per_generation: one
    generation batch of 4 prompts x 8 = 32 completions, shuffled and split into 2 steps; the
    second step is off-policy, so old log-probs are computed at generation time);
  * completions of exactly 32 tokens: max_completion_length = 32 and min_new_tokens = 32
    (generation_kwargs; TRL passes them to transformers' generate, which suppresses EOS before
    32 tokens), sampling at temperature 1;
  * LoRA r16, alpha 32, dropout 0 on all linear layers ("all-linear"); AdamW, lr 1e-3 constant
    (lr_scheduler_type="constant", no warm-up, weight decay 0);
  * importance_sampling_level "sequence", loss_type "grpo", epsilon 3e-4 / epsilon_high 4e-4,
    beta 0 (no reference model), scale_rewards "group";
  * reward: the fraction of the completion's characters that are ASCII digits (gym's toy task);
  * data: JSONL lines {"prompt": ..., "answer": ...} (default bench/train-prompts.jsonl), used as
    plain-text prompts (no chat template), each repeated --generations times by TRL's sampler.

Timing: wall-clock time at the end of every optimiser step (a TrainerCallback's on_step_end).
The first generation cycle (the first --steps-per-generation steps: model warm-up, first
generation) is excluded: sec_per_step = (end of step N - end of step S) / (N - S) with
S = steps_per_generation, so the window holds whole generation cycles. If --steps is not larger
than S, only the first step is excluded and "window_whole_cycles" is false. Completion tokens/s
= completion tokens consumed per step (mean over all steps) / sec_per_step. Peak RSS is
resource.getrusage(RUSAGE_SELF).ru_maxrss of this process (the whole run, loading included).

--nf4: a Qwen3-0.6B-shaped model (hidden 1024, 28 layers, 16 heads, 8 KV heads, head_dim 128,
intermediate 3072, vocab 151936, tied embeddings) with random weights, written by a child
process to a temporary directory (bf16, deleted afterwards) and loaded with bitsandbytes 4-bit
NF4 with double quantisation (compute dtype f32), LoRA on top. The tokenizer is the bundled tiny
char-level one of testdata/tiny-qwen3 (ids < 128, pad/EOS id 0). The random model samples
almost only ids >= 128, which that tokenizer decodes to empty text, so rewards and advantages
are 0; TRL still runs the whole loss and backward, so the timings are unaffected.

Prints one JSON object on stdout; progress and library chatter go to stderr.
"""
import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
QWEN3_06B = dict(
    vocab_size=151936,
    hidden_size=1024,
    intermediate_size=3072,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    rms_norm_eps=1e-6,
    max_position_embeddings=40960,
    rope_theta=1000000.0,
    tie_word_embeddings=True,
    bos_token_id=0,
    eos_token_id=0,
    pad_token_id=0,
)


def digit_fraction(completions, **kwargs):
    """gym's toy reward: the share of the completion's characters that are ASCII digits."""
    out = []
    for c in completions:
        text = c if isinstance(c, str) else "".join(m.get("content", "") for m in c)
        out.append(sum(ch in "0123456789" for ch in text) / len(text) if text else 0.0)
    return out


def make_random_06b(out_dir):
    """Child process: write a random Qwen3-0.6B-shaped model (bf16) and the tiny tokenizer."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen3Config(**QWEN3_06B)
    model = Qwen3ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out_dir)
    for f in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(os.path.join(ROOT, "testdata", "tiny-qwen3", f), out_dir)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "testdata", "tiny-qwen3"))
    ap.add_argument("--data", default=os.path.join(ROOT, "bench", "train-prompts.jsonl"))
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompts-per-step", type=int, default=2)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--steps-per-generation", type=int, default=2)
    ap.add_argument("--max-completion", type=int, default=32)
    ap.add_argument("--nf4", action="store_true", help="random Qwen3-0.6B-shaped model, bitsandbytes NF4")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cuda: GPU 0, bf16 compute (QLoRA's), peak GPU memory reported")
    ap.add_argument("--gradient-checkpointing", choices=["true", "false"], default="true",
                    help="GRPOConfig.gradient_checkpointing (TRL's default: true)")
    ap.add_argument("--make-random", metavar="DIR", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.make_random:
        make_random_06b(a.make_random)
        return

    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(a.threads)
    import datasets
    import peft
    import transformers
    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()

    tmp = None
    out_dir = tempfile.mkdtemp(prefix="gym-trl-out-")
    extra = {}
    try:
        if a.nf4:
            import bitsandbytes as bnb
            from transformers import BitsAndBytesConfig

            tmp = tempfile.mkdtemp(prefix="gym-trl-06b-")
            t0 = time.time()
            subprocess.run([sys.executable, os.path.abspath(__file__), "--make-random", tmp], check=True)
            extra["random_model_write_s"] = round(time.time() - t0, 1)
            model_dir = tmp
            qcfg = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16 if a.device == "cuda" else torch.float32,
            )
            t0 = time.time()
            model = AutoModelForCausalLM.from_pretrained(
                model_dir,
                quantization_config=qcfg,
                dtype=torch.bfloat16 if a.device == "cuda" else torch.float32,
                device_map={"": 0} if a.device == "cuda" else "cpu",
            )
            model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
            extra["load_s"] = round(time.time() - t0, 1)
            extra["bitsandbytes"] = bnb.__version__
            extra["quantized_linear"] = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
        else:
            model_dir = a.model
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(model_dir)

        rows = [json.loads(line) for line in open(a.data) if line.strip()]
        ds = datasets.Dataset.from_list([{"prompt": r["prompt"], "answer": r.get("answer", "")} for r in rows])

        spg = a.steps_per_generation
        cfg = GRPOConfig(
            output_dir=out_dir,
            use_cpu=a.device == "cpu",
            seed=a.seed,
            max_steps=a.steps,
            per_device_train_batch_size=a.prompts_per_step * a.generations,
            gradient_accumulation_steps=1,
            steps_per_generation=spg,
            num_generations=a.generations,
            max_completion_length=a.max_completion,
            generation_kwargs={"min_new_tokens": a.max_completion},
            temperature=1.0,
            learning_rate=1e-3,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            importance_sampling_level="sequence",
            loss_type="grpo",
            epsilon=3e-4,
            epsilon_high=4e-4,
            beta=0.0,
            scale_rewards="group",
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            bf16=a.device == "cuda" and a.nf4,
            fp16=False,
            dataloader_num_workers=0,
            gradient_checkpointing=a.gradient_checkpointing == "true",
        )
        lora = peft.LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
        )

        lengths = []

        def reward(completions, completion_ids=None, **kw):
            if completion_ids is not None:
                lengths.extend(len(c) for c in completion_ids)
            return digit_fraction(completions)

        reward.__name__ = "digit_fraction"

        ends = []

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                ends.append(time.perf_counter())
                print(f"step {state.global_step} at {ends[-1] - start:.1f}s", file=sys.stderr, flush=True)

        trainer = GRPOTrainer(
            model=model,
            reward_funcs=reward,
            args=cfg,
            train_dataset=ds,
            processing_class=tok,
            peft_config=lora,
            callbacks=[Clock()],
        )
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its logs on stdout
            trainer.train()
        total = time.perf_counter() - start

        n = len(ends)
        skip = spg if n > spg else 1
        whole = n > spg and (n - skip) % spg == 0
        window = ends[-1] - ends[skip - 1] if n > skip else float("nan")
        sec_per_step = window / (n - skip) if n > skip else float("nan")
        per_step_tokens = (sum(lengths) / len(lengths)) * a.prompts_per_step * a.generations if lengths else 0.0
        logs = [h for h in trainer.state.log_history if "loss" in h]
        step_times = [round(ends[0] - start, 3)] + [round(ends[i] - ends[i - 1], 3) for i in range(1, n)]
        report = {
            "impl": "trl",
            "model": "qwen3-0.6b-shape random, nf4" if a.nf4 else os.path.relpath(model_dir, ROOT),
            "steps": n,
            "threads": a.threads,
            "gradient_checkpointing": cfg.gradient_checkpointing,
            "prompts_per_step": a.prompts_per_step,
            "generations": a.generations,
            "completions_per_step": a.prompts_per_step * a.generations,
            "steps_per_generation": spg,
            "max_completion_tokens": a.max_completion,
            "completion_tokens_mean": (sum(lengths) / len(lengths)) if lengths else None,
            "completion_tokens_per_s": per_step_tokens / sec_per_step if n > skip else None,
            "sec_per_step": sec_per_step if n > skip else None,
            "timed_steps": n - skip,
            "warmup_steps_excluded": skip,
            "window_whole_cycles": whole,
            "step_times_s": step_times,
            "total_train_s": round(total, 2),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "device": torch.cuda.get_device_name(0) if a.device == "cuda" else "cpu",
            "peak_gpu_allocated_mib": torch.cuda.max_memory_allocated() / 2**20 if a.device == "cuda" else None,
            "trainable_params": trainable,
            # reward is logged on the steps that generated; clip fractions on every step
            "reward_per_step": [round(h["reward"], 4) if "reward" in h else None for h in logs],
            "clip_region_per_step": [round(h.get("clip_ratio/region_mean", 0.0), 4) for h in logs],
            "versions": {
                "trl": trl.__version__,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "peft": peft.__version__,
                "python": sys.version.split()[0],
            },
            **extra,
        }
        print(json.dumps(report))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
