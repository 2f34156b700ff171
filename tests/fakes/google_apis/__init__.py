"""Local stand-ins of the Google REST APIs `burla deploy` calls, one HTTP server per API."""
