"""infoclip: the InfoCLIP losses, the LPAM module and distillation baselines for CLIP-based segmentors.

Drop-in use in a training step:

```python
from infoclip import InfoCLIPLoss

distiller = InfoCLIPLoss(embed_dim=512)
out = distiller(teacher_visual, teacher_text, student_visual, student_text)
loss = task_loss + out.total
```

``import infoclip`` imports only torch and `renyi_info` (never open_clip or mmsegmentation).
"""

from __future__ import annotations

from . import distributed
from .baselines import (
    KLDistiller,
    MAFTDistiller,
    MAFTPlusDistiller,
    NoDistiller,
    kl_distillation_loss,
    maft_distillation_loss,
    pixel_text_logits,
    representation_compensation_loss,
)
from .distiller import EXTRA_INPUTS, DistillationOutput, Distiller, DistillerInputs
from .losses import CompressionLoss, DistillationLoss, InfoCLIPLoss, compression_loss, distillation_loss
from .lpam import LPAM
from .registry import (
    DISTILLERS,
    AlignmentMap,
    DistillerOption,
    DistillerSpec,
    distiller_names,
    distiller_spec,
    make_distiller,
    register_distiller,
)

__all__ = [
    "DISTILLERS",
    "EXTRA_INPUTS",
    "LPAM",
    "AlignmentMap",
    "CompressionLoss",
    "DistillationLoss",
    "DistillationOutput",
    "Distiller",
    "DistillerInputs",
    "DistillerOption",
    "DistillerSpec",
    "InfoCLIPLoss",
    "KLDistiller",
    "MAFTDistiller",
    "MAFTPlusDistiller",
    "NoDistiller",
    "compression_loss",
    "distillation_loss",
    "distiller_names",
    "distiller_spec",
    "distributed",
    "kl_distillation_loss",
    "maft_distillation_loss",
    "make_distiller",
    "pixel_text_logits",
    "register_distiller",
    "representation_compensation_loss",
]
