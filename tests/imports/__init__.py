"""Tests of app/imports/."""
