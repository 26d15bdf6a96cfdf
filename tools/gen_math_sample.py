#!/usr/bin/env python3
"""Generates testdata/math/sample.jsonl: GSM8K-shaped math word problems with worked solutions.

The problems are made up here from templates and a fixed seed (no GSM8K text is copied), so the
file can ship with gym under its own licence. Each line is a chat prompt plus GSM8K's answer
shape (reasoning with <<a*b=c>> calculator annotations, then `#### N`):

  {"messages": [{"role": "system", ...}, {"role": "user", "content": QUESTION}],
   "answer": "...\\n#### 42", "source": "gym-generated"}

    python3 tools/gen_math_sample.py        # rewrites the file; the output is deterministic
"""
import json
import os
import random

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "math", "sample.jsonl")
SYSTEM = ("Solve the math problem. Think step by step, then give the final answer as a number "
          "on its own last line, in the form `#### <number>`.")
NAMES = ["Ava", "Ben", "Chloé", "Dmitri", "Emeka", "Farah", "Goro", "Hana", "Ines", "Jonas",
         "Kofi", "Lena", "Mateo", "Nadia", "Omar", "Priya"]
ITEMS = [("apples", "apple"), ("pencils", "pencil"), ("stickers", "sticker"), ("marbles", "marble"),
         ("cupcakes", "cupcake"), ("books", "book")]


def fmt(n):
    return f"{n:,}" if n >= 10000 else str(n)


def shopping(r):
    name, (items, item) = r.choice(NAMES), r.choice(ITEMS)
    n, price, paid = r.randint(3, 12), r.randint(2, 9), 0
    total = n * price
    paid = ((total // 10) + r.randint(1, 3)) * 10
    q = (f"{name} buys {n} {items} at ${price} per {item} and pays with ${paid}. "
         f"How much change, in dollars, does {name} get back?")
    a = (f"The {items} cost {n} * {price} = <<{n}*{price}={total}>>{total} dollars.\n"
         f"The change is {paid} - {total} = <<{paid}-{total}={paid - total}>>{paid - total} dollars.\n"
         f"#### {paid - total}")
    return q, a


def sharing(r):
    name, (items, _) = r.choice(NAMES), r.choice(ITEMS)
    friends, each, left = r.randint(2, 6), r.randint(3, 15), r.randint(0, 5)
    start = friends * each + left
    q = (f"{name} has {start} {items}. After giving the same number to each of {friends} friends, "
         f"{left} are left. How many {items} did each friend get?")
    a = (f"{name} gave away {start} - {left} = <<{start}-{left}={start - left}>>{start - left} {items}.\n"
         f"Each friend got {start - left} / {friends} = <<{start - left}/{friends}={each}>>{each} {items}.\n"
         f"#### {each}")
    return q, a


def savings(r):
    name = r.choice(NAMES)
    weekly, weeks, spent = r.randint(15, 120), r.randint(4, 52), r.randint(10, 400)
    saved = weekly * weeks
    if spent >= saved:
        spent = saved // 3
    left = saved - spent
    q = (f"{name} saves ${weekly} every week for {weeks} weeks, then spends ${spent} on a bike. "
         f"How many dollars does {name} have left?")
    a = (f"{name} saves {weekly} * {weeks} = <<{weekly}*{weeks}={saved}>>{fmt(saved)} dollars.\n"
         f"After the bike, {saved} - {spent} = <<{saved}-{spent}={left}>>{fmt(left)} dollars are left.\n"
         f"#### {left}")
    return q, a


def speed(r):
    name = r.choice(NAMES)
    kmh, hours, extra = r.randint(40, 110), r.randint(2, 9), r.randint(5, 60)
    dist = kmh * hours + extra
    q = (f"{name} drives at {kmh} km per hour for {hours} hours and then another {extra} km. "
         f"How many kilometres does {name} drive in total?")
    a = (f"In {hours} hours {name} drives {kmh} * {hours} = <<{kmh}*{hours}={kmh * hours}>>{kmh * hours} km.\n"
         f"In total that is {kmh * hours} + {extra} = <<{kmh * hours}+{extra}={dist}>>{dist} km.\n"
         f"#### {dist}")
    return q, a


def percent(r):
    name = r.choice(NAMES)
    price = r.randint(2, 40) * 10
    off = r.choice([10, 20, 25, 50])
    cut = price * off // 100
    q = (f"A jacket costs ${price}. {name} gets a {off}% discount. How many dollars does "
         f"{name} pay?")
    a = (f"The discount is {price} * {off} / 100 = <<{price}*{off}/100={cut}>>{cut} dollars.\n"
         f"{name} pays {price} - {cut} = <<{price}-{cut}={price - cut}>>{price - cut} dollars.\n"
         f"#### {price - cut}")
    return q, a


def main():
    r = random.Random(20260101)
    kinds = [shopping, sharing, savings, speed, percent]
    rows = []
    for i in range(60):
        q, a = kinds[i % len(kinds)](r)
        rows.append({"messages": [{"role": "system", "content": SYSTEM},
                                  {"role": "user", "content": q}],
                     "answer": a, "source": "gym-generated"})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} problems to {OUT}")


if __name__ == "__main__":
    main()
