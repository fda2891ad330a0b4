"""The synthetic web: scenes, captions, pages, noise with known labels, and its HTTP server."""
