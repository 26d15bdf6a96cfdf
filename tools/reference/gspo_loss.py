#!/usr/bin/env python3
"""Reference values of TRL's GRPO/GSPO loss for `src/core/train/gspo.rs`.

Writes testdata/train-ref/gspo_loss.json: fixed, seeded inputs (B=6 completions in groups of
G=3, T=7 completion positions, ragged lengths including an all-masked row; per-token logp,
old_logp, ref_logp; rewards) and, for every importance_sampling_level x loss_type x beta x
epsilon case, TRL's loss, its gradient with respect to the per-token logp, and the metrics
TRL logs (kl, clip_ratio/*). Also advantages for group/batch/none reward scaling.

Run once, with the reference venv (outside the repository); the Rust tests read only the
committed JSON:

    /work/venv-ref/bin/pip install "trl==1.16.*"
    /work/venv-ref/bin/python tools/reference/gspo_loss.py

How TRL's own code is run (no reimplementation of the loss):
  * loss, gradient and metrics: `GRPOTrainer._compute_loss` itself, on a bare trainer made with
    `object.__new__(GRPOTrainer)` that carries only the attributes `_compute_loss` reads, with
    `_get_per_token_logps_and_entropies` replaced by a function returning our leaf tensor
    (requires_grad) as the policy's per-token log-probs. Everything is float64.
  * `importance_sampling_level="sequence_token"` (GSPO-token, GSPO paper section 4.3) is not in
    TRL 1.16: it lived in `trl.experimental.gspo_token` (PR #3820) and was removed again (#7331).
    For that level the script takes the source of TRL 1.16's `_compute_loss` and inserts one
    `elif` branch before the "Unknown importance sampling level" error, with the paper's
    definition: log w_t = logp_t - sg(logp_t) + sg(mean_t log(p/p_old)). Everything else in
    that function (clipping, KL, normalisation, metrics) is TRL 1.16's code, unchanged.
  * advantages: they are computed inline in `_generate_and_score_completions`, which cannot be
    run without generation. The script cuts the block from
    `if self.multi_objective_aggregation == "sum_then_normalize":` to
    `advantages = torch.nan_to_num(advantages, nan=0.0)` out of that function's source and
    executes it literally (asserting both marker lines exist), with one reward function.
  * `ratio_mean` is not a TRL metric; it is computed here with the same convention as TRL's
    `global_masked_mean` (masked token mean for (B,T) ratios, plain mean over B for (B,1)).
"""
import collections
import inspect
import json
import math
import os
import sys
import textwrap
import types

import accelerate
import torch
import transformers
import trl
from trl.trainer import grpo_trainer as gt
from trl.trainer.utils import nanstd

GRPOTrainer = gt.GRPOTrainer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "testdata", "train-ref", "gspo_loss.json")

B, G, T = 6, 3, 7
MAX_COMPLETION_LENGTH = 8  # > T, so dr_grpo's constant is not confused with the padded width
LENGTHS = [7, 5, 3, 0, 6, 2]  # row 3 is all-masked
DT = torch.float64


def f32(x):
    """Round to float32 and back, so the Rust side (f32 inputs) sees exactly these values."""
    return torch.as_tensor(x, dtype=torch.float32).to(DT)


# ---------------------------------------------------------------- sequence_token patch
def _compute_loss_with_sequence_token():
    src = textwrap.dedent(inspect.getsource(GRPOTrainer._compute_loss))
    marker = (
        "    else:\n"
        "        raise ValueError(\n"
        '            f"Unknown importance sampling level:'
    )
    assert src.count(marker) == 1, "TRL's _compute_loss changed: sequence_token patch point not found"
    branch = (
        '    elif self.importance_sampling_level == "sequence_token":\n'
        "        # GSPO-token (GSPO paper, section 4.3); not in TRL 1.16, see the module docstring\n"
        "        seq_log_w = (log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)\n"
        "        log_importance_weights = per_token_logps - per_token_logps.detach() + seq_log_w.detach().unsqueeze(-1)\n"
    )
    src = src.replace(marker, branch + marker)
    ns = dict(vars(gt))
    exec(compile(src, "<trl _compute_loss + sequence_token>", "exec"), ns)
    return ns["_compute_loss"]


COMPUTE_LOSS_SEQ_TOKEN = _compute_loss_with_sequence_token()


