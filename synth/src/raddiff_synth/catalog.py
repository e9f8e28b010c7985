"""Every finding kind by name: the one registry that specs, the renderer and the reports read."""

from __future__ import annotations

from raddiff_synth.devices import CardiacDevice, CentralLine, EndotrachealTube, Enteric
from raddiff_synth.findings import (
    Atelectasis,
    Cardiomegaly,
    Consolidation,
    Edema,
    FindingKind,
    Nodule,
    PleuralEffusion,
    Pneumothorax,
)

KINDS: dict[str, FindingKind] = {
    kind.name: kind
    for kind in (
        PleuralEffusion(),
        Cardiomegaly(),
        Consolidation(),
        Atelectasis(),
        Nodule(),
        Pneumothorax(),
        Edema(),
        EndotrachealTube(),
        Enteric(),
        CentralLine(),
        CardiacDevice(),
    )
}
