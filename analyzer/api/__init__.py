"""The HTTP API: ``create_app`` builds a FastAPI app from injected services (nothing at import)."""
