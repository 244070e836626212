"""Crowd-platform entry: participants arrive with an id from Prolific, MTurk and the like."""
