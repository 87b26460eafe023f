"""The genlab server: OpenAI-compatible routes, the web studio, auth, metrics.

Room ``server``: a face; may import every room but ``cli``, and no room imports it."""
