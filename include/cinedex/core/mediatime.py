"""One type for media time, so frames, seconds and `HH:MM:SS.mmm` are never mixed up."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

_TIMECODE = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


@dataclass(frozen=True, order=True)
class MediaTime:
    """A point in a film, in seconds from its start (presentation time, not frame count)."""

    seconds: float

    @classmethod
    def from_frame(cls, index: int, fps: float | Fraction) -> MediaTime:
        return cls(float(Fraction(index) / Fraction(fps)))

    @classmethod
    def parse(cls, text: str) -> MediaTime:
        """Accepts `HH:MM:SS`, `HH:MM:SS.mmm`, `MM:SS` and SRT's `HH:MM:SS,mmm`."""
        match = _TIMECODE.match(text.strip().replace(",", "."))
        if not match:
            raise ValueError(f"not a timecode: {text!r}")
        hours, minutes, seconds = match.groups()
        return cls(int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds))

    @property
    def ms(self) -> int:
        return round(self.seconds * 1000)

    def frame(self, fps: float | Fraction) -> int:
        """The index of the frame at `fps` nearest this time."""
        return round(self.seconds * float(fps))

    def snapped(self, fps: float | Fraction) -> MediaTime:
        """This time moved onto the nearest frame at `fps` (the time of frame `frame(fps)`)."""
        return MediaTime.from_frame(self.frame(fps), fps)

    def hhmmss(self) -> str:
        """`HH:MM:SS`, truncated to the second the moment falls in."""
        total = self.ms // 1000
        return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"

    def timecode(self, separator: str = ".") -> str:
        """`HH:MM:SS.mmm` (separator "," gives SRT's form)."""
        return f"{self.hhmmss()}{separator}{self.ms % 1000:03d}"

    def __str__(self) -> str:
        return self.timecode()
