"""What the model uses: direct logit attribution (and, later, interventions) on plain arrays."""
from .dla import LogitAttribution, logit_attribution

__all__ = ["LogitAttribution", "logit_attribution"]
