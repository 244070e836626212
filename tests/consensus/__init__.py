"""Tests of app/consensus/."""
