"""Qualification: gold items a new member of a batch answers, with feedback, before working."""
