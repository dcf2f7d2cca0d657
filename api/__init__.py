"""The operator surface: REST API (FastAPI), CLI, settings, and the process supervisor (`tempano up`)."""
