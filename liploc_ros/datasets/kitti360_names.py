"""KITTI-360's names and text formats: drive folder names and timestamp lines.

Shared by the reader (:class:`~liploc_ros.datasets.kitti360.Kitti360`) and the writer
(:func:`~liploc_ros.datasets.kitti360_writer.write_kitti360`), so both spell a drive and a
stamp the same way. Stamps are seconds since the Unix epoch, the files' times read as UTC
(the files do not say which zone they are in).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np

from liploc_ros.errors import DatasetError

__all__ = ["FRAME_DIGITS", "drive_name", "format_timestamp", "parse_timestamp"]

#: digits of the frame file numbers (0000000042.png)
FRAME_DIGITS = 10
_DRIVE_PATTERN = re.compile(r"\d{4}_\d{2}_\d{2}_drive_\d{4}_sync")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def drive_name(drive: str | int) -> str:
    """KITTI-360's drive folder name: 3, "3", "0003" and the full name all give
    "2013_05_28_drive_0003_sync"."""
    if isinstance(drive, (int, np.integer)) and not isinstance(drive, bool):
        if not 0 <= drive <= 9999:
            raise DatasetError(f"KITTI-360 drive number must be 0..9999, got {drive}")
        return f"2013_05_28_drive_{int(drive):04d}_sync"
    if isinstance(drive, str):
        name = drive.strip()
        if name.isdigit() and len(name) <= 4:
            return drive_name(int(name))
        if _DRIVE_PATTERN.fullmatch(name):
            return name
    raise DatasetError(
        f"invalid KITTI-360 drive {drive!r}: expected a number or a name like "
        "2013_05_28_drive_0000_sync"
    )


def parse_timestamp(text: str) -> float:
    """ "2013-05-28 08:46:02.846905024" -> seconds since the Unix epoch (read as UTC)."""
    date_time, _, fraction = text.strip().partition(".")
    whole = dt.datetime.strptime(date_time, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
    if fraction and not fraction.isdigit():
        raise ValueError(f"bad fraction of a second {fraction!r}")
    seconds = (whole - _EPOCH) // dt.timedelta(seconds=1)
    return float(seconds) + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def format_timestamp(stamp: float) -> str:
    """Seconds since the Unix epoch -> KITTI-360's "YYYY-MM-DD HH:MM:SS.nnnnnnnnn" (UTC)."""
    nanoseconds = int((Decimal(stamp) * 10**9).to_integral_value(ROUND_HALF_EVEN))
    seconds, fraction = divmod(nanoseconds, 10**9)
    when = _EPOCH + dt.timedelta(seconds=seconds)
    return f"{when:%Y-%m-%d %H:%M:%S}.{fraction:09d}"
