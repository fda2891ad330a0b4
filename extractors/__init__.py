"""Models that turn a sample into features (regions, text, relevance). No Ray imports here."""
