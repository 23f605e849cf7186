"""A Ray temporary folder short enough for Ray's socket paths, for the local Ray a CPU run starts.

Ray puts its Unix sockets under its temporary folder (``<folder>/session_<time>_<pid>/sockets/plasma_store``)
and refuses to start when such a path is longer than a socket address holds (107 bytes); a folder under an
output or test folder easily is. The CPU runs this package starts (the miniature, the CPU-loop test and
benchmark) give ``+ray_kwargs.ray_init._temp_dir`` a fresh folder from :func:`short_ray_temp_dir` instead;
:mod:`onethinker_verl.startup_check` refuses a folder that is too long in one line.
"""

import contextlib
import shutil
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def short_ray_temp_dir(prefix: str = "ray_") -> Iterator[str]:
    """A new folder in the system's temporary folder (``/tmp``) for one Ray instance, removed afterwards."""
    folder = tempfile.mkdtemp(prefix=prefix)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