# ---------------------------------------------------------------- bare trainer
def bare_trainer(level, loss_type, eps_low, eps_high, beta, bias_kl, grad_accum, logp_leaf):
    tr = object.__new__(GRPOTrainer)
    tr.args = types.SimpleNamespace(use_bias_correction_kl=bias_kl, delta=None, steps_per_generation=1)
    tr.importance_sampling_level = level
    tr.loss_type = loss_type
    tr.epsilon_low = eps_low
    tr.epsilon_high = eps_high
    tr.beta = beta
    tr.max_completion_length = MAX_COMPLETION_LENGTH
    tr.current_gradient_accumulation_steps = grad_accum
    tr.top_entropy_quantile = 1.0
    tr.off_policy_mask_threshold = None
    tr.aux_loss_enabled = False
    tr.use_vllm = False
    tr.vllm_importance_sampling_correction = False
    tr._entropy_bonus_enabled = False
    tr.model = torch.nn.Module()  # .training is True: "train" mode
    tr.accelerator = ACCEL
    tr._metrics = {"train": collections.defaultdict(list), "eval": collections.defaultdict(list)}

    def fake_logps(model, input_ids, attention_mask, logits_to_keep, **kwargs):
        assert logits_to_keep == T
        return logp_leaf, torch.zeros_like(logp_leaf.detach()), None

    tr._get_per_token_logps_and_entropies = fake_logps
    return tr


def run_case(inp, level, loss_type, eps_low, eps_high, beta, bias_kl=True, grad_accum=1):
    logp = inp["logp"].clone().requires_grad_(True)
    tr = bare_trainer(level, loss_type, eps_low, eps_high, beta, bias_kl, grad_accum, logp)
    inputs = {
        "prompt_ids": torch.zeros(B, 1, dtype=torch.long),
        "prompt_mask": torch.ones(B, 1, dtype=torch.long),
        "completion_ids": torch.zeros(B, T, dtype=torch.long),
        "completion_mask": inp["mask"],
        "advantages": inp["advantages"],
        "old_per_token_logps": inp["old_logp"],
    }
    if beta != 0.0:
        inputs["ref_per_token_logps"] = inp["ref_logp"]
    if level == "sequence_token":
        loss = COMPUTE_LOSS_SEQ_TOKEN(tr, tr.model, inputs)
    else:
        loss = tr._compute_loss(tr.model, inputs)
    loss.backward()
    m = tr._metrics["train"]
    one = lambda k: m[k][0] if k in m else None  # noqa: E731

    # ratio_mean (not a TRL metric), with TRL's global_masked_mean convention
    mask = inp["mask"].to(DT)
    log_ratio = inp["logp"] - inp["old_logp"]
    if level == "sequence":
        coef = torch.exp((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0))
        ratio_mean = coef.mean().item()
    else:
        if level == "token":
            coef = torch.exp(log_ratio)
        else:
            coef = torch.exp((log_ratio * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1.0))
            coef = coef.expand(B, T)
        ratio_mean = ((coef * mask).sum() / mask.sum().clamp(min=1.0)).item()

    return {
        "level": level,
        "loss_type": loss_type,
        "epsilon_low": eps_low,
        "epsilon_high": eps_high,
        "beta": beta,
        "bias_correction_kl": bias_kl,
        "grad_accum": grad_accum,
        "max_completion_length": MAX_COMPLETION_LENGTH,
        "loss": loss.item(),
        "grad_logp": logp.grad.tolist(),
        "kl": one("kl"),
        "clip_low": one("clip_ratio/low_mean"),
        "clip_high": one("clip_ratio/high_mean"),
        "clip_region": one("clip_ratio/region_mean"),
        "clip_low_min": one("clip_ratio/low_min"),
        "clip_high_max": one("clip_ratio/high_max"),
        "ratio_mean": ratio_mean,
    }


# ---------------------------------------------------------------- advantages
def _advantage_block():
    src = textwrap.dedent(inspect.getsource(GRPOTrainer._generate_and_score_completions))
    start = '    if self.multi_objective_aggregation == "sum_then_normalize":\n'
    end = "    advantages = torch.nan_to_num(advantages, nan=0.0)\n"
    assert src.count(start) == 1 and src.count(end) == 1, "TRL's advantage block changed"
    i = src.index(start)
    j = src.index(end) + len(end)
    return compile(textwrap.dedent(src[i:j]), "<trl advantages block>", "exec")


ADV_BLOCK = _advantage_block()


def trl_advantages(rewards, group, scale):
    """rewards: list of float or None (unscorable). Runs TRL's inline block with one reward fn."""
    rpf = torch.tensor([[math.nan if r is None else r] for r in rewards], dtype=DT)
    me = types.SimpleNamespace(
        multi_objective_aggregation="sum_then_normalize",
        reward_weights=torch.ones(1, dtype=DT),
        scale_rewards=scale,
    )
    ns = {
        "self": me,
        "torch": torch,
        "nanstd": nanstd,
        "rewards_per_func": rpf,
        "num_generations": group,
        "device": torch.device("cpu"),
        "unscorable_mask": torch.isnan(rpf).all(dim=1),
    }
    exec(ADV_BLOCK, ns)
    return ns["advantages"].tolist()


