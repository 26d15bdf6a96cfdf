"""Reference (epsilon, delta) for gym's RDP accountant (src/core/validate/rdp.rs).

Google's dp-accounting (PyPI `dp-accounting`), RdpAccountant with its default orders and the
add-or-remove-one neighbouring relation, composing a Gaussian mechanism with noise multiplier
z (full participation) `rounds` times. Writes testdata/dp/rdp-reference.json; the Rust test
`rdp_matches_dp_accounting` compares to 1e-3 in epsilon.

    python3 -m venv /tmp/dpv && /tmp/dpv/bin/pip install dp-accounting==0.6.0
    /tmp/dpv/bin/python tools/reference/dp_accounting_rdp.py
"""

import json
import pathlib

import dp_accounting
from dp_accounting import rdp

ZS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 4.0, 8.0]
ROUNDS = [1, 10, 100, 1000]
DELTAS = [1e-3, 1e-5, 1e-7]

cases = []
for z in ZS:
    for rounds in ROUNDS:
        for delta in DELTAS:
            acc = rdp.RdpAccountant()
            event = dp_accounting.SelfComposedDpEvent(
                dp_accounting.GaussianDpEvent(z), rounds)
            acc.compose(event)
            eps = acc.get_epsilon(delta)
            cases.append({"z": z, "rounds": rounds, "delta": delta, "epsilon": eps})

out = pathlib.Path(__file__).resolve().parents[2] / "testdata" / "dp" / "rdp-reference.json"
out.write_text(json.dumps({
    "format": "gym-dp-reference/1",
    "tool": f"dp-accounting {dp_accounting.__version__ if hasattr(dp_accounting, '__version__') else '0.6.0'}",
    "accountant": "RdpAccountant(default orders, ADD_OR_REMOVE_ONE), GaussianDpEvent(z) x rounds",
    "cases": cases,
}, indent=1) + "\n")
print(f"{len(cases)} cases -> {out}")
