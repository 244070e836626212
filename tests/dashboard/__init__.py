"""Tests of app/dashboard/."""
