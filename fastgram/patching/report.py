"""What :func:`fastgram.patch` did, printable."""

from __future__ import annotations

import dataclasses
from typing import Tuple


@dataclasses.dataclass(frozen=True)
class PatchReport:
    """What :func:`fastgram.patch` did.

    Attributes:
        swapped: qualified names of the modules now running on fastgram.
        skipped: ``(name, reason)`` of every norm-like module left as it was.
        notes: ``(name, note)`` for swapped modules that say more than their
            name (the protocol followed and the probe's agreement).
    """

    swapped: Tuple[str, ...] = ()
    skipped: Tuple[Tuple[str, str], ...] = ()
    notes: Tuple[Tuple[str, str], ...] = ()

    def __str__(self) -> str:
        notes = dict(self.notes)
        lines = [f"fastgram.patch: {len(self.swapped)} swapped, {len(self.skipped)} left"]
        for name in self.swapped:
            note = notes.get(name)
            lines.append(f"  swapped {name or '<root>'}" + (f": {note}" if note else ""))
        lines += [f"  left    {name or '<root>'}: {reason}" for name, reason in self.skipped]
        return "\n".join(lines)
