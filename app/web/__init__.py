"""Server-rendered pages shared by every domain (layout, templates, security headers)."""
