"""Admin dashboard, campaign overview, disagreement browser and gold items (issue 7)."""
