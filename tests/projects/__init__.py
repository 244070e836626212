"""Tests of app/projects/: guideline versions, archive and delete."""
