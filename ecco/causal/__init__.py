"""What the model uses, on plain arrays: direct logit attribution, causal tracing / activation
patching, and interventions (ablation, steering) during a call."""
from .diff import InterventionDiff
from .dla import LogitAttribution, logit_attribution
from .interventions import Ablate
from .steering import Steer
from .trace import Trace

__all__ = ["Ablate", "InterventionDiff", "LogitAttribution", "Steer", "Trace", "logit_attribution"]
