"""TensorBoard event files of scalars, written without TensorFlow or torch.

TensorBoard reads ``events.out.tfevents.*`` files: TFRecord framing (length,
masked CRC-32C of the length, payload, masked CRC-32C of the payload) around
``tensorflow.Event`` protocol buffers. We write only scalars, so the three
messages involved (``Event``, ``Summary.Value``, ``SessionLog``) are encoded
here by hand in a few lines. tensorboardX did this before, but its package
imports torch on the way in (seconds of start-up and a torch install in every
training run); TensorBoard's own writer needs TensorFlow, and so does
``flax.metrics.tensorboard``.

Field numbers (tensorboard/compat/proto/event.proto, summary.proto):
``Event{wall_time=1 double, step=2 int64, file_version=3 string, summary=5,
session_log=7}`` (one of the last three per event), ``Summary{value=1 repeated}``,
``Summary.Value{tag=1 string, simple_value=2 float}``,
``SessionLog{status=1 enum, START=1}``.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Mapping

try:  # Optional and C-fast; the table below gives the same numbers.
  import google_crc32c as _google_crc32c  # pytype: disable=import-error
except ImportError:  # pragma: no cover - depends on the environment
  _google_crc32c = None


def _crc32c_table() -> list[int]:
  table = []
  for n in range(256):
    c = n
    for _ in range(8):
      c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    table.append(c)
  return table


_TABLE = _crc32c_table()


def crc32c(data: bytes, use_native: bool = True) -> int:
  """CRC-32C (Castagnoli) of DATA; records are small, so pure Python will do."""
  if use_native and _google_crc32c is not None:
    return _google_crc32c.value(data)
  crc = 0xFFFFFFFF
  for b in data:
    crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(payload: bytes) -> bytes:
  """PAYLOAD framed as one TFRecord."""
  header = struct.pack('<Q', len(payload))
  return (header + struct.pack('<I', _masked_crc(header)) + payload +
          struct.pack('<I', _masked_crc(payload)))


def _varint(n: int) -> bytes:
  n &= (1 << 64) - 1  # int64: negatives as ten-byte two's complement.
  out = bytearray()
  while True:
    byte, n = n & 0x7F, n >> 7
    out.append(byte | (0x80 if n else 0))
    if not n:
      return bytes(out)


def _field(number: int, wire_type: int) -> bytes:
  return _varint(number << 3 | wire_type)


def _bytes_field(number: int, value: bytes) -> bytes:
  return _field(number, 2) + _varint(len(value)) + value


def event(step: int, wall_time: float | None = None, *,
          scalars: Mapping[str, float] | None = None,
          file_version: str | None = None, session_start: bool = False
          ) -> bytes:
  """One serialized ``Event`` with SCALARS (tag -> value) or another payload."""
  out = _field(1, 1) + struct.pack(
      '<d', time.time() if wall_time is None else wall_time)
  out += _field(2, 0) + _varint(int(step))
  if file_version is not None:
    out += _bytes_field(3, file_version.encode())
  if scalars:
    summary = b''.join(
        _bytes_field(1, _bytes_field(1, tag.encode()) + _field(2, 5) +
                     struct.pack('<f', float(value)))
        for tag, value in scalars.items())
    out += _bytes_field(5, summary)
  if session_start:
    out += _bytes_field(7, _field(1, 0) + _varint(1))
  return out


class EventFileWriter:
  """Appends scalar events to a new event file in LOGDIR.

  PURGE_STEP (a resumed run): TensorBoard drops the events of earlier files
  at steps >= PURGE_STEP when it meets a ``SessionLog.START`` at that step,
  as tensorboardX's ``SummaryWriter(purge_step=...)`` wrote it.
  """

  def __init__(self, logdir: str, purge_step: int | None = None):
    os.makedirs(logdir, exist_ok=True)
    # TensorBoard reads a folder's files in name order: the nanoseconds keep
    # a resumed run's file after the one it purges within the same second.
    now = time.time_ns()
    name = (f'events.out.tfevents.{now // 10**9:010d}.{socket.gethostname()}'
            f'.{now:020d}.{os.getpid()}')
    self.path = os.path.join(logdir, name)
    self._f = open(self.path, 'ab')
    first = 0 if purge_step is None else int(purge_step)
    self._f.write(record(event(first, file_version='brain.Event:2')))
    if purge_step is not None:
      self._f.write(record(event(first, session_start=True)))
    self._f.flush()

  def add_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """One event at STEP holding every (tag, value) of SCALARS."""
    if scalars:
      self._f.write(record(event(step, scalars=scalars)))

  def flush(self) -> None:
    self._f.flush()

  def close(self) -> None:
    if not self._f.closed:
      self._f.close()
