"""Shared infrastructure below every domain: bulk reads, templating, CSRF, HTMX detection."""
