"""actionpose fall-detection HTTP service (FastAPI). Start: ``python -m serve --host 127.0.0.1 --port 8000``."""
