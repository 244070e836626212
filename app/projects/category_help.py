"""One-line descriptions of the preset harm categories, shown beside each checkbox.

Written for this project to help annotators tell neighbouring categories apart; custom
taxonomies have no descriptions (the project's guidelines explain them).
"""

from __future__ import annotations

from collections.abc import Sequence

from app.projects.taxonomy import BEAVERTAILS_14, PKU_SAFERLHF_19

PKU_HELP: dict[str, str] = {
    "Endangering National Security": "Espionage, sabotage or attacks on a state",
    "Insulting Behavior": "Insults, mocks or demeans someone",
    "Discriminatory Behavior": "Unfair treatment or stereotypes about a group",
    "Endangering Public Health": "Health misinformation, disease or food-safety risks",
    "Copyright Issues": "Pirating or reproducing protected works",
    "Violence": "Encourages or explains hurting people",
    "Drugs": "Making, buying, selling or misusing illegal drugs",
    "Privacy Violation": "Exposing personal data, stalking, surveillance",
    "Economic Crime": "Fraud, scams, counterfeiting, money laundering",
    "Mental Manipulation": "Gaslighting, coercion, exploiting someone's mind",
    "Human Trafficking": "Recruiting, moving or exploiting people",
    "Physical Harm": "Risk of bodily injury, self-harm, dangerous acts",
    "Sexual Content": "Explicit sexual material; anything sexual with minors",
    "Cybercrime": "Hacking, malware, phishing, account takeover",
    "Disrupting Public Order": "Riots, vandalism, panic, public disorder",
    "Environmental Damage": "Pollution, illegal dumping, harming ecosystems",
    "Psychological Harm": "Causing fear, distress, harassment or bullying",
    "White-Collar Crime": "Embezzlement, bribery, insider trading",
    "Animal Abuse": "Cruelty to animals or illegal exploitation of them",
}

BEAVERTAILS_HELP: dict[str, str] = {
    "animal_abuse": "Cruelty to animals or illegal exploitation of them",
    "child_abuse": "Physical, emotional or sexual abuse of children",
    "controversial_topics,politics": "One-sided or inflammatory political takes",
    "discrimination,stereotype,injustice": "Unfair treatment or stereotypes about a group",
    "drug_abuse,weapons,banned_substance": "Drug misuse, weapons, banned substances",
    "financial_crime,property_crime,theft": "Fraud, theft, burglary, property damage",
    "hate_speech,offensive_language": "Hateful, abusive or grossly offensive language",
    "misinformation_regarding_ethics,laws_and_safety": "False claims about law, safety, ethics",
    "non_violent_unethical_behavior": "Lying, cheating, other non-violent wrongdoing",
    "privacy_violation": "Exposing or collecting personal information",
    "self_harm": "Encouraging suicide, self-injury, eating disorders",
    "sexually_explicit,adult_content": "Explicit sexual or adult material",
    "terrorism,organized_crime": "Supporting terrorism or criminal organisations",
    "violence,aiding_and_abetting,incitement": "Helping or urging someone to be violent",
}

_BY_PRESET: dict[str, dict[str, str]] = {
    "pku-saferlhf-19": PKU_HELP,
    "beavertails-14": BEAVERTAILS_HELP,
}

assert list(PKU_HELP) == list(PKU_SAFERLHF_19)
assert list(BEAVERTAILS_HELP) == list(BEAVERTAILS_14)


def category_help(preset: str, taxonomy: Sequence[str]) -> list[tuple[str, str]]:
    """(name, one-line description) in taxonomy order; empty descriptions for custom ones."""
    known = _BY_PRESET.get(preset, {})
    return [(name, known.get(name, "")) for name in taxonomy]
