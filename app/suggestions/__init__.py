"""Model suggestions: labels from named origins shown beside an item, and model pre-screening."""
