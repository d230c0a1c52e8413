"""Sampling-based attribution methods: Gradient SHAP, KernelSHAP and LIME (being built)."""
