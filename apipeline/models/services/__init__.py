"""Ready-made model services (standard protocol, class-written) for :class:`~apipeline.models.ModelRegistry`.

* ``neural`` -- :class:`ContentEncoderService`, :class:`SvcService` (so-vits-svc 4.x or RVC),
  :class:`VocoderService` (NSF-HiFiGAN), each configured with a model file.
* ``f0`` -- :class:`F0Service` around :func:`apipeline.audio.f0.get_f0_estimator` (FCPE, CREPE, ...).
* ``world_vc`` -- :class:`WorldVcService`, the voice changer's per-window conversion (stateless).
"""

from __future__ import annotations

from apipeline.models.services.f0 import F0Service as F0Service
from apipeline.models.services.neural import ContentEncoderService as ContentEncoderService
from apipeline.models.services.neural import SvcService as SvcService
from apipeline.models.services.neural import VocoderService as VocoderService
from apipeline.models.services.neural import open_svc as open_svc
from apipeline.models.services.world_vc import WorldVcService as WorldVcService

__all__ = ["ContentEncoderService", "F0Service", "SvcService", "VocoderService", "WorldVcService", "open_svc"]
