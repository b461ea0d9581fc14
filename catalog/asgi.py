"""ASGI entry point for uvicorn workers: the app built from environment settings."""
from catalog.app import create_app

app = create_app()
