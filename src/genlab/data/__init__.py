"""Dataset builders: text corpora (Shakespeare, Python code, user files) and, later, images and audio."""
