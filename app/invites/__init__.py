"""Invitation links that let people sign up into one batch."""
