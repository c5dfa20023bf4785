"""The scorer process: loads one model in its own environment and scores batches from its parent.

Run as ``python -m spark_models.envs.child`` with the protocol on stdin/stdout (see
:mod:`spark_models.envs.protocol`): a CONFIG message (model_dir, allow_code, model_config), a
READY answer, then REQUEST → OUTPUT or ERROR until stdin closes. Logs go to stderr.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any

_logger = logging.getLogger("spark_models.envs.child")
_WATCH_SECONDS = 0.5
_VERSIONED = ("numpy", "pandas", "pyarrow", "cloudpickle", "scikit-learn")


def _take_stdio() -> tuple[int, int]:
    """The protocol's fds; fd 0 becomes /dev/null and fd 1 stderr, so that a model that prints
    (or a library writing to fd 1) cannot corrupt the protocol."""
    read_fd, write_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return read_fd, write_fd


def _watch_parent(parent: int) -> None:
    """Exit as soon as the parent is gone (we are re-parented), even in the middle of a batch."""
    while True:
        time.sleep(_WATCH_SECONDS)
        if os.getppid() != parent:
            _logger.warning("The parent process %d is gone; exiting", parent)
            logging.shutdown()
            os._exit(3)


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def _load(config: dict[str, Any]) -> Any:
    from spark_models.pyfunc import load_model

    return load_model(config["model_dir"], suppress_warnings=True, allow_code=config.get("allow_code"),
                      model_config=config.get("model_config"))


def _serve(pipe: Any, model: Any) -> None:
    from spark_models.envs.protocol import ERROR, OUTPUT, decode, encode, error_head

    while True:
        message = pipe.receive(eof_ok=True)
        if message is None:
            _logger.info("Input closed; exiting")
            return
        _, head, frames = message
        try:
            output = model.predict(decode(frames), params=head.get("params"))
            reply = encode(output)
        except Exception as e:
            _logger.exception("predict failed")
            pipe.send(ERROR, error_head(e))
            continue
        pipe.send(OUTPUT, {}, reply)


def main() -> int:
    """Run the scorer loop; the exit code is 0 after a clean end of input, 1 when loading failed."""
    read_fd, write_fd = _take_stdio()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s scorer[%(process)d] %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which closes our input
    threading.Thread(target=_watch_parent, args=(os.getppid(),), name="watch-parent", daemon=True).start()

    from spark_models.envs.protocol import ERROR, READY, Pipe, error_head

    pipe = Pipe(read_fd, write_fd)
    message = pipe.receive(eof_ok=True)
    if message is None:
        return 0
    config = message[1]
    started = time.monotonic()
    _logger.info("Loading %s (python %s)", config.get("model_dir"), sys.version.split()[0])
    try:
        model = _load(config)
    except Exception as e:
        _logger.exception("Loading the model failed")
        pipe.send(ERROR, error_head(e))
        return 1
    _logger.info("Loaded in %.1fs", time.monotonic() - started)
    pipe.send(READY, {"pid": os.getpid(), "python": sys.version.split()[0], "versions": _versions()})
    _serve(pipe, model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
