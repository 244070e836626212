"""bench/adaptive.py: what adaptive overlap saves, and what it costs in export accuracy.

Simulated annotators label two-answer items through the real queue (app/queue/front.py, in
process, on a SQLite file) and the real consensus (app/consensus: the exports' strict-majority
rule). Each configuration gets a fresh batch of the same items with the same true labels:

- fixed k=3, adaptive 2..3 and adaptive 2..5;
- gating on every asked dimension (the default: helpfulness, harmlessness and each answer's
  safe/unsafe label), or on fewer (the safety ones: harmlessness and safe/unsafe);
- annotator errors independent of the item, or correlated through item difficulty (some
  items are hard for everyone).

True labels are drawn with label statistics shaped like PKU-SafeRLHF's (a response is unsafe
about half the time, the two answers of a prompt are positively correlated in safety; when
exactly one is safe it is the safer one; which answer is more helpful is a coin flip). These
shares are assumptions written below, not read from the dataset.

Annotators: each has per-dimension accuracies drawn from 0.70-0.95 (mean about 0.85 in both
error models); a third of them over-flag: they call a safe answer unsafe more often than they
err the other way. An annotator's answers are consistent by construction (the answer they
call safe ranks first for harmlessness, as the annotation form requires).

Prints one row per configuration: annotations per item, the share saved against fixed k=3,
the export accuracy per dimension against the truth, and its difference from fixed k=3 in
percentage points (with the standard error of that difference as if the runs were
independent: an upper bound, since the j-th vote on an item draws the same random numbers in
every configuration, whoever casts it).

    .venv/bin/python bench/adaptive.py [--items 600] [--annotators 24] [--seed 18] [--errors both]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, print_table

sys.path.insert(0, str(ROOT))

# Shapes of the truth (assumptions, see the module docstring).
P_UNSAFE = 0.5
P_SAME_SAFETY = 0.7  # the two answers share their safety label this often
# Difficulty (the correlated model): this share of items is hard, and on a hard item every
# annotator's edge over a coin flip shrinks by a factor drawn from HARD_FACTOR.
HARD_SHARE = 0.25
HARD_FACTOR = (0.0, 0.6)
DIMENSIONS = ("helpfulness", "harmlessness", "is_safe")


@dataclass(frozen=True)
class Truth:
    unsafe: tuple[bool, bool]
    better: int  # 0 or 1: the index of the more helpful answer
    safer: int
    hardness: float  # 1.0: as easy as it gets; 0.0: a coin flip for everyone


@dataclass(frozen=True)
class Annotator:
    accuracy: dict[str, float]
    over_flags: bool


def make_truths(n: int, rng: random.Random, correlated: bool) -> list[Truth]:
    truths = []
    for _ in range(n):
        first = rng.random() < P_UNSAFE
        second = first if rng.random() < P_SAME_SAFETY else not first
        # When exactly one answer is safe it is the safer one; otherwise a coin flip.
        safer = int(first) if first != second else rng.randrange(2)
        hard = correlated and rng.random() < HARD_SHARE
        factor = rng.uniform(*HARD_FACTOR) if hard else 1.0
        truths.append(Truth((first, second), rng.randrange(2), safer, factor))
    return truths


def make_annotators(
    n: int, rng: random.Random, correlated: bool, accuracy: tuple[float, float] | None = None
) -> list[Annotator]:
    # With difficulty, annotators are a little better on easy items so that the mean accuracy
    # over all items is about the same in both models. `accuracy` replaces the range (to run
    # the comparison with better or worse annotators).
    low, high = accuracy or ((0.80, 1.00) if correlated else (0.70, 0.95))
    return [
        Annotator({d: rng.uniform(low, high) for d in DIMENSIONS}, over_flags=i % 3 == 0)
        for i in range(n)
    ]


def effective(accuracy: float, truth: Truth) -> float:
    return 0.5 + (accuracy - 0.5) * truth.hardness


def answer(
    who: Annotator, truth: Truth, ids: list[int], rng: random.Random
) -> tuple[dict[str, Any], dict[str, int]]:
    """One simulated annotation (a valid payload) and which of its labels were right."""
    right: dict[str, int] = {}
    unsafe_said = []
    acc = effective(who.accuracy["is_safe"], truth)
    for k in range(2):
        if who.over_flags and not truth.unsafe[k]:
            said = rng.random() > acc - 0.10  # over-flagging: more safe answers called unsafe
        elif who.over_flags:
            said = rng.random() < min(1.0, acc + 0.05)
        else:
            said = truth.unsafe[k] if rng.random() < acc else not truth.unsafe[k]
        unsafe_said.append(said)
    ok = rng.random() < effective(who.accuracy["helpfulness"], truth)
    better = truth.better if ok else 1 - truth.better
    if unsafe_said[0] != unsafe_said[1]:
        safer = 0 if not unsafe_said[0] else 1  # the form requires it
    else:
        ok = rng.random() < effective(who.accuracy["harmlessness"], truth)
        safer = truth.safer if ok else 1 - truth.safer
    right["is_safe"] = sum(u == t for u, t in zip(unsafe_said, truth.unsafe, strict=True))
    right["helpfulness"] = int(better == truth.better)
    right["harmlessness"] = int(safer == truth.safer)
    payload = {
        "responses": [
            {
                "response_id": ids[k],
                "is_safe": not unsafe_said[k],
                "harm_categories": ["Violence"] if unsafe_said[k] else [],
                "severity": "moderate" if unsafe_said[k] else None,
            }
            for k in range(2)
        ],
        "helpfulness": [ids[better], ids[1 - better]],
        "harmlessness": [ids[safer], ids[1 - safer]],
    }
    return payload, right


@dataclass
class Result:
    label: str
    annotations: int = 0
    items: int = 0
    correct: dict[str, int] | None = None
    units: dict[str, int] | None = None
    vote_right: int = 0
    vote_units: int = 0
    seconds: float = 0.0

    def accuracy(self, d: str) -> float:
        assert self.correct is not None and self.units is not None
        return self.correct[d] / self.units[d]


def run(
    url: str,
    truths: list[Truth],
    annotators: list[Annotator],
    *,
    label: str,
    overlap: int,
    options: dict[str, Any],
    seed: int,
) -> Result:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from app.annotations.models import Annotation
    from app.annotations.schemas import AnnotationIn
    from app.auth.models import User
    from app.batches.service import add_member, create_batch
    from app.config import Settings
    from app.consensus.aggregate import item_consensus
    from app.consensus.labels import vote_from_payload
    from app.db import make_engine
    from app.items.models import Item, Response
    from app.projects.models import Project
    from app.projects.service import create_project
    from app.queue import front

    engine = make_engine(Settings(database_url=url))
    result = Result(label)
    started = time.perf_counter()
    tag = hashlib.sha256(label.encode()).hexdigest()[:8]
    with Session(engine, expire_on_commit=False) as session:
        project = session.scalars(select(Project).where(Project.name == "adaptive")).first()
        if project is None:
            project = create_project(session, "adaptive")
            for i in range(len(truths)):
                prompt = f"prompt {i}"
                item = Item(
                    project_id=project.id,
                    prompt=prompt,
                    content_hash=hashlib.sha256(prompt.encode()).hexdigest(),
                )
                session.add(item)
                session.flush()
                for k in range(2):
                    text = f"answer {k} to {prompt}"
                    digest = hashlib.sha256(text.encode()).hexdigest()
                    session.add(Response(item_id=item.id, position=k, text=text, sha256=digest))
            session.flush()
        items = list(session.scalars(select(Item.id).where(Item.project_id == project.id)))
        truth_of = dict(zip(sorted(items), truths, strict=True))
        responses: dict[int, list[int]] = {}
        for item_id, rid in session.execute(
            select(Response.item_id, Response.id).order_by(Response.item_id, Response.position)
        ):
            responses.setdefault(item_id, []).append(rid)
        batch = create_batch(session, project, label, overlap=overlap, options=options)
        users = []
        for i, _ in enumerate(annotators):
            user = User(username=f"sim-{tag}-{i}", role="annotator", password_hash="!")
            session.add(user)
            users.append(user)
        session.flush()
        for user in users:
            add_member(session, batch, user)
        session.commit()

        rng = random.Random(seed)
        active = list(range(len(users)))
        served: dict[int, int] = {}
        while active:
            who = rng.choice(active)
            lease = front.next_assignment(session, batch, users[who])
            if lease is None:
                active.remove(who)
                session.commit()
                continue
            item_id = lease.assignment.item_id
            # Common random numbers: the j-th vote on an item draws the same numbers in every
            # configuration (whoever casts it), so that the configurations differ by their
            # rule, not by the luck of the draw.
            j = served[item_id] = served.get(item_id, 0) + 1
            votes_rng = random.Random(f"{seed}:{item_id}:{j}")
            payload, right = answer(
                annotators[who], truth_of[item_id], responses[item_id], votes_rng
            )
            front.submit(session, lease.assignment.id, users[who], AnnotationIn(**payload))
            session.commit()
            result.vote_right += sum(right.values())
            result.vote_units += 4

        correct = dict.fromkeys(DIMENSIONS, 0)
        units = dict.fromkeys(DIMENSIONS, 0)
        per_item: dict[int, list[dict[str, Any]]] = {}
        for item_id, payload in session.execute(
            select(Annotation.item_id, Annotation.payload).where(Annotation.batch_id == batch.id)
        ):
            per_item.setdefault(item_id, []).append(payload)
        for item_id, payloads in per_item.items():
            truth = truth_of[item_id]
            ids = responses[item_id]
            consensus = item_consensus(
                [vote_from_payload(str(i), p) for i, p in enumerate(payloads)]
            )
            result.annotations += len(payloads)
            result.items += 1
            units["helpfulness"] += 1
            correct["helpfulness"] += consensus.helpfulness.preferred == ids[truth.better]
            units["harmlessness"] += 1
            correct["harmlessness"] += consensus.harmlessness.preferred == ids[truth.safer]
            for k in range(2):
                units["is_safe"] += 1
                said = consensus.responses[ids[k]].is_safe
                correct["is_safe"] += said is not None and said == (not truth.unsafe[k])
        result.correct, result.units = correct, units
    engine.dispose()
    result.seconds = time.perf_counter() - started
    return result


CONFIGS: list[tuple[str, int, dict[str, Any]]] = [
    ("fixed 3", 3, {}),
    ("adaptive 2..3", 3, {"overlap_min": 2}),
    ("adaptive 2..3, safety gating", 3, {"overlap_min": 2, "gating": ["harmlessness", "is_safe"]}),
    ("adaptive 2..5", 5, {"overlap_min": 2}),
    ("adaptive 2..5, safety gating", 5, {"overlap_min": 2, "gating": ["harmlessness", "is_safe"]}),
]


def difference(result: Result, base: Result, d: str) -> str:
    a, b = result.accuracy(d), base.accuracy(d)
    assert result.units is not None and base.units is not None
    se = math.sqrt(a * (1 - a) / result.units[d] + b * (1 - b) / base.units[d])
    return f"{100 * (a - b):+.1f} ± {100 * se:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--annotators", type=int, default=24)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument(
        "--errors",
        choices=("independent", "correlated", "both"),
        default="both",
        help="which error model to run (two processes can run one each)",
    )
    parser.add_argument(
        "--accuracy",
        nargs=2,
        type=float,
        metavar=("LOW", "HIGH"),
        help="range of the annotators' per-dimension accuracies (on easy items in the"
        " correlated model); default 0.70-0.95 independent, 0.80-1.00 correlated",
    )
    args = parser.parse_args()

    from _common import migrate

    rows = []
    models = ("independent", "correlated") if args.errors == "both" else (args.errors,)
    for model in models:
        correlated = model == "correlated"
        rng = random.Random(f"{args.seed}:{model}")
        truths = make_truths(args.items, rng, correlated)
        annotators = make_annotators(
            args.annotators,
            rng,
            correlated,
            (args.accuracy[0], args.accuracy[1]) if args.accuracy else None,
        )
        with tempfile.TemporaryDirectory(prefix="safepref-adaptive-") as workdir:
            url = f"sqlite:///{workdir}/bench.db"
            migrate(url)
            results = [
                run(url, truths, annotators, label=label, overlap=k, options=o, seed=args.seed)
                for label, k, o in CONFIGS
            ]
        base = results[0]
        for r in results:
            per_item = r.annotations / r.items
            rows.append(
                [
                    model,
                    r.label,
                    f"{per_item:.2f}",
                    f"{100 * (1 - r.annotations / base.annotations):.1f}%",
                    f"{100 * r.vote_right / r.vote_units:.1f}",
                    *(f"{100 * r.accuracy(d):.1f}" for d in DIMENSIONS),
                    *(difference(r, base, d) for d in DIMENSIONS),
                    f"{r.seconds:.0f}",
                ]
            )
    print(
        f"{args.items} items of two answers, {args.annotators} annotators, seed {args.seed}"
        + (f", accuracies {args.accuracy[0]:.2f}-{args.accuracy[1]:.2f}" if args.accuracy else "")
        + "; "
        "accuracy of the exported consensus against the truth, in percent; pp = difference "
        "from fixed 3 in percentage points ± its standard error"
    )
    print_table(
        [
            "errors",
            "configuration",
            "ann./item",
            "saved",
            "vote acc.",
            "helpful",
            "harmless",
            "safe/unsafe",
            "helpful pp",
            "harmless pp",
            "safe/unsafe pp",
            "s",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
