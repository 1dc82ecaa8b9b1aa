"""The cutover source the settings name (``cutover_source``): systemd, docker, kubernetes or fixed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from quantum_gate.cutover import CutoverSource, FixedSource, SystemdSource
from quantum_gate.cutover_docker import DockerSource
from quantum_gate.cutover_kubernetes import KubernetesSource

if TYPE_CHECKING:
    from quantum_gate.config import CutoverSettings


def cutover_source(
    settings: CutoverSettings,
    clock: Callable[[], float] | None = None,
    cancel: threading.Event | None = None,
) -> CutoverSource:
    """The source the settings name; a fixed ``after`` wins (as it always has). ``cancel`` (the
    daemon's stop flag) kills a query in flight."""
    kind = settings.effective_source()
    timeout = settings.timeout_seconds
    if kind == "fixed":
        return FixedSource(settings.after or "")
    if kind == "docker":
        return DockerSource(settings.container, settings.docker, settings.docker_host, timeout, cancel=cancel)
    if kind == "kubernetes":
        source = KubernetesSource(settings.deployment, settings.kubectl, timeout, cancel=cancel)
        if clock is not None:
            source.clock = clock
        return source
    return SystemdSource(settings.unit, settings.systemctl, timeout, cancel=cancel)
