"""The genlab server: OpenAI-compatible routes, the web studio, auth, metrics and storage."""
