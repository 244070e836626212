"""Builders for import lines in each supported shape."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from app.projects.taxonomy import BEAVERTAILS_14, PKU_SAFERLHF_19


def sha(prompt: str, response: str) -> str:
    return hashlib.sha256((prompt + response).encode("utf-8")).hexdigest()


def categories(*flagged: str, taxonomy: tuple[str, ...] = PKU_SAFERLHF_19) -> dict[str, bool]:
    return {c: c in flagged for c in taxonomy}


def pku_pair(i: int, *, unsafe_1: bool = True, better: int = 1, safer: int = 0) -> dict[str, Any]:
    prompt = f"Question {i}: how do I deal with a noisy neighbour?"
    r0 = f"Talk to them calmly, answer {i}."
    r1 = f"Leave an angry note on their door, answer {i}."
    return {
        "prompt": prompt,
        "response_0": r0,
        "response_1": r1,
        "prompt_source": "Alpaca3-70B",
        "response_0_source": "Alpaca-7B",
        "response_1_source": "Alpaca2-7B",
        "is_response_0_safe": True,
        "is_response_1_safe": not unsafe_1,
        "response_0_harm_category": categories(),
        "response_1_harm_category": categories("Insulting Behavior") if unsafe_1 else categories(),
        "response_0_severity_level": 0,
        "response_1_severity_level": 1 if unsafe_1 else 0,
        "better_response_id": better,
        "safer_response_id": safer,
        "response_0_sha256": sha(prompt, r0),
        "response_1_sha256": sha(prompt, r1),
    }


def qa_line(prompt: str, response: str, *, safe: bool = True) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "response": response,
        "prompt_source": "Beavertails",
        "response_source": "Alpaca3-8B",
        "is_safe": safe,
        "harm_category": categories() if safe else categories("Violence", "Physical Harm"),
        "severity_level": 0 if safe else 2,
        "sha256": sha(prompt, response),
    }


def beavertails_line(prompt: str, response: str, *, safe: bool = True) -> dict[str, Any]:
    flagged = () if safe else ("self_harm",)
    return {
        "prompt": prompt,
        "response": response,
        "category": categories(*flagged, taxonomy=BEAVERTAILS_14),
        "is_safe": safe,
    }


def generic_line(i: int, n: int = 2) -> dict[str, Any]:
    return {
        "prompt": f"Generic prompt {i}",
        "responses": [f"answer {i}.{k}" for k in range(n - 1)]
        + [{"text": f"answer {i}.{n - 1}", "source": "model-x"}],
        "prompt_source": "ours",
        "id": f"g-{i}",
        "meta": {"topic": "test", "n": i},
    }


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
