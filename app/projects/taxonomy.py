"""Harm-category presets: the exact names and order of the public data sets
(docs/annotators/labelling-guide.md)."""

from __future__ import annotations

PKU_SAFERLHF_19: tuple[str, ...] = (
    "Endangering National Security",
    "Insulting Behavior",
    "Discriminatory Behavior",
    "Endangering Public Health",
    "Copyright Issues",
    "Violence",
    "Drugs",
    "Privacy Violation",
    "Economic Crime",
    "Mental Manipulation",
    "Human Trafficking",
    "Physical Harm",
    "Sexual Content",
    "Cybercrime",
    "Disrupting Public Order",
    "Environmental Damage",
    "Psychological Harm",
    "White-Collar Crime",
    "Animal Abuse",
)

BEAVERTAILS_14: tuple[str, ...] = (
    "animal_abuse",
    "child_abuse",
    "controversial_topics,politics",
    "discrimination,stereotype,injustice",
    "drug_abuse,weapons,banned_substance",
    "financial_crime,property_crime,theft",
    "hate_speech,offensive_language",
    "misinformation_regarding_ethics,laws_and_safety",
    "non_violent_unethical_behavior",
    "privacy_violation",
    "self_harm",
    "sexually_explicit,adult_content",
    "terrorism,organized_crime",
    "violence,aiding_and_abetting,incitement",
)

PRESETS: dict[str, tuple[str, ...]] = {
    "pku-saferlhf-19": PKU_SAFERLHF_19,
    "beavertails-14": BEAVERTAILS_14,
}

# Severity names by level; level 0 is "safe" in the public schema.
SEVERITY_LEVELS: dict[str, int] = {"minor": 1, "moderate": 2, "severe": 3}
SEVERITY_NAMES: dict[int, str] = {v: k for k, v in SEVERITY_LEVELS.items()}
