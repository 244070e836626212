"""The site around the domains: home page, error handlers, request gate, security headers."""
