"""Command-line entry points, configs and Ray job submission. Thin: no logic lives here."""
