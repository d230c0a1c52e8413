"""Attention-based attribution methods: raw attention, attention rollout, value zeroing (being built)."""
