"""Model loading: architecture specs, the registry, and the bundled offline models."""
