"""Compression techniques, one module each, registered here by the ``kind`` a recipe stage names.

Every module defines its stage model and a :class:`~edgeopt.techniques.base.Technique` instance,
``TECHNIQUE``, with the same members in the same order (see :mod:`edgeopt.techniques.base`). Adding a
technique is one module and one line in :data:`TECHNIQUES`: the recipe accepts its stage, the
ordering check reads its placement, and the pipeline and :mod:`edgeopt.verify` call its methods,
without naming it. Importing this package imports no TensorFlow.
"""

from __future__ import annotations

from edgeopt.techniques import channels, cluster, distill, prune, quantize
from edgeopt.techniques.base import Placement, StageContext, Technique

# Kind -> technique, in the order a recipe's "expected one of" message lists them.
TECHNIQUES: dict[str, Technique] = {
    "prune": prune.TECHNIQUE,
    "cluster": cluster.TECHNIQUE,
    "quantize": quantize.TECHNIQUE,
    "distill": distill.TECHNIQUE,
    "prune_channels": channels.TECHNIQUE,
}

__all__ = ["TECHNIQUES", "Placement", "StageContext", "Technique"]