def none_nan(x):
    if isinstance(x, list):
        return [none_nan(v) for v in x]
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def main():
    torch.manual_seed(20260726)
    mask = torch.zeros(B, T, dtype=torch.long)
    for i, n in enumerate(LENGTHS):
        mask[i, :n] = 1
    logp = f32(-(0.05 + 2.5 * torch.rand(B, T, dtype=DT)))
    # Per-sequence drift between the rollout policy and the current policy. Advantages come out
    # as [-, +, +, +, -, -]. Row 0: exactly on-policy (ratio 1, inside every clip range). Row 1:
    # tiny drift, some tokens beyond 1+4e-4, some not. Row 2 (A>0, ratio ~1.1): clips at 3e-4/4e-4 but the
    # sequence not at 0.2/0.28, while some of its tokens do. Row 3: all-masked. Row 4 (A<0,
    # ratio ~0.74): clips at both. Row 5 (A<0, ratio ~0.9): clips at the narrow range only.
    shift = torch.tensor([0.0, 3e-4, 0.1, -0.4, -0.3, -0.1], dtype=DT).unsqueeze(1)
    scale = torch.tensor([0.0, 3e-4, 0.25, 0.3, 0.2, 0.05], dtype=DT).unsqueeze(1)
    old_logp = f32(logp - shift - scale * torch.randn(B, T, dtype=DT))
    ref_logp = f32(logp + 0.3 * torch.randn(B, T, dtype=DT))
    rewards = [float(v) for v in f32([0.1, 0.7, 0.5, 0.9, 0.2, 0.45]).tolist()]
    advantages = torch.tensor(trl_advantages(rewards, G, "group"), dtype=DT)
    inp = {"logp": logp, "old_logp": old_logp, "ref_logp": ref_logp, "mask": mask, "advantages": advantages}

    cases = []
    for level in ["token", "sequence", "sequence_token"]:
        for loss_type in ["grpo", "bnpo", "dr_grpo"]:
            for beta in [0.0, 0.1]:
                for eps in [(3e-4, 4e-4), (0.2, 0.28)]:
                    cases.append(run_case(inp, level, loss_type, eps[0], eps[1], beta))
            # gradient accumulation normaliser, and the KL without the importance-ratio factor
            cases.append(run_case(inp, level, loss_type, 0.2, 0.28, 0.1, grad_accum=3))
            cases.append(run_case(inp, level, loss_type, 0.2, 0.28, 0.1, bias_kl=False))

    # Every clip decision must be robust to float32 rounding on the Rust side.
    mk = mask.to(DT)
    lr = logp - old_logp
    seq = (lr * mk).sum(-1) / mk.sum(-1).clamp(min=1.0)
    for eps in [(3e-4, 4e-4), (0.2, 0.28)]:
        for r in [torch.exp(lr)[mask.bool()], torch.exp(seq)]:
            margin = torch.minimum((r - (1 - eps[0])).abs(), (r - (1 + eps[1])).abs()).min().item()
            assert margin > 1e-5, f"a ratio lies within {margin} of a clip boundary; change the seed"
    wide = [c for c in cases if c["epsilon_low"] == 0.2 and c["level"] == "sequence"]
    assert any(0 < c["clip_region"] < 1 for c in wide), "no sequence clips at the wide epsilon"
    wide_tok = [c for c in cases if c["epsilon_low"] == 0.2 and c["level"] == "token"]
    assert any(0 < c["clip_region"] < 1 for c in wide_tok), "no token clips at the wide epsilon"

    adv_cases = []
    reward_sets = [
        (rewards, G),
        ([0.5, 0.5, 0.5, 0.0, 1.0, 0.25], 3),  # one zero-std group
        ([0.3, None, 0.8, 0.1, 0.2, 0.9, 0.4, 0.4], 4),  # an unscorable completion (reward None)
        ([1.0, 0.0, 0.25, 0.75, 0.5, 0.125, 0.0, 1.0], 2),
    ]
    for rw, g in reward_sets:
        rw = [None if v is None else float(torch.tensor(v, dtype=torch.float32).item()) for v in rw]  # f32 values
        for scale in ["group", "batch", "none"]:
            adv_cases.append({"rewards": rw, "group": g, "scale": scale, "advantages": trl_advantages(rw, g, scale)})

    out = {
        "about": "TRL GRPOTrainer._compute_loss reference values; written by tools/reference/gspo_loss.py",
        "versions": {
            "trl": trl.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "accelerate": accelerate.__version__,
            "python": sys.version.split()[0],
        },
        "inputs": {
            "B": B,
            "G": G,
            "T": T,
            "lengths": LENGTHS,
            "mask": mask.tolist(),
            "logp": logp.tolist(),
            "old_logp": old_logp.tolist(),
            "ref_logp": ref_logp.tolist(),
            "rewards": rewards,
            "advantages": advantages.tolist(),
        },
        "cases": none_nan(cases),
        "advantage_cases": none_nan(adv_cases),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    n_clip = sum(1 for c in cases if c["clip_region"] not in (None, 0.0))
    print(f"wrote {OUT}: {len(cases)} loss cases ({n_clip} with clipping), {len(adv_cases)} advantage cases")


if __name__ == "__main__":
    ACCEL = accelerate.Accelerator(cpu=True)
    main()
